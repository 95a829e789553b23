// SPDX-License-Identifier: GPL-2.0

//! Guest memory for an emulated-IOMMU VFIO device: pinning pages by IOVA (`vfio_pin_pages()`).
//!
//! C header: [`include/linux/vfio.h`](srctree/include/linux/vfio.h).

use core::ptr::NonNull;
use kernel::{
    page::PAGE_SIZE,
    prelude::*, //
};

use super::bindings;

/// `IOMMU_READ` / `IOMMU_WRITE` for `vfio_pin_pages()`.
const IOMMU_READ: c_int = 1;
const IOMMU_WRITE: c_int = 2;

/// A counted reference to a VFIO device, for reaching its guest memory from outside the
/// device's callbacks (a worker, say).
///
/// Pinning and copying only work while the device is open (they fail with an error otherwise,
/// never crash); pages must be unpinned before the device's `close` returns.
///
/// # Invariants
///
/// `vdev` is a VFIO device whose embedded `struct device` we hold a reference on.
pub(crate) struct DmaHandle {
    vdev: NonNull<bindings::vfio_device>,
}

// SAFETY: The reference keeps the VFIO device allocated; the C functions used are thread-safe.
unsafe impl Send for DmaHandle {}
// SAFETY: See `Send`.
unsafe impl Sync for DmaHandle {}

impl DmaHandle {
    /// Takes a reference on `vdev`.
    ///
    /// # Safety
    ///
    /// `vdev` must be a valid VFIO device (allocated by `_vfio_alloc_device()`).
    pub(crate) unsafe fn new(vdev: *mut bindings::vfio_device) -> Result<Self> {
        let vdev = NonNull::new(vdev).ok_or(EINVAL)?;
        // SAFETY: `vdev` is valid by the safety requirements; its `device` is initialised by
        // `_vfio_alloc_device()` and reference counted.
        unsafe { bindings::get_device(bindings::rvgpu_vfio_device_dev(vdev.as_ptr())) };
        // INVARIANT: We took a reference.
        Ok(Self { vdev })
    }

    /// Pins the page holding `iova` (page aligned); `write` if the device will write to it.
    pub(crate) fn pin(&self, iova: u64, write: bool) -> Result<PinnedPage> {
        if iova % PAGE_SIZE as u64 != 0 {
            return Err(EINVAL);
        }
        let prot = if write {
            IOMMU_READ | IOMMU_WRITE
        } else {
            IOMMU_READ
        };
        let mut page: *mut bindings::page = core::ptr::null_mut();
        // SAFETY: By the type invariant `vdev` is valid; `page` has room for one pointer.
        let n = unsafe { bindings::vfio_pin_pages(self.vdev.as_ptr(), iova, 1, prot, &mut page) };
        if n < 0 {
            return Err(Error::from_errno(n));
        }
        let page = NonNull::new(page).filter(|_| n == 1).ok_or(EFAULT)?;
        // INVARIANT: One page pinned at `iova`.
        Ok(PinnedPage { page, iova })
    }

    /// Unpins a page pinned with [`DmaHandle::pin`] on this device.
    pub(crate) fn unpin(&self, page: PinnedPage) {
        // SAFETY: By the type invariants `vdev` is valid and `page.iova` is pinned once.
        unsafe { bindings::vfio_unpin_pages(self.vdev.as_ptr(), page.iova, 1) };
    }
}

impl Drop for DmaHandle {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we hold a reference on the device; this may free it.
        unsafe { bindings::put_device(bindings::rvgpu_vfio_device_dev(self.vdev.as_ptr())) };
    }
}

/// A guest page pinned at an IOVA. Give it back with [`DmaHandle::unpin`]; dropping it
/// without does not unpin (the pin is then released when the IOVA is unmapped).
///
/// # Invariants
///
/// `page` is pinned for `iova` until unpinned.
pub(crate) struct PinnedPage {
    page: NonNull<bindings::page>,
    iova: u64,
}

// SAFETY: A pinned page may be accessed from any thread.
unsafe impl Send for PinnedPage {}

impl PinnedPage {
    /// The IOVA of the page.
    pub(crate) fn iova(&self) -> u64 {
        self.iova
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

    /// Copies `data` into the page at `offset`.
    pub(crate) fn write(&self, offset: usize, data: &[u8]) -> Result {
        if offset
            .checked_add(data.len())
            .is_none_or(|end| end > PAGE_SIZE)
        {
            return Err(EINVAL);
        }
        // SAFETY: As in `read`; the page was pinned for writing by the caller's choice.
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
