// SPDX-License-Identifier: GPL-2.0
//! This test's part of the harness ([`vfio_client::harness`], where [`Gpu`] is): how it opens a
//! vGPU, its FENCE check and framebuffer patterns; what a migration must carry of a vGPU
//! ([`Snapshot`]); its sysfs files.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{fence, Ordering};

use vfio_client::harness::{Gpu, Unmapped};
use vfio_client::rvgpu::*;
use vfio_client::sysfs;
use vfio_client::tap::{ensure, es};
use vfio_client::{DeviceState, OpenPath};

use crate::DATA_LEN;

/// What this test adds to [`Gpu`].
pub trait MigrationGpu: Sized {
    /// Opens `uuid` on `path`, maps it, then turns memory decode and bus mastering on and checks
    /// `RVGPU_REG_FB_SIZE` against the sparse mmap area.
    fn open(uuid: &str, path: OpenPath) -> Result<Self, String>;

    /// Runs one FENCE writing `v` at scratch offset `off` and checks it landed.
    fn fence_works(&mut self, off: usize, v: u32) -> Result<(), String>;

    /// Writes the [`pattern`] of `seed` into `[off, off + len)` of the framebuffer (the engine
    /// idle: plain slices of the mapping).
    fn fb_pattern(&mut self, off: usize, len: usize, seed: u64);

    /// Checks `[off, off + len)` of the framebuffer holds the [`pattern`] of `seed`.
    fn fb_has_pattern(&self, off: usize, len: usize, seed: u64, who: &str) -> Result<(), String>;
}

impl MigrationGpu for Gpu {
    fn open(uuid: &str, path: OpenPath) -> Result<Gpu, String> {
        let u = Unmapped::open(uuid, path)?;
        let fb_size = u.usable();
        if fb_size == 0 {
            return Err("BAR0 has no sparse mmap area".into());
        }
        let mut g = u.map(fb_size, DATA_LEN)?;
        // This test's diagnostics leave ERROR_HEAD out.
        g.dump_regs.retain(|&(_, off)| off != REG_ERROR_HEAD);
        g.enable()?;
        let reg = g.reg(REG_FB_SIZE)? as usize;
        ensure(reg == fb_size, || format!("RVGPU_REG_FB_SIZE {reg:#x} but the sparse mmap area is {fb_size:#x}"))?;
        Ok(g)
    }

    fn fence_works(&mut self, off: usize, v: u32) -> Result<(), String> {
        self.set_scratch(off, 0)?;
        let before = self.reg(REG_COMPLETED)?;
        self.run(&[Cmd::fence(Gpu::scratch_iova(off), v)])?;
        let (mem, done) = (self.scratch(off)?, self.reg(REG_COMPLETED)?.wrapping_sub(before));
        ensure(mem == v && done == 1, || format!("FENCE {v:#x}: memory {mem:#x}, COMPLETED +{done}; {}", self.dump()))
    }

    fn fb_pattern(&mut self, off: usize, len: usize, seed: u64) {
        for (i, c) in self.fb.as_mut_slice()[off..off + len].chunks_mut(1 << 20).enumerate() {
            c.copy_from_slice(&pattern(off + (i << 20), c.len(), seed));
        }
        fence(Ordering::SeqCst);
    }

    fn fb_has_pattern(&self, off: usize, len: usize, seed: u64, who: &str) -> Result<(), String> {
        for (i, c) in self.fb.as_slice()[off..off + len].chunks(1 << 20).enumerate() {
            let at = off + (i << 20);
            if let Some(j) = first_difference(c, &pattern(at, c.len(), seed)) {
                return Err(format!("{who}'s framebuffer differs from the pattern at {:#x}", at + j));
            }
        }
        Ok(())
    }
}

/// The bytes at `[off, off + len)` of a deterministic pattern of `seed` (each byte a function of
/// its offset, so any part of it can be made or checked alone).
pub fn pattern(off: usize, len: usize, seed: u64) -> Vec<u8> {
    (off..off + len)
        .map(|i| {
            let x = ((i >> 3) as u64 ^ seed << 40).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            (x >> (8 * (i & 7)) ^ x >> 61) as u8
        })
        .collect()
}

pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    if a == b {
        return None;
    }
    Some(a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len())))
}

// ----- what a migration carries --------------------------------------------------------------

/// The device state as the VM sees it: configuration space and every BAR2 register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub config: Vec<u8>,
    /// `(name, value)` of each register.
    pub regs: Vec<(String, u32)>,
}

const WORDS: [(&str, u64); 19] = [
    ("QEXT_SIZE", MMIO_QEXT_SIZE),
    ("BYTEORDER", MMIO_QEXT_BYTEORDER),
    ("MAGIC", REG_MAGIC),
    ("HEADS", REG_HEADS),
    ("MAX_WIDTH", REG_MAX_WIDTH),
    ("MAX_HEIGHT", REG_MAX_HEIGHT),
    ("FB_SIZE", REG_FB_SIZE),
    ("FRL_FPS", REG_FRL_FPS),
    ("IRQ_STATUS", REG_IRQ_STATUS),
    ("IRQ_ENABLE", REG_IRQ_ENABLE),
    ("RING_BASE_LO", REG_RING_BASE_LO),
    ("RING_BASE_HI", REG_RING_BASE_HI),
    ("RING_SIZE", REG_RING_SIZE),
    ("RING_HEAD", REG_RING_HEAD),
    ("RING_TAIL", REG_RING_TAIL),
    ("ERROR", REG_ERROR),
    ("ERROR_HEAD", REG_ERROR_HEAD),
    ("FENCE", REG_FENCE),
    ("COMPLETED", REG_COMPLETED),
];

impl Snapshot {
    pub fn take(g: &Gpu) -> Result<Snapshot, String> {
        let config = g.cfg_bytes(0, 256)?;
        let mut regs = Vec::new();
        for i in 0..DISPI_COUNT {
            regs.push((format!("DISPI[{i:#x}]"), u32::from(g.dispi(i)?)));
        }
        for (n, off) in WORDS {
            regs.push((n.to_string(), g.reg(off)?));
        }
        regs.push(("VBLANK_COUNT".into(), g.reg(REG_VBLANK_COUNT)?));
        regs.push(("ENGINE_STATUS".into(), g.reg(REG_ENGINE_STATUS)?));
        for off in (MMIO_EDID..MMIO_EDID + MMIO_EDID_SIZE).step_by(4) {
            regs.push((format!("EDID+{off:#x}"), g.reg(off)?));
        }
        Ok(Snapshot { config, regs })
    }

    /// How `other` (the destination, `who`) differs from this one.
    pub fn diff(&self, other: &Snapshot, who: &str) -> Result<(), String> {
        let mut d: Vec<String> = Vec::new();
        for (i, (x, y)) in self.config.iter().zip(&other.config).enumerate() {
            if x != y {
                d.push(format!("config[{i:#04x}] {x:#04x} -> {y:#04x}"));
            }
        }
        for ((n, x), (_, y)) in self.regs.iter().zip(&other.regs) {
            if x != y {
                d.push(format!("{n} {x:#x} -> {y:#x}"));
            }
        }
        ensure(d.is_empty(), || format!("{who} differs from the source: {}", d.join(", ")))
    }
}

// ----- sysfs ---------------------------------------------------------------------------------

fn nvidia_file(uuid: &str, name: &str) -> Result<PathBuf, String> {
    Ok(sysfs::mdev_dir(uuid).map_err(es)?.join("nvidia").join(name))
}

/// `nvidia/vgpu_params`, trimmed.
pub fn read_params(uuid: &str) -> Result<String, String> {
    let p = nvidia_file(uuid, "vgpu_params")?;
    fs::read_to_string(&p).map(|s| s.trim().to_owned()).map_err(|e| format!("{}: {e}", p.display()))
}

/// Writes `nvidia/vgpu_params` (the vGPU must be closed).
pub fn write_params(uuid: &str, text: &str) -> Result<(), String> {
    let p = nvidia_file(uuid, "vgpu_params")?;
    fs::write(&p, format!("{text}\n")).map_err(|e| format!("writing {text:?} to {}: {e}", p.display()))
}

/// The `type_id` of the vGPU's type (its `mdev_type` is `nvidia-<type_id>`).
pub fn type_id(uuid: &str) -> Result<u32, String> {
    let dir = sysfs::mdev_dir(uuid).map_err(es)?;
    let name = sysfs::mdev_type(&dir).map_err(|e| format!("{}/mdev_type: {e}", dir.display()))?;
    vfio_client::migration::stream::type_id_of(&name).ok_or_else(|| format!("mdev type {name:?} is no nvidia-<id>"))
}

/// The number after `key=` in `nvidia/migration`.
pub fn sysfs_counter(uuid: &str, key: &str) -> Result<u64, String> {
    let p = nvidia_file(uuid, "migration")?;
    let line = fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    let v = line.split_whitespace().find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='));
    v.and_then(|v| v.parse().ok()).ok_or_else(|| format!("no {key}= number in nvidia/migration: {}", line.trim()))
}

/// Prints `nvidia/migration` and checks its `state=` is `want`.
pub fn sysfs_state_is(uuid: &str, want: DeviceState) -> Result<(), String> {
    let p = nvidia_file(uuid, "migration")?;
    let line = fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    println!("# {uuid} nvidia/migration: {}", line.trim());
    let got = line.split_whitespace().find_map(|kv| kv.strip_prefix("state="));
    ensure(got == Some(want.name()), || format!("nvidia/migration says state={got:?}, the device is {want}"))
}
