// SPDX-License-Identifier: GPL-2.0
//! Results 6-8: migrations from one vGPU to the other. Idle (everything the VM sees arrives),
//! with commands queued (the destination runs them), and back and forth four times (the
//! framebuffer, changes made during PRE_COPY included, each hop).

use std::time::Duration;

use vfio_client::harness::{wait_for, Gpu, IDLE_TIMEOUT, RING_IOVA, RING_SIZE};
use vfio_client::migration::stream;
use vfio_client::rvgpu::*;
use vfio_client::tap::{all, ensure};
use vfio_client::DeviceState;

use crate::gpu::{first_difference, read_params, sysfs_state_is, MigrationGpu, Snapshot};
use crate::mig::{recover, resume, save, set, set_nofd, SavePath, WRITE_CHUNK};
use crate::PARAMS_A;

// ----- 6: idle ---------------------------------------------------------------------------------

const SEED_IDLE: u64 = 6;

/// Gives `g` a state in which every register a migration carries is away from power-on.
fn prepare(g: &mut Gpu) -> Result<(), String> {
    g.setup_ring()?;
    g.clear()?;
    g.set_reg(REG_IRQ_ENABLE, 0)?;
    // COMPLETED, FENCE, ERROR and ERROR_HEAD set; COMPLETION and ERROR pending.
    let bad = Cmd { opcode: 0x77, ..Cmd::nop() };
    g.run(&[Cmd::nop(), Cmd::fence(Gpu::scratch_iova(0), 0x6006_0001), bad, Cmd::nop()])?;
    let err = g.reg(REG_ERROR)?;
    ensure(err == ERR_BAD_OPCODE, || format!("ERROR {err} after a bad opcode"))?;
    // VBLANK_COUNT away from 0: the timer on for a while, then off.
    g.set_reg(REG_IRQ_ENABLE, IRQ_VBLANK)?;
    let counted = wait_for(Duration::from_secs(2), || Ok(g.reg(REG_VBLANK_COUNT)? >= 3))?;
    ensure(counted, || format!("VBLANK_COUNT {} after 2 s with VBLANK enabled", g.reg(REG_VBLANK_COUNT).unwrap_or(0)))?;
    g.set_reg(REG_IRQ_ENABLE, IRQ_COMPLETION | IRQ_ERROR)?;
    std::thread::sleep(Duration::from_millis(100));
    // The display as bochs-drm sets it (without NOCLEARMEM), and QEMU's byte order register.
    let dispi = [
        (DISPI_INDEX_ID, 0xb0c4),
        (DISPI_INDEX_XRES, 1024),
        (DISPI_INDEX_YRES, 768),
        (DISPI_INDEX_BPP, 32),
        (DISPI_INDEX_BANK, 3),
        (DISPI_INDEX_VIRT_WIDTH, 1024),
        (DISPI_INDEX_ENABLE, DISPI_ENABLED | DISPI_LFB_ENABLED),
        (DISPI_INDEX_X_OFFSET, 0),
        (DISPI_INDEX_Y_OFFSET, 8),
    ];
    for (i, v) in dispi {
        g.set_dispi(i, v)?;
    }
    g.set_reg(MMIO_QEXT_BYTEORDER, BYTEORDER_BE)?;
    // Configuration space: the BARs placed, an interrupt line, MSI address and data (MSI off).
    g.cfg_write(0x10, &0xd000_0000u32.to_le_bytes())?;
    g.cfg_write(0x18, &0xfebf_0000u32.to_le_bytes())?;
    g.cfg_write(0x3c, &[10])?;
    g.cfg_write(MSI_CAP + 4, &0xfee0_1000u32.to_le_bytes())?;
    g.cfg_write(MSI_CAP + 12, &0x4025u16.to_le_bytes())?;
    // The framebuffer, all of it, after the display was enabled (which cleared what it shows).
    g.fb_pattern(0, g.fb_size, SEED_IDLE);
    Ok(())
}

fn params_carried(from: &Gpu, to: &Gpu) -> Result<(), String> {
    let (a, b) = (read_params(&from.uuid)?, read_params(&to.uuid)?);
    ensure(a == b && a == PARAMS_A, || format!("vgpu_params: the source has {a:?}, the destination {b:?}"))
}

pub fn idle(a: &mut Gpu, b: &mut Gpu) -> Result<(), String> {
    recover(a)?;
    recover(b)?;
    prepare(a)?;
    b.fb_fill(0, b.fb_size, 0xee);
    let bytes = save(a, SavePath::PreCopyP2p, None)?;
    let sa = Snapshot::take(a)?;
    let r = (|| {
        resume(b, &bytes, WRITE_CHUNK)?;
        let mut checks = vec![("B in STOP".to_string(), sa.diff(&Snapshot::take(b)?, "B in STOP"))];
        set(b, DeviceState::Running)?;
        checks.push(("B in RUNNING".into(), sa.diff(&Snapshot::take(b)?, "B in RUNNING")));
        checks.push(("the framebuffer".into(), b.fb_has_pattern(0, b.fb_size, SEED_IDLE, "B")));
        checks.push(("vgpu_params".into(), params_carried(a, b)));
        checks.push(("nvidia/migration".into(), sysfs_state_is(&b.uuid, DeviceState::Running)));
        all(checks)
    })();
    let back = set(a, DeviceState::Running).map(drop);
    r.and(back)
}

// ----- 7: commands queued ------------------------------------------------------------------

const AT: u32 = 0x40_0000;
const FILLS: u32 = 24;
const RUN_FIRST: u32 = 4;

fn fill(k: u32) -> Cmd {
    Cmd::fill(AT + k * 0x1_0000, 4096, 4096, 16, 0x7a00_0000 | k)
}

/// Whether FILL `k` is in `g`'s framebuffer.
fn filled(g: &Gpu, k: u32) -> bool {
    let want: Vec<u8> = (0x7a00_0000 | k).to_le_bytes().iter().copied().cycle().take(4096).collect();
    let fb = g.fb.as_slice();
    (0..16).all(|l| {
        let at = (AT + k * 0x1_0000) as usize + l * 4096;
        fb[at..at + 4096] == want[..]
    })
}

pub fn ring_midway(a: &mut Gpu, b: &mut Gpu) -> Result<(), String> {
    recover(a)?;
    recover(b)?;
    a.setup_ring()?;
    a.clear()?;
    a.fb_fill(AT as usize, (FILLS * 0x1_0000) as usize, 0x11);
    a.run(&(0..RUN_FIRST).map(fill).collect::<Vec<_>>())?;
    let (c0, h0) = (a.reg(REG_COMPLETED)?, a.reg(REG_RING_HEAD)?);
    // Queued in STOP: nothing runs on A.
    set_nofd(a, DeviceState::Stop)?;
    a.set_scratch(0x100, 0)?;
    let mut queued: Vec<Cmd> = (RUN_FIRST..FILLS).map(fill).collect();
    queued.push(Cmd::fence(Gpu::scratch_iova(0x100), 0xf00d_0007));
    a.submit(&queued)?;
    std::thread::sleep(Duration::from_millis(50));
    let (h1, c1, t1) = (a.reg(REG_RING_HEAD)?, a.reg(REG_COMPLETED)?, a.reg(REG_RING_TAIL)?);
    ensure(h1 == h0 && c1 == c0 && t1 == a.tail, || {
        format!("A in STOP: HEAD {h0:#x} -> {h1:#x}, COMPLETED {c0} -> {c1}, TAIL {t1:#x} (written {:#x})", a.tail)
    })?;
    let bytes = save(a, SavePath::StopThenStopCopy, None)?;
    let st = stream::parse(&bytes).state().ok_or("no STATE record")?;
    ensure(
        (st.ring_base, st.ring_size, st.ring_head, st.ring_tail, st.completed)
            == (RING_IOVA, RING_SIZE, h0, a.tail, c0),
        || {
            format!(
                "STATE: ring_base {:#x} size {:#x} head {:#x} tail {:#x} completed {}; A has {RING_IOVA:#x} {RING_SIZE:#x} {h0:#x} {:#x} {c0}",
                st.ring_base, st.ring_size, st.ring_head, st.ring_tail, st.completed, a.tail
            )
        },
    )?;
    // The guest memory goes with the VM: B's ring buffer gets A's, at the same IOVA.
    let ring = a.ring.as_slice().to_vec();
    b.ring.as_mut_slice().copy_from_slice(&ring);
    let r = (|| {
        resume(b, &bytes, 4096 + 17)?;
        std::thread::sleep(Duration::from_millis(50));
        let (h, t, c) = (b.reg(REG_RING_HEAD)?, b.reg(REG_RING_TAIL)?, b.reg(REG_COMPLETED)?);
        ensure((h, t, c) == (h0, a.tail, c0), || {
            format!(
                "B in STOP after the resume: HEAD {h:#x} TAIL {t:#x} COMPLETED {c}; A had {h0:#x} {:#x} {c0}",
                a.tail
            )
        })?;
        set(b, DeviceState::Running)?;
        b.tail = a.tail;
        b.wait_idle(IDLE_TIMEOUT)?;
        let (c, f, mem, err) = (b.reg(REG_COMPLETED)?, b.reg(REG_FENCE)?, b.scratch(0x100)?, b.reg(REG_ERROR)?);
        let want = c0.wrapping_add(FILLS - RUN_FIRST + 1);
        ensure(c == want && f == 0xf00d_0007 && mem == 0xf00d_0007 && err == ERR_NONE, || {
            format!("B after running: COMPLETED {c} (want {want}), FENCE {f:#x}, fence memory {mem:#x}, ERROR {err}")
        })?;
        let missing: Vec<u32> = (0..FILLS).filter(|&k| !filled(b, k)).collect();
        ensure(missing.is_empty(), || format!("FILLs {missing:?} are not in B's framebuffer"))?;
        let ran_on_a: Vec<u32> = (RUN_FIRST..FILLS).filter(|&k| filled(a, k)).collect();
        ensure(ran_on_a.is_empty(), || format!("FILLs {ran_on_a:?} ran on A, which is in STOP"))
    })();
    // A, left behind, runs its queue when RUNNING again.
    let back = set(a, DeviceState::Running).and_then(|_| a.wait_idle(IDLE_TIMEOUT));
    r.and(back)
}

// ----- 8: back and forth -------------------------------------------------------------------

/// Writes a pattern through the mmap, in the device and in the model.
fn change_mmap(g: &mut Gpu, model: &mut [u8], off: usize, len: usize, seed: u64) {
    g.fb_pattern(off, len, seed);
    model[off..off + len].copy_from_slice(&g.fb.as_slice()[off..off + len]);
}

/// A FILL of 16 lines of 2 KiB, on the device and in the model.
fn change_fill(g: &mut Gpu, model: &mut [u8], off: usize, value: u32) -> Result<(), String> {
    g.run(&[Cmd::fill(off as u32, 4096, 2048, 16, value)])?;
    for l in 0..16 {
        let line = &mut model[off + l * 4096..off + l * 4096 + 2048];
        for w in line.chunks_exact_mut(4) {
            w.copy_from_slice(&value.to_le_bytes());
        }
    }
    Ok(())
}

/// Where hop `i` changes a framebuffer of `fb` bytes: through the mmap (offset, length), by a
/// FILL, and while in PRE_COPY (mmap, FILL). Page-aligned, apart, within any type's framebuffer.
fn places(fb: usize, i: usize) -> [usize; 5] {
    let unit = (fb / 16) & !0xfff;
    [unit * (1 + i), (fb / 32).min(1 << 20) & !0xfff, unit * 8 + i * 0x2_0000, unit * 12, unit * 12 + 0x2_0000]
}

fn hop(src: &mut Gpu, dst: &mut Gpu, path: SavePath, i: usize, model: &mut [u8]) -> Result<(), String> {
    recover(src)?;
    recover(dst)?;
    src.sync_tail()?;
    let [mm, mm_len, fill, pre_mm, pre_fill] = places(src.fb_size, i);
    change_mmap(src, model, mm, mm_len, 80 + i as u64);
    change_fill(src, model, fill, 0x8800_0000 | i as u32)?;
    let mut during = |g: &mut Gpu| {
        change_mmap(g, model, pre_mm, 0x1_0000, 99);
        change_fill(g, model, pre_fill, 0x9900_0000)
    };
    let hook = if i == 0 { Some(&mut during as &mut dyn FnMut(&mut Gpu) -> Result<(), String>) } else { None };
    let bytes = save(src, path, hook)?;
    let snap = Snapshot::take(src)?;
    let params = read_params(&src.uuid)?;
    let chunk = [WRITE_CHUNK, 64 << 10, (3 << 20) + 1, 1 << 20][i % 4];
    resume(dst, &bytes, chunk)?;
    snap.diff(&Snapshot::take(dst)?, "the destination in STOP")?;
    set(dst, DeviceState::Running)?;
    if let Some(j) = first_difference(dst.fb.as_slice(), model) {
        return Err(format!(
            "the destination's framebuffer differs at {j:#x} (hop 1 changed {pre_mm:#x} and {pre_fill:#x} during PRE_COPY)"
        ));
    }
    let got = read_params(&dst.uuid)?;
    ensure(got == params, || format!("vgpu_params: the source has {params:?}, the destination {got:?}"))?;
    dst.sync_tail()?;
    dst.fence_works(0x300, 0x8000_0000 | i as u32)?;
    set(src, DeviceState::Running).map(drop)
}

pub fn round_trips(a: &mut Gpu, b: &mut Gpu) -> Result<(), String> {
    recover(a)?;
    recover(b)?;
    // What every destination's framebuffer must be: A's now, with each hop's changes.
    let mut model = a.fb.as_slice().to_vec();
    let paths = [SavePath::PreCopyP2p, SavePath::StopCopy, SavePath::PreCopy, SavePath::StopThenStopCopy];
    let mut checks = Vec::new();
    for (i, path) in paths.into_iter().enumerate() {
        let (src, dst, name) = if i % 2 == 0 { (&mut *a, &mut *b, "A -> B") } else { (&mut *b, &mut *a, "B -> A") };
        let r = hop(src, dst, path, i, &mut model);
        let failed = r.is_err();
        checks.push((format!("hop {} {name} ({path:?})", i + 1), r));
        if failed {
            // The model no longer says what either device holds.
            break;
        }
    }
    all(checks)
}
