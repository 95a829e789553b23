// SPDX-License-Identifier: GPL-2.0
//! The engine fed random rings and commands: RING_BASE and RING_SIZE programmed (mostly a ring
//! in the mapped ring buffer, of a power-of-two size of 4 KiB to 1 MiB; sometimes garbage),
//! random 32-byte commands (often near-valid: rectangles inside the framebuffer, copies from and
//! into the data buffer, fences into the scratch area; sometimes into unmapped space), doorbells
//! (right and wrong), interrupt and error registers; while a helper thread maps and unmaps the
//! data buffer under the engine (`VFIO_IOMMU_MAP_DMA`/`UNMAP_DMA` or `IOMMU_IOAS_MAP`/`UNMAP`,
//! whichever path the vGPU was opened on).
//!
//! Only the ring and data buffers (and never anything beyond them) are ever mapped for DMA, so
//! whatever the engine writes lands in memory nothing else of ours lives in.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use vfio_client::rvgpu::*;
use vfio_client::{Device, DeviceState, Mmap};

use crate::shared::{Fam, Rng, Slot};
use crate::worker::{Worker, DATA_IOVA, DATA_LEN, PAGE, RING_AREA, RING_BUF, RING_IOVA, UNMAPPED_IOVA};

/// The scratch area of the ring buffer (after the ring area), as an IOVA.
const SCRATCH_IOVA: u64 = RING_IOVA + RING_AREA as u64;
const SCRATCH_LEN: u64 = (RING_BUF - RING_AREA) as u64;

/// A ring size as the device takes it (a power of two, 4 KiB..1 MiB).
fn valid_size(s: u32) -> bool {
    s.is_power_of_two() && (RING_MIN_SIZE..=RING_MAX_SIZE).contains(&s)
}

/// What the worker believes of the ring.
struct Ring {
    size: u32,
    tail: u32,
    /// Where in the ring buffer the ring lies (None: its base is elsewhere).
    at: Option<usize>,
}

impl Ring {
    fn from_base(base: u64, size: u32, tail: u32) -> Ring {
        let end = RING_IOVA + (RING_BUF - RING_MAX_SIZE as usize) as u64;
        let at = (base >= RING_IOVA && base <= end).then(|| (base - RING_IOVA) as usize);
        Ring { size, tail, at }
    }
}

/// An IOVA for a copy of `len` bytes: mostly in the data buffer (which may be unmapped at that
/// moment), or the scratch area, or across an end, or nowhere.
fn copy_iova(rng: &Rng, len: u64) -> u64 {
    match rng.below(10) {
        0..=5 => DATA_IOVA + rng.below((DATA_LEN as u64).saturating_sub(len).max(1)),
        6 => SCRATCH_IOVA + rng.below(SCRATCH_LEN.saturating_sub(len).max(1)),
        7 => DATA_IOVA + DATA_LEN as u64 - len / 2,
        8 => UNMAPPED_IOVA + rng.below(1 << 20),
        _ => rng.u64(),
    }
}

/// A framebuffer rectangle `(offset, stride, width, height)` of about `fb` bytes: mostly
/// inside it, with the alignment `align`.
fn rect(rng: &Rng, fb: u64, align: u64, max_lines: u64) -> (u32, u32, u32, u32) {
    let width = rng.range(1, 1024) * align;
    let stride = if rng.percent(80) { width + rng.below(64) * align } else { rng.pick(&[width, 4096, 16384]) };
    let height = rng.range(1, max_lines);
    let span = (height - 1) * stride.max(width) + width;
    let off =
        if span <= fb && rng.percent(85) { rng.below((fb - span) / align + 1) * align } else { rng.below(fb + 4096) };
    (off as u32, stride as u32, width as u32, height as u32)
}

/// One random command.
fn command(rng: &Rng, fb: u64) -> Cmd {
    let mut c = match rng.below(20) {
        0 => Cmd::nop(),
        1..=5 => {
            let (off, stride, width, height) = rect(rng, fb, 4, 64);
            Cmd::fill(off, stride, width, height, rng.u32())
        }
        6..=12 => {
            let (off, stride, width, height) = rect(rng, fb, rng.pick(&[1, 4]), 32);
            let istride = if rng.percent(80) { width + rng.below(256) as u32 } else { rng.edgy32() };
            let iova = copy_iova(rng, u64::from(istride) * u64::from(height));
            if rng.percent(50) {
                Cmd::copy_to_fb(iova, istride, off, stride, width, height)
            } else {
                Cmd::copy_from_fb(iova, istride, off, stride, width, height)
            }
        }
        13..=15 => {
            let iova = match rng.below(8) {
                0..=4 => SCRATCH_IOVA + rng.below(SCRATCH_LEN / 4) * 4,
                5 => (SCRATCH_IOVA + rng.below(SCRATCH_LEN)) | 1,
                6 => DATA_IOVA + rng.below(DATA_LEN as u64 / 4) * 4,
                _ => copy_iova(rng, 4),
            };
            Cmd::fence(iova, rng.u32())
        }
        16 | 17 => Cmd::wait_vblank(),
        18 => {
            // A long FILL: much of the framebuffer.
            let lines = (fb / 4096).clamp(1, 4096);
            Cmd::fill(0, 4096, 4096, rng.range(1, lines) as u32, rng.u32())
        }
        _ => Cmd { opcode: rng.pick(&[6, 7, rng.u32()]), height: rng.edgy32(), args: [0; 6] },
    };
    // Sometimes one field spoiled.
    match rng.below(12) {
        0 => c.height = rng.edgy32(),
        1 => c.opcode = rng.below(8) as u32,
        2 => {
            let i = rng.below(6) as usize;
            c.args[i] = rng.edgy32();
        }
        3 => {
            for a in c.args.iter_mut() {
                *a = rng.u32();
            }
        }
        _ => {}
    }
    c
}

/// Programs the ring: mostly a valid one in the ring buffer, sometimes garbage.
fn program_ring(rng: &Rng, d: &crate::worker::Dev, sh: &Slot) -> Ring {
    let base = rng.weighted(&[
        (80, RING_IOVA),
        (5, RING_IOVA + rng.below(256) * PAGE),
        (4, DATA_IOVA),
        (3, UNMAPPED_IOVA),
        (3, RING_IOVA + 0x10),
        (4, rng.u64()),
    ]);
    let size = rng.weighted(&[
        (80, RING_MIN_SIZE << rng.below(9)),
        (4, 0),
        (4, rng.edgy32()),
        (3, RING_MIN_SIZE / 2),
        (3, RING_MAX_SIZE * 2),
        (4, RING_MIN_SIZE + 32),
    ]);
    sh.set_op("engine: program the ring");
    d.set_reg(sh, Fam::Engine, REG_RING_BASE_LO, base as u32);
    d.set_reg(sh, Fam::Engine, REG_RING_BASE_HI, (base >> 32) as u32);
    d.set_reg(sh, Fam::Engine, REG_RING_SIZE, size);
    Ring::from_base(base, size, 0)
}

/// The helper thread: maps and unmaps (parts of) the data buffer until told to stop.
fn dma_thread(dev: &Device, data: &mut Mmap, rng: Rng, sh: &Slot, stop: &AtomicBool, mapped: &AtomicBool) {
    let len = DATA_LEN as u64;
    while !stop.load(Ordering::Relaxed) {
        let pages = len / PAGE;
        match rng.below(12) {
            0..=3 => {
                if mapped.load(Ordering::Relaxed) {
                    sh.set_aux("dma: unmap the data buffer");
                    let r = dev.unmap_dma(DATA_IOVA, len);
                    if sh.rec(Fam::Dma, &r) {
                        mapped.store(false, Ordering::Relaxed);
                    }
                } else {
                    sh.set_aux("dma: map the data buffer");
                    let write = rng.percent(90);
                    let r = dev.map_dma_raw(data.addr(), DATA_IOVA, len, true, write);
                    if sh.rec(Fam::Dma, &r) {
                        mapped.store(true, Ordering::Relaxed);
                    }
                }
            }
            4 | 5 => {
                // A part of it (its own pages, at their own IOVAs).
                let a = rng.below(pages);
                let n = rng.range(1, pages - a);
                sh.set_aux("dma: map a part");
                let r = dev.map_dma_raw(data.addr() + a * PAGE, DATA_IOVA + a * PAGE, n * PAGE, true, true);
                sh.rec(Fam::Dma, &r);
            }
            6 | 7 => {
                // Unmap a part, or across the end, or unaligned.
                let a = rng.below(pages);
                let (iova, size) = rng.pick(&[
                    (DATA_IOVA + a * PAGE, rng.range(1, pages - a) * PAGE),
                    (DATA_IOVA + len - PAGE, 2 * PAGE),
                    (DATA_IOVA + 0x10, PAGE),
                    (DATA_IOVA, 0),
                ]);
                sh.set_aux("dma: unmap a part");
                let r = dev.unmap_dma(iova, size);
                if sh.rec(Fam::Dma, &r) && iova == DATA_IOVA && size >= len {
                    mapped.store(false, Ordering::Relaxed);
                }
            }
            8 => {
                // Unmapped and mapped again at once, under a running copy.
                sh.set_aux("dma: remap");
                let r = dev.unmap_dma(DATA_IOVA, len);
                sh.rec(Fam::Dma, &r);
                let r = dev.map_dma(data, DATA_IOVA);
                mapped.store(sh.rec(Fam::Dma, &r), Ordering::Relaxed);
            }
            9 => {
                // Arguments the kernel must refuse: unaligned, empty (never beyond the buffer).
                let (va, iova, size) = rng.pick(&[
                    (data.addr() + 1, DATA_IOVA, PAGE),
                    (data.addr(), DATA_IOVA + 1, PAGE),
                    (data.addr(), DATA_IOVA, 0),
                    (data.addr(), DATA_IOVA, PAGE - 1),
                ]);
                sh.set_aux("dma: bad map");
                let r = dev.map_dma_raw(va, iova, size, true, true);
                sh.rec(Fam::Dma, &r);
            }
            10 => {
                // New content for the copies.
                sh.set_aux("dma: fill the data buffer");
                let off = rng.below(len - 4096) as usize;
                let bytes = rng.bytes(4096);
                let _ = data.write_bytes(off, &bytes);
            }
            _ => {
                sh.set_aux("dma: sleep");
                sleep(Duration::from_micros(rng.below(2000)));
            }
        }
    }
    sh.set_aux("");
}

/// One engine session: a while of commands and register writes, the DMA thread running.
pub fn op(w: &mut Worker) {
    let Worker { dev, ring, data, rng, sh, .. } = w;
    let Some(d) = dev.as_ref() else { return };
    let sh = *sh;
    sh.set_op("engine: sync");
    let fb = d.usable.max(PAGE);
    let size = d.reg(sh, Fam::Engine, REG_RING_SIZE).unwrap_or(0);
    let tail = d.reg(sh, Fam::Engine, REG_RING_TAIL).unwrap_or(0);
    let lo = d.reg(sh, Fam::Engine, REG_RING_BASE_LO).unwrap_or(0);
    let hi = d.reg(sh, Fam::Engine, REG_RING_BASE_HI).unwrap_or(0);
    let mut r = Ring::from_base(u64::from(hi) << 32 | u64::from(lo), size, tail);
    if rng.percent(40) {
        sh.set_op("engine: enable");
        d.enable(sh, Fam::Engine);
    }
    if rng.percent(30) {
        sh.set_op("engine: RUNNING");
        let s = d.dev.mig_state();
        if !matches!(s, Ok(DeviceState::Running)) {
            let r = d.dev.set_mig_state(DeviceState::Running);
            if !sh.rec(Fam::Engine, &r) {
                sh.rec(Fam::Engine, &d.dev.reset());
            }
        }
    }
    if !valid_size(r.size) || r.at.is_none() || rng.percent(10) {
        r = program_ring(rng, d, sh);
    }

    let dur = Duration::from_millis(rng.range(5, 50));
    let helper = rng.split();
    let stop = AtomicBool::new(false);
    let dev_ref = &d.dev;
    let mapped = &d.data_mapped;
    let data: &mut Mmap = data;
    std::thread::scope(|s| {
        let stop = &stop;
        s.spawn(move || dma_thread(dev_ref, data, helper, sh, stop, mapped));
        let t = Instant::now();
        while t.elapsed() < dur {
            step(rng, d, sh, ring, &mut r, fb);
        }
        stop.store(true, Ordering::Relaxed);
        sh.set_op("engine: joining the DMA thread");
    });
}

/// One thing done to the engine.
fn step(rng: &Rng, d: &crate::worker::Dev, sh: &Slot, ring: &mut Mmap, r: &mut Ring, fb: u64) {
    match rng.below(100) {
        0..=59 => {
            sh.set_op("engine: commands");
            let cap = if valid_size(r.size) { r.size / CMD_SIZE - 1 } else { 16 };
            let n = if rng.percent(95) { rng.range(1, 16) as u32 } else { rng.range(1, u64::from(cap.max(1))) as u32 };
            let modulo = if valid_size(r.size) { r.size } else { RING_MAX_SIZE };
            for _ in 0..n {
                let c = command(rng, fb);
                if let Some(at) = r.at {
                    let off = at + r.tail as usize;
                    if off + CMD_SIZE as usize <= RING_BUF {
                        let _ = ring.write_bytes(off, &c.to_bytes());
                    }
                }
                r.tail = (r.tail.wrapping_add(CMD_SIZE)) % modulo;
            }
            sh.set_op("engine: doorbell");
            std::sync::atomic::fence(Ordering::SeqCst);
            d.set_reg(sh, Fam::Engine, REG_RING_TAIL, r.tail);
        }
        60..=67 => *r = program_ring(rng, d, sh),
        68..=72 => {
            sh.set_op("engine: bad doorbell");
            let t = rng.pick(&[r.size, r.size.wrapping_add(32), 1, 31, u32::MAX, rng.u32(), r.tail.wrapping_add(16)]);
            d.set_reg(sh, Fam::Engine, REG_RING_TAIL, t);
        }
        73..=80 => {
            sh.set_op("engine: interrupt registers");
            let en = rng.pick(&[0, IRQ_ALL, IRQ_COMPLETION, IRQ_ERROR, IRQ_VBLANK, rng.u32()]);
            d.set_reg(sh, Fam::Engine, REG_IRQ_ENABLE, en);
            d.set_reg(sh, Fam::Engine, REG_IRQ_STATUS, rng.pick(&[IRQ_ALL, 0, rng.u32()]));
            d.set_reg(sh, Fam::Engine, REG_ERROR, rng.pick(&[0, rng.u32()]));
        }
        81..=88 => {
            sh.set_op("engine: read registers");
            for off in [REG_RING_HEAD, REG_COMPLETED, REG_ERROR, REG_ERROR_HEAD, REG_ENGINE_STATUS, REG_FENCE] {
                d.reg(sh, Fam::Engine, off);
            }
            d.reg(sh, Fam::Engine, REG_VBLANK_COUNT);
        }
        89..=92 => {
            // Any engine register, any value; sometimes a width the engine refuses.
            sh.set_op("engine: random register");
            let off = MMIO_ENGINE + rng.below(MMIO_ENGINE_SIZE / 4) * 4;
            let v = rng.edgy32().to_le_bytes();
            let (off, len) = rng.weighted(&[(8, (off, 4)), (1, (off, 2)), (1, (off + 1, 1)), (1, (off + 2, 2))]);
            let res = d.dev.pwrite(d.base(REGION_BAR2) + off, &v[..len]);
            sh.rec(Fam::Engine, &res);
            if off == REG_RING_SIZE || off == REG_RING_BASE_LO || off == REG_RING_BASE_HI {
                r.at = None;
            }
        }
        93 | 94 => {
            // Stop the engine, then a fresh ring.
            sh.set_op("engine: stop and restart");
            d.set_reg(sh, Fam::Engine, REG_RING_SIZE, 0);
            sleep(Duration::from_millis(1));
            let size = RING_MIN_SIZE << rng.below(9);
            d.setup_ring(sh, Fam::Engine, size);
            *r = Ring { size, tail: 0, at: Some(0) };
        }
        _ => {
            sh.set_op("engine: sleep");
            sleep(Duration::from_micros(rng.below(3000)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_mostly_fit_the_framebuffer() {
        for fb in [PAGE, 13 << 20, 500 << 20] {
            let rng = Rng::new(fb);
            let mut inside = 0;
            let mut fills = 0;
            for _ in 0..5000 {
                let c = command(&rng, fb);
                if c.opcode == CMD_FILL {
                    fills += 1;
                    let (off, stride, width) = (u64::from(c.args[0]), u64::from(c.args[1]), u64::from(c.args[2]));
                    let h = u64::from(c.height);
                    if h > 0 && off + (h - 1) * stride + width <= fb && width % 4 == 0 {
                        inside += 1;
                    }
                }
            }
            assert!(fills > 500, "fb {fb}: {fills} fills");
            if fb > PAGE {
                assert!(inside * 2 > fills, "fb {fb}: {inside} of {fills} fills inside");
            }
        }
        assert!(valid_size(RING_MIN_SIZE) && valid_size(RING_MAX_SIZE) && !valid_size(RING_MAX_SIZE * 2));
        assert!(!valid_size(0) && !valid_size(RING_MIN_SIZE + 32));
    }
}
