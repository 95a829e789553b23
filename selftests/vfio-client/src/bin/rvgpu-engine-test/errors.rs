// SPDX-License-Identifier: GPL-2.0
//! Results 9-13: every error code; the command after a failing one still runs.

use std::time::Duration;

use vfio_client::harness::{drain, efd_signalled, wait_for, Gpu, DATA_IOVA, IDLE_TIMEOUT, IRQ_WAIT_MS, RING_SIZE};
use vfio_client::rvgpu::*;
use vfio_client::tap::{all, both, ensure, es};
use vfio_client::{EventFd, Mmap};

use crate::gpu::fb_is;
use crate::{DATA_LEN, HOLE_IOVA, RO_IOVA};

/// Submits `bad` then a FENCE; expects `ERROR == code`, `ERROR_HEAD` at `bad`, the error
/// status and interrupt, and the fence. Leaves the error state cleared.
pub fn expect_error(g: &mut Gpu, msi: &EventFd, bad: &Cmd, code: u32, seq: u32) -> Result<(), String> {
    g.settle()?;
    g.clear()?;
    drain(msi)?;
    g.set_scratch(0x100, 0)?;
    let v = 0xe000_0000 | seq;
    let offs = g.submit(&[*bad, Cmd::fence(Gpu::scratch_iova(0x100), v)])?;
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

pub fn run_cases(g: &mut Gpu, msi: &EventFd, code: u32, cases: Vec<(&str, Cmd)>) -> Result<(), String> {
    let checks = cases
        .into_iter()
        .enumerate()
        .map(|(i, (name, c))| (name.to_string(), expect_error(g, msi, &c, code, (code << 8) | i as u32)))
        .collect();
    all(checks)
}

pub fn bad_opcode(g: &mut Gpu, msi: &EventFd) -> Result<(), String> {
    run_cases(
        g,
        msi,
        ERR_BAD_OPCODE,
        vec![
            ("opcode 6", Cmd { opcode: 6, ..Cmd::nop() }),
            ("opcode 0x100", Cmd { opcode: 0x100, ..Cmd::nop() }),
            ("opcode 0xffffffff", Cmd { opcode: u32::MAX, height: 1, args: [2, 3, 4, 5, 6, 7] }),
        ],
    )
}

pub fn fb_range(g: &mut Gpu, msi: &EventFd) -> Result<(), String> {
    let fb = g.fb_size as u32;
    // The in-range part of the crossing rectangle must stay untouched.
    g.fb_set(g.fb_size - 8192, &[0x33; 8192])?;
    let r = run_cases(
        g,
        msi,
        ERR_FB_RANGE,
        vec![
            ("FILL whose second line is beyond the end", Cmd::fill(fb - 2048, 4096, 1024, 2, 0xdead_beef)),
            ("FILL at the end", Cmd::fill(fb, 4, 4, 1, 1)),
            ("FILL one word past the end", Cmd::fill(fb - 4, 4096, 8, 1, 1)),
            ("FILL offset + width overflows u32", Cmd::fill(0xffff_fffc, 8, 8, 1, 1)),
            ("FILL stride * height overflows u32", Cmd::fill(0, 0x1000_0000, 4, 0x11, 1)),
            ("COPY_TO_FB past the end", Cmd::copy_to_fb(DATA_IOVA, 4096, fb - 100, 4096, 200, 1)),
            ("COPY_TO_FB offset overflows u32", Cmd::copy_to_fb(DATA_IOVA, 4096, 0xffff_ff00, 4096, 0x200, 1)),
            ("COPY_FROM_FB past the end", Cmd::copy_from_fb(DATA_IOVA, 4096, fb - 4096, 4096, 4096, 2)),
        ],
    );
    let untouched = fb_is(g, g.fb_size - 8192, 8192, 0x33, "the in-range part of a failed FILL");
    r.and(untouched)
}

pub fn dma_fault(g: &mut Gpu, msi: &EventFd) -> Result<(), String> {
    let ro = Mmap::anonymous(4096).map_err(es)?;
    g.dev.map_dma_raw(ro.addr(), RO_IOVA, 4096, true, false).map_err(|e| format!("read-only map: {e}"))?;
    let r = run_cases(
        g,
        msi,
        ERR_DMA_FAULT,
        vec![
            ("COPY_TO_FB from an unmapped IOVA", Cmd::copy_to_fb(HOLE_IOVA, 256, 0x50_0000, 256, 256, 1)),
            ("COPY_FROM_FB to an unmapped IOVA", Cmd::copy_from_fb(HOLE_IOVA, 256, 0x50_0000, 256, 256, 1)),
            ("FENCE to an unmapped IOVA", Cmd::fence(HOLE_IOVA, 1)),
            (
                "COPY_TO_FB running off the end of a mapping",
                Cmd::copy_to_fb(DATA_IOVA + DATA_LEN as u64 - 100, 200, 0x50_0000, 200, 200, 1),
            ),
            (
                "COPY_TO_FB with later lines unmapped",
                Cmd::copy_to_fb(DATA_IOVA + DATA_LEN as u64 - 8192, 4096, 0x50_0000, 4096, 4096, 4),
            ),
            ("COPY_FROM_FB into a read-only mapping", Cmd::copy_from_fb(RO_IOVA, 256, 0x50_0000, 256, 256, 1)),
            ("FENCE into a read-only mapping", Cmd::fence(RO_IOVA, 1)),
            ("FENCE at IOVA 2^64 - 4", Cmd::fence(u64::MAX - 3, 1)),
        ],
    );
    // Reading from the read-only mapping is fine.
    let ok = (|| {
        g.clear()?;
        g.run(&[Cmd::copy_to_fb(RO_IOVA, 256, 0x50_0000, 256, 256, 1)])?;
        let err = g.reg(REG_ERROR)?;
        ensure(err == ERR_NONE, || format!("COPY_TO_FB from a read-only mapping: ERROR {err}"))
    })();
    let unmap = g.dev.unmap_dma(RO_IOVA, 4096).map_err(|e| format!("unmap read-only: {e}")).map(drop);
    r.and(ok).and(unmap)
}

/// Computes a bad TAIL from our tail.
type TailFn = fn(u32) -> u32;

pub fn ring_error(g: &mut Gpu, msi: &EventFd) -> Result<(), String> {
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
            g.ring.write_bytes(at as usize, &Cmd::nop().to_bytes()).map_err(es)?;
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
            g.submit(&[Cmd::fence(Gpu::scratch_iova(0x200), v)])?;
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
                g.run(&[Cmd::fence(Gpu::scratch_iova(0x200), v)])?;
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
        g.run(&[Cmd::fence(Gpu::scratch_iova(0x200), 0x4455)])?;
        let mem = g.scratch(0x200)?;
        r.and(ensure(mem == 0x4455, || format!("FENCE on the restored ring: memory {mem:#x}")))
    })();
    checks.push(("ring at an unmapped IOVA".into(), r));
    g.set_reg(REG_IRQ_STATUS, IRQ_ALL)?;
    all(checks)
}

pub fn bad_args(g: &mut Gpu, msi: &EventFd) -> Result<(), String> {
    let s = Gpu::scratch_iova(0x300);
    run_cases(
        g,
        msi,
        ERR_BAD_ARGS,
        vec![
            ("FILL width 0", Cmd::fill(0, 4096, 0, 1, 1)),
            ("FILL height 0", Cmd::fill(0, 4096, 64, 0, 1)),
            ("FILL width 6", Cmd::fill(0, 4096, 6, 1, 1)),
            ("FILL offset 2", Cmd::fill(2, 4096, 64, 1, 1)),
            ("FILL stride 1026", Cmd::fill(0, 1026, 64, 2, 1)),
            ("FILL width 64 > stride 32", Cmd::fill(0, 32, 64, 2, 1)),
            ("COPY_TO_FB width 0", Cmd::copy_to_fb(DATA_IOVA, 4096, 0, 4096, 0, 1)),
            ("COPY_TO_FB height 0", Cmd::copy_to_fb(DATA_IOVA, 4096, 0, 4096, 64, 0)),
            ("COPY_TO_FB width 100 > fb_stride 50", Cmd::copy_to_fb(DATA_IOVA, 4096, 0, 50, 100, 2)),
            ("COPY_FROM_FB width 0", Cmd::copy_from_fb(DATA_IOVA, 4096, 0, 4096, 0, 1)),
            ("COPY_FROM_FB width 100 > fb_stride 50", Cmd::copy_from_fb(DATA_IOVA, 4096, 0, 50, 100, 2)),
            ("FENCE at an unaligned IOVA", Cmd::fence(s + 2, 1)),
            ("FENCE with a height", Cmd { height: 1, ..Cmd::fence(s, 1) }),
            ("NOP with a height", Cmd { height: 3, ..Cmd::nop() }),
        ],
    )
}
