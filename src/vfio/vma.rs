// SPDX-License-Identifier: GPL-2.0

//! Mappings of a VFIO device file that are filled in on fault and that report the first write to
//! each page: what dirty tracking of a memory BAR needs.
//!
//! The Rust kernel crate has no `vm_operations_struct` abstraction; this is the smallest one a
//! VFIO driver needs. [`Mmap::map_on_fault`] installs a [`FaultBacking`] on a new mapping: a
//! fault asks it for the physical page at the faulting offset, and because the table has a
//! `pfn_mkwrite` handler the core maps shared pages read-only first (`vma_wants_writenotify()`),
//! so the first write to a page calls [`FaultBacking::first_write`] before the page becomes
//! writable. [`Mappings::zap`] removes the pages of a range from every mapping of the device
//! file (`unmap_mapping_range()` on the file's inode, as vfio-pci zaps its BARs), so the next
//! access faults again and the next write is reported again: zap-and-refault.
//!
//! C header: [`include/linux/mm.h`](srctree/include/linux/mm.h).

use core::marker::PhantomData;

use kernel::{
    page::PAGE_SHIFT,
    prelude::*,
    sync::{
        Arc,
        ArcBorrow, //
    },
    types::ForeignOwnable, //
};

use super::{
    bindings,
    device::{
        region_offset,
        split_offset,
        DeviceRef,
        Mmap, //
    },
};

/// What backs a fault-mapped range of a device file.
pub(crate) trait FaultBacking: Send + Sync + 'static {
    /// The physical address (page aligned) of the page at byte `offset` of region `index`. An
    /// error makes the access fail with `SIGBUS`.
    fn page(&self, index: u32, offset: u64) -> Result<u64>;

    /// The page at byte `offset` of region `index` is about to be written for the first time
    /// since it was mapped, or since its mappings were last zapped.
    fn first_write(&self, index: u32, offset: u64);
}

impl Mmap<'_> {
    /// Sets the new mapping up to be filled in on fault from `backing` (I/O memory,
    /// write-combining, `VM_IO | VM_PFNMAP`, not expandable, not dumped, as vfio-pci maps BARs).
    /// The mapping holds a reference on `backing` (every copy of it, after `fork()` or a split,
    /// its own) until it is unmapped.
    pub(crate) fn map_on_fault<T: FaultBacking>(&self, backing: Arc<T>) -> Result {
        if !self.is_shared() {
            return Err(EINVAL);
        }
        let private = backing.into_foreign();
        // SAFETY: The VMA is being set up by mmap, so its flags, protection, ops and private
        // data may be set; the ops table is a `'static` constant for `T` and `private` is an
        // `Arc<T>` given to the VMA (its `close` takes it back). An mmap callback that returns
        // 0 always gets its VMA's `close` called eventually.
        unsafe { bindings::rvgpu_vma_map_on_fault(self.as_ptr(), &VmOps::<T>::OPS, private) };
        Ok(())
    }
}

/// The `vm_operations_struct` for a [`FaultBacking`].
struct VmOps<T: FaultBacking>(PhantomData<T>);

impl<T: FaultBacking> VmOps<T> {
    const OPS: bindings::vm_operations_struct = bindings::vm_operations_struct {
        open: Some(Self::open),
        close: Some(Self::close),
        fault: Some(Self::fault),
        pfn_mkwrite: Some(Self::pfn_mkwrite),
        ..pin_init::zeroed()
    };

    /// The backing of the VMA a fault is in, and the region and offset the fault is at.
    ///
    /// # Safety
    ///
    /// `vmf` must be a fault in a VMA set up by [`Mmap::map_on_fault`] with these ops, and the
    /// returned reference must not outlive the fault.
    unsafe fn at<'a>(vmf: *mut bindings::vm_fault) -> (ArcBorrow<'a, T>, u32, u64) {
        // SAFETY: A fault's VMA and page offset are valid and stable during the fault.
        let (vma, pgoff) = unsafe { ((*vmf).__bindgen_anon_1.vma, (*vmf).__bindgen_anon_1.pgoff) };
        // SAFETY: The VMA is alive during its fault; its private data is the `Arc<T>` put there
        // by `map_on_fault` (or a copy of it counted by `open`), released only by `close`.
        let backing = unsafe { <Arc<T> as ForeignOwnable>::borrow((*vma).vm_private_data) };
        let (index, offset) = split_offset((pgoff as u64) << PAGE_SHIFT);
        // The region index fits: `split_offset` leaves 64 - REGION_SHIFT bits for it.
        (backing, index as u32, offset)
    }

    /// # Safety
    ///
    /// Called by the mm core for a fault in a VMA with these ops.
    unsafe extern "C" fn fault(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
        // SAFETY: By the safety requirements.
        let (backing, index, offset) = unsafe { Self::at(vmf) };
        match backing.page(index, offset) {
            // SAFETY: The fault's VMA is a `VM_PFNMAP` mapping (set by `map_on_fault`) and its
            // address is inside it; the page is I/O memory the backing owns.
            Ok(phys) => unsafe {
                bindings::vmf_insert_pfn(
                    (*vmf).__bindgen_anon_1.vma,
                    (*vmf).__bindgen_anon_1.address,
                    (phys >> PAGE_SHIFT) as usize,
                )
            },
            Err(_) => bindings::vm_fault_reason_VM_FAULT_SIGBUS,
        }
    }

    /// # Safety
    ///
    /// Called by the mm core for a write to a read-only page of a VMA with these ops; returning
    /// 0 lets it make the page writable.
    unsafe extern "C" fn pfn_mkwrite(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
        // SAFETY: By the safety requirements.
        let (backing, index, offset) = unsafe { Self::at(vmf) };
        backing.first_write(index, offset);
        0
    }

    /// A copy of the VMA (fork, split, mremap): it takes its own reference.
    ///
    /// # Safety
    ///
    /// `vma` is a new copy of a VMA with these ops, its private data copied too.
    unsafe extern "C" fn open(vma: *mut bindings::vm_area_struct) {
        // SAFETY: The private data is an `Arc<T>` (see `at`), alive while the original VMA is.
        let backing = unsafe { <Arc<T> as ForeignOwnable>::borrow((*vma).vm_private_data) };
        let copy: Arc<T> = backing.into();
        // The copy's reference now belongs to the new VMA (same pointer).
        let _ = copy.into_foreign();
    }

    /// # Safety
    ///
    /// `vma`, a VMA with these ops, is going away.
    unsafe extern "C" fn close(vma: *mut bindings::vm_area_struct) {
        // SAFETY: The VMA owns one reference on its `Arc<T>` (`map_on_fault` or `open`), given
        // back exactly once, here.
        drop(unsafe { <Arc<T> as ForeignOwnable>::from_foreign((*vma).vm_private_data) });
    }
}

/// A counted handle on the user-space mappings of a VFIO device's file. It stays valid after the
/// device is closed or unregistered (zapping then finds nothing to do).
pub(crate) struct Mappings {
    vdev: DeviceRef,
}

impl Mappings {
    pub(super) fn new(vdev: DeviceRef) -> Self {
        Self { vdev }
    }

    /// Removes the pages of `[offset, offset + len)` of region `index` from every mapping of the
    /// device file: the next access to one faults again. Process context (it may sleep).
    pub(crate) fn zap(&self, index: u32, offset: u64, len: u64) {
        let start = region_offset(index, offset);
        // SAFETY: The device and its file's inode stay allocated while we hold the reference
        // (`DeviceRef`); `unmap_mapping_range()` takes the locks it needs.
        unsafe { bindings::rvgpu_vfio_zap(self.vdev.as_ptr(), start, len) };
    }
}
