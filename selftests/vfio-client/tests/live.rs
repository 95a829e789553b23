// SPDX-License-Identifier: GPL-2.0
//! Tests against real mediated devices, for a VM with the kernel's mdev samples loaded.
//!
//! They run only when the environment names the devices, and pass trivially (saying so on stderr)
//! otherwise, so `cargo test` on a host without devices stays green:
//!
//! * `VFIO_CLIENT_MBOCHS=UUID`: an mbochs instance (vram BAR0, mmio BAR2, EDID region 9);
//! * `VFIO_CLIENT_MTTY=UUID`: an mtty instance (INTx with eventfds).
//!
//! Every test runs on both the container and the iommufd path. The devices must not be open
//! elsewhere; the tests take a lock so they open one device at a time.

use std::sync::Mutex;

use vfio_client::uapi::{self, VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_INTX_IRQ_INDEX};
use vfio_client::{Backend, Device, EventFd, IrqAction, IrqData, Mmap, OpenPath, Prot, RegionCap};

/// A VFIO device can be opened once at a time; cargo runs tests in parallel.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const PATHS: [OpenPath; 2] = [OpenPath::Container, OpenPath::Iommufd];

/// Runs `f` on the device named by `var` on both paths, or skips.
fn with_device(var: &str, f: impl Fn(&Device)) {
    let Ok(uuid) = std::env::var(var) else {
        eprintln!("skipped: {var} is not set");
        return;
    };
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for path in PATHS {
        let dev = Device::open(&uuid, path).unwrap_or_else(|e| panic!("open {uuid} via {path:?}: {e}"));
        assert_eq!(dev.path(), path);
        f(&dev);
    }
}

fn errno<T: std::fmt::Debug>(r: std::io::Result<T>) -> i32 {
    r.expect_err("expected an errno").raw_os_error().expect("an OS error")
}

#[test]
fn mbochs_info_and_regions() {
    with_device("VFIO_CLIENT_MBOCHS", |dev| {
        let info = dev.info().expect("GET_INFO");
        assert!(info.flag_names().contains(&"PCI"));
        assert_eq!(info.num_regions, 10);
        let regions = dev.regions().expect("regions");
        assert!(regions[0].mmappable() && regions[0].size >= 4 << 20);
        // The EDID region: GFX/EDID type capability, found after an argsz re-query.
        let edid = &regions[9];
        assert!(edid.argsz > 32, "argsz {}", edid.argsz);
        assert_eq!(edid.region_type(), Some((uapi::VFIO_REGION_TYPE_GFX, uapi::VFIO_REGION_SUBTYPE_GFX_EDID)));
        assert!(matches!(edid.caps[..], [RegionCap::Type { .. }]));
        let cfg = dev.region_info(VFIO_PCI_CONFIG_REGION_INDEX).expect("config");
        let mut id = [0u8; 4];
        dev.read_region_exact(&cfg, 0, &mut id).expect("config read");
        assert_eq!(id, [0x34, 0x12, 0x11, 0x11]);
    });
}

#[test]
fn short_argsz_and_unknown_ioctls_give_errnos() {
    with_device("VFIO_CLIENT_MBOCHS", |dev| {
        assert_eq!(errno(dev.info_with_argsz(8)), libc::EINVAL);
        assert_eq!(errno(dev.region_info_with_argsz(0, 16)), libc::EINVAL);
        assert_eq!(errno(dev.irq_info_with_argsz(0, 8)), libc::EINVAL);
        // A 32-byte argsz on a region with capabilities: the kernel asks for more.
        let r = dev.region_info_with_argsz(9, 32).expect("fixed part");
        assert!(r.argsz > 32 && r.flags & uapi::VFIO_REGION_INFO_FLAG_CAPS != 0 && r.cap_offset == 0);
        assert_eq!(errno(dev.region_info(1000)), libc::EINVAL);
        assert_eq!(errno(dev.ioctl_none(uapi::io(b';', 100 + 60))), libc::ENOTTY);
        let mut buf = [0u8; 64];
        buf[..4].copy_from_slice(&64u32.to_ne_bytes());
        assert_eq!(errno(dev.ioctl(uapi::io(b';', 100 + 61), &mut buf)), libc::ENOTTY);
        // A real argument pointer of NULL on an ioctl that reads one.
        assert_eq!(errno(dev.ioctl_none(uapi::VFIO_DEVICE_GET_INFO)), libc::EFAULT);
    });
}

/// mbochs' pread/pwrite of BAR0 subtracts the MMIO BAR's offset instead of the memory BAR's
/// (samples/vfio-mdev/mbochs.c, mbochs_access), so file offset BAR0 + X reaches vram byte
/// X + 0x2000, while mmap maps vram byte 0 at BAR0 + 0. The test pins that down: it shows both
/// paths reach the same pages at the offsets this crate computes.
const MBOCHS_PREAD_SKEW: usize = 0x2000;

#[test]
fn mbochs_vram_pread_pwrite_and_mmap_agree() {
    with_device("VFIO_CLIENT_MBOCHS", |dev| {
        let bar0 = dev.region_info(0).expect("BAR0");
        let pattern: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        dev.write_region_all(&bar0, 0x1234, &pattern).expect("pwrite vram");
        let mut back = vec![0u8; pattern.len()];
        dev.read_region_exact(&bar0, 0x1234, &mut back).expect("pread vram");
        assert_eq!(back, pattern);

        let mut map = dev.mmap_region(&bar0, 0, 0x8000, Prot::RW).expect("mmap BAR0");
        let mut seen = vec![0u8; pattern.len()];
        map.read_bytes(0x1234 + MBOCHS_PREAD_SKEW, &mut seen).expect("in map");
        assert_eq!(seen, pattern);
        map.write::<u32>(0x3ffc + MBOCHS_PREAD_SKEW, 0xcafe_f00d).expect("in map");
        let mut word = [0u8; 4];
        dev.read_region_exact(&bar0, 0x3ffc, &mut word).expect("pread");
        assert_eq!(u32::from_ne_bytes(word), 0xcafe_f00d);

        // A second, read-only mapping (a shorter range) sees the same pages.
        let ro = dev.mmap_region(&bar0, 0, 0x6000, Prot::READ).expect("mmap read-only");
        assert_eq!(ro.read::<u32>(0x3ffc + MBOCHS_PREAD_SKEW).expect("in map"), 0xcafe_f00d);
        drop(map);
        assert_eq!(ro.read::<u8>(0x1234 + MBOCHS_PREAD_SKEW).expect("in map"), pattern[0]);

        // mbochs maps BAR0 only from its start, and nothing else; mmap refuses unaligned offsets.
        assert_eq!(errno(dev.mmap_region(&bar0, 0x1000, 0x1000, Prot::READ)), libc::EINVAL);
        assert_eq!(errno(dev.mmap_region(&dev.region_info(2).expect("BAR2"), 0, 4096, Prot::READ)), libc::EINVAL);
        assert_eq!(errno(dev.mmap_region(&bar0, 1, 4096, Prot::READ)), libc::EINVAL);
        // Beyond the vram, mbochs' read handler fails with EFAULT.
        assert_eq!(errno(dev.read_region(&bar0, bar0.size, &mut word)), libc::EFAULT);
    });
}

#[test]
fn dma_map_and_unmap_on_both_paths() {
    with_device("VFIO_CLIENT_MBOCHS", |dev| {
        let buf = Mmap::anonymous(2 << 20).expect("anonymous buffer");
        let iova = 0x1000_0000;
        dev.map_dma(&buf, iova).expect("map");
        // The same IOVA again is taken.
        assert_eq!(errno(dev.map_dma(&buf, iova)), libc::EEXIST);
        assert_eq!(dev.unmap_dma(iova, buf.len() as u64).expect("unmap"), buf.len() as u64);
        match dev.backend() {
            // Type1 reports 0 bytes for an unmap of nothing; iommufd says ENOENT.
            Backend::Container { .. } => assert_eq!(dev.unmap_dma(iova, buf.len() as u64).expect("no-op"), 0),
            Backend::Iommufd { .. } => assert_eq!(errno(dev.unmap_dma(iova, buf.len() as u64)), libc::ENOENT),
        }
        // Read-only mapping through the raw helper, then unmap.
        dev.map_dma_raw(buf.addr(), iova, 4096, true, false).expect("map ro");
        assert_eq!(dev.unmap_dma(iova, 4096).expect("unmap ro"), 4096);
    });
}

#[test]
fn mtty_intx_eventfd_trigger_mask_unmask_teardown() {
    with_device("VFIO_CLIENT_MTTY", |dev| {
        let intx = dev.irq_info(VFIO_PCI_INTX_IRQ_INDEX).expect("INTx info");
        assert_eq!(intx.count, 1);
        assert!(intx.flag_names().contains(&"AUTOMASKED"));
        assert_eq!(errno(dev.irq_info(uapi::VFIO_PCI_MSIX_IRQ_INDEX)), libc::EINVAL);

        let efd = EventFd::new().expect("eventfd");
        dev.set_irq_eventfds(VFIO_PCI_INTX_IRQ_INDEX, 0, &[std::os::fd::AsRawFd::as_raw_fd(&efd)]).expect("set fd");
        dev.trigger_irqs(VFIO_PCI_INTX_IRQ_INDEX, 0, 1).expect("loopback trigger");
        assert!(efd.wait(1000).expect("poll"));
        assert_eq!(efd.read().expect("read"), Some(1));
        // Automasked now: a second trigger is swallowed until unmask.
        dev.trigger_irqs(VFIO_PCI_INTX_IRQ_INDEX, 0, 1).expect("trigger while masked");
        assert_eq!(efd.read().expect("read"), None);
        dev.unmask_irqs(VFIO_PCI_INTX_IRQ_INDEX, 0, 1).expect("unmask");
        dev.set_irqs(IrqAction::Trigger, VFIO_PCI_INTX_IRQ_INDEX, 0, IrqData::Bool(&[true])).expect("bool trigger");
        assert_eq!(efd.read().expect("read"), Some(1));
        dev.unmask_irqs(VFIO_PCI_INTX_IRQ_INDEX, 0, 1).expect("unmask");
        dev.mask_irqs(VFIO_PCI_INTX_IRQ_INDEX, 0, 1).expect("mask");
        dev.trigger_irqs(VFIO_PCI_INTX_IRQ_INDEX, 0, 1).expect("trigger while masked");
        assert_eq!(efd.read().expect("read"), None);
        // Bad ranges and an eventfd for MASK are refused.
        assert_eq!(errno(dev.mask_irqs(VFIO_PCI_INTX_IRQ_INDEX, 1, 1)), libc::EINVAL);
        assert_eq!(
            errno(dev.set_irqs(IrqAction::Mask, VFIO_PCI_INTX_IRQ_INDEX, 0, IrqData::EventFd(&[-1]))),
            libc::ENOTTY
        );
        // A SET_IRQS whose argsz is short of its payload (the core's validation).
        let mut short = vfio_client::irq::encode_irq_set(
            uapi::VFIO_IRQ_SET_DATA_EVENTFD | uapi::VFIO_IRQ_SET_ACTION_TRIGGER,
            VFIO_PCI_INTX_IRQ_INDEX,
            0,
            1,
            &[],
        );
        assert_eq!(errno(dev.set_irqs_raw(&mut short)), libc::EINVAL);
        // Teardown with fd -1, then disable the index as a whole on a fresh setup.
        dev.set_irq_eventfds(VFIO_PCI_INTX_IRQ_INDEX, 0, &[-1]).expect("teardown");
        dev.set_irq_eventfds(VFIO_PCI_INTX_IRQ_INDEX, 0, &[std::os::fd::AsRawFd::as_raw_fd(&efd)]).expect("set again");
        dev.disable_irqs(VFIO_PCI_INTX_IRQ_INDEX).expect("disable");
        assert_eq!(errno(dev.trigger_irqs(VFIO_PCI_INTX_IRQ_INDEX, 0, 1)), libc::EINVAL);
    });
}

#[test]
fn mtty_uart_registers_byte_access_and_reset() {
    with_device("VFIO_CLIENT_MTTY", |dev| {
        let bar0 = dev.region_info(0).expect("BAR0");
        // Scratch register (7) keeps what is written; LSR (5) shows an empty transmitter.
        dev.write_region_all(&bar0, 7, &[0x5a]).expect("write SCR");
        let mut b = [0u8; 1];
        dev.read_region_exact(&bar0, 7, &mut b).expect("read SCR");
        assert_eq!(b[0], 0x5a);
        dev.read_region_exact(&bar0, 5, &mut b).expect("read LSR");
        assert_eq!(b[0] & 0x60, 0x60, "LSR {:#x}", b[0]);
        dev.reset().expect("VFIO_DEVICE_RESET");
    });
}

#[test]
fn opens_are_exclusive_and_drop_releases_everything() {
    let Ok(uuid) = std::env::var("VFIO_CLIENT_MBOCHS") else {
        eprintln!("skipped: VFIO_CLIENT_MBOCHS is not set");
        return;
    };
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..3 {
        let first = Device::open(&uuid, OpenPath::Container).expect("container open");
        // The group is single-open, and the cdev is blocked while the group is in use.
        let e = Device::open(&uuid, OpenPath::Container).expect_err("group busy");
        assert_eq!(e.raw_os_error(), Some(libc::EBUSY), "{e}");
        let e = Device::open(&uuid, OpenPath::Iommufd).expect_err("cdev blocked");
        assert_eq!(e.raw_os_error(), Some(libc::EBUSY), "{e}");
        drop(first);
        let second = Device::open(&uuid, OpenPath::Iommufd).expect("iommufd open after drop");
        let e = Device::open(&uuid, OpenPath::Container).expect_err("group blocked by cdev");
        assert_eq!(e.raw_os_error(), Some(libc::EBUSY), "{e}");
        drop(second);
    }
}
