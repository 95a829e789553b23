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
//! - [`device`]: VFIO devices with an emulated IOMMU and their ops (`device/ops.rs` holds the C
//!   trampolines, [`uapi`] the copies of VFIO uapi structures to and from user space);
//! - [`migration`]: live migration (v2) and DMA dirty logging;
//! - [`dma`]: pinning guest pages by IOVA;
//! - [`vma`]: device-file mappings filled in on fault that report first writes (dirty tracking
//!   of a mapped BAR), and zapping them;
//! - [`eventfd`]: signalling user space;
//! - [`sysfs`]: attribute groups whose callbacks end in Rust;
//! - [`support`]: small wrappers for kernel facilities the 7.3 `kernel` crate does not offer yet
//!   (cancelling a work item, `cond_resched()`, the current task's name).

pub(crate) mod bindings;
pub(crate) mod device;
pub(crate) mod dma;
pub(crate) mod eventfd;
pub(crate) mod mdev;
pub(crate) mod migration;
pub(crate) mod support;
pub(crate) mod sysfs;
mod uapi;
pub(crate) mod vma;

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
