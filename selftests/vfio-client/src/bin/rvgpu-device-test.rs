// SPDX-License-Identifier: GPL-2.0
//! rvgpu's vGPU as a vfio-pci device, checked through VFIO as QEMU uses it.
//!
//! `rvgpu-device-test GPU UUID_A UUID_B [--iommufd]`: `GPU` is the physical GPU's PCI address,
//! `UUID_A` and `UUID_B` two vGPUs on it (created by the caller, of the same type). Results are
//! TAP lines numbered through the in-VM runner's counters (`$TAP_STATE`, see
//! `selftests/lib.sh`); the caller's `plan` must match [`RESULTS`].

use std::fs;
use std::os::fd::AsRawFd;

use vfio_client::harness::Args;
use vfio_client::rvgpu::*;
use vfio_client::tap::{ensure, expect_errno, Tap};
use vfio_client::{Device, Mmap, OpenPath, PciConfig, Prot, RegionInfo};

/// How many results one run reports.
const RESULTS: usize = 17;

const MIB: u64 = 1 << 20;
const VFIO_DEVICE_FLAGS_PCI: u32 = 1 << 1;
const VFIO_DEVICE_FLAGS_RESET: u32 = 1 << 0;

fn read_u32(dev: &Device, r: &RegionInfo, off: u64, len: usize) -> Result<u32, String> {
    let mut b = [0u8; 4];
    dev.read_region_exact(r, off, &mut b[..len]).map_err(|e| format!("read {off:#x}/{len}: {e}"))?;
    Ok(u32::from_le_bytes(b))
}

fn write_val(dev: &Device, r: &RegionInfo, off: u64, len: usize, v: u32) -> Result<(), String> {
    dev.write_region_all(r, off, &v.to_le_bytes()[..len]).map_err(|e| format!("write {off:#x}/{len}: {e}"))
}

fn dispi(dev: &Device, bar2: &RegionInfo, index: u64) -> Result<u32, String> {
    read_u32(dev, bar2, MMIO_DISPI + 2 * index, 2)
}

fn set_dispi(dev: &Device, bar2: &RegionInfo, index: u64, v: u32) -> Result<(), String> {
    write_val(dev, bar2, MMIO_DISPI + 2 * index, 2, v)
}

fn config(dev: &Device, cfg: &RegionInfo) -> Result<PciConfig, String> {
    let mut b = vec![0u8; 256];
    dev.read_region_exact(cfg, 0, &mut b).map_err(|e| format!("config read: {e}"))?;
    Ok(PciConfig::new(b))
}

fn memory_on(dev: &Device, cfg: &RegionInfo, on: bool) -> Result<(), String> {
    write_val(dev, cfg, 4, 2, if on { 0x6 } else { 0 })
}

/// The slice offset (bytes) of a vGPU from the GPU's `nvidia/placement`.
fn slice_offset(gpu: &str, uuid: &str) -> Result<u64, String> {
    let p = fs::read_to_string(format!("/sys/bus/pci/devices/{gpu}/nvidia/placement")).map_err(|e| e.to_string())?;
    p.lines()
        .find(|l| l.ends_with(uuid))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|o| o.trim_end_matches('M').parse::<u64>().ok())
        .map(|m| m * MIB)
        .ok_or_else(|| format!("{uuid} not in placement:\n{p}"))
}

/// The physical GPU's whole VRAM, from the host side (`resource0`; needs `iomem=relaxed`).
fn physical_vram(gpu: &str) -> Result<Mmap, String> {
    let path = format!("/sys/bus/pci/devices/{gpu}/resource0");
    let f = fs::OpenOptions::new().read(true).write(true).open(&path).map_err(|e| format!("{path}: {e}"))?;
    let len = f.metadata().map_err(|e| e.to_string())?.len() as usize;
    use std::os::fd::AsFd;
    Mmap::map_fd(f.as_fd(), 0, len, Prot::RW).map_err(|e| format!("mmap {path}: {e}"))
}

fn main() {
    let Args { mut tap, gpu, uuid_a: ua, uuid_b: ub, path, tag } = Args::parse("rvgpu-device-test");
    let run = run(&mut tap, &gpu, &ua, &ub, path, tag);
    if let Err(e) = run {
        println!("# aborted: {e}");
    }
    // Anything not reported counts as failed (the runner also checks the plan).
    tap.fill_to(RESULTS, &format!("[{tag}] (not reached)"));
}

fn run(tap: &mut Tap, gpu: &str, ua: &str, ub: &str, path: OpenPath, tag: &str) -> Result<(), String> {
    let a = Device::open(ua, path).map_err(|e| format!("open {ua}: {e}"))?;
    let b = Device::open(ub, path).map_err(|e| format!("open {ub}: {e}"))?;
    let t = |s: &str| format!("[{tag}] {s}");

    // 1. Device info.
    let info = a.info().map_err(|e| e.to_string())?;
    tap.result(
        &t("VFIO_DEVICE_GET_INFO: a PCI device with reset, 10 regions (the PCI regions and the display region), 5 interrupt indexes"),
        ensure(
            info.flags == VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET
                && info.num_regions == 10
                && info.num_irqs == 5,
            || format!("{info:?}"),
        ),
    );

    // 2. Region info.
    let regions = a.regions().map_err(|e| e.to_string())?;
    let bar0 = regions[REGION_BAR0 as usize].clone();
    let bar2 = regions[REGION_BAR2 as usize].clone();
    let cfg = regions[REGION_CONFIG as usize].clone();
    let usable = bar0.sparse_areas().and_then(|s| s.first()).map(|s| (s.offset, s.size));
    let others_empty = regions
        .iter()
        .filter(|r| ![REGION_BAR0, REGION_BAR2, REGION_CONFIG, REGION_DISPLAY].contains(&r.index))
        .all(|r| r.size == 0);
    let display = regions.get(REGION_DISPLAY as usize);
    let display_ok = display.is_some_and(|d| {
        matches!(usable, Some((_, u)) if d.size == u)
            && d.mmappable()
            && d.readable()
            && d.writable()
            && d.region_type() == Some((REGION_TYPE_DISPLAY, REGION_SUBTYPE_SCANOUT))
    });
    let r = ensure(
        bar0.size.is_power_of_two()
            && bar0.mmappable()
            && bar0.readable()
            && bar0.writable()
            && matches!(usable, Some((0, u)) if u < bar0.size && u % MIB == 0)
            && bar2.size == MMIO_SIZE
            && !bar2.mmappable()
            && cfg.size == 256
            && display_ok
            && others_empty,
        || format!("{regions:#?}"),
    )
    .and_then(|()| expect_errno("region 10", a.region_info(10), libc::EINVAL))
    .and_then(|()| expect_errno("short argsz", a.region_info_with_argsz(0, 8), libc::EINVAL));
    tap.result(&t("regions: BAR0 = profile with a sparse mmap area over the usable part, BAR2 4 KiB, config 256 bytes, the display region (9) the usable size, mmappable, with its type, the rest empty; index 10 and short argsz EINVAL"), r);
    let usable = usable.map_or(0, |u| u.1);

    // 3. Config space identity and capabilities.
    let c = config(&a, &cfg)?;
    let caps: Vec<u8> = c.capabilities().iter().map(|c| c.id).collect();
    tap.result(
        &t("config: 1234:1111 class 0x038000 rev 2, subsystem 1af4:1100, capabilities PM then MSI"),
        ensure(
            c.vendor_id() == PCI_VENDOR_ID
                && c.device_id() == PCI_DEVICE_ID
                && c.class_code() == PCI_CLASS
                && c.revision() == PCI_REVISION
                && c.subsystem_vendor_id() == PCI_SUBSYSTEM_VENDOR_ID
                && c.subsystem_id() == PCI_SUBSYSTEM_ID
                && caps == [0x01, 0x05],
            || format!("{:02x?}\ncaps {caps:?}", &c.bytes()[..0x58]),
        ),
    );

    // 4. BAR sizing and read-only fields.
    let r = (|| {
        write_val(&a, &cfg, 0x10, 4, u32::MAX)?;
        write_val(&a, &cfg, 0x18, 4, u32::MAX)?;
        write_val(&a, &cfg, 0x14, 4, u32::MAX)?;
        write_val(&a, &cfg, 0x00, 4, 0)?;
        let (b0, b1, b2) = (read_u32(&a, &cfg, 0x10, 4)?, read_u32(&a, &cfg, 0x14, 4)?, read_u32(&a, &cfg, 0x18, 4)?);
        let id = read_u32(&a, &cfg, 0, 4)?;
        let want0 = !(bar0.size as u32 - 1) | 0x8;
        let want_id = u32::from(PCI_DEVICE_ID) << 16 | u32::from(PCI_VENDOR_ID);
        ensure(b0 == want0 && b1 == 0 && b2 == !(MMIO_SIZE as u32 - 1) && id == want_id, || {
            format!("BAR0 {b0:#x} (want {want0:#x}) BAR1 {b1:#x} BAR2 {b2:#x} id {id:#x}")
        })?;
        write_val(&a, &cfg, 0x10, 4, 0xe000_0000)?;
        write_val(&a, &cfg, 0x18, 4, 0xe800_0000)?;
        Ok(())
    })();
    tap.result(&t("config: BAR sizing reads back the size masks, unimplemented BARs and IDs ignore writes"), r);

    // 5. Out-of-range config accesses.
    let mut four = [0u8; 4];
    let r = expect_errno("offset 254 len 4", a.read_region(&cfg, 254, &mut four), libc::EINVAL)
        .and_then(|()| expect_errno("offset 256", a.read_region(&cfg, 256, &mut four[..1]), libc::EINVAL))
        .and_then(|()| expect_errno("write at 255 len 2", a.write_region(&cfg, 255, &[0, 0]), libc::EINVAL));
    tap.result(&t("config: accesses beyond 256 bytes are refused with EINVAL"), r);

    // 6. Command register: memory decode off reads all-ones.
    let r = (|| {
        memory_on(&a, &cfg, false)?;
        let off_id = dispi(&a, &bar2, DISPI_INDEX_ID)?;
        let mut fb = [0u8; 4];
        a.read_region_exact(&bar0, 0, &mut fb).map_err(|e| e.to_string())?;
        memory_on(&a, &cfg, true)?;
        let on_id = dispi(&a, &bar2, DISPI_INDEX_ID)?;
        ensure(off_id == 0xffff && fb == [0xff; 4] && on_id == u32::from(DISPI_ID), || {
            format!("decode off: id {off_id:#x} fb {fb:02x?}; on: id {on_id:#x}")
        })
    })();
    tap.result(&t("command register: memory decode off reads all-ones, on answers (DISPI id 0xb0c5)"), r);

    // 7. Registers: identity, VRAM size, extension registers, EDID.
    let r = (|| {
        let mem64k = dispi(&a, &bar2, DISPI_INDEX_VIDEO_MEMORY_64K)?;
        let qext = read_u32(&a, &bar2, MMIO_QEXT_SIZE, 4)?;
        let magic = read_u32(&a, &bar2, REG_MAGIC, 4)?;
        let heads = read_u32(&a, &bar2, REG_HEADS, 4)?;
        let fbsize = read_u32(&a, &bar2, REG_FB_SIZE, 4)?;
        let mut edid = [0u8; 128];
        for i in 0..32 {
            edid[4 * i..4 * i + 4].copy_from_slice(&read_u32(&a, &bar2, MMIO_EDID + 4 * i as u64, 4)?.to_le_bytes());
        }
        let sum = edid.iter().fold(0u8, |s, &x| s.wrapping_add(x));
        ensure(
            u64::from(mem64k) * 65536 == usable
                && u64::from(qext) == MMIO_QEXT_END - MMIO_QEXT
                && magic == MAGIC
                && (1..=4).contains(&heads)
                && u64::from(fbsize) == usable
                && edid[..8] == [0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]
                && sum == 0,
            || {
                format!(
                    "mem64k {mem64k} qext {qext:#x} magic {magic:#x} heads {heads} fb {fbsize} edid {:02x?} sum {sum}",
                    &edid[..16]
                )
            },
        )
    })();
    tap.result(&t("registers: DISPI VRAM size = usable framebuffer, QEMU/rvgpu extension registers, a valid EDID"), r);

    // 8. Mode set as bochs-drm does it, and a mode beyond the type clamped to its maximum.
    let r = (|| {
        let enabled = u32::from(DISPI_ENABLED | DISPI_LFB_ENABLED);
        let mode = [
            (DISPI_INDEX_ENABLE, 0),
            (DISPI_INDEX_BPP, 32),
            (DISPI_INDEX_XRES, 1024),
            (DISPI_INDEX_YRES, 768),
            (DISPI_INDEX_BANK, 0),
            (DISPI_INDEX_VIRT_WIDTH, 1024),
            (DISPI_INDEX_X_OFFSET, 0),
            (DISPI_INDEX_Y_OFFSET, 0),
            (DISPI_INDEX_ENABLE, enabled),
        ];
        for (i, v) in mode {
            set_dispi(&a, &bar2, i, v)?;
        }
        let mode: Vec<u32> =
            [DISPI_INDEX_XRES, DISPI_INDEX_YRES, DISPI_INDEX_BPP, DISPI_INDEX_ENABLE, DISPI_INDEX_VIRT_WIDTH]
                .iter()
                .map(|&i| dispi(&a, &bar2, i))
                .collect::<Result<_, _>>()?;
        let maxw = read_u32(&a, &bar2, REG_MAX_WIDTH, 4)?;
        let maxh = read_u32(&a, &bar2, REG_MAX_HEIGHT, 4)?;
        set_dispi(&a, &bar2, DISPI_INDEX_XRES, 8000)?;
        set_dispi(&a, &bar2, DISPI_INDEX_YRES, 8000)?;
        let big = (dispi(&a, &bar2, DISPI_INDEX_XRES)?, dispi(&a, &bar2, DISPI_INDEX_YRES)?);
        let fits = u64::from(big.0) * u64::from(big.1) * 4 <= usable;
        ensure(mode == [1024, 768, 32, enabled, 1024] && big.0 <= maxw.min(0xfff8) && big.1 <= maxh && fits, || {
            format!("mode {mode:?}; 8000x8000 became {big:?} (max {maxw}x{maxh}, usable {usable})")
        })
    })();
    tap.result(&t("mode set 1024x768x32 reads back; 8000x8000 is clamped to the type's maximum and framebuffer"), r);

    // 9. Bad register accesses.
    let mut two = [0u8; 2];
    let mut eight = [0u8; 8];
    let r = expect_errno("unaligned", a.read_region(&bar2, MMIO_DISPI + 1, &mut two), libc::EINVAL)
        .and_then(|()| expect_errno("8 bytes", a.read_region(&bar2, MMIO_DISPI, &mut eight), libc::EINVAL))
        .and_then(|()| expect_errno("past the end", a.read_region(&bar2, MMIO_SIZE, &mut two), libc::EINVAL))
        .and_then(|()| expect_errno("3 bytes", a.write_region(&bar2, MMIO_DISPI, &[1, 2, 3]), libc::EINVAL));
    tap.result(&t("registers: unaligned, oversized and out-of-range accesses are refused with EINVAL"), r);

    // 10. Framebuffer through the device file.
    let r = (|| {
        let pat: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let at = 12345;
        a.write_region_all(&bar0, at, &pat).map_err(|e| e.to_string())?;
        let mut back = vec![0u8; pat.len()];
        a.read_region_exact(&bar0, at, &mut back).map_err(|e| e.to_string())?;
        let mut res = [0u8; 8];
        a.read_region_exact(&bar0, usable, &mut res).map_err(|e| e.to_string())?;
        ensure(back == pat && res == [0xff; 8], || {
            format!("read back equal: {}; reservation reads {res:02x?}", back == pat)
        })?;
        expect_errno("beyond BAR0", a.read_region(&bar0, bar0.size - 2, &mut four), libc::EINVAL)
    })();
    tap.result(
        &t("framebuffer via read/write at any offset and size; the reservation reads all-ones; beyond BAR0 EINVAL"),
        r,
    );

    // 11. mmap rules.
    let r = expect_errno(
        "beyond the usable part",
        a.mmap_region(&bar0, 0, (usable + 4096) as usize, Prot::RW),
        libc::EINVAL,
    )
    .and_then(|()| expect_errno("BAR2", a.mmap_region(&bar2, 0, 4096, Prot::RW), libc::EINVAL))
    .and_then(|()| expect_errno("config", a.mmap_region(&cfg, 0, 4096, Prot::RW), libc::EINVAL))
    .and_then(|()| expect_errno("unaligned offset", a.mmap_region(&bar0, 100, 4096, Prot::RW), libc::EINVAL));
    tap.result(
        &t("mmap beyond the usable part, of BAR2 or config, or at an unaligned offset is refused with EINVAL"),
        r,
    );

    // 12-13. Passthrough: bytes written through the mmap land at the slice in the physical BAR0;
    // two vGPUs on one board see only their own slices.
    let r = (|| {
        let mut ma = a.mmap_region(&bar0, 0, usable as usize, Prot::RW).map_err(|e| format!("mmap A: {e}"))?;
        let bar0b = b.region_info(REGION_BAR0).map_err(|e| e.to_string())?;
        let mut mb = b.mmap_region(&bar0b, 0, usable as usize, Prot::RW).map_err(|e| format!("mmap B: {e}"))?;
        let (oa, ob) = (slice_offset(gpu, ua)?, slice_offset(gpu, ub)?);
        let phys = physical_vram(gpu)?;
        let last = usable as usize - 16;
        ma.write_bytes(0, b"rvgpu-A-first!!!").map_err(|e| e.to_string())?;
        ma.write_bytes(last, b"rvgpu-A-last!!!!").map_err(|e| e.to_string())?;
        mb.write_bytes(0, b"rvgpu-B-first!!!").map_err(|e| e.to_string())?;
        mb.write_bytes(last, b"rvgpu-B-last!!!!").map_err(|e| e.to_string())?;
        let mut got = [[0u8; 16]; 4];
        phys.read_bytes(oa as usize, &mut got[0]).map_err(|e| e.to_string())?;
        phys.read_bytes(oa as usize + last, &mut got[1]).map_err(|e| e.to_string())?;
        phys.read_bytes(ob as usize, &mut got[2]).map_err(|e| e.to_string())?;
        phys.read_bytes(ob as usize + last, &mut got[3]).map_err(|e| e.to_string())?;
        ensure(
            &got[0] == b"rvgpu-A-first!!!"
                && &got[1] == b"rvgpu-A-last!!!!"
                && &got[2] == b"rvgpu-B-first!!!"
                && &got[3] == b"rvgpu-B-last!!!!",
            || format!("slices at {oa:#x} and {ob:#x}: {got:?}"),
        )?;
        let mut ra = [0u8; 16];
        ma.read_bytes(0, &mut ra).map_err(|e| e.to_string())?;
        ensure(&ra == b"rvgpu-A-first!!!" && oa != ob && oa.abs_diff(ob) >= bar0.size, || format!("A reads {ra:?}"))
    })();
    tap.result(&t("bytes written through each vGPU's mmap appear at its own slice offset in the physical BAR0"), r);
    let r = (|| {
        // A's whole BAR0 region ends at its profile; nothing of B is reachable from A's fd.
        let mut x = [0u8; 1];
        expect_errno("A past its BAR0", a.read_region(&bar0, bar0.size, &mut x), libc::EINVAL)?;
        let mut ab = [0u8; 16];
        a.read_region_exact(&bar0, 0, &mut ab).map_err(|e| e.to_string())?;
        ensure(&ab == b"rvgpu-A-first!!!", || format!("A reads {ab:?} at 0"))
    })();
    tap.result(&t("isolation: a vGPU's file reaches only its own slice"), r);

    // 14. Reset.
    let r = (|| {
        a.reset().map_err(|e| format!("reset: {e}"))?;
        let c = config(&a, &cfg)?;
        memory_on(&a, &cfg, true)?;
        let en = dispi(&a, &bar2, DISPI_INDEX_ENABLE)?;
        let xres = dispi(&a, &bar2, DISPI_INDEX_XRES)?;
        ensure(c.command() == 0 && c.bar_raw(0) == 0x8 && en == 0 && xres == 0, || {
            format!("after reset: command {:#x} BAR0 {:#x} enable {en:#x} xres {xres}", c.command(), c.bar_raw(0))
        })
    })();
    tap.result(&t("VFIO_DEVICE_RESET returns config space and registers to power-on state"), r);

    // 15. Bad ioctls.
    let r = expect_errno("unknown ioctl", a.ioctl_none(0x3b99), libc::ENOTTY)
        .and_then(|()| expect_errno("GET_INFO argsz 8", a.info_with_argsz(8), libc::EINVAL))
        .and_then(|()| expect_errno("GET_IRQ_INFO argsz 8", a.irq_info_with_argsz(0, 8), libc::EINVAL))
        .and_then(|()| expect_errno("GET_IRQ_INFO index 5", a.irq_info(5), libc::EINVAL));
    tap.result(&t("unknown ioctl ENOTTY; short argsz and bad interrupt index EINVAL"), r);

    // 16. The other vGPU was not disturbed by any of this.
    let r = (|| {
        let cb = b.region_info(REGION_CONFIG).map_err(|e| e.to_string())?;
        let c = config(&b, &cb)?;
        ensure(c.command() == 0 && c.bar_raw(0) == 0x8, || {
            format!("B: command {:#x} BAR0 {:#x}", c.command(), c.bar_raw(0))
        })
    })();
    tap.result(&t("the other vGPU's config space is untouched"), r);

    // 17. The MSI capability's enable bit follows what SET_IRQS set up.
    let r = (|| {
        let msi_ctl = |d: &Device| -> Result<u32, String> { read_u32(d, &cfg, MSI_CAP + 2, 2) };
        let efd = vfio_client::EventFd::new().map_err(|e| e.to_string())?;
        let before = msi_ctl(&a)?;
        a.set_irq_eventfds(MSI, 0, &[efd.as_raw_fd()]).map_err(|e| format!("MSI eventfd: {e}"))?;
        let on = msi_ctl(&a)?;
        a.set_irq_eventfds(MSI, 0, &[-1]).map_err(|e| format!("MSI teardown: {e}"))?;
        let off = msi_ctl(&a)?;
        ensure(before & 1 == 0 && on & 1 == 1 && off & 1 == 0, || {
            format!("MSI control before {before:#x}, with an eventfd {on:#x}, after teardown {off:#x}")
        })
    })();
    tap.result(&t("the MSI capability's enable bit follows the MSI eventfd set up through SET_IRQS"), r);
    Ok(())
}
