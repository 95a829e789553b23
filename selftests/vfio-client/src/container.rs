// SPDX-License-Identifier: GPL-2.0
//! The legacy group/container interface: `/dev/vfio/vfio` and `/dev/vfio/N`.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::ioctl::{ioctl_int, ioctl_none, ioctl_pod, ioctl_raw};
use crate::uapi::{
    vfio_group_status, vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_unmap, VFIO_CHECK_EXTENSION,
    VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE, VFIO_GET_API_VERSION, VFIO_GROUP_GET_DEVICE_FD,
    VFIO_GROUP_GET_STATUS, VFIO_GROUP_SET_CONTAINER, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_SET_IOMMU,
};

/// Opens a character device read/write with `O_CLOEXEC` (std's default).
pub(crate) fn open_rw(path: &str) -> io::Result<OwnedFd> {
    Ok(OpenOptions::new().read(true).write(true).open(path)?.into())
}

/// A VFIO container (`/dev/vfio/vfio`), closed on drop.
#[derive(Debug)]
pub struct Container {
    fd: OwnedFd,
}

impl Container {
    /// Opens `/dev/vfio/vfio`.
    pub fn open() -> io::Result<Container> {
        Ok(Container { fd: open_rw("/dev/vfio/vfio")? })
    }

    /// `VFIO_GET_API_VERSION` (0, `VFIO_API_VERSION`, on every kernel so far).
    pub fn api_version(&self) -> io::Result<i32> {
        ioctl_none(self.fd.as_fd(), VFIO_GET_API_VERSION)
    }

    /// `VFIO_CHECK_EXTENSION(ext)`: > 0 when supported.
    pub fn check_extension(&self, ext: u64) -> io::Result<i32> {
        ioctl_int(self.fd.as_fd(), VFIO_CHECK_EXTENSION, ext as u32)
    }

    /// `VFIO_SET_IOMMU(iommu_type)`; needs at least one group attached.
    pub fn set_iommu(&self, iommu_type: u64) -> io::Result<()> {
        ioctl_int(self.fd.as_fd(), VFIO_SET_IOMMU, iommu_type as u32).map(drop)
    }

    /// `VFIO_IOMMU_MAP_DMA` of `size` bytes of our address space at `vaddr` to `iova`, readable
    /// and/or writable by the device.
    pub fn map_dma(&self, vaddr: u64, iova: u64, size: u64, read: bool, write: bool) -> io::Result<()> {
        let mut flags = 0;
        if read {
            flags |= VFIO_DMA_MAP_FLAG_READ;
        }
        if write {
            flags |= VFIO_DMA_MAP_FLAG_WRITE;
        }
        let mut map = vfio_iommu_type1_dma_map {
            argsz: std::mem::size_of::<vfio_iommu_type1_dma_map>() as u32,
            flags,
            vaddr,
            iova,
            size,
        };
        ioctl_pod(self.fd.as_fd(), VFIO_IOMMU_MAP_DMA, &mut map).map(drop)
    }

    /// `VFIO_IOMMU_UNMAP_DMA` of `[iova, iova + size)` with `flags` (usually 0); returns the
    /// number of bytes the kernel unmapped.
    pub fn unmap_dma(&self, iova: u64, size: u64, flags: u32) -> io::Result<u64> {
        let mut unmap = vfio_iommu_type1_dma_unmap {
            argsz: std::mem::size_of::<vfio_iommu_type1_dma_unmap>() as u32,
            flags,
            iova,
            size,
        };
        ioctl_pod(self.fd.as_fd(), VFIO_IOMMU_UNMAP_DMA, &mut unmap)?;
        Ok(unmap.size)
    }
}

impl AsFd for Container {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A VFIO group (`/dev/vfio/N`), closed on drop (which detaches it from its container).
#[derive(Debug)]
pub struct Group {
    fd: OwnedFd,
    id: u32,
}

impl Group {
    /// Opens `/dev/vfio/<id>`.
    pub fn open(id: u32) -> io::Result<Group> {
        Ok(Group { fd: open_rw(&format!("/dev/vfio/{id}"))?, id })
    }

    /// The group number.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// `VFIO_GROUP_GET_STATUS`: the `VFIO_GROUP_FLAGS_*` bits.
    pub fn status(&self) -> io::Result<u32> {
        let mut st = vfio_group_status { argsz: std::mem::size_of::<vfio_group_status>() as u32, flags: 0 };
        ioctl_pod(self.fd.as_fd(), VFIO_GROUP_GET_STATUS, &mut st)?;
        Ok(st.flags)
    }

    /// `VFIO_GROUP_SET_CONTAINER`.
    pub fn set_container(&self, container: &Container) -> io::Result<()> {
        let cfd: i32 = std::os::fd::AsRawFd::as_raw_fd(&container.fd);
        // SAFETY: the kernel reads one s32 through the pointer, which points at `cfd`.
        unsafe { ioctl_raw(self.fd.as_fd(), VFIO_GROUP_SET_CONTAINER, &cfd as *const i32 as libc::c_ulong) }.map(drop)
    }

    /// `VFIO_GROUP_GET_DEVICE_FD(name)`: the device's fd.
    pub fn device_fd(&self, name: &str) -> io::Result<OwnedFd> {
        let c = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: the kernel reads a NUL-terminated string (strndup_user) from `c`, which lives
        // across the call.
        let fd = unsafe { ioctl_raw(self.fd.as_fd(), VFIO_GROUP_GET_DEVICE_FD, c.as_ptr() as libc::c_ulong) }?;
        // SAFETY: on success the ioctl returns a new fd that we now own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

impl AsFd for Group {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
