// SPDX-License-Identifier: GPL-2.0

//! The virtual device model: what a vGPU is, how a physical GPU is shared out, and the mdev
//! driver that creates vGPUs.

use kernel::{
    prelude::*,
    str::CString,
    sync::Arc, //
};

use crate::vfio::{
    mdev,
    sysfs::{
        Attr,
        Group,
        SysfsBuf, //
    },
    Device,
};

mod config;
mod edid;
mod engine;
mod gpu;
mod instance;
mod params;
mod regs;
mod types;
mod vram;

pub(crate) use gpu::Gpu;
pub(crate) use instance::Vgpu;
pub(crate) use types::table_for;

/// The module's mdev driver.
pub(crate) static MDEV_DRIVER: mdev::DriverStatic<VgpuDriver> = mdev::DriverStatic::new();

/// The mdev driver that creates and removes vGPUs.
pub(crate) struct VgpuDriver;

/// Files of the per-instance `nvidia/` directory.
const DEVICE_ATTRS: Group = Group {
    name: c"nvidia",
    attrs: &[
        Attr {
            name: c"vgpu_params",
            writable: true,
        },
        Attr {
            name: c"vm_name",
            writable: false,
        },
        Attr {
            name: c"display",
            writable: false,
        },
    ],
};
const ATTR_VGPU_PARAMS: usize = 0;
const ATTR_VM_NAME: usize = 1;
const ATTR_DISPLAY: usize = 2;

/// Files of the `nvidia/` directory on the physical GPU.
const PARENT_ATTRS: Group = Group {
    name: c"nvidia",
    attrs: &[
        Attr {
            name: c"vram_total_mib",
            writable: false,
        },
        Attr {
            name: c"vram_free_mib",
            writable: false,
        },
        Attr {
            name: c"vram_largest_free_mib",
            writable: false,
        },
        Attr {
            name: c"placement",
            writable: false,
        },
        Attr {
            name: c"pinned_pages",
            writable: false,
        },
    ],
};

impl mdev::Driver for VgpuDriver {
    type Parent = Arc<Gpu>;
    type Device = Vgpu;

    const NAME: &'static CStr = c"nvidia-vgpu-vfio";
    const DEVICE_API: &'static CStr = c"vfio-pci";
    const DEVICE_ATTRS: Option<&'static Group> = Some(&DEVICE_ATTRS);
    const PARENT_ATTRS: Option<&'static Group> = Some(&PARENT_ATTRS);

    fn probe(
        gpu: &Arc<Gpu>,
        type_index: usize,
        mdev: &mdev::Device,
    ) -> Result<impl PinInit<Vgpu, Error>> {
        Vgpu::new(gpu, type_index, mdev)
    }

    fn available(gpu: &Arc<Gpu>, type_index: usize) -> u32 {
        gpu.available(type_index)
    }

    fn describe(gpu: &Arc<Gpu>, type_index: usize, out: &mut SysfsBuf) -> Result {
        let t = gpu.vgpu_type(type_index).ok_or(EINVAL)?;
        out.emit(fmt!("{}", t.description()))
    }

    fn device_attr_show(dev: &Device<Vgpu>, index: usize, out: &mut SysfsBuf) -> Result {
        match index {
            ATTR_VGPU_PARAMS => dev.show_params(out),
            ATTR_VM_NAME => dev.show_vm_name(out),
            ATTR_DISPLAY => dev.show_display(out),
            _ => Err(EINVAL),
        }
    }

    fn device_attr_store(dev: &Device<Vgpu>, index: usize, data: &[u8]) -> Result {
        match index {
            ATTR_VGPU_PARAMS => dev.store_params(data),
            _ => Err(EPERM),
        }
    }

    fn parent_attr_show(gpu: &Arc<Gpu>, index: usize, out: &mut SysfsBuf) -> Result {
        gpu.show_attr(index, out)
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
