// SPDX-License-Identifier: GPL-2.0
//! Concurrency stress on one physical GPU, then exact accounting.
//!
//! `rvgpu-stress GPU TYPE [--threads N] [--seconds S] [--seed N] [--iommufd]`: for S seconds
//! (default 20), N threads (default 8) each do random operations on the GPU's vGPUs of type
//! `TYPE` (`nvidia-<id>`): create one (a fresh UUID), remove one, or open one (container path, or
//! iommufd/cdev with `--iommufd`) and, while holding it, reset it, map and unmap guest memory for
//! DMA, set up a ring and ring doorbells with FILL, COPY and FENCE commands (some of them into
//! memory just unmapped), then close it, sometimes with commands still queued. Threads race for
//! the same vGPUs: `EBUSY` on open, `ENODEV`/`ENOENT` on a vGPU another thread removed, and a full
//! GPU refusing a create are expected, and counted.
//!
//! Then every vGPU the threads left is removed, and the GPU must be back where it started
//! exactly: `vram_free_mib` and the type's `available_instances` as before, `pinned_pages` 0, no
//! vGPU of the GPU left. Output: `# ` lines (seed, operation and errno counts, the accounting),
//! then one line `ok - stress: ...` or `not ok - stress: REASON (seed N)`; exit status 0 or 1.

use std::collections::BTreeMap;
use std::fs;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vfio_client::harness::{Gpu, Unmapped, DATA_IOVA};
use vfio_client::rvgpu::*;
use vfio_client::{Mmap, OpenPath};

const USAGE: &str = "usage: rvgpu-stress GPU TYPE [--threads N] [--seconds S] [--seed N] [--iommufd]";

/// A small xorshift generator: each thread has its own, seeded from the run's seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.u64() % n.max(1)
    }
}

/// What the threads share: the vGPUs they know of, and counts.
struct Shared {
    gpu: String,
    ty: String,
    path: OpenPath,
    uuids: Mutex<Vec<String>>,
    /// (operation, outcome) -> count.
    counts: Mutex<BTreeMap<(&'static str, String), u64>>,
    ops: AtomicU64,
}

impl Shared {
    fn count(&self, op: &'static str, outcome: &str) {
        self.ops.fetch_add(1, Relaxed);
        *self.counts.lock().unwrap().entry((op, outcome.to_string())).or_default() += 1;
    }
    fn pick(&self, rng: &mut Rng) -> Option<String> {
        let u = self.uuids.lock().unwrap();
        (!u.is_empty()).then(|| u[rng.below(u.len() as u64) as usize].clone())
    }
}

fn errno_of(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EBUSY) => "EBUSY".into(),
        Some(libc::ENODEV) => "ENODEV".into(),
        Some(libc::ENOENT) => "ENOENT".into(),
        Some(libc::ENOSPC) => "ENOSPC".into(),
        Some(libc::EINVAL) => "EINVAL".into(),
        Some(libc::EEXIST) => "EEXIST".into(),
        Some(libc::EDQUOT) => "EDQUOT".into(),
        Some(n) => format!("errno {n}"),
        None => e.to_string(),
    }
}

fn write(path: &str, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    fs::OpenOptions::new().write(true).open(path)?.write_all(text.as_bytes())
}

fn read(path: &str) -> Result<String, String> {
    fs::read_to_string(path).map(|s| s.trim().to_string()).map_err(|e| format!("read {path}: {e}"))
}

fn read_u64(path: &str) -> Result<u64, String> {
    let s = read(path)?;
    s.split_whitespace().next().and_then(|w| w.parse().ok()).ok_or_else(|| format!("{path}: {s:?} is not a number"))
}

fn new_uuid(rng: &mut Rng) -> String {
    let (a, b) = (rng.u64(), rng.u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

fn create(sh: &Shared, rng: &mut Rng) {
    let u = new_uuid(rng);
    let r = write(&format!("/sys/bus/pci/devices/{}/mdev_supported_types/{}/create", sh.gpu, sh.ty), &u);
    match r {
        Ok(()) => {
            sh.uuids.lock().unwrap().push(u);
            sh.count("create", "ok");
        }
        Err(e) => sh.count("create", &errno_of(&e)),
    }
}

fn remove(sh: &Shared, rng: &mut Rng) {
    let Some(u) = sh.pick(rng) else { return };
    // Taken out of the list first: one remover per vGPU.
    {
        let mut l = sh.uuids.lock().unwrap();
        match l.iter().position(|x| *x == u) {
            Some(i) => {
                l.swap_remove(i);
            }
            None => return,
        }
    }
    // Blocks while a thread holds the vGPU open: the driver asks it to let go (the VFIO
    // request interrupt), and the holder closes when its operation ends.
    match write(&format!("/sys/bus/mdev/devices/{u}/remove"), "1") {
        Ok(()) => sh.count("remove", "ok"),
        Err(e) => sh.count("remove", &errno_of(&e)),
    }
}

/// Opens a vGPU and works it: reset, DMA maps and unmaps, rings and doorbells; then closes it.
fn work(sh: &Shared, rng: &mut Rng) {
    let Some(u) = sh.pick(rng) else { return };
    let un = match Unmapped::open(&u, sh.path) {
        Ok(un) => un,
        Err(e) => {
            let what = if e.contains("busy") || e.contains("EBUSY") {
                "EBUSY"
            } else if e.contains("No such") {
                "gone"
            } else {
                "other error"
            };
            sh.count("open", what);
            return;
        }
    };
    let mut g = match un.map(4096, 64 << 10) {
        Ok(g) => g,
        Err(_) => {
            sh.count("open", "map failed");
            return;
        }
    };
    sh.count("open", "ok");
    let r = session(&mut g, rng);
    sh.count("session", if r.is_ok() { "ok" } else { "error" });
    // Dropped here: closed, sometimes with commands queued.
}

fn session(g: &mut Gpu, rng: &mut Rng) -> Result<(), String> {
    if rng.below(3) == 0 {
        g.dev.reset().map_err(|e| format!("reset: {e}"))?;
    }
    g.enable()?;
    g.setup_ring()?;
    let extra = Mmap::anonymous(256 << 10).map_err(|e| e.to_string())?;
    let extra_iova = 0x3000_0000u64;
    for _ in 0..rng.below(6) + 1 {
        match rng.below(5) {
            0 => {
                let _ = g.dev.map_dma(&extra, extra_iova);
            }
            1 => {
                let _ = g.dev.unmap_dma(extra_iova, extra.len() as u64);
            }
            _ => {
                let n = rng.below(16) + 1;
                for _ in 0..n {
                    let c = match rng.below(4) {
                        0 => Cmd::fill(0, 1024, 1024, 1, rng.u64() as u32),
                        1 => Cmd::copy_to_fb(DATA_IOVA, 4096, 0, 4096, 4096, 4),
                        2 => Cmd::copy_from_fb(extra_iova + rng.below(32) * 4096, 4096, 0, 4096, 4096, 2),
                        _ => Cmd::fence(Gpu::scratch_iova(0), rng.u64() as u32),
                    };
                    g.push(&c)?;
                }
                g.doorbell()?;
                if rng.below(2) == 0 {
                    std::thread::sleep(Duration::from_millis(rng.below(5)));
                }
            }
        }
    }
    // Closing with `extra` still mapped (or not): the close releases it.
    drop(extra);
    Ok(())
}

/// The vGPUs of `gpu` now (the mdev devices whose parent it is).
fn vgpus_of(gpu: &str) -> Vec<String> {
    let mut v = Vec::new();
    if let Ok(d) = fs::read_dir(format!("/sys/bus/pci/devices/{gpu}")) {
        for e in d.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.len() == 36 && n.matches('-').count() == 4 {
                v.push(n);
            }
        }
    }
    v.sort();
    v
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut pos = Vec::new();
    let (mut threads, mut seconds, mut seed, mut path) = (8usize, 20.0f64, None, OpenPath::Container);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = || it.next().and_then(|v| v.parse::<f64>().ok()).unwrap_or_else(|| usage());
        match a.as_str() {
            "--threads" => threads = num() as usize,
            "--seconds" => seconds = num(),
            "--seed" => seed = Some(num() as u64),
            "--iommufd" => path = OpenPath::Iommufd,
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            _ if a.starts_with('-') => usage(),
            _ => pos.push(a.clone()),
        }
    }
    if pos.len() != 2 || threads == 0 || threads > 64 || !seconds.is_finite() || seconds <= 0.0 {
        usage();
    }
    let seed = seed.unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64));
    let (gpu, ty) = (pos[0].clone(), pos[1].clone());
    println!("# seed {seed}");
    println!("# rvgpu-stress on {gpu}, type {ty}, {threads} threads, {seconds} s, {path:?} path");
    let gdir = format!("/sys/bus/pci/devices/{gpu}");
    let avail_path = format!("{gdir}/mdev_supported_types/{ty}/available_instances");
    let before = (|| -> Result<_, String> {
        Ok((
            read_u64(&format!("{gdir}/nvidia/vram_free_mib"))?,
            read_u64(&format!("{gdir}/nvidia/vram_total_mib"))?,
            read_u64(&avail_path)?,
            vgpus_of(&gpu),
        ))
    })();
    let (free0, total, avail0, left0) = match before {
        Ok(b) => b,
        Err(e) => {
            println!("not ok - stress: {e} (seed {seed})");
            std::process::exit(1);
        }
    };
    println!("# before: vram_free_mib {free0} of {total}, available_instances {avail0}, {} vGPUs", left0.len());
    let sh = Shared {
        gpu: gpu.clone(),
        ty,
        path,
        uuids: Mutex::new(Vec::new()),
        counts: Mutex::new(BTreeMap::new()),
        ops: AtomicU64::new(0),
    };
    let t = Instant::now();
    let limit = Duration::from_secs_f64(seconds);
    std::thread::scope(|s| {
        for i in 0..threads {
            let sh = &sh;
            s.spawn(move || {
                let mut rng = Rng::new(seed.wrapping_add(i as u64 + 1));
                while t.elapsed() < limit {
                    match rng.below(10) {
                        0..=2 => create(sh, &mut rng),
                        3 | 4 => remove(sh, &mut rng),
                        _ => work(sh, &mut rng),
                    }
                }
            });
        }
    });
    let elapsed = t.elapsed().as_secs_f64();
    for ((op, outcome), n) in sh.counts.lock().unwrap().iter() {
        println!("# {op} {outcome}: {n}");
    }
    let ops = sh.ops.load(Relaxed);
    // Everything the threads left goes.
    let left: Vec<String> = sh.uuids.lock().unwrap().drain(..).collect();
    let mut failures = Vec::new();
    for u in &left {
        if let Err(e) = write(&format!("/sys/bus/mdev/devices/{u}/remove"), "1") {
            failures.push(format!("removing {u}: {e}"));
        }
    }
    println!("# removed the {} vGPUs left", left.len());
    let after = (|| -> Result<_, String> {
        Ok((
            read_u64(&format!("{gdir}/nvidia/vram_free_mib"))?,
            read_u64(&avail_path)?,
            read_u64(&format!("{gdir}/nvidia/pinned_pages"))?,
            vgpus_of(&gpu),
        ))
    })();
    match after {
        Ok((free, avail, pinned, vgpus)) => {
            println!(
                "# after: vram_free_mib {free}, available_instances {avail}, pinned_pages {pinned}, {} vGPUs",
                vgpus.len()
            );
            if free != free0 {
                failures.push(format!("vram_free_mib {free}, was {free0}"));
            }
            if avail != avail0 {
                failures.push(format!("available_instances {avail}, was {avail0}"));
            }
            if pinned != 0 {
                failures.push(format!("{pinned} pages still pinned"));
            }
            if vgpus != left0 {
                failures.push(format!("vGPUs left: {vgpus:?} (before: {left0:?})"));
            }
        }
        Err(e) => failures.push(e),
    }
    let creates = sh.counts.lock().unwrap().get(&("create", "ok".to_string())).copied().unwrap_or(0);
    let opens = sh.counts.lock().unwrap().get(&("open", "ok".to_string())).copied().unwrap_or(0);
    if creates < 2 || opens < 2 {
        failures.push(format!("too little happened: {creates} creates, {opens} opens"));
    }
    if failures.is_empty() {
        println!(
            "ok - stress: {ops} operations by {threads} threads in {elapsed:.1} s ({creates} creates, {opens} opens), accounting exact afterwards (seed {seed})"
        );
    } else {
        println!("not ok - stress: {} (seed {seed})", failures.join("; "));
        std::process::exit(1);
    }
}

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2);
}
