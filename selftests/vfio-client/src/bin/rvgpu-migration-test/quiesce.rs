// SPDX-License-Identifier: GPL-2.0
//! Result 3: STOP (and STOP_COPY) quiesce the device: a doorbell rung in STOP runs nothing, no
//! interrupt is signalled, VBLANK_COUNT stands still; config space and registers still answer.
//! Back in RUNNING the remembered doorbell runs.

use std::time::Duration;

use vfio_client::harness::{drain, quiet, wait_for, Gpu, IDLE_TIMEOUT, IRQ_WAIT_MS, QUIET_MS};
use vfio_client::rvgpu::*;
use vfio_client::tap::{all, ensure};
use vfio_client::{DeviceState, EventFd};

use crate::gpu::{sysfs_state_is, MigrationGpu};
use crate::mig::{recover, set, set_fd, set_nofd};

/// Waits up to 2 s for VBLANK_COUNT to pass `from`.
fn vblank_advances(g: &Gpu, what: &str) -> Result<(), String> {
    let from = g.reg(REG_VBLANK_COUNT)?;
    let moved = wait_for(Duration::from_secs(2), || Ok(g.reg(REG_VBLANK_COUNT)? != from))?;
    ensure(moved, || format!("{what}: VBLANK_COUNT stays at {from} for 2 s with VBLANK enabled"))
}

pub fn stop_quiesces(g: &mut Gpu, msi: &EventFd) -> Result<(), String> {
    recover(g)?;
    g.setup_ring()?;
    g.clear()?;
    g.msi_on(msi)?;
    g.set_reg(REG_IRQ_ENABLE, IRQ_COMPLETION | IRQ_VBLANK)?;
    let r = quiesced(g, msi);
    let _ = recover(g);
    let back = g.set_reg(REG_IRQ_ENABLE, 0).and_then(|()| g.clear()).and_then(|()| g.msi_off());
    drain(msi)?;
    r.and(back)
}

fn quiesced(g: &mut Gpu, msi: &EventFd) -> Result<(), String> {
    vblank_advances(g, "RUNNING")?;
    g.fence_works(0, 0x3000_0001)?;
    g.clear()?;
    set_nofd(g, DeviceState::Stop)?;
    // Whatever was signalled before STOP returned is in the count now.
    drain(msi)?;
    let (v0, c0, h0, st0) =
        (g.reg(REG_VBLANK_COUNT)?, g.reg(REG_COMPLETED)?, g.reg(REG_RING_HEAD)?, g.reg(REG_IRQ_STATUS)?);
    g.set_scratch(0x10, 0)?;
    g.submit(&[Cmd::fence(Gpu::scratch_iova(0x10), 0x3000_0002)])?;
    let mut checks = vec![("interrupts in STOP".to_string(), quiet(msi, QUIET_MS, "STOP, a FENCE rung, VBLANK on"))];
    let (v1, c1, h1, st1, t1) = (
        g.reg(REG_VBLANK_COUNT)?,
        g.reg(REG_COMPLETED)?,
        g.reg(REG_RING_HEAD)?,
        g.reg(REG_IRQ_STATUS)?,
        g.reg(REG_RING_TAIL)?,
    );
    let mem = g.scratch(0x10)?;
    checks.push((
        "the engine in STOP".into(),
        ensure(v1 == v0 && c1 == c0 && h1 == h0 && mem == 0 && st1 == st0, || {
            format!(
                "{}ms after the doorbell: VBLANK_COUNT {v0} -> {v1}, COMPLETED {c0} -> {c1}, HEAD {h0:#x} -> {h1:#x}, STATUS {st0:#x} -> {st1:#x}, fence memory {mem:#x}",
                QUIET_MS
            )
        }),
    ));
    checks.push((
        "TAIL written in STOP".into(),
        ensure(t1 == g.tail, || format!("TAIL reads {t1:#x}, {:#x} was written", g.tail)),
    ));
    checks.push(("config space in STOP".into(), config_works(g)));
    checks.push(("nvidia/migration in STOP".into(), sysfs_state_is(&g.uuid, DeviceState::Stop)));
    // STOP_COPY: the same (nothing but the data fd is touched there but register reads).
    let r = (|| {
        let _fd = set_fd(g, DeviceState::StopCopy)?;
        let v = g.reg(REG_VBLANK_COUNT)?;
        quiet(msi, QUIET_MS, "STOP_COPY")?;
        let (v2, c2) = (g.reg(REG_VBLANK_COUNT)?, g.reg(REG_COMPLETED)?);
        ensure(v2 == v && c2 == c0, || format!("STOP_COPY: VBLANK_COUNT {v} -> {v2}, COMPLETED {c0} -> {c2}"))?;
        set_nofd(g, DeviceState::Stop)
    })();
    checks.push(("STOP_COPY".into(), r));
    // RUNNING again: the doorbell written in STOP runs, interrupts and vblanks come again.
    let r = (|| {
        set(g, DeviceState::Running)?;
        g.wait_idle(IDLE_TIMEOUT)?;
        let signalled = msi.wait(IRQ_WAIT_MS).map_err(|e| format!("poll: {e}"))?;
        let (mem, c, st) = (g.scratch(0x10)?, g.reg(REG_COMPLETED)?, g.reg(REG_IRQ_STATUS)?);
        ensure(mem == 0x3000_0002 && c == c0.wrapping_add(1) && st & IRQ_COMPLETION != 0 && signalled, || {
            format!(
                "back in RUNNING: fence memory {mem:#x}, COMPLETED {c0} -> {c}, STATUS {st:#x}, interrupt {signalled}"
            )
        })?;
        vblank_advances(g, "RUNNING again")
    })();
    checks.push(("RUNNING again".into(), r));
    all(checks)
}

/// Configuration space reads and writes in STOP: the IDs, and the interrupt line written and
/// read back (then restored).
fn config_works(g: &Gpu) -> Result<(), String> {
    let ids = g.cfg_bytes(0, 4)?;
    ensure(ids == [0x34, 0x12, 0x11, 0x11], || format!("vendor/device read {ids:02x?}"))?;
    let line = g.cfg_bytes(0x3c, 1)?[0];
    g.cfg_write(0x3c, &[0x0b])?;
    let got = g.cfg_bytes(0x3c, 1)?[0];
    g.cfg_write(0x3c, &[line])?;
    ensure(got == 0x0b, || format!("interrupt line reads {got:#x} after writing 0xb"))
}
