// SPDX-License-Identifier: GPL-2.0
//! Result 10: a session cut short. `VFIO_DEVICE_RESET` while RESUMING, in STOP_COPY and in
//! PRE_COPY brings the device back to RUNNING at power-on state; the session's fd, still open,
//! then fails or reads 0 and never blocks, and does not disturb a new session. Closing the
//! device in STOP_COPY (its fd still open) is clean, and it opens again RUNNING.

use std::sync::mpsc;

use vfio_client::harness::Gpu;
use vfio_client::tap::{all, ensure, es};
use vfio_client::{DataFd, DeviceState, OpenPath};

use crate::gpu::{first_difference, sysfs_state_is, MigrationGpu};
use crate::mig::{get, power_on, recover, reset, resume, save, set, set_fd, set_nofd, SavePath, WRITE_CHUNK};
use crate::HANG_TIMEOUT;

/// Runs `f` on a thread of its own; its result, or `None` when it has not returned within
/// [`HANG_TIMEOUT`] (the thread is then left behind, blocked).
fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(HANG_TIMEOUT).ok()
}

/// `read()` of a session fd that outlived its session: 0 or an error, without blocking.
fn read_after(fd: &DataFd, what: &str) -> Result<(), String> {
    let fd = fd.try_clone().map_err(es)?;
    let r = within(move || fd.read(&mut [0u8; 4096]).map_err(|e| e.to_string()));
    println!("# {what}: read() of the old data fd: {r:?}");
    match r {
        None => Err(format!("{what}: read() of the old data fd blocked for {HANG_TIMEOUT:?}")),
        Some(Ok(n)) if n > 0 => Err(format!("{what}: read() of the old data fd returned {n} bytes")),
        Some(_) => Ok(()),
    }
}

/// `write()` of a resuming fd that outlived its session: anything but blocking.
fn write_after(fd: &DataFd, what: &str) -> Result<(), String> {
    let fd = fd.try_clone().map_err(es)?;
    let r = within(move || fd.write(&[0u8; 16]).map_err(|e| e.to_string()));
    println!("# {what}: write() of the old data fd: {r:?}");
    r.map(drop).ok_or_else(|| format!("{what}: write() of the old data fd blocked for {HANG_TIMEOUT:?}"))
}

fn in_resuming(b: &mut Gpu, good: &[u8], a: &Gpu) -> Result<(), String> {
    recover(b)?;
    set_nofd(b, DeviceState::Stop)?;
    let old = set_fd(b, DeviceState::Resuming)?;
    let part = &good[..good.len().min((1 << 20) + 200)];
    old.write_chunks(part, WRITE_CHUNK).map_err(|(at, e)| format!("the first MiB of the stream: at {at}: {e}"))?;
    reset(b)?;
    power_on(b)?;
    sysfs_state_is(&b.uuid, DeviceState::Running)?;
    read_after(&old, "reset in RESUMING")?;
    write_after(&old, "reset in RESUMING")?;
    // A new session, the old fd still open, then closed before the new one ends.
    resume(b, good, WRITE_CHUNK)?;
    drop(old);
    set(b, DeviceState::Running)?;
    if let Some(j) = first_difference(b.fb.as_slice(), a.fb.as_slice()) {
        return Err(format!("after the second resume B's framebuffer differs from A's at {j:#x}"));
    }
    b.sync_tail()?;
    b.fence_works(0x500, 0xa00a_0001)
}

fn in_saving(a: &mut Gpu, state: DeviceState) -> Result<(), String> {
    recover(a)?;
    let fd = set_fd(a, state)?;
    let n = fd.read(&mut vec![0u8; 64 << 10]).map_err(|e| format!("read() in {state}: {e}"))?;
    ensure(n > 0, || format!("read() in {state} returned 0 at the start"))?;
    reset(a)?;
    power_on(a)?;
    sysfs_state_is(&a.uuid, DeviceState::Running)?;
    let what = format!("reset in {state}");
    read_after(&fd, &what)?;
    println!("# {what}: PRECOPY_INFO on the old data fd: {:?}", fd.precopy_info().map_err(|e| e.to_string()));
    drop(fd);
    a.setup_ring()?;
    a.fence_works(0x500, 0xa00a_0002)
}

/// Closes A in STOP_COPY with its data fd open, reads the fd, opens A again.
fn close_in_stop_copy(a: Gpu, ua: &str, path: OpenPath) -> (Result<(), String>, Option<Gpu>) {
    let mut a = a;
    let fd = match recover(&mut a).and_then(|()| set_fd(&a, DeviceState::StopCopy)) {
        Ok(fd) => fd,
        Err(e) => return (Err(e), Some(a)),
    };
    let mut problems = Vec::new();
    if let Err(e) = fd.read(&mut vec![0u8; 64 << 10]) {
        problems.push(format!("read() in STOP_COPY: {e}"));
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        drop(a);
        let _ = tx.send(());
    });
    if rx.recv_timeout(HANG_TIMEOUT).is_err() {
        problems.push(format!("closing the device in STOP_COPY blocked for {HANG_TIMEOUT:?} (its data fd open)"));
        drop(fd);
        if rx.recv_timeout(HANG_TIMEOUT).is_err() {
            problems.push("... and still blocks with the data fd closed".into());
            return (Err(problems.join("; ")), None);
        }
    } else {
        if let Err(e) = read_after(&fd, "close in STOP_COPY") {
            problems.push(e);
        }
        drop(fd);
    }
    let reopened: Result<Gpu, String> = (|| {
        let mut a = Gpu::open(ua, path)?;
        let s = get(&a)?;
        ensure(s == DeviceState::Running, || format!("opened again, A is {s}"))?;
        power_on(&a)?;
        sysfs_state_is(&a.uuid, DeviceState::Running)?;
        a.setup_ring()?;
        a.fence_works(0x500, 0xa00a_0003)?;
        Ok(a)
    })();
    match reopened {
        Ok(a) => (ensure(problems.is_empty(), || problems.join("; ")), Some(a)),
        Err(e) => {
            problems.push(format!("opening A again: {e}"));
            (Err(problems.join("; ")), None)
        }
    }
}

/// Result 10. A is closed and opened again; the new A is handed back.
pub fn reset_mid_session(
    a: Gpu,
    b: &mut Gpu,
    ua: &str,
    path: OpenPath,
    good: Option<Vec<u8>>,
) -> (Result<(), String>, Option<Gpu>) {
    let mut a = a;
    let good = match good {
        Some(g) => Ok(g),
        None => recover(&mut a).and_then(|()| save(&mut a, SavePath::StopCopy, None)),
    };
    let mut checks = Vec::new();
    match &good {
        Ok(g) => {
            let _ = set(&a, DeviceState::Running);
            checks.push(("reset in RESUMING".to_string(), in_resuming(b, g, &a)));
        }
        Err(e) => checks.push(("reset in RESUMING".to_string(), Err(format!("no stream of A: {e}")))),
    }
    let _ = recover(b);
    checks.push(("reset in STOP_COPY".into(), in_saving(&mut a, DeviceState::StopCopy)));
    checks.push(("reset in PRE_COPY".into(), in_saving(&mut a, DeviceState::PreCopy)));
    let (r, a) = close_in_stop_copy(a, ua, path);
    checks.push(("close in STOP_COPY".into(), r));
    (all(checks), a)
}
