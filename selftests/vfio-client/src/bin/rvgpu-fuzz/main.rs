// SPDX-License-Identifier: GPL-2.0
//! A fuzzer of rvgpu's VFIO interface, sysfs files, engine and migration.
//!
//! `rvgpu-fuzz GPU UUID_A UUID_B [--iommufd] [--seed N] [--seconds S] [--procs P]`: `GPU` is the
//! physical GPU's PCI address, `UUID_A` and `UUID_B` two vGPUs on it (created by the caller,
//! closed). For S seconds (default 20), P worker processes (default 2) do random operations:
//! worker `i` works on vGPU `i % 2` (A, B, A, ...); workers 0 and 1 open their vGPU (container
//! path, or iommufd/cdev with `--iommufd`) and fuzz it, the others only race them for the device
//! (a vGPU is opened by one user at a time: `EBUSY` and friends are expected) and fuzz sysfs.
//!
//! The operation families ([`shared::FAMILIES`]): device ioctls with short, exact, huge and
//! garbage arguments ([`ioctl`]); pread/pwrite of every region index and beyond ([`region`]);
//! mmap of every region, touching what the kernel maps ([`region`]); `SET_IRQS` with bad and
//! closed eventfds ([`irq`]); the engine fed random rings and commands while a helper thread maps
//! and unmaps the DMA buffer under it ([`engine`]); migration with corrupted streams resumed into
//! the device that saved them ([`migration`]); sysfs writes of random and near-valid text
//! ([`sysfs`]); closing and opening the vGPU ([`worker`]).
//!
//! Errors from the kernel are expected and counted by errno. The run fails (exit status 1) when
//! a worker is killed by a signal (SIGSEGV, SIGBUS... from touching a mapping, say), hangs past
//! S + 30 s (it is killed; the operation it was in is reported), exits otherwise than cleanly, or
//! when afterwards a vGPU does not work: opened, reset, with memory decode and bus mastering on
//! and a ring set up, one FENCE must complete within 10 s. The GPU's `nvidia/scheduler` and
//! `nvidia/scanout` and the vGPUs' `vgpu_params` are restored at the end, vGPUs the fuzzer
//! created are removed.
//!
//! Output: `# ` diagnostics (the seed first: `--seed N` repeats a run's choices), the operation
//! counts (`# ops FAMILY N`) and errno histograms, then one result line, `ok - fuzz: ...` or
//! `not ok - fuzz: REASON (seed N)`.

mod engine;
mod ioctl;
mod irq;
mod migration;
mod region;
mod shared;
mod sysfs;
mod worker;

use std::io::Write;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vfio_client::harness::{wait_for, Gpu, Unmapped};
use vfio_client::rvgpu::*;
use vfio_client::{DeviceState, OpenPath};

use crate::shared::{errno_name, uuid_text, Rng, Shared, FAMILIES, NFAM};

const USAGE: &str = "usage: rvgpu-fuzz GPU UUID_A UUID_B [--iommufd] [--seed N] [--seconds S] [--procs P]";

/// How long past `--seconds` a worker may take before it counts as hung.
const HANG_GRACE: Duration = Duration::from_secs(30);
/// How long the final FENCE may take.
const FENCE_TIMEOUT: Duration = Duration::from_secs(10);

/// The command line, as the workers get it.
pub struct Config {
    /// The physical GPU's PCI address.
    pub gpu: String,
    /// The two vGPUs.
    pub uuids: [String; 2],
    /// The VFIO path.
    pub path: OpenPath,
    /// How long the workers fuzz.
    pub seconds: f64,
    /// The run's seed.
    pub seed: u64,
    /// Worker processes.
    pub procs: usize,
}

fn usage_exit() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2);
}

fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn clock_seed() -> u64 {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    Rng::new(t ^ u64::from(std::process::id()) << 32).u64()
}

fn parse_args() -> Config {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut pos = Vec::new();
    let (mut iommufd, mut seed, mut seconds, mut procs) = (false, None, 20.0f64, 2usize);
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        // `--opt VALUE` or `--opt=VALUE`.
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v.to_string())),
            _ => (a, None),
        };
        let mut value = || -> String {
            if let Some(v) = inline.clone() {
                return v;
            }
            i += 1;
            args.get(i).cloned().unwrap_or_else(|| usage_exit())
        };
        match key {
            "-h" | "--help" => {
                println!("{USAGE}");
                println!("  GPU       the physical GPU's PCI address (0000:00:05.0)");
                println!("  UUID_A/B  two closed vGPUs on it");
                println!("  --iommufd open the vGPUs through iommufd/cdev instead of the group/container path");
                println!("  --seed N  the PRNG seed (default: from the clock; printed first)");
                println!("  --seconds S  how long to fuzz (default 20)");
                println!("  --procs P    worker processes (default 2; worker i works on vGPU i % 2)");
                std::process::exit(0);
            }
            "--iommufd" => iommufd = true,
            "--seed" => seed = Some(parse_u64(&value()).unwrap_or_else(|| usage_exit())),
            "--seconds" => {
                seconds = value()
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s <= 1e7)
                    .unwrap_or_else(|| usage_exit())
            }
            "--procs" => {
                procs = value().parse::<usize>().ok().filter(|p| (1..=64).contains(p)).unwrap_or_else(|| usage_exit())
            }
            _ if a.starts_with("--") => usage_exit(),
            _ => pos.push(a.to_string()),
        }
        i += 1;
    }
    let [gpu, ua, ub]: [String; 3] = pos.try_into().unwrap_or_else(|_| usage_exit());
    if ua == ub || [&ua, &ub].iter().any(|u| shared::parse_uuid(u.as_bytes()).is_none()) {
        eprintln!("rvgpu-fuzz: UUID_A and UUID_B must be two different UUIDs");
        usage_exit();
    }
    let path = if iommufd { OpenPath::Iommufd } else { OpenPath::Container };
    Config { gpu, uuids: [ua, ub], path, seconds, seed: seed.unwrap_or_else(clock_seed), procs }
}

fn flush() {
    let _ = std::io::stdout().flush();
}

fn signal_name(s: i32) -> String {
    let names =
        [(libc::SIGSEGV, "SIGSEGV"), (libc::SIGBUS, "SIGBUS"), (libc::SIGKILL, "SIGKILL"), (libc::SIGABRT, "SIGABRT")];
    let more =
        [(libc::SIGILL, "SIGILL"), (libc::SIGFPE, "SIGFPE"), (libc::SIGTERM, "SIGTERM"), (libc::SIGPIPE, "SIGPIPE")];
    names.iter().chain(more.iter()).find(|&&(n, _)| n == s).map_or_else(|| format!("signal {s}"), |&(_, n)| n.into())
}

/// The state of a worker process as the parent sees it.
struct Child {
    pid: libc::pid_t,
    status: Option<libc::c_int>,
}

/// Waits for the workers; kills those still running `limit` after `start`. The failures.
fn supervise(children: &mut [Child], shared: &'static Shared, start: Instant, limit: Duration) -> Vec<String> {
    let mut failures = Vec::new();
    loop {
        for c in children.iter_mut().filter(|c| c.status.is_none()) {
            let mut st = 0;
            // SAFETY: plain syscall on our own child.
            if unsafe { libc::waitpid(c.pid, &mut st, libc::WNOHANG) } == c.pid {
                c.status = Some(st);
            }
        }
        if children.iter().all(|c| c.status.is_some()) {
            break;
        }
        if start.elapsed() > limit {
            for (i, c) in children.iter_mut().enumerate().filter(|(_, c)| c.status.is_none()) {
                let s = shared.slot(i);
                let aux = s.aux();
                let aux = if aux.is_empty() { String::new() } else { format!(" (its helper thread in {aux})") };
                failures.push(format!("worker {i} hung in {}{aux} past {:.0} s", s.op(), limit.as_secs_f64()));
                println!("# worker {i} (pid {}) hung in {}{aux}; killing it", c.pid, s.op());
                // SAFETY: plain syscall on our own child.
                unsafe { libc::kill(c.pid, libc::SIGKILL) };
            }
            // A worker stuck in the kernel may not die at once; give it a while.
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(10) && children.iter().any(|c| c.status.is_none()) {
                for c in children.iter_mut().filter(|c| c.status.is_none()) {
                    let mut st = 0;
                    // SAFETY: as above.
                    if unsafe { libc::waitpid(c.pid, &mut st, libc::WNOHANG) } == c.pid {
                        c.status = Some(st);
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            for (i, c) in children.iter().enumerate().filter(|(_, c)| c.status.is_none()) {
                failures.push(format!("worker {i} (pid {}) could not be killed", c.pid));
            }
            return failures;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for (i, c) in children.iter().enumerate() {
        let Some(st) = c.status else { continue };
        let s = shared.slot(i);
        if libc::WIFSIGNALED(st) {
            let aux = s.aux();
            let aux = if aux.is_empty() { String::new() } else { format!(" (its helper thread in {aux})") };
            failures.push(format!("worker {i} killed by {} in {}{aux}", signal_name(libc::WTERMSIG(st)), s.op()));
        } else if libc::WIFEXITED(st) && libc::WEXITSTATUS(st) != 0 {
            failures.push(format!("worker {i} exited with status {} in {}", libc::WEXITSTATUS(st), s.op()));
        } else if s.done.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            failures.push(format!("worker {i} ended without finishing, in {}", s.op()));
        }
    }
    failures
}

/// Prints the operation counts and errno histograms; the total.
fn report(shared: &'static Shared, procs: usize) -> u64 {
    let mut total = 0;
    for i in 0..procs {
        let s = shared.slot(i);
        let n: u64 = (0..NFAM).map(|f| s.ops(f)).sum();
        println!("# worker {i}: {n} operations, last in {}", s.op());
        total += n;
    }
    for (f, name) in FAMILIES.iter().enumerate() {
        let n: u64 = (0..procs).map(|i| shared.slot(i).ops(f)).sum();
        println!("# ops {name} {n}");
        let mut hist = vec![0u64; shared::NERR];
        for i in 0..procs {
            for (e, c) in shared.slot(i).errs(f) {
                hist[e] += c;
            }
        }
        let failed: u64 = hist.iter().sum();
        let mut parts = vec![format!("ok={}", n - failed.min(n))];
        parts.extend(hist.iter().enumerate().filter(|(_, &c)| c > 0).map(|(e, c)| format!("{}={c}", errno_name(e))));
        println!("# errno {name} {}", parts.join(" "));
    }
    total
}

/// Writes `text` to a sysfs file (which must exist: nothing is created).
fn sysfs_write_io(path: &str, text: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new().write(true).open(path).and_then(|mut f| f.write_all(text.as_bytes()))
}

/// [`sysfs_write_io`] with the error as a message.
fn sysfs_write(path: &str, text: &str) -> Result<(), String> {
    sysfs_write_io(path, text).map_err(|e| format!("writing {:?} to {path}: {e}", text.trim_end()))
}

/// The GPU's and the vGPUs' files as they were, vGPUs the workers created removed.
fn restore(cfg: &Config, shared: &'static Shared) -> Vec<String> {
    let mut failures = Vec::new();
    for i in 0..cfg.procs {
        for u in shared.slot(i).created() {
            let t = uuid_text(u);
            let r = sysfs_write(&format!("/sys/bus/mdev/devices/{t}/remove"), "1\n");
            println!("# removing vGPU {t} left by worker {i}: {}", r.as_ref().map_or_else(|e| e.as_str(), |_| "ok"));
            if let Err(e) = r {
                failures.push(format!("could not remove the vGPU {t} the fuzzer created ({e})"));
            }
        }
    }
    let gpu = format!("/sys/bus/pci/devices/{}/nvidia", cfg.gpu);
    let mut writes = vec![
        (format!("{gpu}/scheduler"), "policy=best_effort timeslice_us=0\n".to_string()),
        (format!("{gpu}/scanout"), "none\n".to_string()),
    ];
    for u in &cfg.uuids {
        writes.push((format!("/sys/bus/mdev/devices/{u}/nvidia/vgpu_params"), "\n".to_string()));
    }
    for (p, text) in writes {
        // A vGPU just closed may still be releasing (EPERM, EBUSY); retry a little.
        let t = Instant::now();
        let r = loop {
            let r = sysfs_write_io(&p, &text);
            let again = matches!(&r, Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EBUSY)));
            if !again || t.elapsed() > Duration::from_secs(5) {
                break r;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if let Err(e) = r {
            let e = format!("restoring {p} ({:?}): {e}", text.trim_end());
            println!("# {e}");
            failures.push(e);
        }
    }
    failures
}

/// Opens `uuid`, resets it, turns memory decode and bus mastering on, sets a ring up and runs
/// one FENCE, which must complete within [`FENCE_TIMEOUT`].
fn sanity(uuid: &str, path: OpenPath, value: u32) -> Result<String, String> {
    let t = Instant::now();
    let u = loop {
        match Unmapped::open(uuid, path) {
            Ok(u) => break u,
            Err(e) if t.elapsed() > Duration::from_secs(5) => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let mut g = u.map(4096, 4096)?;
    g.dev.reset().map_err(|e| format!("VFIO_DEVICE_RESET: {e}"))?;
    match g.dev.mig_state() {
        Ok(DeviceState::Running) => {}
        other => return Err(format!("after VFIO_DEVICE_RESET the device state is {other:?}, not RUNNING")),
    }
    g.enable()?;
    g.set_reg(REG_IRQ_ENABLE, 0)?;
    g.setup_ring()?;
    g.clear()?;
    g.set_scratch(0, 0)?;
    let before = g.reg(REG_COMPLETED)?;
    g.submit(&[Cmd::fence(Gpu::scratch_iova(0), value)])?;
    let done = wait_for(FENCE_TIMEOUT, || Ok(g.reg(REG_COMPLETED)? != before && g.scratch(0)? == value))?;
    if !done {
        let mem = g.scratch(0)?;
        return Err(format!("the FENCE did not complete within {FENCE_TIMEOUT:?} (memory {mem:#x}); {}", g.dump()));
    }
    Ok(format!("FENCE {value:#x} landed, COMPLETED {before} -> {}", g.reg(REG_COMPLETED)?))
}

/// [`sanity`] on a thread of its own, so that a device that blocks cannot hang the parent.
fn sanity_bounded(uuid: &str, path: OpenPath, value: u32) -> Result<String, String> {
    let (tx, rx) = mpsc::channel();
    let u = uuid.to_string();
    std::thread::spawn(move || {
        let _ = tx.send(sanity(&u, path, value));
    });
    rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| Err("the check blocked for 60 s".into()))
}

fn main() {
    let cfg = parse_args();
    println!("# seed {}", cfg.seed);
    let tag = if cfg.path == OpenPath::Iommufd { "iommufd" } else { "container" };
    println!(
        "# rvgpu-fuzz on {} ({}, {}), {} path, {} s, {} worker processes",
        cfg.gpu, cfg.uuids[0], cfg.uuids[1], tag, cfg.seconds, cfg.procs
    );
    let shared = match Shared::new(cfg.procs) {
        Ok(s) => s,
        Err(e) => {
            println!("not ok - fuzz: mapping the shared pages: {e} (seed {})", cfg.seed);
            std::process::exit(1);
        }
    };
    for i in 0..cfg.procs {
        let role = if i < 2 { "fuzzes" } else { "races for" };
        println!("# worker {i}: seed {}, {role} {}", cfg.seed.wrapping_add(i as u64), cfg.uuids[i % 2]);
    }
    flush();

    let start = Instant::now();
    let mut children = Vec::new();
    let mut failures = Vec::new();
    for i in 0..cfg.procs {
        // SAFETY: the parent is single-threaded here; the child only runs the worker and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker::run(&cfg, i, shared.slot(i))))
                .unwrap_or(101);
            flush();
            // SAFETY: ends the child without running anything of the parent's.
            unsafe { libc::_exit(code) };
        }
        if pid < 0 {
            failures.push(format!("fork: {}", std::io::Error::last_os_error()));
            break;
        }
        children.push(Child { pid, status: None });
    }
    let limit = Duration::from_secs_f64(cfg.seconds) + HANG_GRACE;
    failures.extend(supervise(&mut children, shared, start, limit));
    let elapsed = start.elapsed().as_secs_f64();
    let total = report(shared, cfg.procs);

    failures.extend(restore(&cfg, shared));
    let rng = Rng::new(cfg.seed ^ 0x5eed);
    for u in &cfg.uuids {
        let v = 0xf0_0000 | (rng.u32() & 0xffff);
        match sanity_bounded(u, cfg.path, v) {
            Ok(m) => println!("# {u} works afterwards: {m}"),
            Err(e) => {
                println!("# {u} does not work afterwards: {e}");
                failures.push(format!("{u} does not work afterwards: {e}"));
            }
        }
    }

    if failures.is_empty() {
        println!("ok - fuzz: {total} operations in {elapsed:.1} s (seed {}), devices work afterwards", cfg.seed);
        flush();
        std::process::exit(0);
    }
    println!("not ok - fuzz: {} (seed {})", failures.join("; "), cfg.seed);
    flush();
    std::process::exit(1);
}
