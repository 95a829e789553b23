// SPDX-License-Identifier: GPL-2.0

//! A vGPU's `nvidia/` sysfs directory: `vgpu_params` (read-write), `vm_name`, `display`,
//! `migration` (the migration state and counters) and `accounting` (engine use).

use kernel::{
    prelude::*,
    str::BStr, //
};

use super::{
    instance::Vgpu,
    params, //
};
use crate::vfio::{
    sysfs::{
        Attr,
        Group,
        SysfsBuf, //
    },
    Device,
};

/// The files of a vGPU's `nvidia/` directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VgpuAttr {
    VgpuParams,
    VmName,
    Display,
    Migration,
    Accounting,
}

/// A vGPU's `nvidia/` directory.
pub(crate) const VGPU_ATTRS: Group<VgpuAttr> = Group {
    name: c"nvidia",
    attrs: &[
        Attr {
            name: c"vgpu_params",
            writable: true,
            id: VgpuAttr::VgpuParams,
        },
        Attr {
            name: c"vm_name",
            writable: false,
            id: VgpuAttr::VmName,
        },
        Attr {
            name: c"display",
            writable: false,
            id: VgpuAttr::Display,
        },
        Attr {
            name: c"migration",
            writable: false,
            id: VgpuAttr::Migration,
        },
        Attr {
            name: c"accounting",
            writable: false,
            id: VgpuAttr::Accounting,
        },
    ],
};

impl Vgpu {
    /// Shows one of the files.
    pub(crate) fn show_attr(&self, attr: VgpuAttr, out: &mut SysfsBuf) -> Result {
        match attr {
            VgpuAttr::VgpuParams => {
                let st = self.state.lock();
                out.emit(fmt!("{}\n", BStr::from_bytes(&st.params_text)))
            }
            VgpuAttr::VmName => {
                let st = self.state.lock();
                out.emit(fmt!("{}\n", BStr::from_bytes(&st.vm_name)))
            }
            VgpuAttr::Display => self.show_display(out),
            VgpuAttr::Accounting => self.show_accounting(out),
            VgpuAttr::Migration => {
                let precopy = self.state.lock().params.precopy;
                let m = self.mig.lock();
                let c = m.counters();
                out.emit(fmt!(
                    "state={} saved_bytes={} loaded_bytes={} precopy_rounds={} vram_resent_pages={} dirty_pages={} precopy={}\n",
                    m.state.name(),
                    c.saved,
                    c.loaded,
                    c.rounds,
                    c.resent_pages,
                    self.engine.dirty_pages(),
                    if precopy { "on" } else { "off" }
                ))
            }
        }
    }

    /// The `accounting` file: `key: value` lines in DRM fdinfo's style
    /// (`Documentation/gpu/drm-usage-stats.rst`), documented in `README.md`.
    fn show_accounting(&self, out: &mut SysfsBuf) -> Result {
        let fb_used = self
            .hw
            .lock()
            .display
            .mode()
            .map_or(0, |m| u64::from(m.stride) * u64::from(m.height));
        let gpu = self.slice.gpu();
        let (now, busy) = gpu.sched().busy_now(Some(&self.engine));
        gpu.accounting_head(out, now)?;
        out.emit(fmt!("rvgpu-sched-id: {}\n", self.engine.sched_id()))?;
        self.engine.stats().emit(out, busy)?;
        out.emit(fmt!(
            "rvgpu-pinned-pages: {}\nrvgpu-fb-total: {} KiB\nrvgpu-fb-used: {} KiB\n",
            self.engine.pinned_pages(),
            self.vtype.profile_bytes() >> 10,
            fb_used.div_ceil(1024)
        ))
    }

    /// The `display` file: the scan-out mode the guest set, or `disabled`.
    fn show_display(&self, out: &mut SysfsBuf) -> Result {
        let mode = self.hw.lock().display.mode();
        match mode {
            Some(m) => out.emit(fmt!(
                "{}x{} bpp={} stride={} offset={}\n",
                m.width,
                m.height,
                m.bpp,
                m.stride,
                m.offset
            )),
            None => out.emit(fmt!("disabled\n")),
        }
    }
}

impl Device<Vgpu> {
    /// Stores into one of the files (only `vgpu_params` is writable).
    pub(crate) fn store_attr(&self, attr: VgpuAttr, data: &[u8]) -> Result {
        match attr {
            VgpuAttr::VgpuParams => self.store_params(data),
            VgpuAttr::VmName | VgpuAttr::Display | VgpuAttr::Migration | VgpuAttr::Accounting => {
                Err(EPERM)
            }
        }
    }

    /// `vgpu_params` is refused with `EPERM` while a VM has the vGPU open, with `E2BIG` over
    /// 1024 bytes and with `EINVAL` for anything malformed, unknown or out of range; a refused
    /// write changes nothing.
    fn store_params(&self, data: &[u8]) -> Result {
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
