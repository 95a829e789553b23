// SPDX-License-Identifier: GPL-2.0
//! A VFIO device opened like QEMU opens it, through either the group/container path or the
//! iommufd/cdev path, and the device ioctls.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::caps::{parse_chain, RegionCap, SparseArea};
use crate::container::{open_rw, Container, Group};
use crate::error::{OpenError, Step};
use crate::ioctl::{ioctl_buf, ioctl_none, ioctl_pod};
use crate::iommufd::Iommufd;
use crate::irq::{encode_irq_set, IrqAction, IrqData};
use crate::mmap::{Mmap, Prot};
use crate::sysfs;
use crate::uapi::*;

/// Which kernel interface to open a device through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenPath {
    /// `/dev/vfio/vfio` + `/dev/vfio/N` with the Type1v2 IOMMU backend.
    Container,
    /// `/dev/vfio/devices/vfioN` bound to `/dev/iommu`, attached to a fresh IOAS.
    Iommufd,
}

/// What keeps the device's DMA context alive; owned by the [`Device`].
#[derive(Debug)]
pub enum Backend {
    /// The group/container path. Fields drop in order: the group leaves the container, then the
    /// container closes.
    Container {
        /// The group the device is in.
        group: Group,
        /// The container the group is attached to.
        container: Container,
    },
    /// The iommufd/cdev path.
    Iommufd {
        /// The iommufd the device is bound to.
        iommufd: Iommufd,
        /// `out_devid` of `VFIO_DEVICE_BIND_IOMMUFD`.
        devid: u32,
        /// The IOAS the device is attached to.
        ioas_id: u32,
        /// `pt_id` as returned by `VFIO_DEVICE_ATTACH_IOMMUFD_PT` (the IOAS, or the hwpt the
        /// kernel created for it).
        pt_id: u32,
    },
}

/// `VFIO_DEVICE_GET_INFO`'s answer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `VFIO_DEVICE_FLAGS_*`.
    pub flags: u32,
    /// Number of regions (max index + 1).
    pub num_regions: u32,
    /// Number of irq indexes (max index + 1).
    pub num_irqs: u32,
    /// Offset of the first capability (0: none).
    pub cap_offset: u32,
}

impl DeviceInfo {
    /// Names of the set flags, e.g. `["RESET", "PCI"]`.
    pub fn flag_names(&self) -> Vec<&'static str> {
        flag_names(
            self.flags,
            &[
                (VFIO_DEVICE_FLAGS_RESET, "RESET"),
                (VFIO_DEVICE_FLAGS_PCI, "PCI"),
                (VFIO_DEVICE_FLAGS_PLATFORM, "PLATFORM"),
                (VFIO_DEVICE_FLAGS_AMBA, "AMBA"),
                (VFIO_DEVICE_FLAGS_CCW, "CCW"),
                (VFIO_DEVICE_FLAGS_AP, "AP"),
                (VFIO_DEVICE_FLAGS_FSL_MC, "FSL_MC"),
                (VFIO_DEVICE_FLAGS_CAPS, "CAPS"),
                (VFIO_DEVICE_FLAGS_CDX, "CDX"),
            ],
        )
    }
}

/// `VFIO_DEVICE_GET_REGION_INFO`'s answer with its decoded capability chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionInfo {
    /// Region index.
    pub index: u32,
    /// `VFIO_REGION_INFO_FLAG_*`.
    pub flags: u32,
    /// Size in bytes (0: region not implemented).
    pub size: u64,
    /// Offset of the region within the device fd (for pread/pwrite/mmap).
    pub offset: u64,
    /// The `argsz` the kernel finally asked for (> 32 when there are capabilities).
    pub argsz: u32,
    /// Decoded capabilities, in chain order.
    pub caps: Vec<RegionCap>,
}

impl RegionInfo {
    /// `VFIO_REGION_INFO_FLAG_READ`.
    pub fn readable(&self) -> bool {
        self.flags & VFIO_REGION_INFO_FLAG_READ != 0
    }
    /// `VFIO_REGION_INFO_FLAG_WRITE`.
    pub fn writable(&self) -> bool {
        self.flags & VFIO_REGION_INFO_FLAG_WRITE != 0
    }
    /// `VFIO_REGION_INFO_FLAG_MMAP`.
    pub fn mmappable(&self) -> bool {
        self.flags & VFIO_REGION_INFO_FLAG_MMAP != 0
    }
    /// The sparse-mmap areas, if the region has that capability.
    pub fn sparse_areas(&self) -> Option<&[SparseArea]> {
        self.caps.iter().find_map(|c| match c {
            RegionCap::SparseMmap { areas, .. } => Some(areas.as_slice()),
            _ => None,
        })
    }
    /// `(type, subtype)` from the type capability, if any.
    pub fn region_type(&self) -> Option<(u32, u32)> {
        self.caps.iter().find_map(|c| match c {
            RegionCap::Type { type_, subtype, .. } => Some((*type_, *subtype)),
            _ => None,
        })
    }
    /// Names of the set flags.
    pub fn flag_names(&self) -> Vec<&'static str> {
        flag_names(
            self.flags,
            &[
                (VFIO_REGION_INFO_FLAG_READ, "READ"),
                (VFIO_REGION_INFO_FLAG_WRITE, "WRITE"),
                (VFIO_REGION_INFO_FLAG_MMAP, "MMAP"),
                (VFIO_REGION_INFO_FLAG_CAPS, "CAPS"),
            ],
        )
    }
}

/// `VFIO_DEVICE_GET_IRQ_INFO`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IrqInfo {
    /// Irq index.
    pub index: u32,
    /// `VFIO_IRQ_INFO_*`.
    pub flags: u32,
    /// Number of vectors (0: not implemented).
    pub count: u32,
}

impl IrqInfo {
    /// Names of the set flags.
    pub fn flag_names(&self) -> Vec<&'static str> {
        flag_names(
            self.flags,
            &[
                (VFIO_IRQ_INFO_EVENTFD, "EVENTFD"),
                (VFIO_IRQ_INFO_MASKABLE, "MASKABLE"),
                (VFIO_IRQ_INFO_AUTOMASKED, "AUTOMASKED"),
                (VFIO_IRQ_INFO_NORESIZE, "NORESIZE"),
            ],
        )
    }
}

/// Names of the bits of `flags` found in `table`, plus `0x..` for unknown bits.
fn flag_names(flags: u32, table: &[(u32, &'static str)]) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = table.iter().filter(|(b, _)| flags & b != 0).map(|(_, n)| *n).collect();
    let known = table.iter().fold(0, |acc, (b, _)| acc | b);
    if flags & !known != 0 {
        names.push("UNKNOWN");
    }
    names
}

/// vfio-pci's name for a fixed region index (`BAR0`..`BAR5`, `ROM`, `CONFIG`, `VGA`).
pub fn pci_region_name(index: u32) -> Option<&'static str> {
    const NAMES: [&str; 9] = ["BAR0", "BAR1", "BAR2", "BAR3", "BAR4", "BAR5", "ROM", "CONFIG", "VGA"];
    NAMES.get(index as usize).copied()
}

/// vfio-pci's name for a fixed irq index (`INTX`, `MSI`, `MSIX`, `ERR`, `REQ`).
pub fn pci_irq_name(index: u32) -> Option<&'static str> {
    const NAMES: [&str; 5] = ["INTX", "MSI", "MSIX", "ERR", "REQ"];
    NAMES.get(index as usize).copied()
}

fn other(msg: String) -> io::Error {
    io::Error::other(msg)
}

fn offset_add(base: u64, off: u64) -> io::Result<libc::off_t> {
    base.checked_add(off)
        .and_then(|o| libc::off_t::try_from(o).ok())
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
}

/// An open VFIO device. Owns its fd and everything behind it (group + container, or iommufd);
/// dropping it closes the device fd first, then the rest.
#[derive(Debug)]
pub struct Device {
    // Declared first: dropped first, before the group/container or iommufd it depends on.
    fd: OwnedFd,
    name: String,
    info: DeviceInfo,
    backend: Backend,
}

impl Device {
    /// Opens the mediated device `uuid` (a name under `/sys/bus/mdev/devices`) through `path`.
    pub fn open(uuid: &str, path: OpenPath) -> Result<Device, OpenError> {
        match path {
            OpenPath::Container => Self::open_container(uuid),
            OpenPath::Iommufd => Self::open_iommufd(uuid),
        }
    }

    /// The group/container sequence, as QEMU's `vfio_connect_container` / `vfio_get_device` do it:
    /// iommu_group from sysfs, `/dev/vfio/vfio` (`VFIO_GET_API_VERSION`,
    /// `VFIO_CHECK_EXTENSION(TYPE1v2)`), `/dev/vfio/N` (`VFIO_GROUP_GET_STATUS` viable,
    /// `VFIO_GROUP_SET_CONTAINER`), `VFIO_SET_IOMMU(TYPE1v2)`, `VFIO_GROUP_GET_DEVICE_FD(uuid)`,
    /// then `VFIO_DEVICE_GET_INFO`.
    pub fn open_container(uuid: &str) -> Result<Device, OpenError> {
        let dev = sysfs::mdev_dir(uuid).step(|| "device name".into())?;
        let group_id = sysfs::iommu_group(&dev).step(|| format!("reading {}/iommu_group", dev.display()))?;
        let container = Container::open().step(|| "opening /dev/vfio/vfio".into())?;
        let version = container.api_version().step(|| "VFIO_GET_API_VERSION".into())?;
        if version != VFIO_API_VERSION {
            return Err(other(format!("API version {version}, expected {VFIO_API_VERSION}")))
                .step(|| "VFIO_GET_API_VERSION".into());
        }
        let ext = container.check_extension(VFIO_TYPE1v2_IOMMU).step(|| "VFIO_CHECK_EXTENSION(TYPE1v2)".into())?;
        if ext <= 0 {
            return Err(other("Type1v2 IOMMU not supported".into())).step(|| "VFIO_CHECK_EXTENSION(TYPE1v2)".into());
        }
        let gpath = format!("/dev/vfio/{group_id}");
        let group = Group::open(group_id).step(|| format!("opening {gpath}"))?;
        let status = group.status().step(|| format!("VFIO_GROUP_GET_STATUS on {gpath}"))?;
        if status & VFIO_GROUP_FLAGS_VIABLE == 0 {
            return Err(other(format!("group {group_id} is not viable (flags {status:#x})")))
                .step(|| format!("VFIO_GROUP_GET_STATUS on {gpath}"));
        }
        group.set_container(&container).step(|| format!("VFIO_GROUP_SET_CONTAINER on {gpath}"))?;
        container.set_iommu(VFIO_TYPE1v2_IOMMU).step(|| "VFIO_SET_IOMMU(TYPE1v2)".into())?;
        let fd = group.device_fd(uuid).step(|| format!("VFIO_GROUP_GET_DEVICE_FD({uuid}) on {gpath}"))?;
        Self::finish(fd, uuid, Backend::Container { group, container })
    }

    /// The iommufd/cdev sequence, as QEMU's iommufd backend does it: `vfio-dev/vfioN` from sysfs,
    /// `/dev/vfio/devices/vfioN`, `/dev/iommu`, `VFIO_DEVICE_BIND_IOMMUFD`, `IOMMU_IOAS_ALLOC`,
    /// `VFIO_DEVICE_ATTACH_IOMMUFD_PT`, then `VFIO_DEVICE_GET_INFO`.
    pub fn open_iommufd(uuid: &str) -> Result<Device, OpenError> {
        let dev = sysfs::mdev_dir(uuid).step(|| "device name".into())?;
        let cdev = sysfs::vfio_cdev(&dev).step(|| format!("looking up {}/vfio-dev", dev.display()))?;
        let cpath = format!("/dev/vfio/devices/{cdev}");
        let fd = open_rw(&cpath).step(|| format!("opening {cpath}"))?;
        let iommufd = Iommufd::open().step(|| "opening /dev/iommu".into())?;
        let mut bind = vfio_device_bind_iommufd {
            argsz: std::mem::size_of::<vfio_device_bind_iommufd>() as u32,
            iommufd: iommufd.as_fd().as_raw_fd(),
            ..Default::default()
        };
        ioctl_pod(fd.as_fd(), VFIO_DEVICE_BIND_IOMMUFD, &mut bind)
            .step(|| format!("VFIO_DEVICE_BIND_IOMMUFD on {cpath}"))?;
        let ioas_id = iommufd.ioas_alloc().step(|| "IOMMU_IOAS_ALLOC".into())?;
        let mut attach = vfio_device_attach_iommufd_pt {
            argsz: std::mem::size_of::<vfio_device_attach_iommufd_pt>() as u32,
            pt_id: ioas_id,
            ..Default::default()
        };
        ioctl_pod(fd.as_fd(), VFIO_DEVICE_ATTACH_IOMMUFD_PT, &mut attach)
            .step(|| format!("VFIO_DEVICE_ATTACH_IOMMUFD_PT(ioas {ioas_id}) on {cpath}"))?;
        Self::finish(fd, uuid, Backend::Iommufd { iommufd, devid: bind.out_devid, ioas_id, pt_id: attach.pt_id })
    }

    /// The last step of both sequences, as in QEMU: `VFIO_DEVICE_GET_INFO` right after getting the
    /// fd. (Some drivers, mtty for one, size later checks by what this call returned.)
    fn finish(fd: OwnedFd, uuid: &str, backend: Backend) -> Result<Device, OpenError> {
        let mut dev = Device { fd, name: uuid.to_owned(), info: DeviceInfo::default(), backend };
        dev.info = dev.info().step(|| format!("VFIO_DEVICE_GET_INFO on {uuid}"))?;
        Ok(dev)
    }

    /// The `VFIO_DEVICE_GET_INFO` answer obtained while opening.
    pub fn open_info(&self) -> DeviceInfo {
        self.info
    }

    /// The name the device was opened by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The group/container or iommufd behind the device.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Which path the device was opened through.
    pub fn path(&self) -> OpenPath {
        match self.backend {
            Backend::Container { .. } => OpenPath::Container,
            Backend::Iommufd { .. } => OpenPath::Iommufd,
        }
    }

    // ----- information ----------------------------------------------------------------------

    /// `VFIO_DEVICE_GET_INFO`.
    pub fn info(&self) -> io::Result<DeviceInfo> {
        let i = self.info_with_argsz(std::mem::size_of::<vfio_device_info>() as u32)?;
        Ok(DeviceInfo { flags: i.flags, num_regions: i.num_regions, num_irqs: i.num_irqs, cap_offset: i.cap_offset })
    }

    /// `VFIO_DEVICE_GET_INFO` with a caller-chosen `argsz` (e.g. a short one, to check the errno);
    /// returns the raw struct as the kernel left it.
    pub fn info_with_argsz(&self, argsz: u32) -> io::Result<vfio_device_info> {
        let mut i = vfio_device_info { argsz, ..Default::default() };
        ioctl_pod(self.fd.as_fd(), VFIO_DEVICE_GET_INFO, &mut i)?;
        Ok(i)
    }

    /// `VFIO_DEVICE_GET_REGION_INFO` for `index`, re-queried with the larger `argsz` the kernel
    /// asks for when there are capabilities, and with the capability chain decoded.
    pub fn region_info(&self, index: u32) -> io::Result<RegionInfo> {
        let fixed = std::mem::size_of::<vfio_region_info>();
        let mut argsz = fixed;
        // Two rounds suffice (the second with the size the first asked for); a third covers a
        // chain that grew in between.
        for _ in 0..3 {
            let mut buf = vec![0u8; argsz];
            let hdr = vfio_region_info { argsz: argsz as u32, index, ..Default::default() };
            buf[..fixed].copy_from_slice(as_bytes(&hdr));
            ioctl_buf(self.fd.as_fd(), VFIO_DEVICE_GET_REGION_INFO, &mut buf)?;
            let info: vfio_region_info = read_pod(&buf, 0).ok_or_else(|| io::Error::from_raw_os_error(libc::EFAULT))?;
            if info.argsz as usize > argsz {
                argsz = info.argsz as usize;
                continue;
            }
            let caps = if info.flags & VFIO_REGION_INFO_FLAG_CAPS != 0 && info.cap_offset != 0 {
                parse_chain(&buf, info.cap_offset, fixed)?
            } else {
                Vec::new()
            };
            return Ok(RegionInfo {
                index,
                flags: info.flags,
                size: info.size,
                offset: info.offset,
                argsz: info.argsz,
                caps,
            });
        }
        Err(other(format!("region {index}: the kernel kept asking for a larger argsz ({argsz})")))
    }

    /// `VFIO_DEVICE_GET_REGION_INFO` with a caller-chosen `argsz` and a 32-byte struct; returns
    /// the fixed part as the kernel left it.
    pub fn region_info_with_argsz(&self, index: u32, argsz: u32) -> io::Result<vfio_region_info> {
        let mut r = vfio_region_info { argsz, index, ..Default::default() };
        ioctl_pod(self.fd.as_fd(), VFIO_DEVICE_GET_REGION_INFO, &mut r)?;
        Ok(r)
    }

    /// [`Device::region_info`] for every index below `num_regions`.
    pub fn regions(&self) -> io::Result<Vec<RegionInfo>> {
        (0..self.info()?.num_regions).map(|i| self.region_info(i)).collect()
    }

    /// `VFIO_DEVICE_GET_IRQ_INFO` for `index`.
    pub fn irq_info(&self, index: u32) -> io::Result<IrqInfo> {
        let i = self.irq_info_with_argsz(index, std::mem::size_of::<vfio_irq_info>() as u32)?;
        Ok(IrqInfo { index: i.index, flags: i.flags, count: i.count })
    }

    /// `VFIO_DEVICE_GET_IRQ_INFO` with a caller-chosen `argsz`.
    pub fn irq_info_with_argsz(&self, index: u32, argsz: u32) -> io::Result<vfio_irq_info> {
        let mut i = vfio_irq_info { argsz, index, ..Default::default() };
        ioctl_pod(self.fd.as_fd(), VFIO_DEVICE_GET_IRQ_INFO, &mut i)?;
        Ok(i)
    }

    /// [`Device::irq_info`] for every index below `num_irqs`.
    pub fn irqs(&self) -> io::Result<Vec<IrqInfo>> {
        (0..self.info()?.num_irqs).map(|i| self.irq_info(i)).collect()
    }

    /// `VFIO_DEVICE_RESET`.
    pub fn reset(&self) -> io::Result<()> {
        ioctl_none(self.fd.as_fd(), VFIO_DEVICE_RESET).map(drop)
    }

    /// `VFIO_DEVICE_QUERY_GFX_PLANE` with `flags` (`VFIO_GFX_PLANE_TYPE_*`) for `plane_type`
    /// (`DRM_PLANE_TYPE_*`), `argsz` the whole struct; returns the struct as the kernel left it
    /// (a probe that succeeds leaves it as it was sent).
    pub fn query_gfx_plane(&self, flags: u32, plane_type: u32) -> io::Result<vfio_device_gfx_plane_info> {
        self.query_gfx_plane_with_argsz(std::mem::size_of::<vfio_device_gfx_plane_info>() as u32, flags, plane_type)
    }

    /// [`Device::query_gfx_plane`] with a caller-chosen `argsz` (the kernel sees at least 4 KiB of
    /// zero-padded buffer, see [`crate::ioctl::ioctl_buf`]).
    pub fn query_gfx_plane_with_argsz(
        &self,
        argsz: u32,
        flags: u32,
        plane_type: u32,
    ) -> io::Result<vfio_device_gfx_plane_info> {
        let mut p = vfio_device_gfx_plane_info { argsz, flags, drm_plane_type: plane_type, ..Default::default() };
        ioctl_pod(self.fd.as_fd(), VFIO_DEVICE_QUERY_GFX_PLANE, &mut p)?;
        Ok(p)
    }

    // ----- raw ioctls -----------------------------------------------------------------------

    /// Any ioctl on the device fd with a byte buffer argument (argsz-first convention, see
    /// [`crate::ioctl::ioctl_buf`]); returns the ioctl's value, the buffer gets the output.
    pub fn ioctl(&self, cmd: u64, buf: &mut [u8]) -> io::Result<i32> {
        ioctl_buf(self.fd.as_fd(), cmd, buf)
    }

    /// Any ioctl on the device fd with a NULL argument.
    pub fn ioctl_none(&self, cmd: u64) -> io::Result<i32> {
        ioctl_none(self.fd.as_fd(), cmd)
    }

    // ----- region access --------------------------------------------------------------------

    /// One `pread` at absolute device-fd offset `offset`; returns the byte count.
    pub fn pread(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let off = offset_add(offset, 0)?;
        // SAFETY: the kernel writes at most buf.len() bytes into buf.
        let n = unsafe { libc::pread(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), off) };
        cvt_size(n)
    }

    /// One `pwrite` at absolute device-fd offset `offset`; returns the byte count.
    pub fn pwrite(&self, offset: u64, data: &[u8]) -> io::Result<usize> {
        let off = offset_add(offset, 0)?;
        // SAFETY: the kernel reads data.len() bytes from data.
        let n = unsafe { libc::pwrite(self.fd.as_raw_fd(), data.as_ptr().cast(), data.len(), off) };
        cvt_size(n)
    }

    /// One `pread` at `region.offset + off` (no bounds check against the region: the kernel's
    /// answer is the point). Any length.
    pub fn read_region(&self, region: &RegionInfo, off: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.pread(offset_add(region.offset, off)? as u64, buf)
    }

    /// One `pwrite` at `region.offset + off`.
    pub fn write_region(&self, region: &RegionInfo, off: u64, data: &[u8]) -> io::Result<usize> {
        self.pwrite(offset_add(region.offset, off)? as u64, data)
    }

    /// `pread`s until `buf` is full; `UnexpectedEof` if the kernel returns 0 first.
    pub fn read_region_exact(&self, region: &RegionInfo, off: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let n = self.read_region(region, off + done as u64, &mut buf[done..])?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
            done += n;
        }
        Ok(())
    }

    /// `pwrite`s until all of `data` is written; `WriteZero` if the kernel accepts 0 bytes.
    pub fn write_region_all(&self, region: &RegionInfo, off: u64, data: &[u8]) -> io::Result<()> {
        let mut done = 0;
        while done < data.len() {
            let n = self.write_region(region, off + done as u64, &data[done..])?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero));
            }
            done += n;
        }
        Ok(())
    }

    /// mmaps `len` bytes of `region` from `off` with `prot` (`MAP_SHARED`); unmapped when the
    /// returned [`Mmap`] drops. `off` must be page-aligned (mmap's rule).
    pub fn mmap_region(&self, region: &RegionInfo, off: u64, len: usize, prot: Prot) -> io::Result<Mmap> {
        Mmap::map_fd(self.fd.as_fd(), offset_add(region.offset, off)? as u64, len, prot)
    }

    // ----- interrupts -----------------------------------------------------------------------

    /// `VFIO_DEVICE_SET_IRQS` with `action` on vectors `start..` of `index`, `data` giving the data
    /// type and the count.
    pub fn set_irqs(&self, action: IrqAction, index: u32, start: u32, data: IrqData<'_>) -> io::Result<()> {
        let mut buf = encode_irq_set(action.flag() | data.flag(), index, start, data.count(), &data.payload());
        self.set_irqs_raw(&mut buf)
    }

    /// `VFIO_DEVICE_SET_IRQS` with a caller-built argument (see [`crate::irq::encode_irq_set`]).
    pub fn set_irqs_raw(&self, arg: &mut [u8]) -> io::Result<()> {
        ioctl_buf(self.fd.as_fd(), VFIO_DEVICE_SET_IRQS, arg).map(drop)
    }

    /// Routes vectors `start..start + fds.len()` of `index` to eventfds (TRIGGER, DATA_EVENTFD);
    /// `-1` entries tear a vector down.
    pub fn set_irq_eventfds(&self, index: u32, start: u32, fds: &[RawFd]) -> io::Result<()> {
        self.set_irqs(IrqAction::Trigger, index, start, IrqData::EventFd(fds))
    }

    /// Disables the whole irq index (TRIGGER, DATA_NONE, count 0).
    pub fn disable_irqs(&self, index: u32) -> io::Result<()> {
        self.set_irqs(IrqAction::Trigger, index, 0, IrqData::None { count: 0 })
    }

    /// Fires vectors `start..start + count` from user space (TRIGGER, DATA_NONE): loopback test.
    pub fn trigger_irqs(&self, index: u32, start: u32, count: u32) -> io::Result<()> {
        self.set_irqs(IrqAction::Trigger, index, start, IrqData::None { count })
    }

    /// Masks vectors (MASK, DATA_NONE).
    pub fn mask_irqs(&self, index: u32, start: u32, count: u32) -> io::Result<()> {
        self.set_irqs(IrqAction::Mask, index, start, IrqData::None { count })
    }

    /// Unmasks vectors (UNMASK, DATA_NONE).
    pub fn unmask_irqs(&self, index: u32, start: u32, count: u32) -> io::Result<()> {
        self.set_irqs(IrqAction::Unmask, index, start, IrqData::None { count })
    }

    // ----- DMA ------------------------------------------------------------------------------

    /// Maps `size` bytes of our memory at `vaddr` at `iova` for the device, through whichever
    /// path the device was opened by (`VFIO_IOMMU_MAP_DMA` or `IOMMU_IOAS_MAP` with FIXED_IOVA).
    pub fn map_dma_raw(&self, vaddr: u64, iova: u64, size: u64, read: bool, write: bool) -> io::Result<()> {
        match &self.backend {
            Backend::Container { container, .. } => container.map_dma(vaddr, iova, size, read, write),
            Backend::Iommufd { iommufd, ioas_id, .. } => {
                iommufd.ioas_map(*ioas_id, vaddr, size, Some(iova), read, write).map(drop)
            }
        }
    }

    /// Maps all of `buf` (e.g. a [`Mmap::anonymous`] buffer) read/write at `iova`. Unmap with
    /// [`Device::unmap_dma`] before dropping `buf` if the device must stop seeing it (the
    /// kernel keeps the pages pinned until then, so dropping first is memory-safe, just leaky).
    pub fn map_dma(&self, buf: &Mmap, iova: u64) -> io::Result<()> {
        self.map_dma_raw(buf.addr(), iova, buf.len() as u64, true, true)
    }

    /// Unmaps `[iova, iova + size)`; returns the bytes the kernel unmapped.
    pub fn unmap_dma(&self, iova: u64, size: u64) -> io::Result<u64> {
        match &self.backend {
            Backend::Container { container, .. } => container.unmap_dma(iova, size, 0),
            Backend::Iommufd { iommufd, ioas_id, .. } => iommufd.ioas_unmap(*ioas_id, iova, size),
        }
    }
}

fn cvt_size(n: isize) -> io::Result<usize> {
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

impl AsFd for Device {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_names_decode_known_and_unknown_bits() {
        let d = DeviceInfo {
            flags: VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI,
            num_regions: 9,
            num_irqs: 5,
            cap_offset: 0,
        };
        assert_eq!(d.flag_names(), vec!["RESET", "PCI"]);
        let i = IrqInfo { index: 0, flags: VFIO_IRQ_INFO_EVENTFD | (1 << 9), count: 1 };
        assert_eq!(i.flag_names(), vec!["EVENTFD", "UNKNOWN"]);
        assert_eq!(pci_region_name(7), Some("CONFIG"));
        assert_eq!(pci_region_name(9), None);
        assert_eq!(pci_irq_name(2), Some("MSIX"));
    }

    #[test]
    fn region_helpers() {
        let r = RegionInfo {
            index: 0,
            flags: VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS,
            size: 0x1000,
            offset: 0,
            argsz: 80,
            caps: vec![
                RegionCap::Type { version: 1, type_: 1, subtype: 2 },
                RegionCap::SparseMmap { version: 1, areas: vec![SparseArea { offset: 0, size: 0x1000 }] },
            ],
        };
        assert!(r.readable() && !r.writable() && r.mmappable());
        assert_eq!(r.region_type(), Some((1, 2)));
        assert_eq!(r.sparse_areas().map(<[SparseArea]>::len), Some(1));
        assert_eq!(r.flag_names(), vec!["READ", "MMAP", "CAPS"]);
    }

    #[test]
    fn offsets_do_not_overflow() {
        assert_eq!(offset_add(u64::MAX, 1).expect_err("overflow").raw_os_error(), Some(libc::EINVAL));
        assert_eq!(offset_add(1 << 63, 0).expect_err("> off_t").raw_os_error(), Some(libc::EINVAL));
        assert_eq!(offset_add(7 << 40, 4).expect("fits"), (7 << 40) + 4);
    }
}
