// SPDX-License-Identifier: GPL-2.0
//! The iommufd interface (`/dev/iommu`): IO address spaces and their mappings.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::container::open_rw;
use crate::ioctl::ioctl_pod;
use crate::uapi::{
    iommu_destroy, iommu_ioas_alloc, iommu_ioas_map, iommu_ioas_unmap, IOMMU_DESTROY, IOMMU_IOAS_ALLOC, IOMMU_IOAS_MAP,
    IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE, IOMMU_IOAS_UNMAP,
};

/// An open `/dev/iommu`; closing it (on drop) destroys every object allocated in it.
#[derive(Debug)]
pub struct Iommufd {
    fd: OwnedFd,
}

impl Iommufd {
    /// Opens `/dev/iommu`.
    pub fn open() -> io::Result<Iommufd> {
        Ok(Iommufd { fd: open_rw("/dev/iommu")? })
    }

    /// `IOMMU_IOAS_ALLOC`: a new, empty IO address space; returns its id.
    pub fn ioas_alloc(&self) -> io::Result<u32> {
        let mut a = iommu_ioas_alloc { size: std::mem::size_of::<iommu_ioas_alloc>() as u32, ..Default::default() };
        ioctl_pod(self.fd.as_fd(), IOMMU_IOAS_ALLOC, &mut a)?;
        Ok(a.out_ioas_id)
    }

    /// `IOMMU_DESTROY(id)`.
    pub fn destroy(&self, id: u32) -> io::Result<()> {
        let mut d = iommu_destroy { size: std::mem::size_of::<iommu_destroy>() as u32, id };
        ioctl_pod(self.fd.as_fd(), IOMMU_DESTROY, &mut d).map(drop)
    }

    /// `IOMMU_IOAS_MAP` of `length` bytes at `user_va` into `ioas`. With `iova = Some(x)` the
    /// mapping is placed at `x` (`IOMMU_IOAS_MAP_FIXED_IOVA`), otherwise the kernel picks; returns
    /// the IOVA used.
    pub fn ioas_map(
        &self,
        ioas: u32,
        user_va: u64,
        length: u64,
        iova: Option<u64>,
        read: bool,
        write: bool,
    ) -> io::Result<u64> {
        let mut flags = 0;
        if iova.is_some() {
            flags |= IOMMU_IOAS_MAP_FIXED_IOVA;
        }
        if read {
            flags |= IOMMU_IOAS_MAP_READABLE;
        }
        if write {
            flags |= IOMMU_IOAS_MAP_WRITEABLE;
        }
        let mut m = iommu_ioas_map {
            size: std::mem::size_of::<iommu_ioas_map>() as u32,
            flags,
            ioas_id: ioas,
            __reserved: 0,
            user_va,
            length,
            iova: iova.unwrap_or(0),
        };
        ioctl_pod(self.fd.as_fd(), IOMMU_IOAS_MAP, &mut m)?;
        Ok(m.iova)
    }

    /// `IOMMU_IOAS_UNMAP` of `[iova, iova + length)` in `ioas`; returns the bytes unmapped.
    /// `(0, u64::MAX)` unmaps everything.
    pub fn ioas_unmap(&self, ioas: u32, iova: u64, length: u64) -> io::Result<u64> {
        let mut u =
            iommu_ioas_unmap { size: std::mem::size_of::<iommu_ioas_unmap>() as u32, ioas_id: ioas, iova, length };
        ioctl_pod(self.fd.as_fd(), IOMMU_IOAS_UNMAP, &mut u)?;
        Ok(u.length)
    }
}

impl AsFd for Iommufd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
