// SPDX-License-Identifier: GPL-2.0
//! Results 4-5: the saving data fd. PRE_COPY sends the header and the framebuffer, with
//! `initial_bytes` counting down to 0 and `ENOMSG` (or 0) at the temporary end; STOP_COPY goes on
//! on the same fd with what changed, the STATE record and END; STOP -> STOP_COPY streams it all
//! on a new fd; `MIG_DATA_SIZE` stays within what a stream can hold.

use vfio_client::harness::Gpu;
use vfio_client::migration::stream::{self, Expect, Record, HEADER_SIZE, RECORD_SIZE, STATE_SIZE};
use vfio_client::rvgpu::*;
use vfio_client::tap::{all, ensure, expect_errno};
use vfio_client::{DataFd, DeviceState};

use crate::gpu::{first_difference, sysfs_state_is};
use crate::mig::{expect, read_to_end, recover, set, set_fd, set_nofd, state_matches, READ_CHUNK};

/// A saving session left in STOP_COPY by result 4, and what it read so far.
pub struct Session {
    fd: DataFd,
    bytes: Vec<u8>,
}

type Checks = Vec<(String, Result<(), String>)>;

const PAGE: u64 = crate::PAGE as u64;

/// The most a stream of `e` holds: header, framebuffer in records, STATE, END.
fn stream_max(e: &Expect) -> u64 {
    // At most a record per page (the driver sends runs of changed pages).
    let records = u64::from(e.fb_size).div_ceil(PAGE) + 2;
    (HEADER_SIZE + STATE_SIZE) as u64 + u64::from(e.fb_size) + RECORD_SIZE as u64 * records
}

fn data_size(g: &Gpu, e: &Expect, when: &str) -> Result<(), String> {
    let n = g.dev.mig_data_size().map_err(|e| format!("MIG_DATA_SIZE GET: {e}"))?;
    println!("# MIG_DATA_SIZE {when}: {n} (a whole stream is at most {})", stream_max(e));
    ensure(n > 0 && n <= stream_max(e), || format!("MIG_DATA_SIZE {when} is {n}, not in 1..={}", stream_max(e)))
}

/// The records checked against the framebuffer (the device idle).
fn vram_is_fb(g: &Gpu, records: &[Record<'_>]) -> Result<(), String> {
    let fb = g.fb.as_slice();
    for r in records.iter().filter(|r| r.head.kind == MIG_REC_VRAM) {
        let off = r.head.offset as usize;
        let want = fb.get(off..off + r.data.len()).ok_or_else(|| format!("VRAM record {off:#x} beyond the fb"))?;
        if let Some(i) = first_difference(r.data, want) {
            return Err(format!("VRAM record at {off:#x}: byte {:#x} differs from the framebuffer", off + i));
        }
    }
    Ok(())
}

/// The PRE_COPY data: the header, then VRAM records covering the framebuffer as it is.
fn initial_data(g: &Gpu, bytes: &[u8], e: &Expect) -> Result<(), String> {
    let p = stream::parse(bytes);
    let h = p.header.ok_or_else(|| format!("{} bytes, no whole header", bytes.len()))?;
    println!(
        "# header: magic {:#x} version {} header_size {} type_id {} fb_size {:#x} state_size {} flags {:#x}",
        h.magic, h.version, h.header_size, h.type_id, h.fb_size, h.state_size, h.flags
    );
    let hp = stream::header_problems(&h, e);
    ensure(hp.is_empty(), || hp.join("; "))?;
    ensure(p.rest.is_empty(), || format!("{} bytes after the last whole record", p.rest.len()))?;
    if let Some(r) = p.records.iter().find(|r| r.head.kind != MIG_REC_VRAM) {
        return Err(format!("a {} record at byte {} in the PRE_COPY data", stream::kind_name(r.head.kind), r.at));
    }
    for r in &p.records {
        let rp = stream::record_problems(&r.head, e.fb_size);
        ensure(rp.is_empty(), || format!("record at byte {}: {}", r.at, rp.join("; ")))?;
    }
    stream::check_vram_cover(&p.records, e.fb_size)?;
    vram_is_fb(g, &p.records)
}

/// Reads the PRE_COPY data, checking `initial_bytes` never grows; the bytes and how it ended.
fn drain(fd: &DataFd, limit: usize) -> Result<(Vec<u8>, &'static str, Option<String>), String> {
    let (mut bytes, mut buf) = (Vec::new(), vec![0u8; READ_CHUNK]);
    let mut last = fd.precopy_info().map_err(|e| format!("PRECOPY_INFO: {e}"))?.initial_bytes;
    let mut grew = None;
    loop {
        match fd.read(&mut buf) {
            Ok(0) => return Ok((bytes, "0", grew)),
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.raw_os_error() == Some(libc::ENOMSG) => return Ok((bytes, "ENOMSG", grew)),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(format!("read() after {} bytes: {e}", bytes.len())),
        }
        let now = fd.precopy_info().map_err(|e| format!("PRECOPY_INFO after {} bytes: {e}", bytes.len()))?;
        if now.initial_bytes > last && grew.is_none() {
            grew = Some(format!("initial_bytes grew from {last} to {} after {} bytes", now.initial_bytes, bytes.len()));
        }
        last = now.initial_bytes;
        if bytes.len() > limit {
            return Err(format!("PRE_COPY gave {} bytes, more than a whole stream, without an end", bytes.len()));
        }
    }
}

/// The `VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2` opt-in: before it, `flags` of PRECOPY_INFO is
/// left as the caller passed it (v1); after it, it is output only, and rvgpu never reports REINIT
/// (its initial data never starts over).
fn precopy_v2(g: &Gpu, fd: &DataFd) -> Result<(), String> {
    let v1 = fd.precopy_info_with_flags(0x5a).map_err(|e| format!("PRECOPY_INFO flags 0x5a: {e}"))?;
    g.dev.precopy_info_v2().map_err(|e| format!("FEATURE SET MIG_PRECOPY_INFOv2: {e}"))?;
    let v2 = fd.precopy_info_with_flags(0x5a).map_err(|e| format!("PRECOPY_INFO flags 0x5a after the opt-in: {e}"))?;
    println!("# PRECOPY_INFO flags in 0x5a: out {:#x} before the v2 opt-in, {:#x} after", v1.flags, v2.flags);
    ensure(v1.flags == 0x5a && v2.flags == 0, || {
        format!("flags out {:#x} before the opt-in (want 0x5a), {:#x} after (want 0)", v1.flags, v2.flags)
    })
}

fn precopy_checks(g: &mut Gpu, checks: &mut Checks) -> Result<Session, String> {
    let e = expect(g)?;
    let fb = u64::from(e.fb_size);
    let max_initial = HEADER_SIZE as u64 + fb + RECORD_SIZE as u64 * fb.div_ceil(PAGE);
    checks.push(("MIG_DATA_SIZE in RUNNING".into(), data_size(g, &e, "in RUNNING")));
    let fd = set_fd(g, DeviceState::PreCopy)?;
    checks.push(("nvidia/migration".into(), sysfs_state_is(&g.uuid, DeviceState::PreCopy)));
    let i0 = fd.precopy_info().map_err(|e| format!("PRECOPY_INFO: {e}"))?;
    println!(
        "# PRECOPY_INFO first: initial_bytes {} dirty_bytes {} flags {:#x}",
        i0.initial_bytes, i0.dirty_bytes, i0.flags
    );
    checks.push((
        "initial_bytes at first".into(),
        ensure(i0.initial_bytes >= HEADER_SIZE as u64 + fb && i0.initial_bytes <= max_initial, || {
            format!("{}, not in {}..={max_initial} (header + framebuffer [+ record heads])", i0.initial_bytes, fb + 64)
        }),
    ));
    checks.push(("PRECOPY_INFO with argsz 16".into(), expect_errno("", fd.precopy_info_with_argsz(16), libc::EINVAL)));
    checks.push((
        "PRECOPY_INFOv2: flags echoed before the opt-in, output 0 (no REINIT) after".into(),
        precopy_v2(g, &fd),
    ));
    let (bytes, end, grew) = drain(&fd, stream_max(&e) as usize)?;
    let i1 = fd.precopy_info().map_err(|e| format!("PRECOPY_INFO at the end: {e}"))?;
    println!(
        "# PRE_COPY: {} bytes read, then read() gave {end}; PRECOPY_INFO: initial_bytes {} dirty_bytes {}",
        bytes.len(),
        i1.initial_bytes,
        i1.dirty_bytes
    );
    checks.push(("initial_bytes while reading".into(), grew.map_or(Ok(()), Err)));
    checks.push((
        "initial_bytes at the temporary end".into(),
        ensure(i1.initial_bytes == 0, || format!("{} after {} bytes read", i1.initial_bytes, bytes.len())),
    ));
    let n = bytes.len() as u64;
    checks.push((
        "bytes read".into(),
        ensure(n >= i0.initial_bytes && n <= max_initial, || {
            format!(
                "{n} bytes read; initial_bytes said {}, a header and framebuffer are at most {max_initial}",
                i0.initial_bytes
            )
        }),
    ));
    let again = match fd.read(&mut [0u8; 4096]) {
        Ok(0) => Ok(()),
        Ok(n) => Err(format!("returned {n} bytes")),
        Err(e) if e.raw_os_error() == Some(libc::ENOMSG) => Ok(()),
        Err(e) => Err(e.to_string()),
    };
    checks.push(("read() again at the temporary end".into(), again));
    checks.push(("the PRE_COPY data".into(), initial_data(g, &bytes, &e)));
    set_nofd(g, DeviceState::StopCopy)?;
    checks.push(("PRECOPY_INFO in STOP_COPY".into(), expect_errno("", fd.precopy_info(), libc::EINVAL)));
    checks.push(("nvidia/migration".into(), sysfs_state_is(&g.uuid, DeviceState::StopCopy)));
    checks.push(("MIG_DATA_SIZE in STOP_COPY".into(), data_size(g, &e, "in STOP_COPY")));
    Ok(Session { fd, bytes })
}

/// Result 4; the session, in STOP_COPY, for result 5.
pub fn precopy(g: &mut Gpu) -> (Result<(), String>, Option<Session>) {
    if let Err(e) = recover(g) {
        return (Err(e), None);
    }
    let mut checks = Vec::new();
    match precopy_checks(g, &mut checks) {
        Ok(s) => (all(checks), Some(s)),
        Err(e) => {
            checks.push(("PRE_COPY".into(), Err(e)));
            (all(checks), None)
        }
    }
}

/// `read()` at the end of a STOP_COPY stream: 0, twice.
fn at_end(fd: &DataFd) -> Result<(), String> {
    for i in 0..2 {
        match fd.read(&mut [0u8; 64]) {
            Ok(0) => {}
            Ok(n) => return Err(format!("read {i} after the end returned {n} bytes")),
            Err(e) => return Err(format!("read {i} after the end: {e}")),
        }
    }
    Ok(())
}

/// The kinds of the records from byte `from` on: VRAM records, one STATE, END.
fn vram_state_end(records: &[Record<'_>], from: usize) -> Result<(usize, usize), String> {
    let later: Vec<&Record<'_>> = records.iter().filter(|r| r.at >= from).collect();
    let kinds: Vec<u32> = later.iter().map(|r| r.head.kind).collect();
    let n = kinds.len();
    let ok = n >= 2
        && kinds[n - 1] == MIG_REC_END
        && kinds[n - 2] == MIG_REC_STATE
        && kinds[..n - 2].iter().all(|&k| k == MIG_REC_VRAM);
    let names: Vec<String> = kinds.iter().map(|&k| stream::kind_name(k)).collect();
    ensure(ok, || format!("the records are {} (want VRAM..., STATE, END)", names.join(" ")))?;
    Ok((n - 2, later[..n - 2].iter().map(|r| r.data.len()).sum()))
}

/// Result 4's fd, now in STOP_COPY, read on to its end.
fn continued(g: &mut Gpu, s: Session) -> Result<(), String> {
    let Session { fd, mut bytes } = s;
    let pre = bytes.len();
    read_to_end(&fd, &mut bytes)?;
    at_end(&fd)?;
    let e = expect(g)?;
    let problems = stream::validate(&bytes, &e);
    ensure(problems.is_empty(), || problems.join("; "))?;
    let p = stream::parse(&bytes);
    let (n, len) = vram_state_end(&p.records, pre)?;
    println!("# STOP_COPY went on with {} bytes: {n} VRAM records of {len} bytes, STATE, END", bytes.len() - pre);
    let st = p.state().ok_or("no STATE record")?;
    set_nofd(g, DeviceState::Stop)?;
    state_matches(&st, g)?;
    set(g, DeviceState::Running).map(drop)
}

/// STOP -> STOP_COPY: a new fd with the whole stream.
fn direct(g: &mut Gpu) -> Result<(), String> {
    let e = expect(g)?;
    set_nofd(g, DeviceState::Stop)?;
    data_size(g, &e, "in STOP")?;
    let fd = set_fd(g, DeviceState::StopCopy)?;
    let mut bytes = Vec::new();
    read_to_end(&fd, &mut bytes)?;
    at_end(&fd)?;
    println!("# STOP -> STOP_COPY: {} bytes", bytes.len());
    let problems = stream::validate(&bytes, &e);
    ensure(problems.is_empty(), || problems.join("; "))?;
    let p = stream::parse(&bytes);
    vram_state_end(&p.records, HEADER_SIZE)?;
    stream::check_vram_cover(&p.records, e.fb_size)?;
    let st = p.state().ok_or("no STATE record")?;
    set_nofd(g, DeviceState::Stop)?;
    drop(fd);
    vram_is_fb(g, &p.records)?;
    state_matches(&st, g)?;
    set(g, DeviceState::Running).map(drop)
}

/// Result 5.
pub fn stop_copy(g: &mut Gpu, s: Option<Session>) -> Result<(), String> {
    let first = match s {
        None => Err("result 4 left no session in STOP_COPY".to_string()),
        Some(s) => continued(g, s),
    };
    let _ = recover(g);
    let second = direct(g);
    let _ = recover(g);
    all(vec![("the PRE_COPY fd in STOP_COPY".into(), first), ("STOP -> STOP_COPY".into(), second)])
}
