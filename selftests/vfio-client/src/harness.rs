// SPDX-License-Identifier: GPL-2.0
//! The harness the rvgpu test programs share: their command line ([`Args`]), the guest memory
//! layout of their ring, one open vGPU ([`Gpu`]) with its framebuffer mapped and a ring and a
//! data buffer mapped for DMA, and waiting for interrupts and for the engine.
//!
//! A program opens a vGPU in two steps, [`Unmapped::open`] and [`Unmapped::map`], with its own
//! checks of the device between or after them, and adds what only it needs to [`Gpu`] through a
//! trait of its own. Every error is a result message (`String`), as [`crate::tap`] reports it.

use std::os::fd::AsRawFd;
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use crate::rvgpu::*;
use crate::tap::{es, Tap};
use crate::{Device, EventFd, Mmap, OpenPath, Prot, RegionInfo};

// ----- the command line ------------------------------------------------------------------------

/// The command line of a test program on two vGPUs, `PROG GPU UUID_A UUID_B [--iommufd]`, with
/// `$TAP_STATE` set.
pub struct Args {
    /// The reporter for `$TAP_STATE`.
    pub tap: Tap,
    /// The physical GPU's PCI address.
    pub gpu: String,
    /// The first vGPU.
    pub uuid_a: String,
    /// The second vGPU.
    pub uuid_b: String,
    /// The VFIO path the vGPUs are opened on.
    pub path: OpenPath,
    /// The path's name, which prefixes each result.
    pub tag: &'static str,
}

impl Args {
    /// The command line of `prog`; prints its usage and exits with status 2 if it does not fit
    /// (or `$TAP_STATE` is not set).
    pub fn parse(prog: &str) -> Args {
        let args: Vec<String> = std::env::args().collect();
        let iommufd = args.iter().any(|a| a == "--iommufd");
        let pos: Vec<&String> = args.iter().skip(1).filter(|a| !a.starts_with("--")).collect();
        let (Some(tap), [gpu, ua, ub]) = (Tap::from_env(), pos.as_slice()) else {
            eprintln!("usage: TAP_STATE=DIR {prog} GPU UUID_A UUID_B [--iommufd]");
            std::process::exit(2);
        };
        let path = if iommufd { OpenPath::Iommufd } else { OpenPath::Container };
        let tag = if iommufd { "iommufd" } else { "container" };
        Args { tap, gpu: gpu.to_string(), uuid_a: ua.to_string(), uuid_b: ub.to_string(), path, tag }
    }
}

// ----- the guest memory layout -----------------------------------------------------------------

/// The ring buffer's mapping: the ring in its first [`RING_SIZE`] bytes, scratch (fence values)
/// in the rest. Above 4 GiB so `RING_BASE_HI` matters.
pub const RING_IOVA: u64 = 0x1_2340_0000;
/// The ring buffer's length.
pub const RING_BUF: usize = 64 << 10;
/// The ring's size (`RVGPU_REG_RING_SIZE`).
pub const RING_SIZE: u32 = 32 << 10;
/// Where in the ring buffer the scratch area starts.
pub const SCRATCH: usize = RING_SIZE as usize;
/// Source and destination of copies (its length is the program's, see [`Unmapped::map`]).
pub const DATA_IOVA: u64 = 0x2000_0000;

/// How long an interrupt that must come is waited for.
pub const IRQ_WAIT_MS: i32 = 5000;
/// How long an interrupt that must not come is waited for.
pub const QUIET_MS: i32 = 300;
/// How long [`Gpu::run`] waits for the engine to go idle.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The engine registers [`Gpu::dump`] shows (unless a program leaves some out).
pub const DUMP_REGS: [(&str, u64); 10] = [
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

// ----- one vGPU --------------------------------------------------------------------------------

/// A vGPU opened, with the info of the regions the harness uses, before anything is mapped.
pub struct Unmapped {
    /// The device.
    pub dev: Device,
    /// The vGPU's UUID.
    pub uuid: String,
    /// BAR0, the framebuffer.
    pub bar0: RegionInfo,
    /// BAR2, the registers.
    pub bar2: RegionInfo,
    /// The configuration space.
    pub cfg: RegionInfo,
}

impl Unmapped {
    /// Opens `uuid` on `path` and reads the info of BAR0, BAR2 and the configuration space.
    pub fn open(uuid: &str, path: OpenPath) -> Result<Unmapped, String> {
        let dev = Device::open(uuid, path).map_err(|e| format!("open {uuid}: {e}"))?;
        let bar0 = dev.region_info(REGION_BAR0).map_err(|e| format!("BAR0 info: {e}"))?;
        let bar2 = dev.region_info(REGION_BAR2).map_err(|e| format!("BAR2 info: {e}"))?;
        let cfg = dev.region_info(REGION_CONFIG).map_err(|e| format!("config info: {e}"))?;
        Ok(Unmapped { dev, uuid: uuid.to_owned(), bar0, bar2, cfg })
    }

    /// The size of BAR0's first sparse mmap area (the usable framebuffer); 0 if there is none.
    pub fn usable(&self) -> usize {
        self.bar0.sparse_areas().and_then(|a| a.first()).map_or(0, |a| a.size as usize)
    }

    /// Maps `fb_size` bytes of the framebuffer, and a ring buffer at [`RING_IOVA`] and a data
    /// buffer of `data_len` bytes at [`DATA_IOVA`] for DMA.
    pub fn map(self, fb_size: usize, data_len: usize) -> Result<Gpu, String> {
        let Unmapped { dev, uuid, bar0, bar2, cfg } = self;
        let fb = dev.mmap_region(&bar0, 0, fb_size, Prot::RW).map_err(|e| format!("mmap BAR0: {e}"))?;
        let ring = Mmap::anonymous(RING_BUF).map_err(|e| format!("ring buffer: {e}"))?;
        dev.map_dma(&ring, RING_IOVA).map_err(|e| format!("map ring buffer at {RING_IOVA:#x}: {e}"))?;
        let data = Mmap::anonymous(data_len).map_err(|e| format!("data buffer: {e}"))?;
        dev.map_dma(&data, DATA_IOVA).map_err(|e| format!("map data buffer at {DATA_IOVA:#x}: {e}"))?;
        Ok(Gpu { fb, dev, uuid, bar2, cfg, fb_size, ring, tail: 0, data, dump_regs: DUMP_REGS.to_vec() })
    }
}

/// An open vGPU with its framebuffer mapped, a ring buffer and a data buffer mapped for DMA.
/// Field order is drop order: the framebuffer mapping (which holds the device file) goes first,
/// then the device (closing it unmaps all DMA), then our buffers.
pub struct Gpu {
    /// The framebuffer (BAR0's usable part), mapped.
    pub fb: Mmap,
    /// The device.
    pub dev: Device,
    /// The vGPU's UUID.
    pub uuid: String,
    /// BAR2, the registers.
    pub bar2: RegionInfo,
    /// The configuration space.
    pub cfg: RegionInfo,
    /// The framebuffer's size.
    pub fb_size: usize,
    /// The ring buffer, mapped at [`RING_IOVA`].
    pub ring: Mmap,
    /// Where the next command goes (the `TAIL` the next doorbell writes).
    pub tail: u32,
    /// The data buffer, mapped at [`DATA_IOVA`].
    pub data: Mmap,
    /// The registers [`Gpu::dump`] shows, `(name, offset)`: [`DUMP_REGS`] unless the program
    /// leaves some out.
    pub dump_regs: Vec<(&'static str, u64)>,
}

impl Gpu {
    /// Memory decode and bus mastering on, as a guest driver does before using the device (and
    /// again after a reset, which turns them off).
    pub fn enable(&self) -> Result<(), String> {
        self.cfg_write(4, &0x0006u16.to_le_bytes())
    }

    /// Reads the register at `off` of BAR2.
    pub fn reg(&self, off: u64) -> Result<u32, String> {
        let mut b = [0u8; 4];
        self.dev.read_region_exact(&self.bar2, off, &mut b).map_err(|e| format!("read register {off:#x}: {e}"))?;
        Ok(u32::from_le_bytes(b))
    }

    /// Writes the register at `off` of BAR2.
    pub fn set_reg(&self, off: u64, v: u32) -> Result<(), String> {
        self.dev
            .write_region_all(&self.bar2, off, &v.to_le_bytes())
            .map_err(|e| format!("write register {off:#x}: {e}"))
    }

    /// Reads the DISPI register `index` (16 bits).
    pub fn dispi(&self, index: u64) -> Result<u16, String> {
        let mut b = [0u8; 2];
        let off = MMIO_DISPI + index * 2;
        self.dev.read_region_exact(&self.bar2, off, &mut b).map_err(|e| format!("read DISPI {index:#x}: {e}"))?;
        Ok(u16::from_le_bytes(b))
    }

    /// Writes the DISPI register `index` (16 bits).
    pub fn set_dispi(&self, index: u64, v: u16) -> Result<(), String> {
        let off = MMIO_DISPI + index * 2;
        self.dev.write_region_all(&self.bar2, off, &v.to_le_bytes()).map_err(|e| format!("write DISPI {index:#x}: {e}"))
    }

    /// Writes `data` at `off` of the configuration space.
    pub fn cfg_write(&self, off: u64, data: &[u8]) -> Result<(), String> {
        self.dev.write_region_all(&self.cfg, off, data).map_err(|e| format!("config write {off:#x}: {e}"))
    }

    /// Reads `len` bytes at `off` of the configuration space.
    pub fn cfg_bytes(&self, off: u64, len: usize) -> Result<Vec<u8>, String> {
        let mut b = vec![0u8; len];
        self.dev.read_region_exact(&self.cfg, off, &mut b).map_err(|e| format!("config read {off:#x}: {e}"))?;
        Ok(b)
    }

    /// Reads the 16 bits at `off` of the configuration space.
    pub fn cfg_read16(&self, off: u64) -> Result<u16, String> {
        let b = self.cfg_bytes(off, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// The engine registers, for diagnostics.
    pub fn dump(&self) -> String {
        let parts: Vec<String> = self
            .dump_regs
            .iter()
            .map(|(n, o)| match self.reg(*o) {
                Ok(v) => format!("{n}={v:#x}"),
                Err(e) => format!("{n}=<{e}>"),
            })
            .collect();
        format!("registers: {} (our tail {:#x})", parts.join(" "), self.tail)
    }

    // ----- the ring ---------------------------------------------------------------------------

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

    /// Stops the engine for sure and starts the ring afresh: RING_SIZE 0 (the engine stops at its
    /// next command), wait until it is not busy, then program the ring again. A plain RING_SIZE
    /// rewrite is not enough while the engine is running (it resets HEAD and TAIL, but the
    /// command under way completes).
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

    /// Writes our tail to `TAIL`.
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

    /// Submits and waits for idle (up to [`IDLE_TIMEOUT`]); returns the commands' ring offsets.
    pub fn run(&mut self, cmds: &[Cmd]) -> Result<Vec<u32>, String> {
        let offs = self.submit(cmds)?;
        self.wait_idle(IDLE_TIMEOUT)?;
        Ok(offs)
    }

    /// IOVA of a scratch word (fence target) at byte `off` of the scratch area.
    pub fn scratch_iova(off: usize) -> u64 {
        RING_IOVA + (SCRATCH + off) as u64
    }

    /// The scratch word at byte `off` of the scratch area.
    pub fn scratch(&self, off: usize) -> Result<u32, String> {
        self.ring.read::<u32>(SCRATCH + off).map_err(es)
    }

    /// Sets the scratch word at byte `off` of the scratch area.
    pub fn set_scratch(&mut self, off: usize, v: u32) -> Result<(), String> {
        self.ring.write::<u32>(SCRATCH + off, v).map_err(es)
    }

    /// Error register and all interrupt status cleared.
    pub fn clear(&self) -> Result<(), String> {
        self.set_reg(REG_ERROR, 0)?;
        self.set_reg(REG_IRQ_STATUS, IRQ_ALL)
    }

    // ----- the framebuffer and the data buffer -------------------------------------------------

    /// `[off, off + len)` of the framebuffer.
    pub fn fb_bytes(&self, off: usize, len: usize) -> Result<Vec<u8>, String> {
        let mut v = vec![0u8; len];
        self.fb.read_bytes(off, &mut v).map_err(|e| format!("framebuffer read {off:#x}+{len:#x}: {e}"))?;
        Ok(v)
    }

    /// Writes `data` at `off` of the framebuffer.
    pub fn fb_set(&mut self, off: usize, data: &[u8]) -> Result<(), String> {
        self.fb.write_bytes(off, data).map_err(|e| format!("framebuffer write {off:#x}+{:#x}: {e}", data.len()))?;
        fence(Ordering::SeqCst);
        Ok(())
    }

    /// Fills `[off, off + len)` of the framebuffer with `byte` (the engine idle: a plain slice of
    /// the mapping).
    pub fn fb_fill(&mut self, off: usize, len: usize, byte: u8) {
        self.fb.as_mut_slice()[off..off + len].fill(byte);
        fence(Ordering::SeqCst);
    }

    /// `[off, off + len)` of the data buffer.
    pub fn data_bytes(&self, off: usize, len: usize) -> Result<Vec<u8>, String> {
        let mut v = vec![0u8; len];
        self.data.read_bytes(off, &mut v).map_err(es)?;
        Ok(v)
    }

    // ----- interrupts, set up as QEMU does ----------------------------------------------------

    /// Enables MSI in the MSI capability and gives `efd` to `SET_IRQS`.
    pub fn msi_on(&self, efd: &EventFd) -> Result<(), String> {
        self.cfg_write(MSI_CAP + 4, &0xfee0_0000u32.to_le_bytes())?;
        self.cfg_write(MSI_CAP + 8, &0u32.to_le_bytes())?;
        self.cfg_write(MSI_CAP + 12, &0x4041u16.to_le_bytes())?;
        let ctl = self.cfg_read16(MSI_CAP + 2)?;
        self.cfg_write(MSI_CAP + 2, &(ctl | 1).to_le_bytes())?;
        self.dev.set_irq_eventfds(MSI, 0, &[efd.as_raw_fd()]).map_err(|e| format!("SET_IRQS MSI eventfd: {e}"))
    }

    /// Disables MSI in the MSI capability, then through `SET_IRQS`.
    pub fn msi_off(&self) -> Result<(), String> {
        let ctl = self.cfg_read16(MSI_CAP + 2)?;
        self.cfg_write(MSI_CAP + 2, &(ctl & !1).to_le_bytes())?;
        self.dev.disable_irqs(MSI).map_err(|e| format!("SET_IRQS disable MSI: {e}"))
    }

    /// Gives `efd` to `SET_IRQS` for INTx.
    pub fn intx_on(&self, efd: &EventFd) -> Result<(), String> {
        self.dev.set_irq_eventfds(INTX, 0, &[efd.as_raw_fd()]).map_err(|e| format!("SET_IRQS INTx eventfd: {e}"))
    }

    /// Disables INTx through `SET_IRQS`.
    pub fn intx_off(&self) -> Result<(), String> {
        self.dev.disable_irqs(INTX).map_err(|e| format!("SET_IRQS disable INTx: {e}"))
    }
}

// ----- waiting -----------------------------------------------------------------------------------

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

/// Whether the eventfd is signalled within `ms` (with a count above 0); consumes the signal.
pub fn efd_signalled(efd: &EventFd, ms: i32) -> Result<bool, String> {
    Ok(efd.wait(ms).map_err(es)? && drain(efd)? > 0)
}

/// Polls `f` every millisecond until it is true (`Ok(true)`) or `timeout` has passed
/// (`Ok(false)`).
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
