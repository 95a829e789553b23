// SPDX-License-Identifier: GPL-2.0
//! A small user-space VFIO client for rvgpu's in-VM tests.
//!
//! It opens a mediated device the way QEMU does, through either interface the kernel offers:
//!
//! * the group/container path ([`Device::open_container`]): `/dev/vfio/vfio`, `/dev/vfio/N`,
//!   Type1v2 IOMMU, `VFIO_GROUP_GET_DEVICE_FD`;
//! * the iommufd/cdev path ([`Device::open_iommufd`]): `/dev/vfio/devices/vfioN`, `/dev/iommu`,
//!   `VFIO_DEVICE_BIND_IOMMUFD`, `IOMMU_IOAS_ALLOC`, `VFIO_DEVICE_ATTACH_IOMMUFD_PT`.
//!
//! The returned [`Device`] owns every fd involved and closes them on drop (device first). It
//! offers the device ioctls (info, region info with capability chains, irq info, reset,
//! `SET_IRQS`), region `pread`/`pwrite` and `mmap`, DMA mapping on either path, and raw ioctls
//! with caller-chosen command numbers and `argsz` so tests can check exact errnos: every error is
//! an [`std::io::Error`] whose `raw_os_error()` is the kernel's errno.
//!
//! [`migration`] adds `VFIO_DEVICE_FEATURE` with VFIO migration v2 (device states, data fds,
//! PRE_COPY info, the STOP_COPY size) and DMA logging, and rvgpu's migration stream.
//!
//! [`harness`] is what the rvgpu test programs share: their command line, one open vGPU with its
//! ring and DMA buffers, and waiting for interrupts and for the engine; [`tap`] reports their
//! results.
//!
//! Only `libc` is used; the uapi definitions live in [`uapi`], checked against the 7.3 headers.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod caps;
pub mod container;
pub mod device;
pub mod error;
pub mod harness;
pub mod ioctl;
pub mod iommufd;
pub mod irq;
pub mod migration;
pub mod mmap;
pub mod pci;
pub mod rvgpu;
pub mod sysfs;
pub mod tap;
pub mod uapi;

pub use caps::{RegionCap, SparseArea};
pub use container::{Container, Group};
pub use device::{pci_irq_name, pci_region_name, Backend, Device, DeviceInfo, IrqInfo, OpenPath, RegionInfo};
pub use error::OpenError;
pub use iommufd::Iommufd;
pub use irq::{EventFd, IrqAction, IrqData};
pub use migration::{DataFd, DeviceState, DirtyBitmap, ReadEnd};
pub use mmap::{Mmap, Prot};
pub use pci::PciConfig;
