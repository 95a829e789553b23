// SPDX-License-Identifier: GPL-2.0
//! rvgpu's interrupts and command engine (uapi/rvgpu.h, registers 0x700 - 0x73f), checked through
//! VFIO as QEMU uses it.
//!
//! `rvgpu-engine-test GPU UUID_A UUID_B [--iommufd]`: `GPU` is the physical GPU's PCI address,
//! `UUID_A` and `UUID_B` two vGPUs on it (created by the caller, of the same type, closed). Results
//! are TAP lines numbered through the in-VM runner's counters (`$TAP_STATE`, see
//! `selftests/lib.sh`); the caller's `plan` must match [`RESULTS`].
//!
//! Expectations beyond the header, made explicit here:
//!
//! * `VFIO_DEVICE_SET_IRQS` follows vfio-pci: the core's validation (index, start/count, one data
//!   type, known flags, argsz) fails with `EINVAL`; a set of several actions or none fails with
//!   `EINVAL` (or `ENOTTY`, what vfio-pci answers); loopback triggers with `DATA_NONE` /
//!   `DATA_BOOL` signal the eventfd; a disabled index refuses triggers with `EINVAL`.
//! * MSI is enabled as QEMU does it: the guest's MSI control write reaches the device's config
//!   space, then `SET_IRQS` gives the eventfd (and the reverse to disable).
//! * A command that fails is skipped as a whole when its arguments are wrong (nothing of a
//!   rectangle outside the framebuffer is written).
//! * A bad `TAIL` runs nothing and leaves `HEAD` where it was, so the next valid doorbell goes on
//!   from there. Writing `RING_SIZE` resets `HEAD`/`TAIL` even while the engine is busy: at most
//!   the command under way completes.
//! * `ERROR` is cleared by writing 0 to it.
//!
//! When the engine is left running by a failed check, the ring is stopped (`RING_SIZE` 0, wait
//! for not busy) and programmed again, so later checks still mean something.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{fence, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use vfio_client::irq::encode_irq_set;
use vfio_client::uapi::{
    VFIO_IRQ_INFO_AUTOMASKED, VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_INFO_MASKABLE, VFIO_IRQ_INFO_NORESIZE,
    VFIO_IRQ_SET_ACTION_MASK, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_BOOL, VFIO_IRQ_SET_DATA_EVENTFD,
    VFIO_IRQ_SET_DATA_NONE,
};
use vfio_client::rvgpu::*;
use vfio_client::tap::{ensure, expect_errno, expect_errno_in, Tap};
use vfio_client::{Device, EventFd, IrqAction, IrqData, Mmap, OpenPath, Prot, RegionInfo};

/// How many results one run reports.
const RESULTS: usize = 18;

// ----- this test's guest memory layout ---------------------------------------------------------

/// The ring buffer's mapping: the ring in its first [`RING_SIZE`] bytes, scratch (fence values)
/// in the rest. Above 4 GiB so `RING_BASE_HI` matters.
const RING_IOVA: u64 = 0x1_2340_0000;
const RING_BUF: usize = 64 << 10;
const RING_SIZE: u32 = 32 << 10;
const SCRATCH: usize = RING_SIZE as usize;
/// Source and destination of copies.
const DATA_IOVA: u64 = 0x2000_0000;
const DATA_LEN: usize = 4 << 20;
/// The buffer unmapped while commands use it.
const VICTIM_IOVA: u64 = 0x3000_0000;
const VICTIM_LEN: usize = 1 << 20;
/// A read-only mapping.
const RO_IOVA: u64 = 0x6000_0000;
/// Never mapped.
const HOLE_IOVA: u64 = 0x7000_0000;

const IRQ_WAIT_MS: i32 = 5000;
/// How long an interrupt that must not come is waited for.
const QUIET_MS: i32 = 300;
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

// ----- TAP ------------------------------------------------------------------------------------

/// Both results; both messages when both failed.
fn both(a: Result<(), String>, b: Result<(), String>) -> Result<(), String> {
    match (a, b) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
        (Err(e), Err(f)) => Err(format!("{e}\n{f}")),
    }
}

/// Runs every check of a list and joins the failures, so one result reports all that is wrong.
fn all(checks: Vec<(String, Result<(), String>)>) -> Result<(), String> {
    let bad: Vec<String> = checks.into_iter().filter_map(|(n, r)| r.err().map(|e| format!("{n}: {e}"))).collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("\n"))
    }
}

fn es(e: impl std::fmt::Display) -> String {
    e.to_string()
}

// ----- commands -------------------------------------------------------------------------------

type Cmd = [u8; 32];

fn cmd(words: [u32; 8]) -> Cmd {
    let mut c = [0u8; 32];
    for (i, w) in words.iter().enumerate() {
        c[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
    }
    c
}

fn nop() -> Cmd {
    cmd([CMD_NOP, 0, 0, 0, 0, 0, 0, 0])
}

fn fill(fb_offset: u32, fb_stride: u32, width: u32, height: u32, value: u32) -> Cmd {
    cmd([CMD_FILL, height, fb_offset, fb_stride, width, value, 0, 0])
}

#[allow(clippy::too_many_arguments)]
fn copy(op: u32, iova: u64, iova_stride: u32, fb_offset: u32, fb_stride: u32, width: u32, height: u32) -> Cmd {
    cmd([op, height, iova as u32, (iova >> 32) as u32, iova_stride, fb_offset, fb_stride, width])
}

fn to_fb(iova: u64, iova_stride: u32, fb_offset: u32, fb_stride: u32, width: u32, height: u32) -> Cmd {
    copy(CMD_COPY_TO_FB, iova, iova_stride, fb_offset, fb_stride, width, height)
}

fn from_fb(iova: u64, iova_stride: u32, fb_offset: u32, fb_stride: u32, width: u32, height: u32) -> Cmd {
    copy(CMD_COPY_FROM_FB, iova, iova_stride, fb_offset, fb_stride, width, height)
}

fn fence_cmd(iova: u64, value: u32) -> Cmd {
    cmd([CMD_FENCE, 0, iova as u32, (iova >> 32) as u32, value, 0, 0, 0])
}

/// A deterministic byte pattern (xorshift), different for each seed.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

// ----- one vGPU ---------------------------------------------------------------------------------

/// An open vGPU with its framebuffer mapped, a ring buffer and a data buffer mapped for DMA.
/// Field order is drop order: the framebuffer mapping (which holds the device file) goes first,
/// then the device (closing it unmaps all DMA), then our buffers.
struct Gpu {
    fb: Mmap,
    dev: Device,
    bar2: RegionInfo,
    cfg: RegionInfo,
    fb_size: usize,
    ring: Mmap,
    tail: u32,
    data: Mmap,
}

impl Gpu {
    fn open(uuid: &str, path: OpenPath) -> Result<Gpu, String> {
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

    fn reg(&self, off: u64) -> Result<u32, String> {
        let mut b = [0u8; 4];
        self.dev.read_region_exact(&self.bar2, off, &mut b).map_err(|e| format!("read register {off:#x}: {e}"))?;
        Ok(u32::from_le_bytes(b))
    }

    fn set_reg(&self, off: u64, v: u32) -> Result<(), String> {
        self.dev
            .write_region_all(&self.bar2, off, &v.to_le_bytes())
            .map_err(|e| format!("write register {off:#x}: {e}"))
    }

    fn cfg_write(&self, off: u64, data: &[u8]) -> Result<(), String> {
        self.dev.write_region_all(&self.cfg, off, data).map_err(|e| format!("config write {off:#x}: {e}"))
    }

    fn cfg_read16(&self, off: u64) -> Result<u16, String> {
        let mut b = [0u8; 2];
        self.dev.read_region_exact(&self.cfg, off, &mut b).map_err(|e| format!("config read {off:#x}: {e}"))?;
        Ok(u16::from_le_bytes(b))
    }

    /// The engine registers, for diagnostics.
    fn dump(&self) -> String {
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
    fn setup_ring(&mut self) -> Result<(), String> {
        self.set_reg(REG_RING_BASE_LO, RING_IOVA as u32)?;
        self.set_reg(REG_RING_BASE_HI, (RING_IOVA >> 32) as u32)?;
        self.set_reg(REG_RING_SIZE, RING_SIZE)?;
        self.tail = 0;
        Ok(())
    }

    /// Stops the engine for sure and starts the ring afresh: RING_SIZE 0 (the engine stops at its
    /// next command), wait until it is not busy, then program the ring again. A plain RING_SIZE
    /// rewrite is not enough while the engine is running (see [`ring_setup`]).
    fn restart_ring(&mut self) -> Result<(), String> {
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
    fn settle(&mut self) -> Result<(), String> {
        if self.reg(REG_RING_HEAD)? != self.tail || self.reg(REG_ENGINE_STATUS)? & 1 != 0 {
            println!("# engine not idle before a check, restarting the ring; {}", self.dump());
            self.restart_ring()?;
        }
        Ok(())
    }

    /// Writes a command at our tail (no doorbell); returns its ring offset.
    fn push(&mut self, c: &Cmd) -> Result<u32, String> {
        let at = self.tail;
        self.ring.write_bytes(at as usize, c).map_err(es)?;
        self.tail = (at + CMD_BYTES) % RING_SIZE;
        Ok(at)
    }

    fn doorbell(&self) -> Result<(), String> {
        // The commands are in memory before the register write (a syscall) tells the device.
        fence(Ordering::SeqCst);
        self.set_reg(REG_RING_TAIL, self.tail)
    }

    /// Queues `cmds` and rings the doorbell; returns their ring offsets.
    fn submit(&mut self, cmds: &[Cmd]) -> Result<Vec<u32>, String> {
        let offs = cmds.iter().map(|c| self.push(c)).collect::<Result<Vec<_>, _>>()?;
        self.doorbell()?;
        Ok(offs)
    }

    /// Waits until the engine has consumed everything up to our tail and is not busy.
    fn wait_idle(&self, timeout: Duration) -> Result<(), String> {
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
    fn run(&mut self, cmds: &[Cmd]) -> Result<Vec<u32>, String> {
        let offs = self.submit(cmds)?;
        self.wait_idle(IDLE_TIMEOUT)?;
        Ok(offs)
    }

    /// IOVA of a scratch word (fence target) at byte `off` of the scratch area.
    fn scratch_iova(off: usize) -> u64 {
        RING_IOVA + (SCRATCH + off) as u64
    }

    fn scratch(&self, off: usize) -> Result<u32, String> {
        self.ring.read::<u32>(SCRATCH + off).map_err(es)
    }

    fn set_scratch(&mut self, off: usize, v: u32) -> Result<(), String> {
        self.ring.write::<u32>(SCRATCH + off, v).map_err(es)
    }

    /// Error register and all interrupt status cleared.
    fn clear(&self) -> Result<(), String> {
        self.set_reg(REG_ERROR, 0)?;
        self.set_reg(REG_IRQ_STATUS, IRQ_ALL)
    }

    fn fb_bytes(&self, off: usize, len: usize) -> Result<Vec<u8>, String> {
        let mut v = vec![0u8; len];
        self.fb.read_bytes(off, &mut v).map_err(|e| format!("framebuffer read {off:#x}+{len:#x}: {e}"))?;
        Ok(v)
    }

    fn fb_set(&mut self, off: usize, data: &[u8]) -> Result<(), String> {
        self.fb.write_bytes(off, data).map_err(|e| format!("framebuffer write {off:#x}+{:#x}: {e}", data.len()))?;
        fence(Ordering::SeqCst);
        Ok(())
    }

    fn data_bytes(&self, off: usize, len: usize) -> Result<Vec<u8>, String> {
        let mut v = vec![0u8; len];
        self.data.read_bytes(off, &mut v).map_err(es)?;
        Ok(v)
    }

    // ----- interrupts, set up as QEMU does ----------------------------------------------------

    fn msi_on(&self, efd: &EventFd) -> Result<(), String> {
        self.cfg_write(MSI_CAP + 4, &0xfee0_0000u32.to_le_bytes())?;
        self.cfg_write(MSI_CAP + 8, &0u32.to_le_bytes())?;
        self.cfg_write(MSI_CAP + 12, &0x4041u16.to_le_bytes())?;
        let ctl = self.cfg_read16(MSI_CAP + 2)?;
        self.cfg_write(MSI_CAP + 2, &(ctl | 1).to_le_bytes())?;
        self.dev.set_irq_eventfds(MSI, 0, &[efd.as_raw_fd()]).map_err(|e| format!("SET_IRQS MSI eventfd: {e}"))
    }

    fn msi_off(&self) -> Result<(), String> {
        let ctl = self.cfg_read16(MSI_CAP + 2)?;
        self.cfg_write(MSI_CAP + 2, &(ctl & !1).to_le_bytes())?;
        self.dev.disable_irqs(MSI).map_err(|e| format!("SET_IRQS disable MSI: {e}"))
    }

    fn intx_on(&self, efd: &EventFd) -> Result<(), String> {
        self.dev.set_irq_eventfds(INTX, 0, &[efd.as_raw_fd()]).map_err(|e| format!("SET_IRQS INTx eventfd: {e}"))
    }

    fn intx_off(&self) -> Result<(), String> {
        self.dev.disable_irqs(INTX).map_err(|e| format!("SET_IRQS disable INTx: {e}"))
    }
}

/// Reads (and resets) the eventfd's count; 0 when nothing was signalled.
fn drain(efd: &EventFd) -> Result<u64, String> {
    efd.read().map(|c| c.unwrap_or(0)).map_err(|e| format!("eventfd read: {e}"))
}

/// Waits up to `ms` for a signal and consumes it; the count, or an error naming `what`.
fn wait_irq(efd: &EventFd, ms: i32, what: &str) -> Result<u64, String> {
    if !efd.wait(ms).map_err(|e| format!("poll: {e}"))? {
        return Err(format!("{what}: no interrupt within {ms} ms"));
    }
    drain(efd)
}

/// Ok if nothing is signalled within `ms`.
fn quiet(efd: &EventFd, ms: i32, what: &str) -> Result<(), String> {
    if efd.wait(ms).map_err(|e| format!("poll: {e}"))? {
        let n = drain(efd)?;
        return Err(format!("{what}: unexpected interrupt (count {n})"));
    }
    Ok(())
}

fn wait_for(timeout: Duration, mut f: impl FnMut() -> Result<bool, String>) -> Result<bool, String> {
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
fn pinned_pages(gpu: &str) -> Result<u64, String> {
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let iommufd = args.iter().any(|a| a == "--iommufd");
    let pos: Vec<&String> = args.iter().skip(1).filter(|a| !a.starts_with("--")).collect();
    let (Some(mut tap), [gpu, ua, ub]) = (Tap::from_env(), pos.as_slice()) else {
        eprintln!("usage: TAP_STATE=DIR rvgpu-engine-test GPU UUID_A UUID_B [--iommufd]");
        std::process::exit(2);
    };
    let path = if iommufd { OpenPath::Iommufd } else { OpenPath::Container };
    let tag = if iommufd { "iommufd" } else { "container" };
    if let Err(e) = run(&mut tap, gpu, ua, ub, path, tag) {
        println!("# aborted: {e}");
    }
    // Anything not reported counts as failed (the runner also checks the plan).
    tap.fill_to(RESULTS, &format!("[{tag}] (not reached)"));
}

fn run(tap: &mut Tap, gpu: &str, ua: &str, ub: &str, path: OpenPath, tag: &str) -> Result<(), String> {
    let mut a = Gpu::open(ua, path)?;
    let mut b = Gpu::open(ub, path)?;
    let t = |s: &str| format!("[{tag}] {s}");
    let msi = EventFd::new().map_err(es)?;
    let intx = EventFd::new().map_err(es)?;

    tap.result(
        &t("interrupt info: INTx count 1 EVENTFD|MASKABLE|AUTOMASKED, MSI count 1 EVENTFD, no MSI-X; pin A"),
        irq_info(&a),
    );
    tap.result(
        &t("SET_IRQS: bad index/start/count/flags and fds refused; eventfd teardown with -1; DATA_NONE/DATA_BOOL loopback triggers"),
        set_irqs_validation(&a),
    );
    tap.result(
        &t("ring: base/size read back, HEAD/TAIL follow the doorbell and reset on a RING_SIZE write"),
        ring_setup(&mut a),
    );
    tap.result(&t("FILL writes exactly its rectangle of the framebuffer"), fill_test(&mut a));
    tap.result(&t("COPY_TO_FB copies guest memory into the framebuffer byte for byte"), copy_to_fb_test(&mut a));
    tap.result(&t("COPY_FROM_FB copies the framebuffer into guest memory byte for byte"), copy_from_fb_test(&mut a));
    tap.result(
        &t("FENCE: value in guest memory and RVGPU_REG_FENCE, COMPLETION status (W1C), MSI eventfd"),
        fence_msi_test(&mut a, &msi),
    );
    tap.result(
        &t("INTx: completion signals, the line stays masked until VFIO unmask, unmask re-signals while pending"),
        intx_test(&mut a, &intx, &msi),
    );

    // Errors, with MSI on and only the error interrupt enabled.
    let e = a.set_reg(REG_IRQ_ENABLE, IRQ_ERROR);
    tap.result(
        &t("error BAD_OPCODE: ERROR, ERROR_HEAD, error interrupt; the next command runs"),
        e.clone().and_then(|()| bad_opcode(&mut a, &msi)),
    );
    tap.result(
        &t("error FB_RANGE (incl. u32 overflows): nothing written; the next command runs"),
        e.clone().and_then(|()| fb_range(&mut a, &msi)),
    );
    tap.result(
        &t("error DMA_FAULT: unmapped, partly mapped and read-only guest memory; the next command runs"),
        e.clone().and_then(|()| dma_fault(&mut a, &msi)),
    );
    tap.result(
        &t("error RING: TAIL unaligned or beyond RING_SIZE, unreadable ring; nothing runs; the next command runs"),
        e.clone().and_then(|()| ring_error(&mut a, &msi)),
    );
    tap.result(
        &t("error BAD_ARGS: zero/misaligned sizes, width > stride, height where there is none"),
        e.and_then(|()| bad_args(&mut a, &msi)),
    );

    tap.result(
        &t("unmapping a buffer under queued commands: no crash, DMA_FAULT + error interrupt, the engine goes on"),
        unmap_race(&mut a, &msi),
    );
    tap.result(
        &t("two vGPUs submitting at once: each framebuffer holds only its own fills"),
        two_vgpus(&mut a, &mut b),
    );
    tap.result(
        &t("VBLANK: interrupts and VBLANK_COUNT advance at a rate within the type's frame-rate limit"),
        vblank(&mut a, &msi),
    );

    // Close with work in flight; reopen.
    let r = close_in_flight(a, ua, path);
    let (r, a2) = match r {
        Ok(g) => (Ok(()), Some(g)),
        Err(e) => (Err(e), None),
    };
    tap.result(&t("closing the device with a batch in flight, then reopening: power-on state, the engine works"), r);

    // Everything closed: nothing may stay pinned.
    if let Ok(n) = pinned_pages(gpu) {
        println!("# pinned_pages with the vGPUs still open: {n}");
    }
    drop(a2);
    drop(b);
    let r = pinned_pages(gpu).and_then(|n| ensure(n == 0, || format!("{n} pages still pinned with every vGPU closed")));
    tap.result(&t("no guest pages pinned once every vGPU is closed (nvidia/pinned_pages)"), r);
    Ok(())
}

// ----- 1-2: interrupt info and SET_IRQS ----------------------------------------------------------

fn irq_info(g: &Gpu) -> Result<(), String> {
    let i0 = g.dev.irq_info(INTX).map_err(|e| format!("GET_IRQ_INFO 0: {e}"))?;
    let i1 = g.dev.irq_info(MSI).map_err(|e| format!("GET_IRQ_INFO 1: {e}"))?;
    let i2 = g.dev.irq_info(MSIX).map_err(|e| format!("GET_IRQ_INFO 2: {e}"))?;
    let mut pin = [0u8; 1];
    g.dev.read_region_exact(&g.cfg, 0x3d, &mut pin).map_err(|e| format!("config 0x3d: {e}"))?;
    all(vec![
        (
            "INTx".into(),
            ensure(
                i0.count == 1 && i0.flags == VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED,
                || format!("{i0:?} {:?}", i0.flag_names()),
            ),
        ),
        (
            "MSI".into(),
            // vfio-pci also says NORESIZE for MSI; allowed, not required.
            ensure(i1.count == 1 && i1.flags & !VFIO_IRQ_INFO_NORESIZE == VFIO_IRQ_INFO_EVENTFD, || {
                format!("{i1:?} {:?}", i1.flag_names())
            }),
        ),
        ("MSI-X".into(), ensure(i2.count == 0, || format!("{i2:?}"))),
        (
            "config interrupt pin".into(),
            ensure(pin[0] == 1, || format!("config 0x3d (interrupt pin) is {}, INTx is pin A (1)", pin[0])),
        ),
    ])
}

fn raw_set_irqs(g: &Gpu, flags: u32, index: u32, start: u32, count: u32, payload: &[u8]) -> io::Result<()> {
    let mut buf = encode_irq_set(flags, index, start, count, payload);
    g.dev.set_irqs_raw(&mut buf)
}

/// A loopback trigger of an index without an eventfd: vfio-pci refuses it (`EINVAL`); accepting
/// it is tolerated as long as nothing is signalled.
fn refused_or_silent(g: &Gpu, index: u32, efd: &EventFd) -> Result<(), String> {
    match g.dev.trigger_irqs(index, 0, 1) {
        Ok(()) => quiet(efd, 200, "loopback trigger without an eventfd"),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        Err(e) => Err(format!("loopback trigger without an eventfd: {e}")),
    }
}

fn set_irqs_validation(g: &Gpu) -> Result<(), String> {
    let efd = EventFd::new().map_err(es)?;
    let fd = efd.as_raw_fd();
    let fdb = fd.to_ne_bytes();
    let two: Vec<u8> = [fd, fd].iter().flat_map(|f| f.to_ne_bytes()).collect();
    let trig = VFIO_IRQ_SET_ACTION_TRIGGER;
    let null = fs::File::open("/dev/null").map_err(es)?;
    let nullfd: RawFd = null.as_raw_fd();
    let mut checks: Vec<(String, Result<(), String>)> = vec![
        (
            "index 5".into(),
            expect_errno("", raw_set_irqs(g, trig | VFIO_IRQ_SET_DATA_EVENTFD, 5, 0, 1, &fdb), libc::EINVAL),
        ),
        (
            "index 9 disable".into(),
            expect_errno("", raw_set_irqs(g, trig | VFIO_IRQ_SET_DATA_NONE, 9, 0, 0, &[]), libc::EINVAL),
        ),
        (
            "INTx start 1".into(),
            expect_errno("", raw_set_irqs(g, trig | VFIO_IRQ_SET_DATA_NONE, INTX, 1, 1, &[]), libc::EINVAL),
        ),
        (
            "INTx count 2".into(),
            expect_errno("", raw_set_irqs(g, trig | VFIO_IRQ_SET_DATA_EVENTFD, INTX, 0, 2, &two), libc::EINVAL),
        ),
        (
            "MSI start 1".into(),
            expect_errno("", raw_set_irqs(g, trig | VFIO_IRQ_SET_DATA_EVENTFD, MSI, 1, 1, &fdb), libc::EINVAL),
        ),
        (
            "MSI-X eventfd".into(),
            expect_errno("", raw_set_irqs(g, trig | VFIO_IRQ_SET_DATA_EVENTFD, MSIX, 0, 1, &fdb), libc::EINVAL),
        ),
        (
            "two data types".into(),
            expect_errno(
                "",
                raw_set_irqs(g, trig | VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL, INTX, 0, 1, &[1]),
                libc::EINVAL,
            ),
        ),
        (
            "unknown flag bit 6".into(),
            expect_errno("", raw_set_irqs(g, trig | VFIO_IRQ_SET_DATA_NONE | (1 << 6), INTX, 0, 1, &[]), libc::EINVAL),
        ),
        ("no data type".into(), expect_errno("", raw_set_irqs(g, trig, INTX, 0, 1, &[]), libc::EINVAL)),
        (
            "two actions".into(),
            expect_errno_in(
                "",
                raw_set_irqs(g, VFIO_IRQ_SET_ACTION_MASK | trig | VFIO_IRQ_SET_DATA_NONE, INTX, 0, 1, &[]),
                &[libc::EINVAL, libc::ENOTTY],
            ),
        ),
        (
            "no action".into(),
            expect_errno_in(
                "",
                raw_set_irqs(g, VFIO_IRQ_SET_DATA_NONE, INTX, 0, 1, &[]),
                &[libc::EINVAL, libc::ENOTTY],
            ),
        ),
        (
            "argsz short of the payload".into(),
            expect_errno("", raw_set_irqs(g, trig | VFIO_IRQ_SET_DATA_EVENTFD, INTX, 0, 1, &[]), libc::EINVAL),
        ),
        ("fd not open".into(), expect_errno("", g.dev.set_irq_eventfds(INTX, 0, &[9999]), libc::EBADF)),
        ("fd not an eventfd".into(), expect_errno("", g.dev.set_irq_eventfds(INTX, 0, &[nullfd]), libc::EINVAL)),
        ("trigger with no eventfd set".into(), refused_or_silent(g, INTX, &efd)),
    ];

    // INTx: eventfd, loopback triggers, automask/unmask, teardown with -1, disable.
    let r = (|| {
        g.dev.set_irq_eventfds(INTX, 0, &[fd]).map_err(|e| format!("set INTx eventfd: {e}"))?;
        g.dev.trigger_irqs(INTX, 0, 1).map_err(|e| format!("DATA_NONE trigger: {e}"))?;
        let n = wait_irq(&efd, 1000, "DATA_NONE trigger")?;
        ensure(n == 1, || format!("DATA_NONE trigger: count {n}"))?;
        g.dev.unmask_irqs(INTX, 0, 1).map_err(|e| format!("unmask: {e}"))?;
        g.dev
            .set_irqs(IrqAction::Trigger, INTX, 0, IrqData::Bool(&[false]))
            .map_err(|e| format!("DATA_BOOL false: {e}"))?;
        quiet(&efd, 100, "DATA_BOOL false trigger")?;
        g.dev
            .set_irqs(IrqAction::Trigger, INTX, 0, IrqData::Bool(&[true]))
            .map_err(|e| format!("DATA_BOOL true: {e}"))?;
        wait_irq(&efd, 1000, "DATA_BOOL true trigger")?;
        g.dev.unmask_irqs(INTX, 0, 1).map_err(|e| format!("unmask: {e}"))?;
        g.dev
            .set_irqs(IrqAction::Unmask, INTX, 0, IrqData::Bool(&[true]))
            .map_err(|e| format!("DATA_BOOL unmask: {e}"))?;
        // Teardown with -1: nothing reaches the old eventfd any more.
        g.dev.set_irq_eventfds(INTX, 0, &[-1]).map_err(|e| format!("teardown with -1: {e}"))?;
        refused_or_silent(g, INTX, &efd).map_err(|e| format!("after teardown: {e}"))?;
        // Set again, disable the whole index: triggers are refused.
        g.dev.set_irq_eventfds(INTX, 0, &[fd]).map_err(|e| format!("set INTx eventfd again: {e}"))?;
        g.dev.disable_irqs(INTX).map_err(|e| format!("disable INTx: {e}"))?;
        refused_or_silent(g, INTX, &efd).map_err(|e| format!("after disable: {e}"))
    })();
    checks.push(("INTx loopback".into(), r));

    // MSI loopback and teardown.
    let r = (|| {
        g.dev.set_irq_eventfds(MSI, 0, &[fd]).map_err(|e| format!("set MSI eventfd: {e}"))?;
        g.dev.trigger_irqs(MSI, 0, 1).map_err(|e| format!("MSI DATA_NONE trigger: {e}"))?;
        wait_irq(&efd, 1000, "MSI DATA_NONE trigger")?;
        g.dev
            .set_irqs(IrqAction::Trigger, MSI, 0, IrqData::Bool(&[true]))
            .map_err(|e| format!("MSI DATA_BOOL: {e}"))?;
        wait_irq(&efd, 1000, "MSI DATA_BOOL trigger")?;
        g.dev.set_irq_eventfds(MSI, 0, &[-1]).map_err(|e| format!("MSI teardown with -1: {e}"))?;
        refused_or_silent(g, MSI, &efd).map_err(|e| format!("MSI after teardown: {e}"))?;
        // The index may or may not still count as enabled after the -1; a disable must leave it off.
        let _ = g.dev.disable_irqs(MSI);
        refused_or_silent(g, MSI, &efd).map_err(|e| format!("MSI after disable: {e}"))
    })();
    checks.push(("MSI loopback".into(), r));
    all(checks)
}

// ----- 3-6: ring and data commands -------------------------------------------------------------

fn ring_setup(g: &mut Gpu) -> Result<(), String> {
    g.setup_ring()?;
    let (lo, hi, size) = (g.reg(REG_RING_BASE_LO)?, g.reg(REG_RING_BASE_HI)?, g.reg(REG_RING_SIZE)?);
    let (head, tail) = (g.reg(REG_RING_HEAD)?, g.reg(REG_RING_TAIL)?);
    ensure(u64::from(lo) | u64::from(hi) << 32 == RING_IOVA && size == RING_SIZE && head == 0 && tail == 0, || {
        format!("after setup: base {hi:#x}:{lo:#x} size {size:#x} head {head:#x} tail {tail:#x}")
    })?;
    let before = g.reg(REG_COMPLETED)?;
    g.run(&[nop(), nop(), nop()])?;
    let (head, tail, err) = (g.reg(REG_RING_HEAD)?, g.reg(REG_RING_TAIL)?, g.reg(REG_ERROR)?);
    let done = g.reg(REG_COMPLETED)?.wrapping_sub(before);
    ensure(head == 96 && tail == 96 && err == ERR_NONE && done == 3, || {
        format!("after 3 NOPs: head {head:#x} tail {tail:#x} error {err} completed +{done}")
    })?;
    g.set_reg(REG_RING_SIZE, RING_SIZE)?;
    g.tail = 0;
    let (head, tail) = (g.reg(REG_RING_HEAD)?, g.reg(REG_RING_TAIL)?);
    ensure(head == 0 && tail == 0, || format!("after rewriting RING_SIZE: head {head:#x} tail {tail:#x}"))?;
    // The ring runs from 0 again.
    g.run(&[nop()])?;
    let head = g.reg(REG_RING_HEAD)?;
    ensure(head == 32, || format!("after one more NOP: head {head:#x}"))?;
    // Rewriting RING_SIZE while the engine is busy with a long batch: HEAD and TAIL are 0 and stay
    // so; nothing but the command under way completes.
    let cmds: Vec<Cmd> = (0..400).map(|i| fill(0x10_0000 + (i % 8) * 0x10_0000, 4096, 4096, 256, i)).collect();
    g.submit(&cmds)?;
    let started = wait_for(Duration::from_secs(5), || Ok(g.reg(REG_RING_HEAD)? >= 64))?;
    let c0 = g.reg(REG_COMPLETED)?;
    g.set_reg(REG_RING_SIZE, RING_SIZE)?;
    g.tail = 0;
    let idle = wait_for(Duration::from_secs(5), || {
        Ok(g.reg(REG_RING_HEAD)? == 0 && g.reg(REG_RING_TAIL)? == 0 && g.reg(REG_ENGINE_STATUS)? & 1 == 0)
    })?;
    std::thread::sleep(Duration::from_millis(200));
    let (head, tail, busy) = (g.reg(REG_RING_HEAD)?, g.reg(REG_RING_TAIL)?, g.reg(REG_ENGINE_STATUS)?);
    let more = g.reg(REG_COMPLETED)?.wrapping_sub(c0);
    let r = ensure(started && idle && head == 0 && tail == 0 && busy & 1 == 0 && more <= 2, || {
        format!(
            "RING_SIZE rewritten during a 400-command batch (started: {started}): 5 s later HEAD {head:#x} TAIL {tail:#x} ENGINE {busy:#x}, {more} more commands completed"
        )
    });
    if r.is_err() {
        g.restart_ring()?;
    }
    r
}

/// Checks `[off, off + len)` of the framebuffer is all `byte`.
fn fb_is(g: &Gpu, off: usize, len: usize, byte: u8, what: &str) -> Result<(), String> {
    let got = g.fb_bytes(off, len)?;
    match got.iter().position(|&x| x != byte) {
        None => Ok(()),
        Some(i) => Err(format!("{what}: framebuffer byte {:#x} is {:#04x}, expected {byte:#04x}", off + i, got[i])),
    }
}

fn fill_test(g: &mut Gpu) -> Result<(), String> {
    let (off, stride, width, height, value) = (0x10_0040usize, 4096usize, 512usize, 32usize, 0xa5c3_1e0fu32);
    let (lo, hi) = (off - stride, off + (height + 1) * stride);
    g.fb_set(lo, &vec![0x11; hi - lo])?;
    g.run(&[fill(off as u32, stride as u32, width as u32, height as u32, value)])?;
    let want: Vec<u8> = value.to_le_bytes().iter().copied().cycle().take(width).collect();
    let err = g.reg(REG_ERROR)?;
    ensure(err == ERR_NONE, || format!("ERROR {err} after a valid FILL"))?;
    fb_is(g, lo, stride, 0x11, "line above")?;
    for l in 0..height {
        let s = off + l * stride;
        let got = g.fb_bytes(s, width)?;
        ensure(got == want, || format!("line {l}: {:02x?}... expected {:02x?}...", &got[..8], &want[..8]))?;
        fb_is(g, s - 64, 64, 0x11, &format!("before line {l}"))?;
        fb_is(g, s + width, stride - width - 64, 0x11, &format!("after line {l}"))?;
    }
    fb_is(g, off + height * stride, width, 0x11, "line below")
}

fn copy_to_fb_test(g: &mut Gpu) -> Result<(), String> {
    // An odd-sized, odd-aligned rectangle from odd-strided guest memory, then a 256 KiB one.
    let cases: [(usize, usize, usize, usize, usize, usize); 2] =
        [(0x20_0003, 4096, 1001, 37, 5, 1111), (0x28_0000, 4096, 4096, 64, 0x10_0000, 4096)];
    for (n, &(fb_off, fb_stride, width, height, src, src_stride)) in cases.iter().enumerate() {
        let span = (height - 1) * src_stride + width;
        let pat = pattern(span, 7 + n as u32);
        g.data.write_bytes(src, &pat).map_err(es)?;
        let (lo, hi) = (fb_off - 64, fb_off + (height - 1) * fb_stride + width + 64);
        g.fb_set(lo, &vec![0x22; hi - lo])?;
        g.run(&[to_fb(
            DATA_IOVA + src as u64,
            src_stride as u32,
            fb_off as u32,
            fb_stride as u32,
            width as u32,
            height as u32,
        )])?;
        let err = g.reg(REG_ERROR)?;
        ensure(err == ERR_NONE, || format!("case {n}: ERROR {err} after a valid COPY_TO_FB"))?;
        for l in 0..height {
            let got = g.fb_bytes(fb_off + l * fb_stride, width)?;
            let want = &pat[l * src_stride..l * src_stride + width];
            if let Some(i) = got.iter().zip(want).position(|(x, y)| x != y) {
                return Err(format!("case {n} line {l} byte {i}: {:#04x}, expected {:#04x}", got[i], want[i]));
            }
            if l + 1 < height && fb_stride > width {
                fb_is(
                    g,
                    fb_off + l * fb_stride + width,
                    (fb_stride - width).min(64),
                    0x22,
                    &format!("case {n} gap after line {l}"),
                )?;
            }
        }
        fb_is(g, lo, 64, 0x22, &format!("case {n} before"))?;
        fb_is(g, hi - 64, 64, 0x22, &format!("case {n} after"))?;
    }
    Ok(())
}

fn copy_from_fb_test(g: &mut Gpu) -> Result<(), String> {
    let cases: [(usize, usize, usize, usize, usize, usize); 2] =
        [(0x30_0001, 3000, 1500, 20, 0x20_0007, 2000), (0x38_0000, 4096, 4096, 64, 0x30_0000, 4096)];
    for (n, &(fb_off, fb_stride, width, height, dst, dst_stride)) in cases.iter().enumerate() {
        let fb_span = (height - 1) * fb_stride + width;
        let pat = pattern(fb_span, 99 + n as u32);
        g.fb_set(fb_off, &pat)?;
        let span = (height - 1) * dst_stride + width;
        g.data.write_bytes(dst - 16, &vec![0xee; span + 32]).map_err(es)?;
        g.run(&[from_fb(
            DATA_IOVA + dst as u64,
            dst_stride as u32,
            fb_off as u32,
            fb_stride as u32,
            width as u32,
            height as u32,
        )])?;
        let err = g.reg(REG_ERROR)?;
        ensure(err == ERR_NONE, || format!("case {n}: ERROR {err} after a valid COPY_FROM_FB"))?;
        let mem = g.data_bytes(dst - 16, span + 32)?;
        for l in 0..height {
            let got = &mem[16 + l * dst_stride..16 + l * dst_stride + width];
            let want = &pat[l * fb_stride..l * fb_stride + width];
            if let Some(i) = got.iter().zip(want).position(|(x, y)| x != y) {
                return Err(format!("case {n} line {l} byte {i}: {:#04x}, expected {:#04x}", got[i], want[i]));
            }
            if l + 1 < height {
                let gap = &mem[16 + l * dst_stride + width..16 + (l + 1) * dst_stride];
                ensure(gap.iter().all(|&x| x == 0xee), || {
                    format!("case {n}: guest memory between lines {l} and {} written", l + 1)
                })?;
            }
        }
        ensure(mem[..16].iter().all(|&x| x == 0xee) && mem[16 + span..].iter().all(|&x| x == 0xee), || {
            format!("case {n}: guest memory around the copy written: {:02x?} / {:02x?}", &mem[..16], &mem[16 + span..])
        })?;
    }
    Ok(())
}

// ----- 7-8: FENCE and interrupts --------------------------------------------------------------

fn fence_msi_test(g: &mut Gpu, msi: &EventFd) -> Result<(), String> {
    g.msi_on(msi)?;
    g.set_reg(REG_IRQ_ENABLE, IRQ_COMPLETION)?;
    let en = g.reg(REG_IRQ_ENABLE)?;
    ensure(en == IRQ_COMPLETION, || format!("IRQ_ENABLE reads {en:#x} after writing {IRQ_COMPLETION:#x}"))?;
    g.clear()?;
    drain(msi)?;
    g.set_scratch(0, 0)?;
    let v = 0xfeed_0001;
    g.submit(&[fence_cmd(Gpu::scratch_iova(0), v)])?;
    wait_irq(msi, IRQ_WAIT_MS, "FENCE with COMPLETION enabled").map_err(|e| format!("{e}; {}", g.dump()))?;
    // The interrupt follows the write: all must be visible now.
    let (mem, reg, st) = (g.scratch(0)?, g.reg(REG_FENCE)?, g.reg(REG_IRQ_STATUS)?);
    ensure(mem == v && reg == v && st & IRQ_COMPLETION != 0, || {
        format!("after the interrupt: memory {mem:#x} FENCE {reg:#x} STATUS {st:#x} (want {v:#x}, COMPLETION)")
    })?;
    g.set_reg(REG_IRQ_STATUS, IRQ_COMPLETION)?;
    let st = g.reg(REG_IRQ_STATUS)?;
    ensure(st & IRQ_COMPLETION == 0, || format!("STATUS {st:#x} after writing 1 to COMPLETION"))?;
    g.wait_idle(IDLE_TIMEOUT)?;
    // Completion not enabled: no interrupt, the fence still lands.
    g.set_reg(REG_IRQ_ENABLE, 0)?;
    let v2 = 0xfeed_0002;
    g.run(&[fence_cmd(Gpu::scratch_iova(0), v2)])?;
    quiet(msi, QUIET_MS, "FENCE with COMPLETION not enabled")?;
    let (mem, reg) = (g.scratch(0)?, g.reg(REG_FENCE)?);
    ensure(mem == v2 && reg == v2, || format!("second fence: memory {mem:#x} FENCE {reg:#x}, want {v2:#x}"))?;
    // Several fences in one batch: the last value wins, one write each.
    g.set_reg(REG_IRQ_ENABLE, IRQ_COMPLETION)?;
    g.clear()?;
    drain(msi)?;
    let cmds: Vec<Cmd> = (0..8).map(|i| fence_cmd(Gpu::scratch_iova(4 + 4 * i), 0x100 + i as u32)).collect();
    g.run(&cmds)?;
    wait_irq(msi, IRQ_WAIT_MS, "batch of 8 fences")?;
    let vals = (0..8).map(|i| g.scratch(4 + 4 * i)).collect::<Result<Vec<_>, _>>()?;
    let reg = g.reg(REG_FENCE)?;
    ensure(vals == (0x100..0x108).collect::<Vec<u32>>() && reg == 0x107, || {
        format!("batch: memory {vals:x?} FENCE {reg:#x}")
    })?;
    g.set_reg(REG_IRQ_STATUS, IRQ_ALL)
}

fn intx_test(g: &mut Gpu, intx: &EventFd, msi: &EventFd) -> Result<(), String> {
    g.msi_off()?;
    g.intx_on(intx)?;
    let r = (|| {
        g.set_reg(REG_IRQ_ENABLE, IRQ_COMPLETION)?;
        g.clear()?;
        drain(intx)?;
        g.submit(&[fence_cmd(Gpu::scratch_iova(0), 0xa1)])?;
        wait_irq(intx, IRQ_WAIT_MS, "first completion").map_err(|e| format!("{e}; {}", g.dump()))?;
        g.wait_idle(IDLE_TIMEOUT)?;
        // The guest's handler clears the source but VFIO has not unmasked: a new completion must
        // not signal.
        g.set_reg(REG_IRQ_STATUS, IRQ_COMPLETION)?;
        g.run(&[fence_cmd(Gpu::scratch_iova(0), 0xa2)])?;
        let f = g.reg(REG_FENCE)?;
        ensure(f == 0xa2, || format!("FENCE {f:#x}, want 0xa2"))?;
        quiet(intx, QUIET_MS, "second completion while automasked")?;
        let st = g.reg(REG_IRQ_STATUS)?;
        ensure(st & IRQ_COMPLETION != 0, || format!("STATUS {st:#x}: COMPLETION should be pending"))?;
        // Unmask with the source still pending: the line is still asserted, so it signals.
        g.dev.unmask_irqs(INTX, 0, 1).map_err(|e| format!("unmask: {e}"))?;
        wait_irq(intx, IRQ_WAIT_MS, "unmask with COMPLETION pending")?;
        // Clear the source, unmask: nothing.
        g.set_reg(REG_IRQ_STATUS, IRQ_COMPLETION)?;
        g.dev.unmask_irqs(INTX, 0, 1).map_err(|e| format!("unmask: {e}"))?;
        quiet(intx, QUIET_MS, "unmask with nothing pending")?;
        // And a new completion signals again.
        g.submit(&[fence_cmd(Gpu::scratch_iova(0), 0xa3)])?;
        wait_irq(intx, IRQ_WAIT_MS, "completion after unmask")?;
        g.wait_idle(IDLE_TIMEOUT)?;
        g.set_reg(REG_IRQ_STATUS, IRQ_ALL)?;
        g.dev.unmask_irqs(INTX, 0, 1).map_err(|e| format!("unmask: {e}"))
    })();
    // Back to MSI for what follows, whatever happened.
    let back = g.intx_off().and_then(|()| g.msi_on(msi));
    r.and(back)
}

// ----- 9-13: errors ----------------------------------------------------------------------------

/// Submits `bad` then a FENCE; expects `ERROR == code`, `ERROR_HEAD` at `bad`, the error
/// status and interrupt, and the fence. Leaves the error state cleared.
fn expect_error(g: &mut Gpu, msi: &EventFd, bad: &Cmd, code: u32, seq: u32) -> Result<(), String> {
    g.settle()?;
    g.clear()?;
    drain(msi)?;
    g.set_scratch(0x100, 0)?;
    let v = 0xe000_0000 | seq;
    let offs = g.submit(&[*bad, fence_cmd(Gpu::scratch_iova(0x100), v)])?;
    g.wait_idle(IDLE_TIMEOUT)?;
    let got_irq = efd_signalled(msi, IRQ_WAIT_MS)?;
    let (err, head, st, mem, f) =
        (g.reg(REG_ERROR)?, g.reg(REG_ERROR_HEAD)?, g.reg(REG_IRQ_STATUS)?, g.scratch(0x100)?, g.reg(REG_FENCE)?);
    let r = ensure(err == code && head == offs[0] && st & IRQ_ERROR != 0 && got_irq && mem == v && f == v, || {
        format!(
            "ERROR {err} (want {code}) ERROR_HEAD {head:#x} (want {:#x}) STATUS {st:#x} interrupt {got_irq}; next FENCE: memory {mem:#x} register {f:#x} (want {v:#x})",
            offs[0]
        )
    });
    g.set_reg(REG_ERROR, 0)?;
    let after = g.reg(REG_ERROR)?;
    g.set_reg(REG_IRQ_STATUS, IRQ_ALL)?;
    r.and(ensure(after == ERR_NONE, || format!("ERROR reads {after} after writing 0")))
}

fn efd_signalled(efd: &EventFd, ms: i32) -> Result<bool, String> {
    Ok(efd.wait(ms).map_err(es)? && drain(efd)? > 0)
}

fn run_cases(g: &mut Gpu, msi: &EventFd, code: u32, cases: Vec<(&str, Cmd)>) -> Result<(), String> {
    let checks = cases
        .into_iter()
        .enumerate()
        .map(|(i, (name, c))| (name.to_string(), expect_error(g, msi, &c, code, (code << 8) | i as u32)))
        .collect();
    all(checks)
}

fn bad_opcode(g: &mut Gpu, msi: &EventFd) -> Result<(), String> {
    run_cases(
        g,
        msi,
        ERR_BAD_OPCODE,
        vec![
            ("opcode 5", cmd([5, 0, 0, 0, 0, 0, 0, 0])),
            ("opcode 0x100", cmd([0x100, 0, 0, 0, 0, 0, 0, 0])),
            ("opcode 0xffffffff", cmd([u32::MAX, 1, 2, 3, 4, 5, 6, 7])),
        ],
    )
}

fn fb_range(g: &mut Gpu, msi: &EventFd) -> Result<(), String> {
    let fb = g.fb_size as u32;
    // The in-range part of the crossing rectangle must stay untouched.
    g.fb_set(g.fb_size - 8192, &[0x33; 8192])?;
    let r = run_cases(
        g,
        msi,
        ERR_FB_RANGE,
        vec![
            ("FILL whose second line is beyond the end", fill(fb - 2048, 4096, 1024, 2, 0xdead_beef)),
            ("FILL at the end", fill(fb, 4, 4, 1, 1)),
            ("FILL one word past the end", fill(fb - 4, 4096, 8, 1, 1)),
            ("FILL offset + width overflows u32", fill(0xffff_fffc, 8, 8, 1, 1)),
            ("FILL stride * height overflows u32", fill(0, 0x1000_0000, 4, 0x11, 1)),
            ("COPY_TO_FB past the end", to_fb(DATA_IOVA, 4096, fb - 100, 4096, 200, 1)),
            ("COPY_TO_FB offset overflows u32", to_fb(DATA_IOVA, 4096, 0xffff_ff00, 4096, 0x200, 1)),
            ("COPY_FROM_FB past the end", from_fb(DATA_IOVA, 4096, fb - 4096, 4096, 4096, 2)),
        ],
    );
    let untouched = fb_is(g, g.fb_size - 8192, 8192, 0x33, "the in-range part of a failed FILL");
    r.and(untouched)
}

fn dma_fault(g: &mut Gpu, msi: &EventFd) -> Result<(), String> {
    let ro = Mmap::anonymous(4096).map_err(es)?;
    g.dev.map_dma_raw(ro.addr(), RO_IOVA, 4096, true, false).map_err(|e| format!("read-only map: {e}"))?;
    let r = run_cases(
        g,
        msi,
        ERR_DMA_FAULT,
        vec![
            ("COPY_TO_FB from an unmapped IOVA", to_fb(HOLE_IOVA, 256, 0x50_0000, 256, 256, 1)),
            ("COPY_FROM_FB to an unmapped IOVA", from_fb(HOLE_IOVA, 256, 0x50_0000, 256, 256, 1)),
            ("FENCE to an unmapped IOVA", fence_cmd(HOLE_IOVA, 1)),
            (
                "COPY_TO_FB running off the end of a mapping",
                to_fb(DATA_IOVA + DATA_LEN as u64 - 100, 200, 0x50_0000, 200, 200, 1),
            ),
            (
                "COPY_TO_FB with later lines unmapped",
                to_fb(DATA_IOVA + DATA_LEN as u64 - 8192, 4096, 0x50_0000, 4096, 4096, 4),
            ),
            ("COPY_FROM_FB into a read-only mapping", from_fb(RO_IOVA, 256, 0x50_0000, 256, 256, 1)),
            ("FENCE into a read-only mapping", fence_cmd(RO_IOVA, 1)),
            ("FENCE at IOVA 2^64 - 4", fence_cmd(u64::MAX - 3, 1)),
        ],
    );
    // Reading from the read-only mapping is fine.
    let ok = (|| {
        g.clear()?;
        g.run(&[to_fb(RO_IOVA, 256, 0x50_0000, 256, 256, 1)])?;
        let err = g.reg(REG_ERROR)?;
        ensure(err == ERR_NONE, || format!("COPY_TO_FB from a read-only mapping: ERROR {err}"))
    })();
    let unmap = g.dev.unmap_dma(RO_IOVA, 4096).map_err(|e| format!("unmap read-only: {e}")).map(drop);
    r.and(ok).and(unmap)
}

/// Computes a bad TAIL from our tail.
type TailFn = fn(u32) -> u32;

fn ring_error(g: &mut Gpu, msi: &EventFd) -> Result<(), String> {
    let mut checks = Vec::new();
    let cases: [(&str, TailFn); 4] = [
        ("TAIL not a multiple of 32", |at| (at + 33) % RING_SIZE),
        ("TAIL 16 bytes into a command", |at| (at + 48) % RING_SIZE),
        ("TAIL = RING_SIZE", |_| RING_SIZE),
        ("TAIL beyond RING_SIZE", |_| 2 * RING_SIZE),
    ];
    for (n, (name, bad_tail)) in cases.into_iter().enumerate() {
        let r = (|| {
            g.clear()?;
            drain(msi)?;
            g.settle()?;
            let head = g.reg(REG_RING_HEAD)?;
            // NOPs at our tail which a bad TAIL must not run.
            let before = g.reg(REG_COMPLETED)?;
            let at = g.tail;
            g.ring.write_bytes(at as usize, &nop()).map_err(es)?;
            let bad = bad_tail(at);
            g.set_reg(REG_RING_TAIL, bad)?;
            let seen = wait_for(Duration::from_millis(IRQ_WAIT_MS as u64), || Ok(g.reg(REG_ERROR)? != ERR_NONE))?;
            let got_irq = efd_signalled(msi, if seen { IRQ_WAIT_MS } else { 0 })?;
            let (err, st, head2) = (g.reg(REG_ERROR)?, g.reg(REG_IRQ_STATUS)?, g.reg(REG_RING_HEAD)?);
            let ran = g.reg(REG_COMPLETED)?.wrapping_sub(before);
            let eh = g.reg(REG_ERROR_HEAD)?;
            let seen_ok = ensure(
                err == ERR_RING && st & IRQ_ERROR != 0 && got_irq && head2 == head && ran == 0,
                || {
                    format!("TAIL {bad:#x}: ERROR {err} STATUS {st:#x} interrupt {got_irq} HEAD {head:#x} -> {head2:#x} commands run {ran} (ERROR_HEAD {eh:#x})")
                },
            );
            g.clear()?;
            // A valid doorbell from where we were.
            g.set_scratch(0x200, 0)?;
            let v = 0x4400 + n as u32;
            g.submit(&[fence_cmd(Gpu::scratch_iova(0x200), v)])?;
            let mut next = g.wait_idle(Duration::from_secs(3)).and_then(|()| {
                let (mem, err) = (g.scratch(0x200)?, g.reg(REG_ERROR)?);
                ensure(mem == v && err == ERR_NONE, || format!("next FENCE: memory {mem:#x} ERROR {err}"))
            });
            if let Err(e) = &next {
                // Show what the engine is doing, then stop it and start the ring afresh so the
                // following checks still mean something.
                let c0 = g.reg(REG_COMPLETED)?;
                std::thread::sleep(Duration::from_millis(500));
                let c1 = g.reg(REG_COMPLETED)?;
                next = Err(format!(
                    "then a valid TAIL {:#x}: {e}; the engine ran {} more commands in the next 0.5 s",
                    g.tail,
                    c1.wrapping_sub(c0)
                ));
                g.restart_ring()?;
                g.run(&[fence_cmd(Gpu::scratch_iova(0x200), v)])?;
            }
            both(seen_ok, next)
        })();
        checks.push((name.to_string(), r));
    }
    // A ring that cannot be read.
    let r = (|| {
        g.clear()?;
        drain(msi)?;
        g.set_reg(REG_RING_BASE_LO, HOLE_IOVA as u32)?;
        g.set_reg(REG_RING_BASE_HI, (HOLE_IOVA >> 32) as u32)?;
        g.set_reg(REG_RING_SIZE, 4096)?;
        g.set_reg(REG_RING_TAIL, 32)?;
        let seen = wait_for(Duration::from_millis(IRQ_WAIT_MS as u64), || Ok(g.reg(REG_ERROR)? != ERR_NONE))?;
        let got_irq = efd_signalled(msi, if seen { IRQ_WAIT_MS } else { 0 })?;
        let (err, st) = (g.reg(REG_ERROR)?, g.reg(REG_IRQ_STATUS)?);
        let r = ensure(err == ERR_RING && st & IRQ_ERROR != 0 && got_irq, || {
            format!("ring at an unmapped IOVA: ERROR {err} STATUS {st:#x} interrupt {got_irq}; {}", g.dump())
        });
        g.restart_ring()?;
        g.run(&[fence_cmd(Gpu::scratch_iova(0x200), 0x4455)])?;
        let mem = g.scratch(0x200)?;
        r.and(ensure(mem == 0x4455, || format!("FENCE on the restored ring: memory {mem:#x}")))
    })();
    checks.push(("ring at an unmapped IOVA".into(), r));
    g.set_reg(REG_IRQ_STATUS, IRQ_ALL)?;
    all(checks)
}

fn bad_args(g: &mut Gpu, msi: &EventFd) -> Result<(), String> {
    let s = Gpu::scratch_iova(0x300);
    run_cases(
        g,
        msi,
        ERR_BAD_ARGS,
        vec![
            ("FILL width 0", fill(0, 4096, 0, 1, 1)),
            ("FILL height 0", fill(0, 4096, 64, 0, 1)),
            ("FILL width 6", fill(0, 4096, 6, 1, 1)),
            ("FILL offset 2", fill(2, 4096, 64, 1, 1)),
            ("FILL stride 1026", fill(0, 1026, 64, 2, 1)),
            ("FILL width 64 > stride 32", fill(0, 32, 64, 2, 1)),
            ("COPY_TO_FB width 0", to_fb(DATA_IOVA, 4096, 0, 4096, 0, 1)),
            ("COPY_TO_FB height 0", to_fb(DATA_IOVA, 4096, 0, 4096, 64, 0)),
            ("COPY_TO_FB width 100 > fb_stride 50", to_fb(DATA_IOVA, 4096, 0, 50, 100, 2)),
            ("COPY_FROM_FB width 0", from_fb(DATA_IOVA, 4096, 0, 4096, 0, 1)),
            ("COPY_FROM_FB width 100 > fb_stride 50", from_fb(DATA_IOVA, 4096, 0, 50, 100, 2)),
            ("FENCE at an unaligned IOVA", fence_cmd(s + 2, 1)),
            ("FENCE with a height", cmd([CMD_FENCE, 1, s as u32, (s >> 32) as u32, 1, 0, 0, 0])),
            ("NOP with a height", cmd([CMD_NOP, 3, 0, 0, 0, 0, 0, 0])),
        ],
    )
}

// ----- 14: unmap under queued commands ------------------------------------------------------------

fn unmap_race(g: &mut Gpu, msi: &EventFd) -> Result<(), String> {
    const N: usize = 1000;
    let mut victim = Mmap::anonymous(VICTIM_LEN).map_err(es)?;
    victim.write_bytes(0, &pattern(VICTIM_LEN, 5)).map_err(es)?;
    g.settle()?;
    g.dev.map_dma(&victim, VICTIM_IOVA).map_err(|e| format!("map victim: {e}"))?;
    g.set_reg(REG_IRQ_ENABLE, IRQ_ERROR)?;
    g.clear()?;
    drain(msi)?;
    g.set_scratch(0x400, 0)?;
    let mut cmds: Vec<Cmd> =
        (0..N).map(|i| to_fb(VICTIM_IOVA + ((i % 16) << 16) as u64, 4096, 0x60_0000, 4096, 4096, 16)).collect();
    cmds.push(fence_cmd(Gpu::scratch_iova(0x400), 0x5151));
    let offs = g.submit(&cmds)?;
    let t = Instant::now();
    let unmapped = g.dev.unmap_dma(VICTIM_IOVA, VICTIM_LEN as u64);
    let unmap_time = t.elapsed();
    let head_at_unmap = g.reg(REG_RING_HEAD)?;
    g.wait_idle(Duration::from_secs(120))?;
    let got_irq = efd_signalled(msi, IRQ_WAIT_MS)?;
    let (err, eh, st, mem) = (g.reg(REG_ERROR)?, g.reg(REG_ERROR_HEAD)?, g.reg(REG_IRQ_STATUS)?, g.scratch(0x400)?);
    let last_copy = offs[N - 1];
    // How many commands were still ahead of the engine when the unmap returned.
    let pos = |o: u32| (o + RING_SIZE - offs[0]) % RING_SIZE / CMD_BYTES;
    let ahead = N as u32 - pos(head_at_unmap).min(N as u32);
    println!("# unmap took {unmap_time:?}, {ahead} of {N} copies were still queued when it returned");
    let mut checks = vec![(
        "unmap".to_string(),
        match unmapped {
            Ok(n) => ensure(n == VICTIM_LEN as u64, || format!("unmapped {n} bytes")),
            Err(e) => Err(format!("unmap failed: {e}")),
        },
    )];
    checks.push((
        "race".into(),
        ensure(ahead >= 2, || {
            format!(
                "the engine was done with the batch (HEAD {head_at_unmap:#x}) before the unmap returned: nothing raced"
            )
        }),
    ));
    if ahead >= 2 {
        checks.push((
            "commands after the unmap".into(),
            ensure(err == ERR_DMA_FAULT && eh == last_copy && st & IRQ_ERROR != 0 && got_irq, || {
                format!("ERROR {err} (want {ERR_DMA_FAULT}) ERROR_HEAD {eh:#x} (want the last copy, {last_copy:#x}) STATUS {st:#x} interrupt {got_irq}")
            }),
        ));
    }
    checks.push(("the FENCE after the batch".into(), ensure(mem == 0x5151, || format!("memory {mem:#x}"))));
    // The engine still serves new work.
    let r = (|| {
        g.clear()?;
        g.fb_set(0x60_0000, &[0; 64])?;
        g.run(&[fill(0x60_0000, 64, 64, 1, 0x7777_7777), fence_cmd(Gpu::scratch_iova(0x400), 0x5252)])?;
        let (err, mem) = (g.reg(REG_ERROR)?, g.scratch(0x400)?);
        ensure(err == ERR_NONE && mem == 0x5252, || format!("ERROR {err}, fence {mem:#x}"))?;
        fb_is(g, 0x60_0000, 64, 0x77, "FILL after the unmap")
    })();
    checks.push(("a new command afterwards".into(), r));
    g.set_reg(REG_IRQ_STATUS, IRQ_ALL)?;
    all(checks)
}

// ----- 15: two vGPUs ---------------------------------------------------------------------------

fn two_vgpus(a: &mut Gpu, b: &mut Gpu) -> Result<(), String> {
    const LINES: usize = 64;
    const AT: usize = 0x80_0000;
    const STRIDE: usize = 4096;
    a.settle()?;
    b.setup_ring()?;
    b.clear()?;
    a.set_reg(REG_IRQ_ENABLE, 0)?;
    a.clear()?;
    a.fb_set(AT, &vec![0x44; LINES * STRIDE])?;
    b.fb_set(AT, &vec![0x44; LINES * STRIDE])?;
    let barrier = Barrier::new(2);
    let work = |g: &mut Gpu, base: u32| -> Result<(), String> {
        // Each line its own FILL (the first half of the line), then a fence.
        let mut cmds: Vec<Cmd> =
            (0..LINES).map(|l| fill((AT + l * STRIDE) as u32, STRIDE as u32, 2048, 1, base | l as u32)).collect();
        cmds.push(fence_cmd(Gpu::scratch_iova(0x500), base));
        for c in &cmds {
            g.push(c)?;
        }
        barrier.wait();
        g.doorbell()?;
        g.wait_idle(IDLE_TIMEOUT)
    };
    let (ra, rb) = std::thread::scope(|s| {
        let ha = s.spawn(|| work(a, 0xaa00_0000));
        let hb = s.spawn(|| work(b, 0xbb00_0000));
        (
            ha.join().unwrap_or_else(|_| Err("thread A panicked".into())),
            hb.join().unwrap_or_else(|_| Err("thread B panicked".into())),
        )
    });
    let verify = |g: &Gpu, base: u32, who: &str| -> Result<(), String> {
        let (err, f) = (g.reg(REG_ERROR)?, g.scratch(0x500)?);
        ensure(err == ERR_NONE && f == base, || format!("{who}: ERROR {err} fence {f:#x}"))?;
        for l in 0..LINES {
            let line = g.fb_bytes(AT + l * STRIDE, STRIDE)?;
            let want = (base | l as u32).to_le_bytes();
            let bad = line[..2048].chunks(4).position(|w| w != want);
            ensure(bad.is_none(), || {
                format!(
                    "{who} line {l}: word {} is {:02x?}, want {want:02x?}",
                    bad.unwrap_or(0),
                    &line[4 * bad.unwrap_or(0)..][..4]
                )
            })?;
            ensure(line[2048..].iter().all(|&x| x == 0x44), || format!("{who} line {l}: beyond the fill written"))?;
        }
        Ok(())
    };
    all(vec![
        ("A".into(), ra.and_then(|()| verify(a, 0xaa00_0000, "A"))),
        ("B".into(), rb.and_then(|()| verify(b, 0xbb00_0000, "B"))),
    ])
}

// ----- 16: VBLANK ------------------------------------------------------------------------------

fn vblank(g: &mut Gpu, msi: &EventFd) -> Result<(), String> {
    let fps = g.reg(REG_FRL_FPS)?;
    // A display mode, as a guest has when it cares about vblank: 1024x768x32, enabled.
    for (i, v) in [(4u64, 0u32), (3, 32), (1, 1024), (2, 768), (6, 1024), (8, 0), (9, 0), (4, 0xc1)] {
        g.dev
            .write_region_all(&g.bar2, DISPI + 2 * i, &(v as u16).to_le_bytes())
            .map_err(|e| format!("DISPI {i}: {e}"))?;
    }
    g.set_reg(REG_IRQ_ENABLE, IRQ_VBLANK)?;
    g.set_reg(REG_IRQ_STATUS, IRQ_ALL)?;
    drain(msi)?;
    let c0 = g.reg(REG_VBLANK_COUNT)?;
    let t = Instant::now();
    let mut signals = 0u64;
    let window = Duration::from_secs(1);
    while t.elapsed() < window {
        let left = window.saturating_sub(t.elapsed()).as_millis() as i32;
        if msi.wait(left.max(1)).map_err(es)? {
            signals += drain(msi)?;
            // The guest's handler acknowledges the source.
            g.set_reg(REG_IRQ_STATUS, IRQ_VBLANK)?;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let c1 = g.reg(REG_VBLANK_COUNT)?;
    g.set_reg(REG_IRQ_ENABLE, 0)?;
    g.set_reg(REG_IRQ_STATUS, IRQ_ALL)?;
    std::thread::sleep(Duration::from_millis(50));
    drain(msi)?;
    let counted = c1.wrapping_sub(c0);
    let (irq_rate, count_rate) = (signals as f64 / secs, f64::from(counted) / secs);
    let limit = f64::from(fps) * 1.1 + 2.0;
    println!("# VBLANK over {secs:.2} s: {signals} interrupts ({irq_rate:.1}/s), VBLANK_COUNT +{counted} ({count_rate:.1}/s), FRL {fps} fps");
    ensure(
        fps > 0
            && signals > 0
            && counted > 0
            && irq_rate <= limit
            && count_rate <= limit
            && signals <= u64::from(counted) + 1,
        || {
            format!("{signals} interrupts ({irq_rate:.1}/s), VBLANK_COUNT +{counted} ({count_rate:.1}/s) in {secs:.2} s; FRL_FPS {fps}, limit {limit:.1}/s")
        },
    )
}

// ----- 17: close with work in flight ---------------------------------------------------------------

fn close_in_flight(mut g: Gpu, uuid: &str, path: OpenPath) -> Result<Gpu, String> {
    const N: usize = 1000;
    g.set_reg(REG_IRQ_ENABLE, IRQ_COMPLETION | IRQ_ERROR)?;
    g.clear()?;
    let cmds: Vec<Cmd> = (0..N)
        .map(|i| to_fb(DATA_IOVA + ((i % 32) << 16) as u64, 4096, 0x90_0000, 4096, 4096, 16))
        .chain(std::iter::once(fence_cmd(Gpu::scratch_iova(0x600), 0x6060)))
        .collect();
    g.submit(&cmds)?;
    let t = Instant::now();
    drop(g);
    let closed = t.elapsed();
    let t = Instant::now();
    let mut g = Gpu::open(uuid, path).map_err(|e| format!("reopen: {e}"))?;
    println!("# close with {N} copies queued took {closed:?}; reopen {:?}", t.elapsed());
    let regs: Vec<(&str, u64)> = vec![
        ("RING_SIZE", REG_RING_SIZE),
        ("RING_HEAD", REG_RING_HEAD),
        ("RING_TAIL", REG_RING_TAIL),
        ("RING_BASE_LO", REG_RING_BASE_LO),
        ("RING_BASE_HI", REG_RING_BASE_HI),
        ("IRQ_ENABLE", REG_IRQ_ENABLE),
        ("ERROR", REG_ERROR),
        ("ERROR_HEAD", REG_ERROR_HEAD),
        ("ENGINE_STATUS", REG_ENGINE_STATUS),
    ];
    for (n, o) in regs {
        let v = g.reg(o)?;
        ensure(v == 0, || format!("after reopen {n} = {v:#x}, expected power-on 0"))?;
    }
    let st = g.reg(REG_IRQ_STATUS)?;
    ensure(st & (IRQ_COMPLETION | IRQ_ERROR) == 0, || format!("after reopen IRQ_STATUS {st:#x}"))?;
    // Nothing of the old batch may still run into the framebuffer.
    g.fb_set(0x90_0000, &vec![0x55; 16 * 4096])?;
    std::thread::sleep(Duration::from_millis(300));
    fb_is(&g, 0x90_0000, 16 * 4096, 0x55, "the old batch's target after reopen")?;
    g.setup_ring()?;
    g.run(&[fill(0x90_0000, 4096, 4096, 4, 0x6666_6666), fence_cmd(Gpu::scratch_iova(0x600), 0x6161)])?;
    let (err, mem) = (g.reg(REG_ERROR)?, g.scratch(0x600)?);
    ensure(err == ERR_NONE && mem == 0x6161, || format!("after reopen: ERROR {err} fence {mem:#x}"))?;
    fb_is(&g, 0x90_0000, 4 * 4096, 0x66, "FILL after reopen")?;
    Ok(g)
}
