// SPDX-License-Identifier: GPL-2.0
//! Results 1-2: the migration feature, and the device state machine of `linux/vfio.h` walked
//! arc by arc (table-driven), with combination arcs and illegal targets.

use std::collections::VecDeque;

use vfio_client::harness::Gpu;
use vfio_client::tap::{all, ensure, expect_errno};
use vfio_client::uapi::*;
use vfio_client::{DataFd, DeviceState};

use crate::gpu::sysfs_state_is;
use crate::mig::{expect, get, read_to_end, recover, reset, set, SavePath, WRITE_CHUNK};

use DeviceState::*;

// ----- 1: the feature ---------------------------------------------------------------------------

pub fn feature(g: &Gpu) -> Result<(), String> {
    let want = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY;
    let flags = g.dev.migration_flags();
    let probe = |feature: u32, ops: u32| g.dev.feature_probe(feature, ops).map_err(|e| format!("PROBE: {e}"));
    all(vec![
        (
            "VFIO_DEVICE_FEATURE_MIGRATION GET".into(),
            match flags {
                Ok(f) => ensure(f == want, || format!("flags {f:#x}, expected {want:#x} (STOP_COPY|P2P|PRE_COPY)")),
                Err(e) => Err(e.to_string()),
            },
        ),
        ("the state after open".into(), get(g).and_then(|s| ensure(s == Running, || format!("{s}, not RUNNING")))),
        ("nvidia/migration".into(), sysfs_state_is(&g.uuid, Running)),
        ("DMA_LOGGING_START PROBE (SET)".into(), probe(VFIO_DEVICE_FEATURE_DMA_LOGGING_START, VFIO_DEVICE_FEATURE_SET)),
        (
            "MIG_DEVICE_STATE PROBE (GET|SET)".into(),
            probe(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET),
        ),
        ("MIG_DATA_SIZE PROBE (GET)".into(), probe(VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, VFIO_DEVICE_FEATURE_GET)),
        (
            "MIGRATION SET refused".into(),
            expect_errno(
                "",
                g.dev.feature(VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIGRATION, &mut [0; 8]),
                libc::EINVAL,
            ),
        ),
    ])
}

// ----- 2: the state machine -----------------------------------------------------------------

/// Every arc the uapi defines for STOP_COPY | P2P | PRE_COPY (the others are combinations of
/// these), and whether it begins a data transfer session (returns a new data fd).
const ARCS: [(DeviceState, DeviceState, bool); 15] = [
    (Running, RunningP2p, false),
    (RunningP2p, Running, false),
    (RunningP2p, Stop, false),
    (Stop, RunningP2p, false),
    (Stop, StopCopy, true),
    (StopCopy, Stop, false),
    (Stop, Resuming, true),
    (Resuming, Stop, false),
    (Running, PreCopy, true),
    (PreCopy, Running, false),
    (PreCopy, PreCopyP2p, false),
    (PreCopyP2p, PreCopy, false),
    (PreCopyP2p, RunningP2p, false),
    (PreCopyP2p, StopCopy, false),
    (RunningP2p, PreCopyP2p, true),
];

/// Combination arcs (one SET, split by the core) and whether they end with a new data fd.
const COMBINATIONS: [(DeviceState, DeviceState, bool); 10] = [
    (Running, Stop, false),
    (Stop, Running, false),
    (Running, StopCopy, true),
    (StopCopy, Running, false),
    (Running, PreCopyP2p, true),
    (PreCopyP2p, Stop, false),
    (Stop, PreCopy, true),
    (PreCopy, StopCopy, false),
    (StopCopy, Resuming, true),
    (Resuming, Running, false),
];

/// The shortest path of single arcs from `from` to `to` (not including `from`).
fn path(from: DeviceState, to: DeviceState) -> Vec<DeviceState> {
    let mut prev: Vec<Option<DeviceState>> = vec![None; 8];
    let mut q = VecDeque::from([from]);
    while let Some(s) = q.pop_front() {
        for &(a, b, _) in ARCS.iter().filter(|(a, _, _)| *a == s) {
            if b != from && prev[b.raw() as usize].is_none() {
                prev[b.raw() as usize] = Some(a);
                q.push_back(b);
            }
        }
    }
    let mut steps = Vec::new();
    let mut at = to;
    while at != from {
        steps.push(at);
        match prev[at.raw() as usize] {
            Some(p) => at = p,
            None => return Vec::new(),
        }
    }
    steps.reverse();
    steps
}

/// The device walked through states, holding the current session's data fd.
struct Walker<'a> {
    g: &'a Gpu,
    fd: Option<DataFd>,
    /// A stream of this device, written into every resuming fd so RESUMING can be left.
    stream: &'a [u8],
}

impl Walker<'_> {
    /// SET `to`; checks GET, and the data fd against `opens`; keeps a session's fd.
    fn step(&mut self, to: DeviceState, opens: bool) -> Result<(), String> {
        let from = get(self.g)?;
        let fd = set(self.g, to)?;
        match (fd, opens) {
            (Some(fd), true) => self.fd = Some(fd),
            (None, false) => {}
            (Some(_), false) => return Err(format!("{from} -> {to} returned a data fd")),
            (None, true) => return Err(format!("{from} -> {to} returned no data fd")),
        }
        if from.is_saving() && to.is_saving() {
            // The session goes on: the same fd, PRECOPY_INFO valid only in PRE_COPY*.
            let fd = self.fd.as_ref().ok_or("no session fd kept")?;
            let info = fd.precopy_info();
            if to == StopCopy {
                expect_errno(&format!("PRECOPY_INFO in {to}"), info, libc::EINVAL)?;
            } else {
                info.map_err(|e| format!("PRECOPY_INFO on the session fd after {from} -> {to}: {e}"))?;
            }
        } else if !to.is_saving() && to != Resuming {
            self.fd = None;
        }
        if to == Resuming {
            let fd = self.fd.as_ref().ok_or("no resuming fd")?;
            fd.write_chunks(self.stream, WRITE_CHUNK).map_err(|(at, e)| format!("writing the stream: at {at}: {e}"))?;
        }
        Ok(())
    }

    fn walk(&mut self, to: DeviceState) -> Result<(), String> {
        for s in path(get(self.g)?, to) {
            let from = get(self.g)?;
            let opens = ARCS.iter().any(|&(a, b, o)| a == from && b == s && o);
            self.step(s, opens)?;
        }
        Ok(())
    }
}

/// A stream of `g` (RUNNING): STOP_COPY from RUNNING, read to the end, back to RUNNING.
fn own_stream(g: &Gpu) -> Result<Vec<u8>, String> {
    let fd = set(g, StopCopy)?.ok_or("RUNNING -> STOP_COPY returned no data fd")?;
    let mut bytes = Vec::new();
    read_to_end(&fd, &mut bytes)?;
    set(g, Running)?;
    let problems = vfio_client::migration::stream::validate(&bytes, &expect(g)?);
    ensure(problems.is_empty(), || format!("its stream ({:?}): {}", SavePath::StopCopy, problems.join("; ")))?;
    Ok(bytes)
}

pub fn arcs(g: &mut Gpu) -> Result<(), String> {
    recover(g)?;
    let stream = own_stream(g).map_err(|e| format!("saving the device to resume it from: {e}"))?;
    let mut checks = Vec::new();
    for &(from, to, opens) in &ARCS {
        let name = format!("arc {from} -> {to}");
        let r = (|| {
            let mut w = Walker { g, fd: None, stream: &stream };
            w.walk(from).map_err(|e| format!("on the way from RUNNING: {e}"))?;
            w.step(to, opens)?;
            sysfs_state_is(&g.uuid, to)?;
            w.walk(Running).map_err(|e| format!("on the way back to RUNNING: {e}"))
        })();
        checks.push((name, r));
        let _ = recover(g);
    }
    for &(from, to, opens) in &COMBINATIONS {
        let name = format!("combination {from} -> {to}");
        let r = (|| {
            let mut w = Walker { g, fd: None, stream: &stream };
            w.walk(from).map_err(|e| format!("on the way from RUNNING: {e}"))?;
            w.step(to, opens)?;
            w.walk(Running).map_err(|e| format!("on the way back to RUNNING: {e}"))
        })();
        checks.push((name, r));
        let _ = recover(g);
    }
    checks.push(("illegal targets from RUNNING".into(), illegal(g, Running)));
    let _ = recover(g);
    checks.push(("illegal targets from STOP_COPY".into(), illegal(g, StopCopy)));
    let _ = recover(g);
    checks.push(("illegal targets from RESUMING".into(), illegal_resuming(g, &stream)));
    let _ = recover(g);
    checks.push(("reset in STOP".into(), set(g, Stop).map(drop).and_then(|_| reset(g))));
    all(checks)
}

/// From `at` (reached from RUNNING in one SET): each illegal target fails with `EINVAL` and the
/// state stays; a SET with a short `argsz` too.
fn illegal(g: &Gpu, at: DeviceState) -> Result<(), String> {
    let _fd = set(g, at)?;
    let mut targets: Vec<(String, u32)> = vec![
        ("ERROR".into(), VFIO_DEVICE_STATE_ERROR),
        ("8 (VFIO_DEVICE_STATE_NR)".into(), VFIO_DEVICE_STATE_NR),
        ("0x7fffffff".into(), 0x7fff_ffff),
        ("u32::MAX".into(), u32::MAX),
    ];
    if at == StopCopy {
        targets.push(("PRE_COPY".into(), VFIO_DEVICE_STATE_PRE_COPY));
        targets.push(("PRE_COPY_P2P".into(), VFIO_DEVICE_STATE_PRE_COPY_P2P));
    }
    let mut bad = Vec::new();
    for (n, raw) in targets {
        if let Err(e) = expect_errno("", g.dev.set_mig_state_raw(raw), libc::EINVAL) {
            bad.push(format!("SET {at} -> {n}{e}"));
        }
        match get(g) {
            Ok(s) if s == at => {}
            other => bad.push(format!("after SET {at} -> {n} the state is {other:?}")),
        }
    }
    // argsz covering the header and only half of vfio_device_feature_mig_state.
    let flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE;
    let r = g.dev.feature_with_argsz(flags, 12, &mut VFIO_DEVICE_STATE_STOP.to_le_bytes());
    if let Err(e) = expect_errno("", r, libc::EINVAL) {
        bad.push(format!("SET STOP with argsz 12{e}"));
    }
    if get(g)? != at {
        bad.push(format!("after the short SET the state is {}", get(g)?));
    }
    set(g, Running)?;
    ensure(bad.is_empty(), || bad.join("; "))
}

/// RESUMING (with a good stream written): ERROR and the saving states other than through STOP
/// are refused or walked; ERROR as a target fails with `EINVAL`, the state stays.
fn illegal_resuming(g: &Gpu, stream: &[u8]) -> Result<(), String> {
    set(g, Stop)?;
    let fd = set(g, Resuming)?.ok_or("STOP -> RESUMING returned no data fd")?;
    fd.write_chunks(stream, WRITE_CHUNK).map_err(|(at, e)| format!("writing the stream: at {at}: {e}"))?;
    expect_errno("SET RESUMING -> ERROR", g.dev.set_mig_state_raw(VFIO_DEVICE_STATE_ERROR), libc::EINVAL)?;
    let s = get(g)?;
    ensure(s == Resuming, || format!("after SET RESUMING -> ERROR the state is {s}"))?;
    set(g, Running).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_use_single_arcs() {
        assert_eq!(path(Running, Stop), [RunningP2p, Stop]);
        assert_eq!(path(Running, Resuming), [RunningP2p, Stop, Resuming]);
        assert_eq!(path(Resuming, Running), [Stop, RunningP2p, Running]);
        assert_eq!(path(StopCopy, Running), [Stop, RunningP2p, Running]);
        assert_eq!(path(Running, StopCopy), [RunningP2p, Stop, StopCopy]);
        assert_eq!(path(PreCopy, Running), [Running]);
        assert!(path(Running, Error).is_empty());
        for s in DeviceState::ALL.into_iter().filter(|&s| s != Error && s != Running) {
            assert!(!path(Running, s).is_empty() && !path(s, Running).is_empty(), "{s}");
        }
    }
}
