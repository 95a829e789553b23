// SPDX-License-Identifier: GPL-2.0
//! The migration steps the results share: state changes checked with GET, reading a saving fd,
//! saving a vGPU along one of the paths QEMU takes, resuming one, and checking a STATE record
//! against the device it came from.

use std::time::Instant;

use vfio_client::harness::Gpu;
use vfio_client::migration::stream::{self, Expect};
use vfio_client::rvgpu::*;
use vfio_client::tap::ensure;
use vfio_client::{DataFd, DeviceState, ReadEnd};

use crate::gpu::{read_params, type_id};

/// Bytes per `read()` of a saving fd: odd, so reads end inside records.
pub const READ_CHUNK: usize = (256 << 10) + 5;
/// Bytes per `write()` of a resuming fd, by default.
pub const WRITE_CHUNK: usize = (1 << 20) + 3;

/// What a stream for `g` must say in its header.
pub fn expect(g: &Gpu) -> Result<Expect, String> {
    Ok(Expect { type_id: type_id(&g.uuid)?, fb_size: g.fb_size as u32 })
}

pub fn get(g: &Gpu) -> Result<DeviceState, String> {
    g.dev.mig_state().map_err(|e| format!("MIG_DEVICE_STATE GET: {e}"))
}

/// SET `to` (the core walks a combination arc), then GET must say `to`; the data fd if the
/// arc returned one.
pub fn set(g: &Gpu, to: DeviceState) -> Result<Option<DataFd>, String> {
    let before = get(g)?;
    let fd = g.dev.set_mig_state(to).map_err(|e| format!("SET {before} -> {to}: {e}"))?;
    let now = get(g)?;
    ensure(now == to, || format!("SET {before} -> {to} succeeded, but GET says {now}"))?;
    Ok(fd)
}

/// [`set`] for an arc that must return a data fd.
pub fn set_fd(g: &Gpu, to: DeviceState) -> Result<DataFd, String> {
    let from = get(g)?;
    set(g, to)?.ok_or_else(|| format!("SET {from} -> {to} returned no data fd"))
}

/// [`set`] for an arc that must not return a data fd.
pub fn set_nofd(g: &Gpu, to: DeviceState) -> Result<(), String> {
    let from = get(g)?;
    match set(g, to)? {
        None => Ok(()),
        Some(_) => Err(format!("SET {from} -> {to} returned a data fd")),
    }
}

/// `VFIO_DEVICE_RESET`, then the device must be RUNNING; memory decode and bus mastering back on.
pub fn reset(g: &mut Gpu) -> Result<(), String> {
    g.dev.reset().map_err(|e| format!("VFIO_DEVICE_RESET: {e}"))?;
    g.tail = 0;
    let s = get(g)?;
    g.enable()?;
    ensure(s == DeviceState::Running, || format!("after VFIO_DEVICE_RESET the device is {s}, not RUNNING"))
}

/// Registers at power-on (after a reset or an open).
pub fn power_on(g: &Gpu) -> Result<(), String> {
    let v = [REG_RING_SIZE, REG_RING_HEAD, REG_RING_TAIL, REG_COMPLETED, REG_IRQ_ENABLE, REG_FENCE]
        .map(|r| g.reg(r))
        .into_iter()
        .collect::<Result<Vec<u32>, String>>()?;
    ensure(v.iter().all(|&x| x == 0), || format!("not at power-on state: {}", g.dump()))
}

/// Before a check: the device RUNNING (reset if it is not: an earlier failure left it so).
pub fn recover(g: &mut Gpu) -> Result<(), String> {
    match get(g) {
        Ok(DeviceState::Running) => Ok(()),
        other => {
            println!("# {} is {other:?} before a check, resetting it", g.uuid);
            reset(g)
        }
    }
}

/// Reads the PRE_COPY data up to its temporary end (`ENOMSG`, or 0); how it ended.
pub fn read_initial(fd: &DataFd, out: &mut Vec<u8>) -> Result<&'static str, String> {
    match fd.read_into(out, READ_CHUNK) {
        ReadEnd::NoMsg => Ok("ENOMSG"),
        ReadEnd::Eof => Ok("0"),
        ReadEnd::Error(e) => Err(format!("reading the PRE_COPY data after {} bytes: {e}", out.len())),
    }
}

/// Reads a saving fd in STOP_COPY to its end (`read()` 0).
pub fn read_to_end(fd: &DataFd, out: &mut Vec<u8>) -> Result<(), String> {
    let n0 = out.len();
    match fd.read_into(out, READ_CHUNK) {
        ReadEnd::Eof => Ok(()),
        ReadEnd::NoMsg => Err(format!("read() in STOP_COPY failed with ENOMSG after {} bytes", out.len() - n0)),
        ReadEnd::Error(e) => Err(format!("reading the STOP_COPY data after {} bytes: {e}", out.len() - n0)),
    }
}

/// The paths a source takes from RUNNING to the end of its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavePath {
    /// PRE_COPY (fd), its data, PRE_COPY_P2P, STOP_COPY: QEMU's path.
    PreCopyP2p,
    /// PRE_COPY (fd), its data, STOP_COPY in one SET (the core goes through PRE_COPY_P2P).
    PreCopy,
    /// STOP_COPY from RUNNING in one SET (fd; through RUNNING_P2P and STOP).
    StopCopy,
    /// STOP, then STOP_COPY (fd).
    StopThenStopCopy,
}

/// Something done to the source while it is in PRE_COPY, its initial data read.
pub type Hook<'a> = &'a mut dyn FnMut(&mut Gpu) -> Result<(), String>;

/// Saves `g` (RUNNING) along `path`, leaving it in STOP; the stream, checked to be valid.
pub fn save(g: &mut Gpu, path: SavePath, hook: Option<Hook<'_>>) -> Result<Vec<u8>, String> {
    let e = expect(g)?;
    let t = Instant::now();
    let mut bytes = Vec::new();
    let fd = match path {
        SavePath::PreCopyP2p | SavePath::PreCopy => {
            let fd = set_fd(g, DeviceState::PreCopy)?;
            read_initial(&fd, &mut bytes)?;
            let pre = stream::parse(&bytes);
            stream::check_vram_cover(&pre.records, e.fb_size).map_err(|x| format!("the PRE_COPY data: {x}"))?;
            if let Some(h) = hook {
                h(g)?;
            }
            if path == SavePath::PreCopyP2p {
                set_nofd(g, DeviceState::PreCopyP2p)?;
            }
            set_nofd(g, DeviceState::StopCopy)?;
            fd
        }
        SavePath::StopCopy => set_fd(g, DeviceState::StopCopy)?,
        SavePath::StopThenStopCopy => {
            set_nofd(g, DeviceState::Stop)?;
            set_fd(g, DeviceState::StopCopy)?
        }
    };
    read_to_end(&fd, &mut bytes)?;
    set_nofd(g, DeviceState::Stop)?;
    drop(fd);
    println!("# saved {} ({path:?}): {} bytes in {:?}", g.uuid, bytes.len(), t.elapsed());
    let problems = stream::validate(&bytes, &e);
    ensure(problems.is_empty(), || format!("the stream {} saved is not valid: {}", g.uuid, problems.join("; ")))?;
    Ok(bytes)
}

/// Resumes `g` (RUNNING) from `bytes`, `chunk` bytes per `write()`: STOP, RESUMING (fd), the
/// stream, STOP. Leaves it in STOP.
pub fn resume(g: &mut Gpu, bytes: &[u8], chunk: usize) -> Result<(), String> {
    let t = Instant::now();
    set_nofd(g, DeviceState::Stop)?;
    let fd = set_fd(g, DeviceState::Resuming)?;
    fd.write_chunks(bytes, chunk)
        .map_err(|(at, e)| format!("writing the stream into {}: at byte {at}: {e}", g.uuid))?;
    set_nofd(g, DeviceState::Stop)?;
    drop(fd);
    println!("# resumed {} from {} bytes in {:?}", g.uuid, bytes.len(), t.elapsed());
    Ok(())
}

/// How the STATE record `s` differs from the device `g` (in STOP, as saved) reads.
pub fn state_matches(s: &MigState, g: &Gpu) -> Result<(), String> {
    let mut d = Vec::new();
    let config = g.cfg_bytes(0, 256)?;
    if let Some(i) = config.iter().zip(&s.config).position(|(x, y)| x != y) {
        d.push(format!("config[{i:#x}] reads {:#04x}, the record has {:#04x}", config[i], s.config[i]));
    }
    let base = u64::from(g.reg(REG_RING_BASE_LO)?) | u64::from(g.reg(REG_RING_BASE_HI)?) << 32;
    if base != s.ring_base {
        d.push(format!("ring_base: the device has {base:#x}, the record {:#x}", s.ring_base));
    }
    let words = [
        ("byteorder", MMIO_QEXT_BYTEORDER, s.byteorder),
        ("irq_status", REG_IRQ_STATUS, s.irq_status),
        ("irq_enable", REG_IRQ_ENABLE, s.irq_enable),
        ("ring_size", REG_RING_SIZE, s.ring_size),
        ("ring_head", REG_RING_HEAD, s.ring_head),
        ("ring_tail", REG_RING_TAIL, s.ring_tail),
        ("error", REG_ERROR, s.error),
        ("error_head", REG_ERROR_HEAD, s.error_head),
        ("fence", REG_FENCE, s.fence),
        ("completed", REG_COMPLETED, s.completed),
        ("vblank_count", REG_VBLANK_COUNT, s.vblank_count),
    ];
    for (n, off, v) in words {
        let r = g.reg(off)?;
        if r != v {
            d.push(format!("{n}: the device reads {r:#x}, the record has {v:#x}"));
        }
    }
    for (i, &v) in s.dispi.iter().enumerate() {
        let r = g.dispi(i as u64)?;
        if r != v {
            d.push(format!("dispi[{i:#x}]: the device reads {r:#x}, the record has {v:#x}"));
        }
    }
    let params = read_params(&g.uuid)?;
    if s.params_text() != params.as_bytes() {
        d.push(format!("params: {:?} in the record, {params:?} in sysfs", String::from_utf8_lossy(s.params_text())));
    }
    ensure(d.is_empty(), || format!("the STATE record does not match {}: {}", g.uuid, d.join("; ")))
}
