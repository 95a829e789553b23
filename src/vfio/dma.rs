// SPDX-License-Identifier: GPL-2.0

//! Guest memory for an emulated-IOMMU VFIO device: pinning runs of pages by IOVA
//! (`vfio_pin_pages()`).
//!
//! C header: [`include/linux/vfio.h`](srctree/include/linux/vfio.h).

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
/// crashes). Every [`PinnedRun`] must be dropped before the device's `close` returns and before
/// its `dma_unmap` callback for the pages' IOVAs returns: the VFIO core requires it (type1 retries
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

    /// Pins the `npages` pages from `iova` (page aligned) in one call; `write` if the device will
    /// write to them. They are unpinned together when the returned [`PinnedRun`] is dropped (the
    /// VFIO core's iommufd path unpins only exactly what one call pinned).
    pub(crate) fn pin(
        self: &Arc<Self>,
        iova: u64,
        npages: usize,
        write: bool,
    ) -> Result<PinnedRun> {
        if iova % PAGE_SIZE as u64 != 0 || npages == 0 || npages > MAX_RUN_PAGES {
            return Err(EINVAL);
        }
        iova.checked_add((npages * PAGE_SIZE) as u64 - 1)
            .ok_or(EINVAL)?;
        let prot = if write {
            IOMMU_READ | IOMMU_WRITE
        } else {
            IOMMU_READ
        };
        let mut pages = KVec::with_capacity(npages, GFP_KERNEL)?;
        pages.resize(npages, core::ptr::null_mut(), GFP_KERNEL)?;
        // SAFETY: `vdev` is a valid VFIO device (`DeviceRef` invariant); `pages` has room for
        // `npages` pointers, and `npages` is at most `VFIO_PIN_PAGES_MAX_ENTRIES`.
        let n = unsafe {
            bindings::vfio_pin_pages(
                self.vdev.as_ptr(),
                iova,
                npages as c_int,
                prot,
                pages.as_mut_ptr(),
            )
        };
        if n < 0 {
            return Err(Error::from_errno(n));
        }
        if n as usize != npages || pages.iter().any(|p| p.is_null()) {
            if n > 0 {
                // SAFETY: `n` pages were pinned at `iova` on this device in this one call and are
                // not kept.
                unsafe { bindings::vfio_unpin_pages(self.vdev.as_ptr(), iova, n) };
            }
            return Err(EFAULT);
        }
        // INVARIANT: `npages` pages pinned at `iova` in one call, for this handle's device, none
        // of them null.
        Ok(PinnedRun {
            handle: self.clone(),
            pages,
            iova,
            writable: write,
        })
    }
}

/// The most pages [`DmaHandle::pin`] pins at once (`VFIO_PIN_PAGES_MAX_ENTRIES`).
pub(crate) const MAX_RUN_PAGES: usize = PAGE_SIZE / core::mem::size_of::<usize>();

/// Guest pages pinned from an IOVA on, by one `vfio_pin_pages()` call; dropping it unpins them
/// (with one `vfio_unpin_pages()` call for the same range).
///
/// # Invariants
///
/// The `pages.len()` pages of `pages` (none null) are pinned once, at `iova` on `handle`'s
/// device, by a single call, until `self` is dropped.
pub(crate) struct PinnedRun {
    handle: Arc<DmaHandle>,
    pages: KVec<*mut bindings::page>,
    iova: u64,
    writable: bool,
}

// SAFETY: Pinned pages may be accessed and unpinned from any thread.
unsafe impl Send for PinnedRun {}

impl PinnedRun {
    /// The IOVA of the first page.
    pub(crate) fn iova(&self) -> u64 {
        self.iova
    }

    /// The bytes the run covers.
    pub(crate) fn len(&self) -> u64 {
        (self.pages.len() * PAGE_SIZE) as u64
    }

    /// Whether `iova` is in the run.
    pub(crate) fn contains(&self, iova: u64) -> bool {
        iova >= self.iova && iova - self.iova < self.len()
    }

    /// Whether the pages were pinned for writing.
    pub(crate) fn writable(&self) -> bool {
        self.writable
    }

    /// The bytes of the run from `iova` on (0 if `iova` is not in it).
    pub(crate) fn left(&self, iova: u64) -> u64 {
        if self.contains(iova) {
            self.len() - (iova - self.iova)
        } else {
            0
        }
    }

    /// How much of an access of `len` bytes at `iova` the run covers (0 if `iova` is not in it).
    pub(crate) fn span(&self, iova: u64, len: usize) -> usize {
        len.min(usize::try_from(self.left(iova)).unwrap_or(usize::MAX))
    }

    /// Calls `f(page, offset, at, n)` for each page piece of `[iova, iova + len)`, which must be
    /// inside the run: `n` bytes at `offset` of `page`, `at` bytes into the range.
    fn pieces(
        &self,
        iova: u64,
        len: usize,
        mut f: impl FnMut(*mut bindings::page, u32, usize, usize),
    ) -> Result {
        if len as u64 > self.left(iova) {
            return Err(EINVAL);
        }
        let mut at = 0;
        while at < len {
            let rel = iova - self.iova + at as u64;
            let off = (rel % PAGE_SIZE as u64) as usize;
            let n = (len - at).min(PAGE_SIZE - off);
            f(
                self.pages[(rel / PAGE_SIZE as u64) as usize],
                off as u32,
                at,
                n,
            );
            at += n;
        }
        Ok(())
    }

    /// Copies `buf.len()` bytes of the run at `iova` (across its pages) into `buf`.
    pub(crate) fn read(&self, iova: u64, buf: &mut [u8]) -> Result {
        let dst = buf.as_mut_ptr();
        self.pieces(iova, buf.len(), |page, off, at, n| {
            // SAFETY: `page` is pinned (type invariant) and `[off, off + n)` is inside it;
            // `[at, at + n)` is inside `buf` (`pieces` walks exactly `buf.len()` bytes).
            unsafe { bindings::rvgpu_page_read(page, off, dst.add(at).cast(), n as u32) }
        })
    }

    /// Copies `data` into the run at `iova` (across its pages); `EPERM` if the run was pinned
    /// read-only.
    pub(crate) fn write(&self, iova: u64, data: &[u8]) -> Result {
        if !self.writable {
            return Err(EPERM);
        }
        let src = data.as_ptr();
        self.pieces(iova, data.len(), |page, off, at, n| {
            // SAFETY: As in `read`; the page was pinned for writing (checked above).
            unsafe { bindings::rvgpu_page_write(page, off, src.add(at).cast(), n as u32) }
        })
    }
}

impl Drop for PinnedRun {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the pages were pinned at `iova` on the handle's device
        // by one call of this length, which the handle keeps allocated.
        unsafe {
            bindings::vfio_unpin_pages(
                self.handle.vdev.as_ptr(),
                self.iova,
                self.pages.len() as c_int,
            )
        };
    }
}
