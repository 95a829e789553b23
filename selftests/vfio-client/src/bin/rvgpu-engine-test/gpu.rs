// SPDX-License-Identifier: GPL-2.0
//! The test harness: one open vGPU ([`Gpu`]) with its ring, and waiting for interrupts and for
//! the engine.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use vfio_client::rvgpu::*;
use vfio_client::tap::ensure;
use vfio_client::{Device, EventFd, Mmap, OpenPath, Prot, RegionInfo};

use crate::{es, DATA_IOVA, DATA_LEN, IDLE_TIMEOUT, RING_BUF, RING_IOVA, RING_SIZE, SCRATCH};

/// An open vGPU with its framebuffer mapped, a ring buffer and a data buffer mapped for DMA.
/// Field order is drop order: the framebuffer mapping (which holds the device file) goes first,
/// then the device (closing it unmaps all DMA), then our buffers.
pub struct Gpu {
    pub fb: Mmap,
    pub dev: Device,
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
        // Memory decode and bus mastering on, as a guest driver does before using the device.
        dev.write_region_all(&cfg, 4, &0x0006u16.to_le_bytes()).map_err(|e| format!("config command: {e}"))?;
        let mut b = [0u8; 4];
        dev.read_region_exact(&bar2, REG_FB_SIZE, &mut b).map_err(|e| format!("FB_SIZE: {e}"))?;
        let fb_size = u32::from_le_bytes(b) as usize;
        let usable = bar0.sparse_areas().and_then(|a| a.first()).map_or(0, |a| a.size as usize);
        if fb_size == 0 || fb_size != usable {
            return Err(format!("RVGPU_REG_FB_SIZE {fb_size:#x} but the sparse mmap area is {usable:#x}"));
        }
        let fb = dev.mmap_region(&bar0, 0, fb_size, Prot::RW).map_err(|e| format!("mmap BAR0: {e}"))?;
        let ring = Mmap::anonymous(RING_BUF).map_err(|e| format!("ring buffer: {e}"))?;
        dev.map_dma(&ring, RING_IOVA).map_err(|e| format!("map ring buffer at {RING_IOVA:#x}: {e}"))?;
        let data = Mmap::anonymous(DATA_LEN).map_err(|e| format!("data buffer: {e}"))?;
        dev.map_dma(&data, DATA_IOVA).map_err(|e| format!("map data buffer at {DATA_IOVA:#x}: {e}"))?;
        Ok(Gpu { fb, dev, bar2, cfg, fb_size, ring, tail: 0, data })
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

    pub fn cfg_write(&self, off: u64, data: &[u8]) -> Result<(), String> {
        self.dev.write_region_all(&self.cfg, off, data).map_err(|e| format!("config write {off:#x}: {e}"))
    }

    pub fn cfg_read16(&self, off: u64) -> Result<u16, String> {
        let mut b = [0u8; 2];
        self.dev.read_region_exact(&self.cfg, off, &mut b).map_err(|e| format!("config read {off:#x}: {e}"))?;
        Ok(u16::from_le_bytes(b))
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
            ("ERROR_HEAD", REG_ERROR_HEAD),
            ("FENCE", REG_FENCE),
            ("COMPLETED", REG_COMPLETED),
            ("ENGINE", REG_ENGINE_STATUS),
        ];
        let parts: Vec<String> = names
            .iter()
            .map(|(n, o)| match self.reg(*o) {
                Ok(v) => format!("{n}={v:#x}"),
                Err(e) => format!("{n}=<{e}>"),
            })
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

    /// Stops the engine for sure and starts the ring afresh: RING_SIZE 0 (the engine stops at its
    /// next command), wait until it is not busy, then program the ring again. A plain RING_SIZE
    /// rewrite is not enough while the engine is running (see [`crate::commands::ring_setup`]).
    pub fn restart_ring(&mut self) -> Result<(), String> {
        self.set_reg(REG_RING_SIZE, 0)?;
        let stopped = wait_for(Duration::from_secs(10), || Ok(self.reg(REG_ENGINE_STATUS)? & 1 == 0))?;
        if !stopped {
            return Err(format!("the engine is still busy 10 s after RING_SIZE = 0; {}", self.dump()));
        }
        std::thread::sleep(Duration::from_millis(20));
        self.setup_ring()?;
        self.clear()
    }

    /// Makes sure the engine is idle at our tail before a check starts (an earlier failure may
    /// have left it running); restarts the ring if not.
    pub fn settle(&mut self) -> Result<(), String> {
        if self.reg(REG_RING_HEAD)? != self.tail || self.reg(REG_ENGINE_STATUS)? & 1 != 0 {
            println!("# engine not idle before a check, restarting the ring; {}", self.dump());
            self.restart_ring()?;
        }
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

    /// Queues `cmds` and rings the doorbell; returns their ring offsets.
    pub fn submit(&mut self, cmds: &[Cmd]) -> Result<Vec<u32>, String> {
        let offs = cmds.iter().map(|c| self.push(c)).collect::<Result<Vec<_>, _>>()?;
        self.doorbell()?;
        Ok(offs)
    }

    /// Waits until the engine has consumed everything up to our tail and is not busy.
    pub fn wait_idle(&self, timeout: Duration) -> Result<(), String> {
        let t = Instant::now();
        loop {
            let head = self.reg(REG_RING_HEAD)?;
            let busy = self.reg(REG_ENGINE_STATUS)? & 1;
            if head == self.tail && busy == 0 {
                return Ok(());
            }
            if t.elapsed() > timeout {
                return Err(format!("the engine did not go idle within {timeout:?}; {}", self.dump()));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Submits and waits for idle.
    pub fn run(&mut self, cmds: &[Cmd]) -> Result<Vec<u32>, String> {
        let offs = self.submit(cmds)?;
        self.wait_idle(IDLE_TIMEOUT)?;
        Ok(offs)
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

    /// Runs one FENCE writing `v` at scratch offset `off` and checks it landed without an error.
    pub fn fence_works(&mut self, off: usize, v: u32) -> Result<(), String> {
        self.set_scratch(off, 0)?;
        self.run(&[Cmd::fence(Gpu::scratch_iova(off), v)])?;
        let (err, mem) = (self.reg(REG_ERROR)?, self.scratch(off)?);
        ensure(err == ERR_NONE && mem == v, || format!("FENCE: ERROR {err}, memory {mem:#x} (want {v:#x})"))
    }

    /// Error register and all interrupt status cleared.
    pub fn clear(&self) -> Result<(), String> {
        self.set_reg(REG_ERROR, 0)?;
        self.set_reg(REG_IRQ_STATUS, IRQ_ALL)
    }

    pub fn fb_bytes(&self, off: usize, len: usize) -> Result<Vec<u8>, String> {
        let mut v = vec![0u8; len];
        self.fb.read_bytes(off, &mut v).map_err(|e| format!("framebuffer read {off:#x}+{len:#x}: {e}"))?;
        Ok(v)
    }

    pub fn fb_set(&mut self, off: usize, data: &[u8]) -> Result<(), String> {
        self.fb.write_bytes(off, data).map_err(|e| format!("framebuffer write {off:#x}+{:#x}: {e}", data.len()))?;
        fence(Ordering::SeqCst);
        Ok(())
    }

    pub fn data_bytes(&self, off: usize, len: usize) -> Result<Vec<u8>, String> {
        let mut v = vec![0u8; len];
        self.data.read_bytes(off, &mut v).map_err(es)?;
        Ok(v)
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

    pub fn intx_on(&self, efd: &EventFd) -> Result<(), String> {
        self.dev.set_irq_eventfds(INTX, 0, &[efd.as_raw_fd()]).map_err(|e| format!("SET_IRQS INTx eventfd: {e}"))
    }

    pub fn intx_off(&self) -> Result<(), String> {
        self.dev.disable_irqs(INTX).map_err(|e| format!("SET_IRQS disable INTx: {e}"))
    }
}

/// Reads (and resets) the eventfd's count; 0 when nothing was signalled.
pub fn drain(efd: &EventFd) -> Result<u64, String> {
    efd.read().map(|c| c.unwrap_or(0)).map_err(|e| format!("eventfd read: {e}"))
}

/// Waits up to `ms` for a signal and consumes it; the count, or an error naming `what`.
pub fn wait_irq(efd: &EventFd, ms: i32, what: &str) -> Result<u64, String> {
    if !efd.wait(ms).map_err(|e| format!("poll: {e}"))? {
        return Err(format!("{what}: no interrupt within {ms} ms"));
    }
    drain(efd)
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

pub fn efd_signalled(efd: &EventFd, ms: i32) -> Result<bool, String> {
    Ok(efd.wait(ms).map_err(es)? && drain(efd)? > 0)
}
