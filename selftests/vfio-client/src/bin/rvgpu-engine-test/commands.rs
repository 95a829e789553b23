// SPDX-License-Identifier: GPL-2.0
//! Results 3-8: the ring, FILL, COPY_TO_FB, COPY_FROM_FB, FENCE with MSI, and a doorbell on an
//! idle GPU running its batch itself.

use std::time::Duration;

use vfio_client::harness::{
    drain, quiet, wait_for, wait_irq, Gpu, DATA_IOVA, IDLE_TIMEOUT, IRQ_WAIT_MS, QUIET_MS, RING_IOVA, RING_SIZE,
};
use vfio_client::rvgpu::*;
use vfio_client::tap::{ensure, es};
use vfio_client::EventFd;

use crate::gpu::fb_is;
use crate::pattern;

pub fn ring_setup(g: &mut Gpu) -> Result<(), String> {
    g.setup_ring()?;
    let (lo, hi, size) = (g.reg(REG_RING_BASE_LO)?, g.reg(REG_RING_BASE_HI)?, g.reg(REG_RING_SIZE)?);
    let (head, tail) = (g.reg(REG_RING_HEAD)?, g.reg(REG_RING_TAIL)?);
    ensure(u64::from(lo) | u64::from(hi) << 32 == RING_IOVA && size == RING_SIZE && head == 0 && tail == 0, || {
        format!("after setup: base {hi:#x}:{lo:#x} size {size:#x} head {head:#x} tail {tail:#x}")
    })?;
    let before = g.reg(REG_COMPLETED)?;
    g.run(&[Cmd::nop(), Cmd::nop(), Cmd::nop()])?;
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
    g.run(&[Cmd::nop()])?;
    let head = g.reg(REG_RING_HEAD)?;
    ensure(head == 32, || format!("after one more NOP: head {head:#x}"))?;
    // Rewriting RING_SIZE while the engine is busy with a long batch: HEAD and TAIL are 0 and stay
    // so; nothing but the command under way completes.
    let cmds: Vec<Cmd> = (0..400).map(|i| Cmd::fill(0x10_0000 + (i % 8) * 0x10_0000, 4096, 4096, 256, i)).collect();
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

pub fn fill_test(g: &mut Gpu) -> Result<(), String> {
    let (off, stride, width, height, value) = (0x10_0040usize, 4096usize, 512usize, 32usize, 0xa5c3_1e0fu32);
    let (lo, hi) = (off - stride, off + (height + 1) * stride);
    g.fb_set(lo, &vec![0x11; hi - lo])?;
    g.run(&[Cmd::fill(off as u32, stride as u32, width as u32, height as u32, value)])?;
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

pub fn copy_to_fb_test(g: &mut Gpu) -> Result<(), String> {
    // An odd-sized, odd-aligned rectangle from odd-strided guest memory, then a 256 KiB one.
    let cases: [(usize, usize, usize, usize, usize, usize); 2] =
        [(0x20_0003, 4096, 1001, 37, 5, 1111), (0x28_0000, 4096, 4096, 64, 0x10_0000, 4096)];
    for (n, &(fb_off, fb_stride, width, height, src, src_stride)) in cases.iter().enumerate() {
        let span = (height - 1) * src_stride + width;
        let pat = pattern(span, 7 + n as u32);
        g.data.write_bytes(src, &pat).map_err(es)?;
        let (lo, hi) = (fb_off - 64, fb_off + (height - 1) * fb_stride + width + 64);
        g.fb_set(lo, &vec![0x22; hi - lo])?;
        g.run(&[Cmd::copy_to_fb(
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

pub fn copy_from_fb_test(g: &mut Gpu) -> Result<(), String> {
    let cases: [(usize, usize, usize, usize, usize, usize); 2] =
        [(0x30_0001, 3000, 1500, 20, 0x20_0007, 2000), (0x38_0000, 4096, 4096, 64, 0x30_0000, 4096)];
    for (n, &(fb_off, fb_stride, width, height, dst, dst_stride)) in cases.iter().enumerate() {
        let fb_span = (height - 1) * fb_stride + width;
        let pat = pattern(fb_span, 99 + n as u32);
        g.fb_set(fb_off, &pat)?;
        let span = (height - 1) * dst_stride + width;
        g.data.write_bytes(dst - 16, &vec![0xee; span + 32]).map_err(es)?;
        g.run(&[Cmd::copy_from_fb(
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

pub fn fence_msi_test(g: &mut Gpu, msi: &EventFd) -> Result<(), String> {
    g.msi_on(msi)?;
    g.set_reg(REG_IRQ_ENABLE, IRQ_COMPLETION)?;
    let en = g.reg(REG_IRQ_ENABLE)?;
    ensure(en == IRQ_COMPLETION, || format!("IRQ_ENABLE reads {en:#x} after writing {IRQ_COMPLETION:#x}"))?;
    g.clear()?;
    drain(msi)?;
    g.set_scratch(0, 0)?;
    let v = 0xfeed_0001;
    g.submit(&[Cmd::fence(Gpu::scratch_iova(0), v)])?;
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
    g.run(&[Cmd::fence(Gpu::scratch_iova(0), v2)])?;
    quiet(msi, QUIET_MS, "FENCE with COMPLETION not enabled")?;
    let (mem, reg) = (g.scratch(0)?, g.reg(REG_FENCE)?);
    ensure(mem == v2 && reg == v2, || format!("second fence: memory {mem:#x} FENCE {reg:#x}, want {v2:#x}"))?;
    // Several fences in one batch: the last value wins, one write each.
    g.set_reg(REG_IRQ_ENABLE, IRQ_COMPLETION)?;
    g.clear()?;
    drain(msi)?;
    let cmds: Vec<Cmd> = (0..8).map(|i| Cmd::fence(Gpu::scratch_iova(4 + 4 * i), 0x100 + i as u32)).collect();
    g.run(&cmds)?;
    wait_irq(msi, IRQ_WAIT_MS, "batch of 8 fences")?;
    let vals = (0..8).map(|i| g.scratch(4 + 4 * i)).collect::<Result<Vec<_>, _>>()?;
    let reg = g.reg(REG_FENCE)?;
    ensure(vals == (0x100..0x108).collect::<Vec<u32>>() && reg == 0x107, || {
        format!("batch: memory {vals:x?} FENCE {reg:#x}")
    })?;
    g.set_reg(REG_IRQ_STATUS, IRQ_ALL)
}

/// A doorbell on an idle GPU runs a small batch itself, in the register write: with the ring and
/// the fence target already pinned, the FENCE has landed (memory, FENCE, COMPLETED, the MSI
/// eventfd) by the time the write returns, every time. A batch that needs a page not pinned yet
/// is left to the scheduler's work item, which completes it.
pub fn doorbell_runs_at_once(g: &mut Gpu, msi: &EventFd) -> Result<(), String> {
    g.msi_on(msi)?;
    g.set_reg(REG_IRQ_ENABLE, IRQ_COMPLETION)?;
    g.clear()?;
    // The first fence pins the ring's and the fence's pages (the work item does that).
    g.run(&[Cmd::fence(Gpu::scratch_iova(0), 1)])?;
    wait_irq(msi, IRQ_WAIT_MS, "the first fence")?;
    g.set_reg(REG_IRQ_STATUS, IRQ_ALL)?;
    const ROUNDS: u32 = 20;
    let mut late = Vec::new();
    for i in 0..ROUNDS {
        std::thread::sleep(Duration::from_millis(2));
        let before = g.reg(REG_COMPLETED)?;
        let v = 0xd00b_0000 + i;
        g.push(&Cmd::fence(Gpu::scratch_iova(0), v))?;
        g.doorbell()?;
        // Nothing waited for: read back at once.
        let (done, reg, head, tail) =
            (g.reg(REG_COMPLETED)?, g.reg(REG_FENCE)?, g.reg(REG_RING_HEAD)?, g.reg(REG_RING_TAIL)?);
        let mem = g.scratch(0)?;
        if done != before.wrapping_add(1) || reg != v || mem != v || head != tail {
            late.push(format!(
                "round {i}: COMPLETED {before} -> {done}, FENCE {reg:#x}, memory {mem:#x} (want {v:#x}), HEAD {head:#x} TAIL {tail:#x}"
            ));
        }
        wait_irq(msi, IRQ_WAIT_MS, "the doorbell's fence")?;
        g.set_reg(REG_IRQ_STATUS, IRQ_ALL)?;
    }
    ensure(late.is_empty(), || {
        format!("{} of {ROUNDS} fences not done when the doorbell write returned: {}", late.len(), late.join("; "))
    })?;
    // A fence into a page of the data buffer not pinned yet: the work item pins it and completes it.
    let far = DATA_IOVA + 0x3f_f000;
    g.run(&[Cmd::fence(far, 0xd00b_f00d)])?;
    wait_irq(msi, IRQ_WAIT_MS, "a fence into a page not pinned yet")?;
    let (reg, err) = (g.reg(REG_FENCE)?, g.reg(REG_ERROR)?);
    ensure(reg == 0xd00b_f00d && err == 0, || {
        format!("fence into a page not pinned yet: FENCE {reg:#x}, ERROR {err:#x}; {}", g.dump())
    })?;
    g.set_reg(REG_IRQ_STATUS, IRQ_ALL)
}
