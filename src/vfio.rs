// SPDX-License-Identifier: GPL-2.0

//! Safe Rust abstractions over the C VFIO and mediated-device (mdev) API.
//!
//! C headers: [`include/linux/vfio.h`](srctree/include/linux/vfio.h),
//! [`include/linux/mdev.h`](srctree/include/linux/mdev.h).
//!
//! This is the only place of the driver with `unsafe` code: everything above it is safe Rust.
//! It follows the kernel crate's conventions so that it could move to `rust/kernel/vfio/`.
//!
//! - [`mdev`]: the mdev driver, parents and their types, instances;
//! - [`device`]: VFIO devices with an emulated IOMMU and their ops;
//! - [`sysfs`]: attribute groups whose callbacks end in Rust.

pub(crate) mod bindings;
pub(crate) mod device;
pub(crate) mod dma;
pub(crate) mod eventfd;
pub(crate) mod mdev;
pub(crate) mod sysfs;

pub(crate) use device::{
    Device,
    DeviceOps, //
};

/// The C `struct device` behind a Rust device reference.
fn raw_device<Ctx: kernel::device::DeviceContext>(
    dev: &kernel::device::Device<Ctx>,
) -> *mut kernel::bindings::device {
    // `kernel::device::Device` is a `#[repr(transparent)]` wrapper of `Opaque<bindings::device>`,
    // so a reference to it is a pointer to the C device.
    core::ptr::from_ref(dev)
        .cast::<kernel::bindings::device>()
        .cast_mut()
}

/// The calling task's name and PID (for example, the QEMU process opening a device).
pub(crate) fn current_task_name() -> ([u8; 16], i32) {
    let task = kernel::task::Task::current_raw();
    // SAFETY: `current` is always a valid task, and a task may read its own `comm` and `pid`
    // without locking (only other tasks' names need `get_task_comm()`).
    let (comm, pid) = unsafe { ((*task).comm, (*task).pid) };
    // The kernel's `c_char` is `u8` on every architecture (`-funsigned-char`).
    (comm, pid)
}
