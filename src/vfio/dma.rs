// SPDX-License-Identifier: GPL-2.0

//! Guest memory for an emulated-IOMMU VFIO device: pinning pages by IOVA (`vfio_pin_pages()`).
//!
//! C header: [`include/linux/vfio.h`](srctree/include/linux/vfio.h).

use core::ptr::NonNull;
use kernel::{
    page::PAGE_SIZE,
    prelude::*,
    sync::Arc, //
};

use super::{
    bindings,
    device::DeviceRef, //
};

/// `IOMMU_READ` / `IOMMU_WRITE` for `vfio_pin_pages()`.
const IOMMU_READ: c_int = 1;
const IOMMU_WRITE: c_int = 2;

/// A counted reference to a VFIO device, for reaching its guest memory from outside the
/// device's callbacks (a worker, say).
///
/// Pinning only works while the device is open (it fails with an error otherwise, never
/// crashes). Every [`PinnedPage`] must be dropped before the device's `close` returns and before
/// its `dma_unmap` callback for the page's IOVA returns: the VFIO core requires it (type1 retries
/// an unmap that still has pins and then hits a `BUG_ON`, iommufd warns), and
/// `vfio_unpin_pages()` refuses with a warning once the device is closed.
pub(crate) struct DmaHandle {
    vdev: DeviceRef,
}

impl DmaHandle {
    pub(crate) fn new(vdev: DeviceRef) -> Result<Arc<Self>> {
        Ok(Arc::new(Self { vdev }, GFP_KERNEL)?)
    }

    /// Whether the VFIO core itself refuses pins in a range it is unmapping, from the moment it
    /// calls `dma_unmap` until the range is gone: iommufd does (`prevent_access`); the type1
    /// container does not, so a driver must not pin there meanwhile.
    pub(crate) fn core_fences_unmaps(&self) -> bool {
        // SAFETY: `vdev` is a valid VFIO device (`DeviceRef` invariant); `iommufd_access` is set
        // when the device is bound to iommufd, before it is opened, and stays while it is open
        // (pins are only made while it is).
        !unsafe { (*self.vdev.as_ptr()).iommufd_access }.is_null()
    }

    /// Pins the page holding `iova` (page aligned); `write` if the device will write to it.
    /// The page is unpinned when the returned [`PinnedPage`] is dropped.
    pub(crate) fn pin(self: &Arc<Self>, iova: u64, write: bool) -> Result<PinnedPage> {
        if iova % PAGE_SIZE as u64 != 0 {
            return Err(EINVAL);
        }
        let prot = if write {
            IOMMU_READ | IOMMU_WRITE
        } else {
            IOMMU_READ
        };
        let mut page: *mut bindings::page = core::ptr::null_mut();
        // SAFETY: `vdev` is a valid VFIO device (`DeviceRef` invariant); `page` has room for one
        // pointer.
        let n = unsafe { bindings::vfio_pin_pages(self.vdev.as_ptr(), iova, 1, prot, &mut page) };
        if n < 0 {
            return Err(Error::from_errno(n));
        }
        let Some(page) = NonNull::new(page).filter(|_| n == 1) else {
            if n > 0 {
                // SAFETY: `n` pages were pinned at `iova` on this device and are not kept.
                unsafe { bindings::vfio_unpin_pages(self.vdev.as_ptr(), iova, n) };
            }
            return Err(EFAULT);
        };
        // INVARIANT: One page pinned at `iova`, for this handle's device.
        Ok(PinnedPage {
            handle: self.clone(),
            page,
            iova,
            writable: write,
        })
    }
}

/// A guest page pinned at an IOVA; dropping it unpins the page.
///
/// # Invariants
///
/// `page` is pinned once, for `iova`, on `handle`'s device, until `self` is dropped.
pub(crate) struct PinnedPage {
    handle: Arc<DmaHandle>,
    page: NonNull<bindings::page>,
    iova: u64,
    writable: bool,
}

// SAFETY: A pinned page may be accessed and unpinned from any thread.
unsafe impl Send for PinnedPage {}

impl PinnedPage {
    /// The IOVA of the page.
    pub(crate) fn iova(&self) -> u64 {
        self.iova
    }

    /// Whether the page was pinned for writing.
    pub(crate) fn writable(&self) -> bool {
        self.writable
    }

    /// Copies `buf.len()` bytes at `offset` of the page into `buf`.
    pub(crate) fn read(&self, offset: usize, buf: &mut [u8]) -> Result {
        if offset
            .checked_add(buf.len())
            .is_none_or(|end| end > PAGE_SIZE)
        {
            return Err(EINVAL);
        }
        // SAFETY: The page is pinned (type invariant); the range is inside it and `buf` is
        // valid for its length.
        unsafe {
            bindings::rvgpu_page_read(
                self.page.as_ptr(),
                offset as u32,
                buf.as_mut_ptr().cast(),
                buf.len() as u32,
            )
        };
        Ok(())
    }

    /// Copies `data` into the page at `offset`; `EPERM` if the page was pinned read-only.
    pub(crate) fn write(&self, offset: usize, data: &[u8]) -> Result {
        if !self.writable {
            return Err(EPERM);
        }
        if offset
            .checked_add(data.len())
            .is_none_or(|end| end > PAGE_SIZE)
        {
            return Err(EINVAL);
        }
        // SAFETY: As in `read`; the page was pinned for writing (checked above).
        unsafe {
            bindings::rvgpu_page_write(
                self.page.as_ptr(),
                offset as u32,
                data.as_ptr().cast(),
                data.len() as u32,
            )
        };
        Ok(())
    }
}

impl Drop for PinnedPage {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the page is pinned once at `iova` on the handle's device,
        // which the handle keeps allocated.
        unsafe { bindings::vfio_unpin_pages(self.handle.vdev.as_ptr(), self.iova, 1) };
    }
}
