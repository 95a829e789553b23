// SPDX-License-Identifier: GPL-2.0

//! Small safe wrappers for kernel facilities the 7.3 `kernel` crate does not offer yet.
//!
//! C headers: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h),
//! [`include/linux/sched.h`](srctree/include/linux/sched.h).

use kernel::{
    current,
    sync::Arc,
    workqueue::{
        HasWork,
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
