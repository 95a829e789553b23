// SPDX-License-Identifier: GPL-2.0
//! The test harness: one open vGPU ([`Gpu`]) with its framebuffer mapped, a ring and a data
//! buffer mapped for DMA; what a migration must carry of it ([`Snapshot`]); its sysfs files.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use vfio_client::rvgpu::*;
use vfio_client::sysfs;
use vfio_client::tap::ensure;
use vfio_client::{Device, DeviceState, EventFd, Mmap, OpenPath, Prot, RegionInfo};

use crate::{es, DATA_IOVA, DATA_LEN, RING_BUF, RING_IOVA, RING_SIZE, SCRATCH};

/// An open vGPU. Field order is drop order: the framebuffer mapping (which holds the device
/// file) goes first, then the device (closing it unmaps all DMA), then our buffers.
pub struct Gpu {
    pub fb: Mmap,
    pub dev: Device,
    pub uuid: String,
    pub bar2: RegionInfo,
    pub cfg: RegionInfo,
    pub fb_size: usize,
    pub ring: Mmap,
    pub tail: u32,
    pub data: Mmap,
}

impl Gpu {
    pub fn open(uuid: &str, path: OpenPath) -> Result<Gpu, String> {
        let dev = Device::open(uuid, path).map_err(|e| format!("open {uuid}: {e}"))?;
        let bar0 = dev.region_info(REGION_BAR0).map_err(|e| format!("BAR0 info: {e}"))?;
        let bar2 = dev.region_info(REGION_BAR2).map_err(|e| format!("BAR2 info: {e}"))?;
        let cfg = dev.region_info(REGION_CONFIG).map_err(|e| format!("config info: {e}"))?;
        let fb_size = bar0.sparse_areas().and_then(|a| a.first()).map_or(0, |a| a.size as usize);
        if fb_size == 0 {
            return Err("BAR0 has no sparse mmap area".into());
        }
        let fb = dev.mmap_region(&bar0, 0, fb_size, Prot::RW).map_err(|e| format!("mmap BAR0: {e}"))?;
        let ring = Mmap::anonymous(RING_BUF).map_err(|e| format!("ring buffer: {e}"))?;
        dev.map_dma(&ring, RING_IOVA).map_err(|e| format!("map ring buffer at {RING_IOVA:#x}: {e}"))?;
        let data = Mmap::anonymous(DATA_LEN).map_err(|e| format!("data buffer: {e}"))?;
        dev.map_dma(&data, DATA_IOVA).map_err(|e| format!("map data buffer at {DATA_IOVA:#x}: {e}"))?;
        let g = Gpu { fb, dev, uuid: uuid.to_owned(), bar2, cfg, fb_size, ring, tail: 0, data };
        g.enable()?;
        let reg = g.reg(REG_FB_SIZE)? as usize;
        ensure(reg == fb_size, || format!("RVGPU_REG_FB_SIZE {reg:#x} but the sparse mmap area is {fb_size:#x}"))?;
        Ok(g)
    }

    /// Memory decode and bus mastering on, as a guest driver does before using the device (and
    /// again after a reset, which turns them off).
    pub fn enable(&self) -> Result<(), String> {
        self.cfg_write(4, &0x0006u16.to_le_bytes())
    }

    pub fn reg(&self, off: u64) -> Result<u32, String> {
        let mut b = [0u8; 4];
        self.dev.read_region_exact(&self.bar2, off, &mut b).map_err(|e| format!("read register {off:#x}: {e}"))?;
        Ok(u32::from_le_bytes(b))
    }

    pub fn set_reg(&self, off: u64, v: u32) -> Result<(), String> {
        self.dev
            .write_region_all(&self.bar2, off, &v.to_le_bytes())
            .map_err(|e| format!("write register {off:#x}: {e}"))
    }

    pub fn dispi(&self, index: u64) -> Result<u16, String> {
        let mut b = [0u8; 2];
        let off = MMIO_DISPI + index * 2;
        self.dev.read_region_exact(&self.bar2, off, &mut b).map_err(|e| format!("read DISPI {index:#x}: {e}"))?;
        Ok(u16::from_le_bytes(b))
    }

    pub fn set_dispi(&self, index: u64, v: u16) -> Result<(), String> {
        let off = MMIO_DISPI + index * 2;
        self.dev.write_region_all(&self.bar2, off, &v.to_le_bytes()).map_err(|e| format!("write DISPI {index:#x}: {e}"))
    }

    pub fn cfg_write(&self, off: u64, data: &[u8]) -> Result<(), String> {
        self.dev.write_region_all(&self.cfg, off, data).map_err(|e| format!("config write {off:#x}: {e}"))
    }

    pub fn cfg_bytes(&self, off: u64, len: usize) -> Result<Vec<u8>, String> {
        let mut b = vec![0u8; len];
        self.dev.read_region_exact(&self.cfg, off, &mut b).map_err(|e| format!("config read {off:#x}: {e}"))?;
        Ok(b)
    }

    pub fn cfg_read16(&self, off: u64) -> Result<u16, String> {
        let b = self.cfg_bytes(off, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// The engine registers, for diagnostics.
    pub fn dump(&self) -> String {
        let names = [
            ("STATUS", REG_IRQ_STATUS),
            ("ENABLE", REG_IRQ_ENABLE),
            ("SIZE", REG_RING_SIZE),
            ("HEAD", REG_RING_HEAD),
            ("TAIL", REG_RING_TAIL),
            ("ERROR", REG_ERROR),
            ("FENCE", REG_FENCE),
            ("COMPLETED", REG_COMPLETED),
            ("ENGINE", REG_ENGINE_STATUS),
        ];
        let parts: Vec<String> = names
            .iter()
            .map(|(n, o)| self.reg(*o).map_or_else(|e| format!("{n}=<{e}>"), |v| format!("{n}={v:#x}")))
            .collect();
        format!("registers: {} (our tail {:#x})", parts.join(" "), self.tail)
    }

    /// Programs the ring (base, then size, which resets HEAD and TAIL).
    pub fn setup_ring(&mut self) -> Result<(), String> {
        self.set_reg(REG_RING_BASE_LO, RING_IOVA as u32)?;
        self.set_reg(REG_RING_BASE_HI, (RING_IOVA >> 32) as u32)?;
        self.set_reg(REG_RING_SIZE, RING_SIZE)?;
        self.tail = 0;
        Ok(())
    }

    /// Takes the device's TAIL as ours (after a migration brought another device's ring).
    pub fn sync_tail(&mut self) -> Result<(), String> {
        self.tail = self.reg(REG_RING_TAIL)?;
        Ok(())
    }

    /// Writes a command at our tail (no doorbell); returns its ring offset.
    pub fn push(&mut self, c: &Cmd) -> Result<u32, String> {
        let at = self.tail;
        self.ring.write_bytes(at as usize, &c.to_bytes()).map_err(es)?;
        self.tail = (at + CMD_BYTES) % RING_SIZE;
        Ok(at)
    }

    pub fn doorbell(&self) -> Result<(), String> {
        // The commands are in memory before the register write (a syscall) tells the device.
        fence(Ordering::SeqCst);
        self.set_reg(REG_RING_TAIL, self.tail)
    }

    /// Queues `cmds` and rings the doorbell.
    pub fn submit(&mut self, cmds: &[Cmd]) -> Result<(), String> {
        for c in cmds {
            self.push(c)?;
        }
        self.doorbell()
    }

    /// Waits until the engine has consumed everything up to our tail and is not busy.
    pub fn wait_idle(&self, timeout: Duration) -> Result<(), String> {
        let t = Instant::now();
        loop {
            if self.reg(REG_RING_HEAD)? == self.tail && self.reg(REG_ENGINE_STATUS)? & 1 == 0 {
                return Ok(());
            }
            if t.elapsed() > timeout {
                return Err(format!("the engine did not go idle within {timeout:?}; {}", self.dump()));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Submits and waits for idle.
    pub fn run(&mut self, cmds: &[Cmd]) -> Result<(), String> {
        self.submit(cmds)?;
        self.wait_idle(crate::IDLE_TIMEOUT)
    }

    /// IOVA of a scratch word (fence target) at byte `off` of the scratch area.
    pub fn scratch_iova(off: usize) -> u64 {
        RING_IOVA + (SCRATCH + off) as u64
    }

    pub fn scratch(&self, off: usize) -> Result<u32, String> {
        self.ring.read::<u32>(SCRATCH + off).map_err(es)
    }

    pub fn set_scratch(&mut self, off: usize, v: u32) -> Result<(), String> {
        self.ring.write::<u32>(SCRATCH + off, v).map_err(es)
    }

    /// Runs one FENCE writing `v` at scratch offset `off` and checks it landed.
    pub fn fence_works(&mut self, off: usize, v: u32) -> Result<(), String> {
        self.set_scratch(off, 0)?;
        let before = self.reg(REG_COMPLETED)?;
        self.run(&[Cmd::fence(Gpu::scratch_iova(off), v)])?;
        let (mem, done) = (self.scratch(off)?, self.reg(REG_COMPLETED)?.wrapping_sub(before));
        ensure(mem == v && done == 1, || format!("FENCE {v:#x}: memory {mem:#x}, COMPLETED +{done}; {}", self.dump()))
    }

    /// Error register and all interrupt status cleared.
    pub fn clear(&self) -> Result<(), String> {
        self.set_reg(REG_ERROR, 0)?;
        self.set_reg(REG_IRQ_STATUS, IRQ_ALL)
    }

    // ----- the framebuffer (the engine idle: plain slices of the mapping) ---------------------

    /// Writes the [`pattern`] of `seed` into `[off, off + len)`.
    pub fn fb_pattern(&mut self, off: usize, len: usize, seed: u64) {
        for (i, c) in self.fb.as_mut_slice()[off..off + len].chunks_mut(1 << 20).enumerate() {
            c.copy_from_slice(&pattern(off + (i << 20), c.len(), seed));
        }
        fence(Ordering::SeqCst);
    }

    /// Checks `[off, off + len)` holds the [`pattern`] of `seed`.
    pub fn fb_has_pattern(&self, off: usize, len: usize, seed: u64, who: &str) -> Result<(), String> {
        for (i, c) in self.fb.as_slice()[off..off + len].chunks(1 << 20).enumerate() {
            let at = off + (i << 20);
            if let Some(j) = first_difference(c, &pattern(at, c.len(), seed)) {
                return Err(format!("{who}'s framebuffer differs from the pattern at {:#x}", at + j));
            }
        }
        Ok(())
    }

    pub fn fb_fill(&mut self, off: usize, len: usize, byte: u8) {
        self.fb.as_mut_slice()[off..off + len].fill(byte);
        fence(Ordering::SeqCst);
    }

    // ----- interrupts, set up as QEMU does ----------------------------------------------------

    pub fn msi_on(&self, efd: &EventFd) -> Result<(), String> {
        self.cfg_write(MSI_CAP + 4, &0xfee0_0000u32.to_le_bytes())?;
        self.cfg_write(MSI_CAP + 8, &0u32.to_le_bytes())?;
        self.cfg_write(MSI_CAP + 12, &0x4041u16.to_le_bytes())?;
        let ctl = self.cfg_read16(MSI_CAP + 2)?;
        self.cfg_write(MSI_CAP + 2, &(ctl | 1).to_le_bytes())?;
        self.dev.set_irq_eventfds(MSI, 0, &[efd.as_raw_fd()]).map_err(|e| format!("SET_IRQS MSI eventfd: {e}"))
    }

    pub fn msi_off(&self) -> Result<(), String> {
        let ctl = self.cfg_read16(MSI_CAP + 2)?;
        self.cfg_write(MSI_CAP + 2, &(ctl & !1).to_le_bytes())?;
        self.dev.disable_irqs(MSI).map_err(|e| format!("SET_IRQS disable MSI: {e}"))
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

/// Reads (and resets) the eventfd's count; 0 when nothing was signalled.
pub fn drain(efd: &EventFd) -> Result<u64, String> {
    efd.read().map(|c| c.unwrap_or(0)).map_err(|e| format!("eventfd read: {e}"))
}

/// Ok if nothing is signalled within `ms`.
pub fn quiet(efd: &EventFd, ms: i32, what: &str) -> Result<(), String> {
    if efd.wait(ms).map_err(|e| format!("poll: {e}"))? {
        let n = drain(efd)?;
        return Err(format!("{what}: unexpected interrupt (count {n})"));
    }
    Ok(())
}

pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> Result<bool, String>) -> Result<bool, String> {
    let t = Instant::now();
    loop {
        if f()? {
            return Ok(true);
        }
        if t.elapsed() > timeout {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
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

/// Prints `nvidia/migration` and checks its `state=` is `want`.
pub fn sysfs_state_is(uuid: &str, want: DeviceState) -> Result<(), String> {
    let p = nvidia_file(uuid, "migration")?;
    let line = fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    println!("# {uuid} nvidia/migration: {}", line.trim());
    let got = line.split_whitespace().find_map(|kv| kv.strip_prefix("state="));
    ensure(got == Some(want.name()), || format!("nvidia/migration says state={got:?}, the device is {want}"))
}
