// SPDX-License-Identifier: GPL-2.0
//! Interrupt and engine figures for a vGPU beside the kernel's mtty sample, from one run in one VM.
//!
//! `rvgpu-irq-bench RVGPU_UUID MTTY_UUID [N]` (`MTTY_UUID` may be `-` to skip mtty):
//!
//! * doorbell -> completion interrupt on rvgpu: one FENCE in the ring, the `TAIL` write, then
//!   blocking on the eventfd (MSI, then INTx with its unmask), N times; p50/p99 in µs;
//! * the same path on mtty: a write to the UART's IER enabling the transmitter-empty interrupt
//!   (`UART_IER_THRI` with an empty FIFO makes `handle_bar_write` call `mtty_trigger_interrupt`
//!   synchronously), then blocking on the eventfd; MSI and INTx;
//! * COPY_TO_FB bandwidth: 16 MiB of guest memory (mapped for DMA, pinned by the driver on first
//!   use) into the framebuffer in 1 MiB commands, doorbell to the FENCE interrupt, beside a plain
//!   `memcpy` of 16 MiB in user space (and one into the framebuffer through its mmap).
//!
//! Figures only: nothing here passes or fails.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use vfio_client::harness::{RING_BUF, RING_SIZE, SCRATCH};
use vfio_client::rvgpu::*;
use vfio_client::tap::es;
use vfio_client::uapi::VFIO_PCI_BAR0_REGION_INDEX;
use vfio_client::{Device, EventFd, Mmap, OpenPath, Prot, RegionInfo};

const DEFAULT_N: usize = 2000;
const WARMUP: usize = 50;

/// The ring buffer's mapping (the harness's ring, at an IOVA of this program's), FENCE values in
/// the harness's scratch area.
const RING_IOVA: u64 = 0x1000_0000;
const DATA_IOVA: u64 = 0x4000_0000;
const COPY_BYTES: usize = 16 << 20;
const COPY_CHUNK: usize = 1 << 20;
const COPY_ROUNDS: usize = 5;

/// mtty's UART registers (BAR0, one byte each).
const UART_IER: u64 = 1;
const UART_IER_THRI: u8 = 0x02;

type Res<T> = Result<T, String>;

/// Latency percentiles of a sample, in µs.
fn percentiles(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let at = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)].as_secs_f64() * 1e6;
    (at(0.5), at(0.99), v.last().map_or(0.0, |d| d.as_secs_f64() * 1e6))
}

fn wait(efd: &EventFd, what: &str) -> Res<()> {
    if !efd.wait(5000).map_err(es)? {
        return Err(format!("{what}: no interrupt within 5 s"));
    }
    efd.read().map_err(es)?;
    Ok(())
}

struct Rvgpu {
    dev: Device,
    bar2: RegionInfo,
    cfg: RegionInfo,
    ring: Mmap,
    tail: u32,
}

impl Rvgpu {
    fn open(uuid: &str) -> Res<Rvgpu> {
        let dev = Device::open(uuid, OpenPath::Container).map_err(|e| format!("open {uuid}: {e}"))?;
        let bar2 = dev.region_info(REGION_BAR2).map_err(es)?;
        let cfg = dev.region_info(REGION_CONFIG).map_err(es)?;
        dev.write_region_all(&cfg, 4, &6u16.to_le_bytes()).map_err(es)?;
        let ring = Mmap::anonymous(RING_BUF).map_err(es)?;
        dev.map_dma(&ring, RING_IOVA).map_err(|e| format!("map ring: {e}"))?;
        let g = Rvgpu { dev, bar2, cfg, ring, tail: 0 };
        g.set(REG_RING_BASE_LO, RING_IOVA as u32)?;
        g.set(REG_RING_BASE_HI, (RING_IOVA >> 32) as u32)?;
        g.set(REG_RING_SIZE, RING_SIZE)?;
        Ok(g)
    }

    fn reg(&self, off: u64) -> Res<u32> {
        let mut b = [0u8; 4];
        self.dev.read_region_exact(&self.bar2, off, &mut b).map_err(es)?;
        Ok(u32::from_le_bytes(b))
    }

    fn set(&self, off: u64, v: u32) -> Res<()> {
        self.dev.write_region_all(&self.bar2, off, &v.to_le_bytes()).map_err(es)
    }

    fn push(&mut self, c: &Cmd) -> Res<()> {
        self.ring.write_bytes(self.tail as usize, &c.to_bytes()).map_err(es)?;
        self.tail = (self.tail + CMD_SIZE) % RING_SIZE;
        Ok(())
    }

    fn push_fence(&mut self, v: u32) -> Res<()> {
        self.push(&Cmd::fence(RING_IOVA + SCRATCH as u64, v))
    }

    fn doorbell(&self) -> Res<()> {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        self.set(REG_RING_TAIL, self.tail)
    }

    fn msi(&self, on: bool, efd: Option<&EventFd>) -> Res<()> {
        let mut b = [0u8; 2];
        self.dev.read_region_exact(&self.cfg, MSI_CAP + 2, &mut b).map_err(es)?;
        let ctl = u16::from_le_bytes(b);
        if on {
            self.dev.write_region_all(&self.cfg, MSI_CAP + 4, &0xfee0_0000u32.to_le_bytes()).map_err(es)?;
            self.dev.write_region_all(&self.cfg, MSI_CAP + 12, &0x4041u16.to_le_bytes()).map_err(es)?;
            self.dev.write_region_all(&self.cfg, MSI_CAP + 2, &(ctl | 1).to_le_bytes()).map_err(es)?;
            let fd = efd.map_or(-1, |e| e.as_raw_fd());
            self.dev.set_irq_eventfds(MSI, 0, &[fd]).map_err(|e| format!("MSI eventfd: {e}"))
        } else {
            self.dev.write_region_all(&self.cfg, MSI_CAP + 2, &(ctl & !1).to_le_bytes()).map_err(es)?;
            self.dev.disable_irqs(MSI).map_err(|e| format!("disable MSI: {e}"))
        }
    }

    /// Doorbell -> completion interrupt, `n` times; `intx` unmasks after each.
    fn fence_latency(&mut self, efd: &EventFd, n: usize, intx: bool) -> Res<Vec<Duration>> {
        self.set(REG_IRQ_ENABLE, IRQ_COMPLETION)?;
        self.set(REG_IRQ_STATUS, IRQ_ALL)?;
        efd.read().map_err(es)?;
        let mut out = Vec::with_capacity(n);
        for i in 0..n + WARMUP {
            self.push_fence(i as u32)?;
            let t = Instant::now();
            self.doorbell()?;
            wait(efd, "FENCE completion")?;
            let d = t.elapsed();
            if i >= WARMUP {
                out.push(d);
            }
            self.set(REG_IRQ_STATUS, IRQ_COMPLETION)?;
            if intx {
                self.dev.unmask_irqs(INTX, 0, 1).map_err(es)?;
            }
        }
        let err = self.reg(REG_ERROR)?;
        if err != 0 {
            return Err(format!("engine ERROR {err} during the latency run"));
        }
        Ok(out)
    }
}

/// mtty: IER write with THRI -> eventfd, `n` times.
fn mtty_latency(dev: &Device, efd: &EventFd, n: usize, intx: bool) -> Res<Vec<Duration>> {
    let bar0 = dev.region_info(VFIO_PCI_BAR0_REGION_INDEX).map_err(es)?;
    // No pending interrupt source to start with.
    dev.write_region_all(&bar0, UART_IER, &[0]).map_err(es)?;
    efd.read().map_err(es)?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n + WARMUP {
        let t = Instant::now();
        dev.write_region_all(&bar0, UART_IER, &[UART_IER_THRI]).map_err(|e| format!("IER write: {e}"))?;
        wait(efd, "mtty THRI")?;
        let d = t.elapsed();
        if i >= WARMUP {
            out.push(d);
        }
        dev.write_region_all(&bar0, UART_IER, &[0]).map_err(es)?;
        if intx {
            dev.unmask_irqs(INTX, 0, 1).map_err(es)?;
        }
    }
    Ok(out)
}

fn print_lat(name: &str, v: Vec<Duration>) -> f64 {
    let n = v.len();
    let (p50, p99, max) = percentiles(v);
    println!("  {name:<28} p50 {p50:8.1} µs   p99 {p99:8.1} µs   max {max:8.1} µs   (n={n})");
    p50
}

fn mib_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / (1u64 << 20) as f64 / d.as_secs_f64()
}

fn main() {
    if let Err(e) = run() {
        eprintln!("rvgpu-irq-bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let (rv, mt, n) = match args.as_slice() {
        [_, rv, mt] => (rv, mt, DEFAULT_N),
        [_, rv, mt, n] => (rv, mt, n.parse().map_err(|_| format!("bad N {n:?}"))?),
        _ => {
            eprintln!("usage: rvgpu-irq-bench RVGPU_UUID MTTY_UUID|- [N]");
            std::process::exit(2);
        }
    };
    let mut g = Rvgpu::open(rv)?;
    let efd = EventFd::new().map_err(es)?;

    println!("interrupt latency, write that raises it -> eventfd readable, {n} samples after {WARMUP} warm-up:");
    g.msi(true, Some(&efd))?;
    let rv_msi = print_lat("rvgpu FENCE doorbell, MSI", g.fence_latency(&efd, n, false)?);
    g.msi(false, None)?;
    g.dev.set_irq_eventfds(INTX, 0, &[efd.as_raw_fd()]).map_err(es)?;
    let rv_intx = print_lat("rvgpu FENCE doorbell, INTx", g.fence_latency(&efd, n, true)?);
    g.dev.disable_irqs(INTX).map_err(es)?;
    if mt != "-" {
        let m = Device::open(mt, OpenPath::Container).map_err(|e| format!("open mtty {mt}: {e}"))?;
        m.set_irq_eventfds(MSI, 0, &[efd.as_raw_fd()]).map_err(|e| format!("mtty MSI eventfd: {e}"))?;
        let mt_msi = print_lat("mtty IER=THRI write, MSI", mtty_latency(&m, &efd, n, false)?);
        m.disable_irqs(MSI).map_err(es)?;
        m.set_irq_eventfds(INTX, 0, &[efd.as_raw_fd()]).map_err(|e| format!("mtty INTx eventfd: {e}"))?;
        let mt_intx = print_lat("mtty IER=THRI write, INTx", mtty_latency(&m, &efd, n, true)?);
        m.disable_irqs(INTX).map_err(es)?;
        println!("  ratio rvgpu/mtty p50, MSI    {:8.2}", rv_msi / mt_msi);
        println!("  ratio rvgpu/mtty p50, INTx   {:8.2}", rv_intx / mt_intx);
    }

    // COPY_TO_FB bandwidth.
    g.msi(true, Some(&efd))?;
    let fb_size = g.reg(REG_FB_SIZE)? as usize;
    let len = COPY_BYTES.min(fb_size / COPY_CHUNK * COPY_CHUNK);
    let mut data = Mmap::anonymous(len).map_err(es)?;
    for (i, b) in data.as_mut_slice().iter_mut().enumerate() {
        *b = (i as u32).wrapping_mul(2_654_435_761).rotate_right(13) as u8;
    }
    g.dev.map_dma(&data, DATA_IOVA).map_err(|e| format!("map data: {e}"))?;
    g.set(REG_IRQ_ENABLE, IRQ_COMPLETION)?;
    g.set(REG_IRQ_STATUS, IRQ_ALL)?;
    efd.read().map_err(es)?;
    let mut rounds = Vec::new();
    for r in 0..COPY_ROUNDS {
        for c in 0..len / COPY_CHUNK {
            let iova = DATA_IOVA + (c * COPY_CHUNK) as u64;
            let lines = (COPY_CHUNK / 4096) as u32;
            g.push(&Cmd::copy_to_fb(iova, 4096, (c * COPY_CHUNK) as u32, 4096, 4096, lines))?;
        }
        g.push_fence(0xc000 + r as u32)?;
        let t = Instant::now();
        g.doorbell()?;
        wait(&efd, "COPY_TO_FB batch")?;
        rounds.push(t.elapsed());
        g.set(REG_IRQ_STATUS, IRQ_ALL)?;
    }
    let err = g.reg(REG_ERROR)?;
    // The last bytes copied must be in the framebuffer.
    let bar0 = g.dev.region_info(REGION_BAR0).map_err(es)?;
    let fb = g.dev.mmap_region(&bar0, 0, len, Prot::RW).map_err(es)?;
    let mut tailb = [0u8; 64];
    fb.read_bytes(len - 64, &mut tailb).map_err(es)?;
    let copied = tailb[..] == data.as_slice()[len - 64..] && err == 0;

    // memcpy in user space, the same size.
    let mut dst = Mmap::anonymous(len).map_err(es)?;
    dst.as_mut_slice().fill(1);
    let mut best = Duration::MAX;
    for _ in 0..COPY_ROUNDS {
        let t = Instant::now();
        dst.as_mut_slice().copy_from_slice(data.as_slice());
        best = best.min(t.elapsed());
    }
    let mut fbw = fb;
    let mut best_fb = Duration::MAX;
    for _ in 0..COPY_ROUNDS {
        let t = Instant::now();
        fbw.as_mut_slice().copy_from_slice(data.as_slice());
        best_fb = best_fb.min(t.elapsed());
    }
    let first = rounds[0];
    let steady = rounds[1..].iter().min().copied().unwrap_or(first);
    let (e_first, e_steady, m, mfb) = (mib_s(len, first), mib_s(len, steady), mib_s(len, best), mib_s(len, best_fb));
    println!(
        "COPY_TO_FB, {} MiB in {} MiB commands, doorbell -> FENCE interrupt, {COPY_ROUNDS} rounds:",
        len >> 20,
        COPY_CHUNK >> 20
    );
    if !copied {
        println!("  WARNING: the framebuffer does not hold the copied bytes (ERROR {err})");
    }
    println!("  engine, first round (pins)    {e_first:9.0} MiB/s  ({:.1} ms)", first.as_secs_f64() * 1e3);
    println!("  engine, best later round      {e_steady:9.0} MiB/s  ({:.1} ms)", steady.as_secs_f64() * 1e3);
    println!("  memcpy RAM -> RAM (user)      {m:9.0} MiB/s  ({:.1} ms)", best.as_secs_f64() * 1e3);
    println!("  memcpy RAM -> FB mmap (user)  {mfb:9.0} MiB/s  ({:.1} ms)", best_fb.as_secs_f64() * 1e3);
    println!("  ratio engine/memcpy           {:9.3}", e_steady / m);
    println!("  ratio engine/FB mmap memcpy   {:9.3}", e_steady / mfb);
    g.set(REG_IRQ_ENABLE, 0)?;
    let _ = g.dev.unmap_dma(DATA_IOVA, len as u64);
    drop(fbw);
    Ok(())
}
