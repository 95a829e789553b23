// SPDX-License-Identifier: GPL-2.0

//! The virtual device model: what a vGPU is, how a physical GPU is shared out, and the mdev
//! driver that creates vGPUs.
//!
//! - [`types`]: the vGPU types (data in `mdev_types/`); [`gpu`]: the physical GPU shared out,
//!   [`vram`]: its VRAM partition, [`slice`]: one vGPU's slice of it;
//! - [`instance`]: a vGPU, its VFIO device callbacks; `region.rs`: its VFIO regions;
//!   `attrs.rs`: its sysfs files; [`params`]: `vgpu_params`; [`migration`]: live migration;
//! - the emulated hardware: [`config`] (PCI config space), [`bar2`] (the register window's one
//!   decoder), [`display`] (EDID, DISPI and extension registers), [`edid`], [`engine`] (commands
//!   and interrupts);
//! - [`uapi`]: `uapi/rvgpu.h` as Rust.

use kernel::{
    prelude::*,
    str::CString,
    sync::Arc, //
};

use crate::vfio::{
    mdev,
    sysfs::{
        Group,
        SysfsBuf, //
    },
    Device,
};

mod attrs;
pub(crate) mod bar2;
mod config;
mod dirty;
pub(crate) mod display;
mod edid;
mod engine;
pub(crate) mod gpu;
mod instance;
mod migration;
mod params;
mod region;
mod scanout;
mod sched;
mod slice;
mod types;
pub(crate) mod uapi;
mod vram;

use attrs::{
    VgpuAttr,
    VGPU_ATTRS, //
};
pub(crate) use gpu::Gpu;
use gpu::{
    GpuAttr,
    GPU_ATTRS, //
};
pub(crate) use instance::Vgpu;
pub(crate) use types::{
    check_persona,
    persona,
    table_for, //
};

/// The module's mdev driver.
pub(crate) static MDEV_DRIVER: mdev::DriverStatic<VgpuDriver> = mdev::DriverStatic::new();

/// The mdev driver that creates and removes vGPUs.
pub(crate) struct VgpuDriver;

impl mdev::Driver for VgpuDriver {
    type Parent = Arc<Gpu>;
    type Device = Vgpu;
    type DeviceAttr = VgpuAttr;
    type ParentAttr = GpuAttr;

    const NAME: &'static CStr = c"nvidia-vgpu-vfio";
    const DEVICE_API: &'static CStr = c"vfio-pci";
    const DEVICE_ATTRS: Option<&'static Group<VgpuAttr>> = Some(&VGPU_ATTRS);
    const PARENT_ATTRS: Option<&'static Group<GpuAttr>> = Some(&GPU_ATTRS);

    fn probe(
        gpu: &Arc<Gpu>,
        type_index: usize,
        mdev: &mdev::Device,
    ) -> Result<impl PinInit<Vgpu, Error>> {
        Vgpu::new(gpu, type_index, mdev)
    }

    fn created(dev: &Device<Vgpu>) {
        Vgpu::log_created(dev);
        // The board's display can show the vGPU from now on (no memory: then it cannot).
        let _ = dev.slice.gpu().scanout_register(&dev.scanout);
    }

    fn remove(dev: &Device<Vgpu>) {
        dev.slice.gpu().scanout_unregister(&dev.scanout);
    }

    fn parent_removed(gpu: &Arc<Gpu>) {
        // Removed vGPUs' slices are scrubbed after their removal: wait for the last.
        gpu.drain_scrubs();
    }

    fn available(gpu: &Arc<Gpu>, type_index: usize) -> u32 {
        gpu.available(type_index)
    }

    fn describe(gpu: &Arc<Gpu>, type_index: usize, out: &mut SysfsBuf) -> Result {
        let t = gpu.vgpu_type(type_index).ok_or(EINVAL)?;
        out.emit(fmt!("{}", t.description()))
    }

    fn device_attr_show(dev: &Device<Vgpu>, attr: VgpuAttr, out: &mut SysfsBuf) -> Result {
        dev.show_attr(attr, out)
    }

    fn device_attr_store(dev: &Device<Vgpu>, attr: VgpuAttr, data: &[u8]) -> Result {
        dev.store_attr(attr, data)
    }

    fn parent_attr_show(gpu: &Arc<Gpu>, attr: GpuAttr, out: &mut SysfsBuf) -> Result {
        gpu.show_attr(attr, out)
    }

    fn parent_attr_store(gpu: &Arc<Gpu>, attr: GpuAttr, data: &[u8]) -> Result {
        gpu.store_attr(attr, data)
    }
}

/// The sysfs names of a table's types (the directory is `<driver>-<sysfs name>`).
pub(crate) fn type_infos(gpu: &Gpu) -> Result<KVec<mdev::TypeInfo>> {
    let mut v = KVec::with_capacity(gpu.table().types.len(), GFP_KERNEL)?;
    for t in gpu.table().types {
        v.push(
            mdev::TypeInfo {
                sysfs_name: CString::try_from_fmt(fmt!("{}", t.id))?,
                pretty_name: t.name,
            },
            GFP_KERNEL,
        )?;
    }
    Ok(v)
}

#[kunit_tests(rvgpu_vgpu_driver)]
mod tests {
    use super::*;

    /// The module registered the mdev driver at load; registering it again is refused with
    /// `EBUSY` and leaves the registered driver as it was (the in-VM suites then use it).
    #[test]
    fn second_registration_is_refused() {
        assert!(
            matches!(MDEV_DRIVER.register(&<crate::RvgpuModule as kernel::ModuleMetadata>::THIS_MODULE), Err(e) if e == EBUSY)
        );
    }
}
