// SPDX-License-Identifier: GPL-2.0
//! Results 19 and 20: the pin cache ([`pins`]), and unmaps racing with pins ([`remap_storm`]).
//! The host driver pins the guest pages commands use and keeps at most [`PIN_CACHE`] of them per
//! vGPU, evicting beyond that; unmapping a buffer releases its pages.

use vfio_client::harness::{Gpu, RING_BUF, RING_SIZE};
use vfio_client::rvgpu::*;
use vfio_client::tap::{all, ensure, es};
use vfio_client::{Mmap, OpenPath};

use crate::gpu::{pinned_pages, EngineGpu};
use crate::pattern;

/// Guest pages the host driver keeps pinned per vGPU (`MAX_PINS`, `src/vgpu/engine/pins.rs`).
const PIN_CACHE: u64 = 8192;
const PAGE: usize = 4096;
/// The buffer: twice the pages the cache holds.
const PIN_IOVA: u64 = 0x4000_0000;
const PIN_LEN: usize = 2 * PIN_CACHE as usize * PAGE;
/// The part of the buffer one round trip moves through the framebuffer's first bytes.
const WINDOW: usize = 8 << 20;
/// What one command copies: 1 MiB, a page per line.
const CHUNK: usize = 1 << 20;

/// The buffer's window `w` and the framebuffer's first [`WINDOW`] bytes, one `op` command per
/// [`CHUNK`] (so the commands touch every page of the window); checks no command failed.
fn copy_window(g: &mut Gpu, op: fn(u64, u32, u32, u32, u32, u32) -> Cmd, w: usize, what: &str) -> Result<(), String> {
    let (page, lines) = (PAGE as u32, (CHUNK / PAGE) as u32);
    let cmds: Vec<Cmd> = (0..WINDOW / CHUNK)
        .map(|c| op(PIN_IOVA + (w * WINDOW + c * CHUNK) as u64, page, (c * CHUNK) as u32, page, page, lines))
        .collect();
    g.run(&cmds)?;
    let (err, head) = (g.reg(REG_ERROR)?, g.reg(REG_ERROR_HEAD)?);
    ensure(err == ERR_NONE, || format!("{what} of window {w}: ERROR {err} (ERROR_HEAD {head:#x})"))
}

/// Window by window: into the framebuffer, the window cleared, the framebuffer back into it: the
/// buffer holds `pat` again.
fn round_trip(g: &mut Gpu, buf: &mut Mmap, pat: &[u8]) -> Result<(), String> {
    for w in 0..PIN_LEN / WINDOW {
        copy_window(g, Cmd::copy_to_fb, w, "COPY_TO_FB")?;
        // The engine is idle: nothing else writes the buffer now.
        buf.as_mut_slice()[w * WINDOW..(w + 1) * WINDOW].fill(0);
        copy_window(g, Cmd::copy_from_fb, w, "COPY_FROM_FB")?;
    }
    match buf.as_slice().iter().zip(pat).position(|(x, y)| x != y) {
        None => Ok(()),
        Some(i) => Err(format!(
            "buffer byte {i:#x} (page {}) is {:#04x} after the round trip, expected {:#04x}",
            i / PAGE,
            buf.as_slice()[i],
            pat[i]
        )),
    }
}

/// Opens the vGPU `uuid` (closed on entry; the other vGPU stays open), maps a 64 MiB buffer and
/// runs copies through every page of it; the vGPU then holds at most [`PIN_CACHE`] pages, and
/// unmapping the buffer releases those of the buffer. Hands back the vGPU, still open.
pub fn pins(gpu: &str, uuid: &str, path: OpenPath) -> Result<Gpu, String> {
    // What the open vGPUs hold before this one is opened.
    let others = pinned_pages(gpu)?;
    let pat = pattern(PIN_LEN, 19);
    let mut buf = Mmap::anonymous(PIN_LEN).map_err(es)?;
    buf.as_mut_slice().copy_from_slice(&pat);
    // Declared after the buffer, so dropped (closed, every DMA mapping gone) before it.
    let mut g = Gpu::open(uuid, path)?;
    ensure(g.fb_size >= WINDOW, || format!("the framebuffer ({:#x} bytes) is smaller than a window", g.fb_size))?;
    g.setup_ring()?;
    g.clear()?;
    g.dev.map_dma(&buf, PIN_IOVA).map_err(|e| format!("map the buffer at {PIN_IOVA:#x}: {e}"))?;
    let copied = round_trip(&mut g, &mut buf, &pat);
    let in_use = pinned_pages(gpu)?;
    let unmapped = g.dev.unmap_dma(PIN_IOVA, PIN_LEN as u64);
    let after = pinned_pages(gpu)?;
    // This vGPU's share, with the buffer and after its unmap: what it holds then is of its ring
    // buffer (ring and fence scratch), the only other guest memory its commands used.
    let (held, kept) = (in_use.saturating_sub(others), after.saturating_sub(others));
    let released = in_use.saturating_sub(after);
    let ring_pages = (RING_BUF / PAGE) as u64;
    println!(
        "# pins: {} pages touched; this vGPU held {held} (nvidia/pinned_pages {in_use}, {others} of the other vGPU), the unmap released {released}, {kept} left",
        PIN_LEN / PAGE
    );
    all(vec![
        ("copies through every page".into(), copied),
        (
            "pin cache".into(),
            ensure(held <= PIN_CACHE, || {
                format!("this vGPU holds {held} pages pinned, more than the cache's {PIN_CACHE} (nvidia/pinned_pages {in_use}, {others} before it was opened)")
            }),
        ),
        (
            "unmap".into(),
            match unmapped {
                Ok(n) => ensure(n == PIN_LEN as u64, || format!("unmapped {n:#x} bytes of {PIN_LEN:#x}")),
                Err(e) => Err(format!("unmap failed: {e}")),
            },
        ),
        (
            "pages released by the unmap".into(),
            ensure(released > 0 && after >= others && kept <= ring_pages, || {
                format!("nvidia/pinned_pages {in_use} with the buffer, {after} after its unmap ({others} of the other vGPU): this vGPU still holds {kept}, more than its ring buffer's {ring_pages} pages, or the unmap released nothing")
            }),
        ),
    ])
    .map(|()| g)
}

/// Where [`remap_storm`]'s buffer lives.
const STORM_IOVA: u64 = 0x5000_0000;
const STORM_LEN: usize = 1 << 20;
/// How long the storm lasts.
const STORM: std::time::Duration = std::time::Duration::from_secs(4);

/// Result 20: the buffer a ring of copies reads is unmapped and mapped again, over and over,
/// while the engine runs the ring again and again (a regression test: type1 stops the kernel
/// with `BUG_ON` when the driver pins pages again while an unmap waits for them to go). The host
/// survives, each command completes or fails with `DMA_FAULT`, and afterwards the buffer is
/// released and the engine works. Opens `uuid` itself (closed on entry and on return).
pub fn remap_storm(gpu: &str, uuid: &str, path: OpenPath) -> Result<(), String> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    use std::time::{Duration, Instant};
    let others = pinned_pages(gpu)?;
    let mut buf = Mmap::anonymous(STORM_LEN).map_err(es)?;
    buf.as_mut_slice().copy_from_slice(&pattern(STORM_LEN, 20));
    let mut g = Gpu::open(uuid, path)?;
    g.setup_ring()?;
    g.clear()?;
    g.dev.map_dma(&buf, STORM_IOVA).map_err(|e| format!("map the buffer at {STORM_IOVA:#x}: {e}"))?;
    // One pass: 256 copies of a 64 KiB piece of the buffer each (16 pages), then a fence.
    let mut cmds: Vec<Cmd> =
        (0..256u64).map(|i| Cmd::copy_to_fb(STORM_IOVA + ((i % 16) << 16), 4096, 0, 4096, 4096, 16)).collect();
    cmds.push(Cmd::fence(Gpu::scratch_iova(0x500), 0x2020));
    g.submit(&cmds)?;
    let (stop, remaps, failed_maps) = (AtomicBool::new(false), AtomicU64::new(0), AtomicU64::new(0));
    let (mut passes, mut faulted) = (0u64, 0u64);
    let t = Instant::now();
    let run: Result<(), String> = std::thread::scope(|s| {
        let (dev, buf) = (&g.dev, &buf);
        s.spawn(|| {
            while !stop.load(Relaxed) {
                let _ = dev.unmap_dma(STORM_IOVA, STORM_LEN as u64);
                if dev.map_dma(buf, STORM_IOVA).is_err() {
                    failed_maps.fetch_add(1, Relaxed);
                }
                remaps.fetch_add(1, Relaxed);
            }
        });
        let r = (|| {
            while t.elapsed() < STORM {
                g.wait_idle(Duration::from_secs(60))?;
                passes += 1;
                if g.reg(REG_ERROR)? != ERR_NONE {
                    faulted += 1;
                    let e = g.reg(REG_ERROR)?;
                    ensure(e == ERR_DMA_FAULT, || format!("ERROR {e} (want {ERR_DMA_FAULT} or none)"))?;
                    g.set_reg(REG_ERROR, 0)?;
                }
                // The same pass again: RING_SIZE resets HEAD and TAIL, the doorbell runs it.
                g.set_reg(REG_RING_SIZE, RING_SIZE)?;
                g.doorbell()?;
            }
            g.wait_idle(Duration::from_secs(60))
        })();
        stop.store(true, Relaxed);
        r
    });
    let (remaps, failed_maps) = (remaps.into_inner(), failed_maps.into_inner());
    println!("# remap storm: {passes} passes of 256 copies ({faulted} with a DMA fault), {remaps} unmap+map cycles ({failed_maps} maps failed)");
    // Mapped or not now: unmap it for good; then the engine must work and the buffer be released.
    let _ = g.dev.unmap_dma(STORM_IOVA, STORM_LEN as u64);
    g.set_reg(REG_ERROR, 0)?;
    let after = (|| {
        g.restart_ring()?;
        g.run(&[Cmd::fill(0, 64, 64, 1, 0x3131_3131), Cmd::fence(Gpu::scratch_iova(0x500), 0x2121)])?;
        let (err, mem) = (g.reg(REG_ERROR)?, g.scratch(0x500)?);
        ensure(err == ERR_NONE && mem == 0x2121, || format!("ERROR {err}, fence {mem:#x}"))
    })();
    let kept = pinned_pages(gpu)?.saturating_sub(others);
    let ring_pages = (RING_BUF / PAGE) as u64;
    all(vec![
        ("the storm".into(), run),
        ("it raced".into(), ensure(remaps >= 10 && passes >= 2, || format!("{remaps} remaps, {passes} passes"))),
        ("maps".into(), ensure(failed_maps == 0, || format!("{failed_maps} maps failed"))),
        ("a command afterwards".into(), after),
        (
            "released".into(),
            ensure(kept <= ring_pages, || {
                format!("this vGPU still holds {kept} pages, more than its ring buffer's {ring_pages}")
            }),
        ),
    ])
}
