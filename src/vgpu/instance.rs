// SPDX-License-Identifier: GPL-2.0

//! One vGPU: its slice of the physical VRAM, its settings and whether a VM has it open.

use kernel::{
    new_mutex,
    prelude::*,
    str::BStr,
    sync::{
        Arc,
        Mutex, //
    }, //
};

use super::{
    gpu::Gpu,
    params::{
        self,
        Params, //
    },
    types::VgpuType,
    vram::{
        AllocError,
        Slice, //
    },
};
use crate::vfio::{
    self,
    mdev,
    sysfs::SysfsBuf,
    Device,
    DeviceOps, //
};

/// A vGPU's VRAM slice; dropping it scrubs the slice and returns it to the board.
struct SliceGuard {
    gpu: Arc<Gpu>,
    slice: Slice,
}

impl Drop for SliceGuard {
    fn drop(&mut self) {
        self.gpu.free(&self.slice);
    }
}

/// What changes while a vGPU exists.
struct State {
    /// A VM (a VFIO user) has the device open.
    open: bool,
    params: Params,
    /// `vgpu_params` as last written (trimmed).
    params_text: KVec<u8>,
    /// The task that opened the device: `<name>[<pid>]`, empty when not open.
    vm_name: KVec<u8>,
}

/// A vGPU instance: the driver data of its VFIO device.
#[pin_data]
pub(crate) struct Vgpu {
    vtype: &'static VgpuType,
    slice: SliceGuard,
    #[pin]
    state: Mutex<State>,
}

impl Vgpu {
    /// Places a new instance of type `type_index` on `gpu`.
    pub(crate) fn new(
        gpu: &Arc<Gpu>,
        type_index: usize,
        mdev: &mdev::Device,
    ) -> Result<impl PinInit<Self, Error>> {
        let vtype = gpu.vgpu_type(type_index).ok_or(EINVAL)?;
        let slice = gpu.alloc(vtype, mdev.uuid()).map_err(|e| {
            let (free, largest) = match e {
                AllocError::NoSpace { free, largest_free } => (free, largest_free),
                _ => (0, 0),
            };
            match e {
                AllocError::NoSpace { .. } => dev_err!(
                    mdev.as_dev(),
                    "cannot create {} (nvidia-{}): it needs a free {} MiB slice, the GPU has {} MiB free and its largest free slice is {} MiB\n",
                    BStr::from_bytes(vtype.name.to_bytes()),
                    vtype.id,
                    vtype.profile_mib,
                    free >> 20,
                    largest >> 20
                ),
                _ => dev_err!(
                    mdev.as_dev(),
                    "cannot create {} (nvidia-{}): {:?}\n",
                    BStr::from_bytes(vtype.name.to_bytes()),
                    vtype.id,
                    e
                ),
            }
            match e {
                AllocError::NoSpace { .. } => ENOSPC,
                AllocError::BadSize => EINVAL,
                AllocError::NoMemory => ENOMEM,
            }
        })?;
        dev_info!(
            mdev.as_dev(),
            "created {} (nvidia-{}, class {:?}) at VRAM {} MiB\n",
            BStr::from_bytes(vtype.name.to_bytes()),
            vtype.id,
            vtype.class,
            slice.offset >> 20
        );
        let slice = SliceGuard {
            gpu: gpu.clone(),
            slice,
        };
        Ok(try_pin_init!(Self {
            vtype,
            slice,
            state <- new_mutex!(State {
                open: false,
                params: Params::default(),
                params_text: KVec::new(),
                vm_name: KVec::new(),
            }),
        }))
    }
}

#[vtable]
impl DeviceOps for Vgpu {
    const NAME: &'static CStr = c"nvidia-vgpu-vfio";

    fn open(this: &Device<Self>) -> Result {
        let (comm, pid) = vfio::current_task_name();
        let len = comm.iter().position(|&c| c == 0).unwrap_or(comm.len());
        let mut name = KVec::with_capacity(len + 12, GFP_KERNEL)?;
        name.extend_from_slice(&comm[..len], GFP_KERNEL)?;
        let pid_text = kernel::str::CString::try_from_fmt(fmt!("[{}]", pid))?;
        name.extend_from_slice(pid_text.to_bytes(), GFP_KERNEL)?;
        let mut st = this.state.lock();
        st.open = true;
        st.vm_name = name;
        Ok(())
    }

    fn close(this: &Device<Self>) {
        let mut st = this.state.lock();
        st.open = false;
        st.vm_name.clear();
    }
}

/// The sysfs side of an instance.
impl Vgpu {
    pub(crate) fn show_params(&self, out: &mut SysfsBuf) -> Result {
        let st = self.state.lock();
        out.emit(fmt!("{}\n", BStr::from_bytes(&st.params_text)))
    }

    pub(crate) fn show_vm_name(&self, out: &mut SysfsBuf) -> Result {
        let st = self.state.lock();
        out.emit(fmt!("{}\n", BStr::from_bytes(&st.vm_name)))
    }
}

impl Device<Vgpu> {
    /// `vgpu_params` is refused with `EPERM` while a VM has the vGPU open, with `E2BIG` over
    /// 1024 bytes and with `EINVAL` for anything malformed, unknown or out of range; a refused
    /// write changes nothing.
    pub(crate) fn store_params(&self, data: &[u8]) -> Result {
        let text = params::trim(data);
        let mut st = self.state.lock();
        if st.open {
            dev_err!(self.dev(), "vgpu_params: refused while the vGPU is open\n");
            return Err(EPERM);
        }
        let p = params::parse(text).map_err(|e| {
            match e {
                params::ParamsError::TooLong(n) => dev_err!(
                    self.dev(),
                    "vgpu_params: {} bytes, at most {} allowed\n",
                    n,
                    params::MAX_LEN
                ),
                params::ParamsError::NotKeyValue(item) => dev_err!(
                    self.dev(),
                    "vgpu_params: '{}' is not key=value\n",
                    BStr::from_bytes(item)
                ),
                params::ParamsError::UnknownKey(key) => dev_err!(
                    self.dev(),
                    "vgpu_params: unknown key '{}'\n",
                    BStr::from_bytes(key)
                ),
                params::ParamsError::BadValue(key, value) => dev_err!(
                    self.dev(),
                    "vgpu_params: bad value '{}' for '{}'\n",
                    BStr::from_bytes(value),
                    BStr::from_bytes(key)
                ),
            }
            e.errno()
        })?;
        let mut copy = KVec::with_capacity(text.len(), GFP_KERNEL)?;
        copy.extend_from_slice(text, GFP_KERNEL)?;
        st.params = p;
        st.params_text = copy;
        Ok(())
    }
}
