// SPDX-License-Identifier: GPL-2.0
//! This test's part of the harness ([`vfio_client::harness`], where [`Gpu`] is): how it opens a
//! vGPU, its FENCE check, the framebuffer check and the GPU's pinned-page counter.

use std::fs;
use std::io;

use vfio_client::harness::{Gpu, Unmapped};
use vfio_client::rvgpu::*;
use vfio_client::tap::ensure;
use vfio_client::OpenPath;

use crate::DATA_LEN;

/// What this test adds to [`Gpu`].
pub trait EngineGpu: Sized {
    /// Opens `uuid` on `path`, with memory decode and bus mastering on and `RVGPU_REG_FB_SIZE`
    /// checked against the sparse mmap area before anything is mapped.
    fn open(uuid: &str, path: OpenPath) -> Result<Self, String>;

    /// Runs one FENCE writing `v` at scratch offset `off` and checks it landed without an error.
    fn fence_works(&mut self, off: usize, v: u32) -> Result<(), String>;
}

impl EngineGpu for Gpu {
    fn open(uuid: &str, path: OpenPath) -> Result<Gpu, String> {
        let u = Unmapped::open(uuid, path)?;
        // Memory decode and bus mastering on, as a guest driver does before using the device.
        u.dev.write_region_all(&u.cfg, 4, &0x0006u16.to_le_bytes()).map_err(|e| format!("config command: {e}"))?;
        let mut b = [0u8; 4];
        u.dev.read_region_exact(&u.bar2, REG_FB_SIZE, &mut b).map_err(|e| format!("FB_SIZE: {e}"))?;
        let fb_size = u32::from_le_bytes(b) as usize;
        let usable = u.usable();
        if fb_size == 0 || fb_size != usable {
            return Err(format!("RVGPU_REG_FB_SIZE {fb_size:#x} but the sparse mmap area is {usable:#x}"));
        }
        u.map(fb_size, DATA_LEN)
    }

    fn fence_works(&mut self, off: usize, v: u32) -> Result<(), String> {
        self.set_scratch(off, 0)?;
        self.run(&[Cmd::fence(Gpu::scratch_iova(off), v)])?;
        let (err, mem) = (self.reg(REG_ERROR)?, self.scratch(off)?);
        ensure(err == ERR_NONE && mem == v, || format!("FENCE: ERROR {err}, memory {mem:#x} (want {v:#x})"))
    }
}

/// The GPU-wide count of guest pages the driver holds pinned.
pub fn pinned_pages(gpu: &str) -> Result<u64, String> {
    let p = format!("/sys/bus/pci/devices/{gpu}/nvidia/pinned_pages");
    let s = fs::read_to_string(&p).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            format!("{p} does not exist: the driver does not expose its pinned-page counter (yet)")
        } else {
            format!("{p}: {e}")
        }
    })?;
    s.split_whitespace().next().and_then(|t| t.parse().ok()).ok_or_else(|| format!("{p}: cannot parse {s:?}"))
}

/// Checks `[off, off + len)` of the framebuffer is all `byte`.
pub fn fb_is(g: &Gpu, off: usize, len: usize, byte: u8, what: &str) -> Result<(), String> {
    let got = g.fb_bytes(off, len)?;
    match got.iter().position(|&x| x != byte) {
        None => Ok(()),
        Some(i) => Err(format!("{what}: framebuffer byte {:#x} is {:#04x}, expected {byte:#04x}", off + i, got[i])),
    }
}
