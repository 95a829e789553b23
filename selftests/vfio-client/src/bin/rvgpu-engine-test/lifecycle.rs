// SPDX-License-Identifier: GPL-2.0
//! Results 14-18: unmapping under queued commands, two vGPUs at once, VBLANK, closing with work
//! in flight and closing while the vblank timer runs.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use vfio_client::harness::{drain, efd_signalled, Gpu, DATA_IOVA, IDLE_TIMEOUT, IRQ_WAIT_MS, RING_SIZE};
use vfio_client::rvgpu::*;
use vfio_client::tap::{all, ensure, es};
use vfio_client::{EventFd, Mmap, OpenPath};

use crate::gpu::{fb_is, EngineGpu};
use crate::{pattern, VICTIM_IOVA, VICTIM_LEN};

// ----- 14: unmap under queued commands ------------------------------------------------------------

pub fn unmap_race(g: &mut Gpu, msi: &EventFd) -> Result<(), String> {
    const N: usize = 1000;
    let mut victim = Mmap::anonymous(VICTIM_LEN).map_err(es)?;
    victim.write_bytes(0, &pattern(VICTIM_LEN, 5)).map_err(es)?;
    g.settle()?;
    g.dev.map_dma(&victim, VICTIM_IOVA).map_err(|e| format!("map victim: {e}"))?;
    g.set_reg(REG_IRQ_ENABLE, IRQ_ERROR)?;
    g.clear()?;
    drain(msi)?;
    g.set_scratch(0x400, 0)?;
    let mut cmds: Vec<Cmd> = (0..N)
        .map(|i| Cmd::copy_to_fb(VICTIM_IOVA + ((i % 16) << 16) as u64, 4096, 0x60_0000, 4096, 4096, 16))
        .collect();
    cmds.push(Cmd::fence(Gpu::scratch_iova(0x400), 0x5151));
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
        g.run(&[Cmd::fill(0x60_0000, 64, 64, 1, 0x7777_7777), Cmd::fence(Gpu::scratch_iova(0x400), 0x5252)])?;
        let (err, mem) = (g.reg(REG_ERROR)?, g.scratch(0x400)?);
        ensure(err == ERR_NONE && mem == 0x5252, || format!("ERROR {err}, fence {mem:#x}"))?;
        fb_is(g, 0x60_0000, 64, 0x77, "FILL after the unmap")
    })();
    checks.push(("a new command afterwards".into(), r));
    g.set_reg(REG_IRQ_STATUS, IRQ_ALL)?;
    all(checks)
}

// ----- 15: two vGPUs ---------------------------------------------------------------------------

pub fn two_vgpus(a: &mut Gpu, b: &mut Gpu) -> Result<(), String> {
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
            (0..LINES).map(|l| Cmd::fill((AT + l * STRIDE) as u32, STRIDE as u32, 2048, 1, base | l as u32)).collect();
        cmds.push(Cmd::fence(Gpu::scratch_iova(0x500), base));
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

pub fn vblank(g: &mut Gpu, msi: &EventFd) -> Result<(), String> {
    let fps = g.reg(REG_FRL_FPS)?;
    // A display mode, as a guest has when it cares about vblank: 1024x768x32, enabled.
    let mode = [
        (DISPI_INDEX_ENABLE, 0),
        (DISPI_INDEX_BPP, 32),
        (DISPI_INDEX_XRES, 1024),
        (DISPI_INDEX_YRES, 768),
        (DISPI_INDEX_VIRT_WIDTH, 1024),
        (DISPI_INDEX_X_OFFSET, 0),
        (DISPI_INDEX_Y_OFFSET, 0),
        (DISPI_INDEX_ENABLE, DISPI_ENABLED | DISPI_LFB_ENABLED | DISPI_NOCLEARMEM),
    ];
    for (i, v) in mode {
        g.dev.write_region_all(&g.bar2, MMIO_DISPI + 2 * i, &v.to_le_bytes()).map_err(|e| format!("DISPI {i}: {e}"))?;
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

pub fn close_in_flight(mut g: Gpu, uuid: &str, path: OpenPath) -> Result<Gpu, String> {
    const N: usize = 1000;
    g.set_reg(REG_IRQ_ENABLE, IRQ_COMPLETION | IRQ_ERROR)?;
    g.clear()?;
    let cmds: Vec<Cmd> = (0..N)
        .map(|i| Cmd::copy_to_fb(DATA_IOVA + ((i % 32) << 16) as u64, 4096, 0x90_0000, 4096, 4096, 16))
        .chain(std::iter::once(Cmd::fence(Gpu::scratch_iova(0x600), 0x6060)))
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
    g.run(&[Cmd::fill(0x90_0000, 4096, 4096, 4, 0x6666_6666), Cmd::fence(Gpu::scratch_iova(0x600), 0x6161)])?;
    let (err, mem) = (g.reg(REG_ERROR)?, g.scratch(0x600)?);
    ensure(err == ERR_NONE && mem == 0x6161, || format!("after reopen: ERROR {err} fence {mem:#x}"))?;
    fb_is(&g, 0x90_0000, 4 * 4096, 0x66, "FILL after reopen")?;
    Ok(g)
}

// ----- 18: close while the vblank timer runs ---------------------------------------------------

/// How often [`vblank_close`] opens and closes the vGPU.
const VBLANK_CYCLES: u32 = 200;

/// Opens the vGPU `uuid` (closed on entry) [`VBLANK_CYCLES`] times; each time MSI on, VBLANK
/// enabled (which starts the vblank timer), a few FILLs in flight, then closed 0-35 ms later.
/// Afterwards the device opens again and a FENCE completes. Leaves the vGPU closed.
pub fn vblank_close(uuid: &str, path: OpenPath) -> Result<(), String> {
    let msi = EventFd::new().map_err(es)?;
    let cycle = |i: u32| -> Result<(), String> {
        let mut g = Gpu::open(uuid, path)?;
        g.msi_on(&msi)?;
        g.set_reg(REG_IRQ_ENABLE, IRQ_VBLANK)?;
        g.setup_ring()?;
        let fills: Vec<Cmd> = (0..4).map(|l| Cmd::fill(l * 0x4_0000, 4096, 4096, 64, 0x7700_0000 | i)).collect();
        g.submit(&fills)?;
        // 0 to 35 ms: some closes come before the first vblank, some while the timer fires.
        std::thread::sleep(Duration::from_millis(u64::from(i % 8) * 5));
        drop(g);
        Ok(())
    };
    let t = Instant::now();
    let mut cycles = 0;
    let r = (0..VBLANK_CYCLES).try_for_each(|i| {
        cycle(i).map_err(|e| format!("cycle {i}: {e}"))?;
        cycles += 1;
        Ok::<(), String>(())
    });
    let signals = drain(&msi)?;
    println!(
        "# {cycles} of {VBLANK_CYCLES} open/VBLANK/FILL/close cycles ran in {:.2?}; {signals} vblank interrupts signalled",
        t.elapsed()
    );
    r?;
    let mut g = Gpu::open(uuid, path).map_err(|e| format!("open after the cycles: {e}"))?;
    g.setup_ring()?;
    g.fence_works(0x700, 0x7171).map_err(|e| format!("after the cycles: {e}"))
}
