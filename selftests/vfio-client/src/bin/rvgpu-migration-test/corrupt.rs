// SPDX-License-Identifier: GPL-2.0
//! Result 9: bad streams. Each corruption of a good stream of A (`Corruption`, from the
//! library) is written into B: `write()` or `RESUMING -> STOP` refuses it with `EINVAL`, B is
//! then in ERROR, `VFIO_DEVICE_RESET` brings it back to RUNNING at power-on state; at the end the
//! good stream still resumes B into A's state.

use vfio_client::harness::Gpu;
use vfio_client::migration::stream::{Corruption, Stage};
use vfio_client::tap::{all, ensure, es};
use vfio_client::DeviceState;

use crate::gpu::{first_difference, MigrationGpu, Snapshot};
use crate::mig::{get, power_on, recover, reset, resume, save, set, set_fd, set_nofd, SavePath, WRITE_CHUNK};

/// Writes `bad` into B and asks for STOP: what B said at each step.
fn refused(b: &mut Gpu, c: Corruption, good: &[u8]) -> Result<(), String> {
    let bad = c.apply(good)?;
    set_nofd(b, DeviceState::Stop)?;
    let fd = set_fd(b, DeviceState::Resuming)?;
    let write = fd.write_chunks(&bad, WRITE_CHUNK);
    let after_write = get(b)?;
    let stop = b.dev.set_mig_state(DeviceState::Stop).map(drop);
    let after_stop = get(b);
    drop(fd);
    let at = match &write {
        Err((at, e)) => format!("write() at byte {at} ({e})"),
        Ok(()) => "RESUMING -> STOP".into(),
    };
    let expected = match (c.stage(), &write) {
        (Stage::Write, Err(_)) | (Stage::Stop, Ok(())) => "",
        (Stage::Write, Ok(())) => " (the contract has write() refuse it)",
        (Stage::Stop, Err(_)) => " (the contract has only RESUMING -> STOP notice it)",
    };
    println!(
        "# {}: refused at {at}{expected}; after the write {after_write}, after STOP {:?}",
        c.describe(),
        after_stop.as_ref().map(|s| s.name())
    );
    let mut problems = Vec::new();
    if let Err((_, e)) = &write {
        if e.raw_os_error() != Some(libc::EINVAL) {
            problems.push(format!("write() failed with {e}, not EINVAL"));
        }
        if !matches!(after_write, DeviceState::Resuming | DeviceState::Error) {
            problems.push(format!("after the refused write the device is {after_write}"));
        }
    }
    match stop {
        Ok(()) => problems.push("RESUMING -> STOP succeeded".into()),
        Err(e) if e.raw_os_error() != Some(libc::EINVAL) => {
            problems.push(format!("RESUMING -> STOP failed with {e}, not EINVAL"))
        }
        Err(_) => {}
    }
    match after_stop {
        Ok(DeviceState::Error) => {
            // Only a reset leaves ERROR: a state change is EINVAL and changes nothing (and the
            // driver does not ask the core's FSM for an arc out of ERROR, which warns).
            let again = b.dev.set_mig_state(DeviceState::Running).map(drop);
            let still = get(b);
            if again.as_ref().err().and_then(|e| e.raw_os_error()) != Some(libc::EINVAL)
                || still != Ok(DeviceState::Error)
            {
                problems.push(format!("ERROR -> RUNNING gave {again:?}, then the device is {still:?}"));
            }
        }
        other => problems.push(format!("after RESUMING -> STOP the device is {other:?}, not ERROR")),
    }
    ensure(problems.is_empty(), || problems.join("; "))
}

/// Result 9; the good stream, for result 10.
pub fn corrupted_streams(a: &mut Gpu, b: &mut Gpu) -> (Result<(), String>, Option<Vec<u8>>) {
    let prep = (|| {
        recover(a)?;
        recover(b)?;
        let good = save(a, SavePath::StopCopy, None)?;
        let snap = Snapshot::take(a)?;
        set(a, DeviceState::Running)?;
        Ok::<_, String>((good, snap))
    })();
    let (good, snap) = match prep {
        Ok(x) => x,
        Err(e) => return (Err(format!("saving A: {e}")), None),
    };
    let mut checks = Vec::new();
    for c in Corruption::ALL {
        let r = refused(b, c, &good);
        let back = reset(b).and_then(|()| power_on(b));
        checks.push((c.describe().to_string(), r.and(back.map_err(|e| format!("then: {e}")))));
        let _ = recover(b);
    }
    // The good stream after all that.
    let r = (|| {
        resume(b, &good, WRITE_CHUNK)?;
        snap.diff(&Snapshot::take(b).map_err(es)?, "B")?;
        set(b, DeviceState::Running)?;
        if let Some(j) = first_difference(b.fb.as_slice(), a.fb.as_slice()) {
            return Err(format!("B's framebuffer differs from A's at {j:#x}"));
        }
        b.sync_tail()?;
        b.fence_works(0x400, 0x9009_0009)
    })();
    checks.push(("the good stream afterwards".into(), r));
    let _ = recover(b);
    (all(checks), Some(good))
}
