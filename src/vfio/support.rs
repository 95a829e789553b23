// SPDX-License-Identifier: GPL-2.0

//! Small safe wrappers for kernel facilities the 7.3 `kernel` crate does not offer yet.
//!
//! C headers: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h),
//! [`include/linux/sched.h`](srctree/include/linux/sched.h),
//! [`include/linux/timekeeping.h`](srctree/include/linux/timekeeping.h),
//! [`include/asm-generic/io.h`](srctree/include/asm-generic/io.h).

use core::ptr::NonNull;

use kernel::{
    current,
    io::{
        Io,
        IoBackend,
        Mmio,
        MmioBackend,
        Region, //
    },
    prelude::*,
    sync::Arc,
    workqueue::{
        HasWork,
        Queue,
        Work,
        WorkItem, //
    }, //
};

use super::bindings;

/// Cancels a work item queued through an [`Arc`] and waits until no run of it is in progress,
/// also when a run queues the item again (`cancel_work_sync()`).
///
/// A queued item owns one reference to its `Arc` (taken when it was queued, given back when it
/// runs); cancelling a queued item drops that reference here, so nothing leaks. Returns whether
/// the item was queued.
///
/// Once this returns, the item is neither queued nor running until it is queued again: a caller
/// that also stops everything that queues it (a timer, a doorbell) knows that no module code of
/// the item runs any more.
pub(crate) fn cancel_work_sync<T>(this: &Arc<T>) -> bool
where
    T: WorkItem<Pointer = Arc<T>> + HasWork<T>,
{
    let ptr = Arc::as_ptr(this).cast_mut();
    // SAFETY: `ptr` points to a live `T` (we hold a reference), so `raw_get_work` gives its
    // `Work<T>`, and `Work::raw_get` the initialised `work_struct` inside it.
    let work = unsafe { Work::raw_get(<T as HasWork<T>>::raw_get_work(ptr)) };
    // SAFETY: `work` is a valid, initialised work item for as long as `this` lives.
    let queued = unsafe { bindings::cancel_work_sync(work) };
    if queued {
        // SAFETY: The item was queued through `Arc<T>`'s `RawWorkItem::__enqueue`, which leaked
        // one reference with `Arc::into_raw(ptr)` for the run. The run will not happen now, so
        // that reference is ours to drop.
        drop(unsafe { Arc::from_raw(ptr) });
    }
    queued
}

/// Lets the scheduler run something else if it wants to (`cond_resched()`). Call it between
/// bounded steps of long work in process context; never with a spinlock held.
pub(crate) fn cond_resched() {
    // SAFETY: `cond_resched()` may be called from any sleepable context; the callers' contexts
    // are (it is a no-op where preemption makes it unnecessary).
    unsafe { bindings::rvgpu_cond_resched() }
}

/// The calling task's name (`comm`, NUL-padded) and its PID: for example the QEMU process that
/// opens a device.
pub(crate) fn current_task_name() -> ([u8; 16], i32) {
    let mut comm = [0u8; 16];
    // SAFETY: `comm` is valid for writes of its length; the helper reads the current task's
    // name the way `get_task_comm()` does.
    unsafe { bindings::rvgpu_current_comm(comm.as_mut_ptr(), comm.len() as u32) };
    (comm, current!().pid())
}

/// A workqueue of the driver's own (`alloc_workqueue()`, unbound), destroyed when dropped.
///
/// Dropping it drains it (`destroy_workqueue()`): it must not be dropped from one of its own
/// work items.
pub(crate) struct OwnedQueue(NonNull<bindings::workqueue_struct>);

// SAFETY: A workqueue may be used and destroyed from any thread.
unsafe impl Send for OwnedQueue {}
// SAFETY: Queueing work is thread safe (`queue_work()` takes the queue's own locks).
unsafe impl Sync for OwnedQueue {}

impl OwnedQueue {
    /// A new unbound, high-priority workqueue named `name` (shown in the names of its worker
    /// threads): its work runs on kernel threads of nice -20, ahead of user processes.
    pub(crate) fn new(name: &CStr) -> Result<Self> {
        // SAFETY: `name` is a NUL-terminated string; `alloc_workqueue()` copies it.
        let wq = unsafe { bindings::rvgpu_alloc_workqueue(name.as_char_ptr()) };
        NonNull::new(wq).map(Self).ok_or(ENOMEM)
    }

    /// The queue, to enqueue work items on.
    pub(crate) fn queue(&self) -> &Queue {
        // SAFETY: The pointer is a live workqueue until `drop`, which needs `&mut self`, so it
        // outlives the returned reference.
        unsafe { Queue::from_raw(self.0.as_ptr()) }
    }
}

impl Drop for OwnedQueue {
    fn drop(&mut self) {
        // SAFETY: The workqueue was allocated in `new` and is destroyed once, here.
        unsafe { bindings::rvgpu_destroy_workqueue(self.0.as_ptr()) }
    }
}

/// `CLOCK_MONOTONIC` now, in nanoseconds (the clock user space reads with `clock_gettime()`).
pub(crate) fn monotonic_ns() -> u64 {
    // SAFETY: `ktime_get_ns()` may be called from any context once timekeeping is up.
    unsafe { bindings::rvgpu_ktime_get_ns() }
}

/// The bytes `[offset, offset + len)` of a mapped MMIO region (a PCI BAR, say), as a byte view
/// for bulk copies: [`Io::copy_from_slice`] and [`Io::copy_to_slice`] on it are one
/// `memcpy_toio()` / `memcpy_fromio()` each. `EINVAL` if the range is not inside the region.
///
/// The 7.3 `io` module projects views onto typed fields and slices; an untyped
/// [`Region`](kernel::io::Region) has no projection onto a byte range of it yet.
///
/// [`Io::copy_from_slice`]: kernel::io::Io::copy_from_slice
/// [`Io::copy_to_slice`]: kernel::io::Io::copy_to_slice
pub(crate) fn mmio_bytes<'a, const SIZE: usize>(
    region: Mmio<'a, Region<SIZE>>,
    offset: usize,
    len: usize,
) -> Result<Mmio<'a, [u8]>> {
    let end = offset.checked_add(len).ok_or(EINVAL)?;
    if end > region.size() {
        return Err(EINVAL);
    }
    let base = MmioBackend::as_ptr(region).cast::<u8>();
    let bytes = core::ptr::slice_from_raw_parts_mut(base.wrapping_add(offset), len);
    // SAFETY: `[offset, offset + len)` is inside the region (checked above), so `bytes` is a
    // projection of the region's pointer onto a part of it, as `project_view` requires.
    Ok(unsafe { MmioBackend::project_view(region, bytes) })
}

/// The `persona` module parameter as given at load time (empty if not given). It is read-only
/// once the module is loaded (mode 0444), so the string stays as it is while the module lives.
pub(crate) fn persona_param() -> &'static CStr {
    // SAFETY: `rvgpu_persona()` returns the parameter's NUL-terminated string (or a static empty
    // one); a read-only parameter of a loaded module is not freed or changed before the module
    // is unloaded, and no code of the module runs after that.
    unsafe { CStr::from_char_ptr(bindings::rvgpu_persona()) }
}
