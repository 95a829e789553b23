// SPDX-License-Identifier: GPL-2.0
//! Migration: the device saved through STOP_COPY or PRE_COPY (the data fd read to its end, or a
//! part of it), the stream corrupted at random (bits flipped, cut, records duplicated, swapped,
//! their lengths changed, garbage overwritten, inserted or appended, or one of the library's
//! corruptions) and written into the same device in RESUMING, then back to RUNNING; sessions cut
//! short (RUNNING or a reset from the middle of one), illegal and odd targets, the info calls.
//!
//! Every step's errors are counted; a device left in ERROR (or any state but RUNNING) is reset.
//! Every read and write is bounded: the data fds are non-blocking, at most [`MAX_STREAM`] bytes
//! are kept, and each direction gets [`BUDGET`].

use std::os::fd::{AsFd, AsRawFd};
use std::thread::sleep;
use std::time::{Duration, Instant};

use vfio_client::migration::stream::{self, Corruption, HEADER_SIZE, RECORD_SIZE, STATE_SIZE};
use vfio_client::rvgpu::*;
use vfio_client::{DataFd, DeviceState};

use crate::shared::{Fam, Rng, Slot};
use crate::worker::{Dev, Worker, DATA_IOVA, DATA_LEN, RING_IOVA};

/// The most of a stream kept (a longer one is cut there, which spoils it too).
const MAX_STREAM: usize = 64 << 20;
/// How long reading, or writing, one stream may take.
const BUDGET: Duration = Duration::from_secs(3);

fn nonblocking(fd: &DataFd) {
    let raw = fd.as_fd().as_raw_fd();
    // SAFETY: fcntl on a descriptor we own; only the file status flags change.
    unsafe {
        let fl = libc::fcntl(raw, libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(raw, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
}

/// How a read of the data fd ended.
#[derive(PartialEq, Eq)]
enum End {
    /// 0: the end of the stream.
    Eof,
    /// ENOMSG: the end of the PRE_COPY data for now.
    NoMsg,
    /// An error, the limit, or the time budget.
    Other,
}

/// Reads `fd` into `out`, in chunks of random sizes, until the end, an error, `limit` bytes or
/// the time budget.
fn read_stream(rng: &Rng, sh: &Slot, fd: &DataFd, out: &mut Vec<u8>, limit: usize) -> End {
    let t = Instant::now();
    let mut buf = vec![0u8; (1 << 20) + 5];
    while out.len() < limit && t.elapsed() < BUDGET {
        let want = rng.pick(&[buf.len(), 4096, 64 << 10, rng.range(1, buf.len() as u64) as usize]);
        let want = want.min(limit - out.len()).max(1);
        match fd.read(&mut buf[..want]) {
            Ok(0) => {
                sh.rec_ok(Fam::Migration);
                return End::Eof;
            }
            Ok(n) => {
                sh.rec_ok(Fam::Migration);
                out.extend_from_slice(&buf[..n]);
            }
            Err(e) => {
                sh.rec_err(Fam::Migration, e.raw_os_error());
                match e.raw_os_error() {
                    Some(libc::ENOMSG) => return End::NoMsg,
                    Some(libc::EAGAIN) | Some(libc::EINTR) => sleep(Duration::from_millis(1)),
                    _ => return End::Other,
                }
            }
        }
    }
    End::Other
}

/// Writes `data` into `fd` in chunks of random sizes until done, an error or the time budget;
/// whether all of it was taken.
fn write_stream(rng: &Rng, sh: &Slot, fd: &DataFd, data: &[u8]) -> bool {
    let t = Instant::now();
    let mut done = 0;
    while done < data.len() && t.elapsed() < BUDGET {
        let chunk = rng.pick(&[(1 << 20) + 3, 4096, 17, HEADER_SIZE, rng.range(1, 4 << 20) as usize]);
        let end = (done + chunk).min(data.len());
        match fd.write(&data[done..end]) {
            Ok(0) => {
                sh.rec_ok(Fam::Migration);
                return false;
            }
            Ok(n) => {
                sh.rec_ok(Fam::Migration);
                done += n;
            }
            Err(e) => {
                sh.rec_err(Fam::Migration, e.raw_os_error());
                if !matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR)) {
                    return false;
                }
                sleep(Duration::from_millis(1));
            }
        }
    }
    done == data.len()
}

/// SET the device state, counted; the data fd if the arc returned one (made non-blocking).
fn set(sh: &Slot, d: &Dev, to: DeviceState) -> Result<Option<DataFd>, ()> {
    let r = d.dev.set_mig_state(to);
    sh.rec(Fam::Migration, &r);
    let fd = r.map_err(drop)?;
    if let Some(f) = &fd {
        nonblocking(f);
    }
    Ok(fd)
}

/// Back to RUNNING: a SET, or a reset if that fails (ERROR is only left by a reset).
fn to_running(sh: &Slot, d: &Dev) -> bool {
    sh.set_op("migration: back to RUNNING");
    let s = d.dev.mig_state();
    sh.rec(Fam::Migration, &s);
    if matches!(s, Ok(DeviceState::Running)) {
        return true;
    }
    if !matches!(s, Ok(DeviceState::Error)) && set(sh, d, DeviceState::Running).is_ok() {
        return true;
    }
    sh.set_op("migration: reset");
    let r = d.dev.reset();
    sh.rec(Fam::Migration, &r);
    let s = d.dev.mig_state();
    sh.rec(Fam::Migration, &s);
    matches!(s, Ok(DeviceState::Running))
}

/// The `(at, end, kind)` of each complete record.
fn records(v: &[u8]) -> Vec<(usize, usize, u32)> {
    stream::parse(v).records.iter().map(|r| (r.at, r.end(), r.head.kind)).collect()
}

/// A random spoiling of the stream `v` (or none at all): 0 to 3 mutations.
fn corrupt(rng: &Rng, mut v: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.weighted(&[(2, 0), (5, 1), (2, 2), (1, 3)]) {
        let recs = records(&v);
        let pick = |rng: &Rng| (!recs.is_empty()).then(|| recs[rng.below(recs.len() as u64) as usize]);
        match rng.below(11) {
            0 => {
                // Bits flipped: in the header, in record heads, anywhere.
                for _ in 0..rng.range(1, 8) {
                    let at = match (rng.below(3), pick(rng)) {
                        (0, _) => rng.below(HEADER_SIZE as u64) as usize,
                        (1, Some((at, _, _))) => at + rng.below(RECORD_SIZE as u64) as usize,
                        _ => rng.below(v.len() as u64) as usize,
                    };
                    if let Some(b) = v.get_mut(at) {
                        *b ^= 1 << rng.below(8);
                    }
                }
            }
            1 => {
                let n = rng.below(v.len() as u64 + 1) as usize;
                v.truncate(n);
            }
            2 => {
                // A record twice (right after itself, or elsewhere).
                if let Some((at, end, _)) = pick(rng) {
                    let copy = v[at..end].to_vec();
                    let to = pick(rng).map_or(end, |(a, _, _)| a);
                    v.splice(to..to, copy);
                }
            }
            3 => {
                let at = rng.below(v.len() as u64) as usize;
                let n = (rng.range(1, 64) as usize).min(v.len() - at.min(v.len()));
                let g = rng.bytes(n);
                v[at..at + n].copy_from_slice(&g);
            }
            4 => {
                // A made-up record inserted at a record boundary.
                let to = pick(rng).map_or(v.len().min(HEADER_SIZE), |(a, _, _)| a);
                let len = rng.pick(&[0, 4, 16, 1368, rng.edgy32()]);
                let head = MigRecord { kind: rng.pick(&[0, 1, 2, 3, 4, rng.u32()]), len, offset: rng.u64() };
                let mut ins = head.to_bytes().to_vec();
                ins.extend(rng.bytes((len as usize).min(4096)));
                v.splice(to..to, ins);
            }
            5 => {
                // The library's corruptions want a complete stream with a whole STATE record.
                let p = stream::parse(&v);
                let whole = p.ended() && p.of_kind(MIG_REC_STATE).next().is_some_and(|r| r.data.len() == STATE_SIZE);
                if whole {
                    if let Ok(x) = rng.pick(&Corruption::ALL).apply(&v) {
                        v = x;
                    }
                }
            }
            6 => {
                // A record's `len` (or `offset`) changed.
                if let Some((at, _, _)) = pick(rng) {
                    if rng.percent(70) {
                        v[at + 4..at + 8].copy_from_slice(&rng.edgy32().to_le_bytes());
                    } else {
                        v[at + 8..at + 16].copy_from_slice(&rng.u64().to_le_bytes());
                    }
                }
            }
            7 => {
                // Two records swapped.
                if let (Some(a), Some(b)) = (pick(rng), pick(rng)) {
                    let (a, b) = if a.0 <= b.0 { (a, b) } else { (b, a) };
                    if a.1 <= b.0 {
                        let (ra, rb) = (v[a.0..a.1].to_vec(), v[b.0..b.1].to_vec());
                        let mut out = v[..a.0].to_vec();
                        out.extend_from_slice(&rb);
                        out.extend_from_slice(&v[a.1..b.0]);
                        out.extend_from_slice(&ra);
                        out.extend_from_slice(&v[b.1..]);
                        v = out;
                    }
                }
            }
            8 => {
                // A word of the device state changed (ring registers, params_len, config...).
                if let Some(&(at, end, _)) = recs.iter().find(|r| r.2 == MIG_REC_STATE) {
                    let words = (end - at - RECORD_SIZE) / 4;
                    if words > 0 {
                        let w = at + RECORD_SIZE + 4 * rng.below(words as u64) as usize;
                        v[w..w + 4].copy_from_slice(&rng.edgy32().to_le_bytes());
                    }
                }
            }
            9 => {
                let n = rng.range(1, 4096) as usize;
                v.extend(rng.bytes(n));
            }
            _ => {
                // Only the header, or nothing at all.
                v.truncate(rng.pick(&[0, HEADER_SIZE, HEADER_SIZE - 1, HEADER_SIZE + RECORD_SIZE]));
            }
        }
    }
    v
}

/// One migration operation.
pub fn op(w: &mut Worker) {
    let Worker { dev, rng, sh, .. } = w;
    let Some(d) = dev.as_ref() else { return };
    let sh = *sh;
    if !to_running(sh, d) {
        return;
    }
    match rng.below(10) {
        0..=4 => save_corrupt_resume(rng, sh, d),
        5 | 6 => cut_short(rng, sh, d),
        7 => odd_targets(rng, sh, d),
        _ => info(rng, sh, d),
    }
    to_running(sh, d);
}

/// Saves the device, spoils the stream, resumes the device from it.
fn save_corrupt_resume(rng: &Rng, sh: &Slot, d: &Dev) {
    let pre = rng.percent(40);
    sh.set_op(if pre { "migration: RUNNING -> PRE_COPY" } else { "migration: RUNNING -> STOP_COPY" });
    let Ok(Some(fd)) = set(sh, d, if pre { DeviceState::PreCopy } else { DeviceState::StopCopy }) else { return };
    let mut bytes = Vec::new();
    if pre {
        sh.set_op("migration: reading PRE_COPY data");
        read_stream(rng, sh, &fd, &mut bytes, MAX_STREAM);
        if rng.percent(50) {
            sh.rec(Fam::Migration, &fd.precopy_info());
        }
        if rng.percent(30) {
            sh.set_op("migration: PRE_COPY -> PRE_COPY_P2P");
            let _ = set(sh, d, DeviceState::PreCopyP2p);
        }
        sh.set_op("migration: -> STOP_COPY");
        if set(sh, d, DeviceState::StopCopy).is_err() {
            return;
        }
    }
    sh.set_op("migration: reading STOP_COPY data");
    read_stream(rng, sh, &fd, &mut bytes, MAX_STREAM);
    sh.set_op("migration: STOP_COPY -> STOP");
    let _ = set(sh, d, DeviceState::Stop);
    drop(fd);

    sh.set_op("migration: corrupting");
    let bad = corrupt(rng, bytes);
    sh.set_op("migration: STOP -> RESUMING");
    let Ok(Some(fd)) = set(sh, d, DeviceState::Resuming) else { return };
    sh.set_op("migration: writing the stream");
    write_stream(rng, sh, &fd, &bad);
    drop(bad);
    if rng.percent(80) {
        sh.set_op("migration: RESUMING -> STOP");
        let _ = set(sh, d, DeviceState::Stop);
        drop(fd);
        sh.set_op("migration: STOP -> RUNNING");
        let _ = set(sh, d, DeviceState::Running);
    } else {
        // RESUMING -> RUNNING in one SET (through STOP), the fd still open.
        sh.set_op("migration: RESUMING -> RUNNING");
        let _ = set(sh, d, DeviceState::Running);
        drop(fd);
    }
}

/// A session left in the middle: RUNNING, a reset, or the fd closed first; the old fd read.
fn cut_short(rng: &Rng, sh: &Slot, d: &Dev) {
    let to = rng.pick(&[DeviceState::PreCopy, DeviceState::StopCopy, DeviceState::Resuming, DeviceState::PreCopyP2p]);
    sh.set_op("migration: starting a session");
    let Ok(fd) = set(sh, d, to) else { return };
    let Some(fd) = fd else { return };
    if to == DeviceState::Resuming {
        sh.set_op("migration: writing garbage");
        let g = rng.bytes(rng.range(1, 8192) as usize);
        write_stream(rng, sh, &fd, &g);
    } else {
        sh.set_op("migration: reading a part");
        let mut v = Vec::new();
        read_stream(rng, sh, &fd, &mut v, rng.range(1, 4 << 20) as usize);
    }
    let keep = rng.percent(50);
    let fd = if keep { Some(fd) } else { None };
    match rng.below(3) {
        0 => {
            sh.set_op("migration: reset mid-session");
            sh.rec(Fam::Migration, &d.dev.reset());
        }
        1 => {
            sh.set_op("migration: mid-session -> RUNNING");
            let _ = set(sh, d, DeviceState::Running);
        }
        _ => {
            sh.set_op("migration: mid-session -> STOP");
            let _ = set(sh, d, DeviceState::Stop);
        }
    }
    if let Some(fd) = fd {
        sh.set_op("migration: the old data fd");
        let mut b = vec![0u8; 4096];
        sh.rec(Fam::Migration, &fd.read(&mut b));
        sh.rec(Fam::Migration, &fd.write(&b[..16]));
        sh.rec(Fam::Migration, &fd.precopy_info());
    }
}

/// Targets that are no arc, or combination arcs, or no state at all.
fn odd_targets(rng: &Rng, sh: &Slot, d: &Dev) {
    for _ in 0..rng.range(1, 4) {
        let v = rng.weighted(&[(3, rng.below(9) as u32), (1, rng.edgy32())]);
        sh.set_op("migration: SET any state");
        let r = d.dev.set_mig_state_raw(v);
        sh.rec(Fam::Migration, &r);
        if let Ok(Some(fd)) = r {
            nonblocking(&fd);
            let mut b = vec![0u8; 4096];
            if v == VFIO_DEVICE_STATE_RESUMING {
                rng.fill(&mut b);
                sh.rec(Fam::Migration, &fd.write(&b));
            } else {
                sh.rec(Fam::Migration, &fd.read(&mut b));
            }
        }
    }
}

const VFIO_DEVICE_STATE_RESUMING: u32 = vfio_client::uapi::VFIO_DEVICE_STATE_RESUMING;

/// The info calls: PRECOPY_INFO with odd argsz and flags, MIG_DATA_SIZE, the v2 opt-in, DMA
/// logging.
fn info(rng: &Rng, sh: &Slot, d: &Dev) {
    sh.set_op("migration: info");
    sh.rec(Fam::Migration, &d.dev.migration_flags());
    sh.rec(Fam::Migration, &d.dev.mig_data_size());
    if rng.percent(30) {
        sh.rec(Fam::Migration, &d.dev.precopy_info_v2());
    }
    if rng.percent(50) {
        if let Ok(Some(fd)) = set(sh, d, DeviceState::PreCopy) {
            for _ in 0..rng.range(1, 4) {
                let argsz = rng.pick(&[0, 8, 23, 24, 25, 4096, rng.below(64 << 10) as u32]);
                sh.rec(Fam::Migration, &fd.precopy_info_with_argsz(argsz));
                sh.rec(Fam::Migration, &fd.precopy_info_with_flags(rng.edgy32()));
            }
            sh.rec(Fam::Migration, &d.dev.mig_data_size());
            let mut v = Vec::new();
            read_stream(rng, sh, &fd, &mut v, rng.range(1, 256 << 10) as usize);
            sh.rec(Fam::Migration, &fd.precopy_info());
        }
    }
    // DMA logging with well-formed arguments (the library's report buffer is its own).
    sh.set_op("migration: DMA logging");
    let ranges = match rng.below(4) {
        0 => vec![(DATA_IOVA, DATA_LEN as u64)],
        1 => vec![(RING_IOVA, 2 << 20), (DATA_IOVA, DATA_LEN as u64)],
        2 => vec![(0, 1 << 30)],
        _ => vec![],
    };
    let page = rng.pick(&[4096, 8192, 1 << 21, 4095, 0]);
    sh.rec(Fam::Migration, &d.dev.dma_logging_start(page, &ranges));
    if rng.percent(60) {
        let (iova, len) = ranges.first().copied().unwrap_or((DATA_IOVA, DATA_LEN as u64));
        let len = len.min(64 << 20);
        sh.rec(Fam::Migration, &d.dev.dma_logging_report(iova, len, rng.pick(&[4096, 8192, 1 << 21])));
    }
    if rng.percent(80) {
        sh.rec(Fam::Migration, &d.dev.dma_logging_stop());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vfio_client::migration::stream::Builder;

    /// A stream as a vGPU sends it: header, VRAM records, STATE, END.
    fn good() -> Vec<u8> {
        let h = MigHeader::new(9104, 1 << 20);
        let mut b = Builder::new(&h);
        for i in 0..4u64 {
            b = b.vram(i * 0x4000, &vec![i as u8; 0x4000]);
        }
        b.state(&MigState::default()).end().finish()
    }

    #[test]
    fn corruptions_never_panic_and_vary() {
        let g = good();
        assert!(stream::parse(&g).ended());
        let mut changed = 0;
        for seed in 0..3000 {
            let rng = Rng::new(seed);
            let v = corrupt(&rng, g.clone());
            if v != g {
                changed += 1;
            }
            // Corrupting a corrupted stream again must not panic either.
            let _ = corrupt(&rng, v);
        }
        assert!(changed > 2000, "only {changed} of 3000 streams changed");
    }
}
