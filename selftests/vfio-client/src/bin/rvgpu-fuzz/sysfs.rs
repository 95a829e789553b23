// SPDX-License-Identifier: GPL-2.0
//! sysfs: random text (random bytes of random lengths up to 2048, printable garbage, and
//! near-valid strings) written to the types' `create`, to the vGPUs' `vgpu_params` (`EPERM`
//! while a vGPU is open is expected), to the GPU's `nvidia/scheduler` and `nvidia/scanout` and to
//! read-only attributes; every attribute read. A vGPU a `create` made is remembered (in the
//! shared slot too, for the parent) and removed a few operations later through its `remove`.
//! UUID_A and UUID_B are never removed. The parent restores the files at the end.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::shared::{parse_uuid, uuid_text, Fam, Rng};
use crate::worker::Worker;

/// One `write()` of `data` to `path` (sysfs takes a write whole).
fn write_once(path: &Path, data: &[u8]) -> std::io::Result<usize> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    f.write(data)
}

/// One read of up to 64 KiB.
fn read_once(path: &Path) -> std::io::Result<usize> {
    let mut f = fs::File::open(path)?;
    let mut b = vec![0u8; 64 << 10];
    f.read(&mut b)
}

/// A random UUID, the kind `create` takes (version 4 bits, so it looks like a real one).
fn random_uuid(rng: &Rng) -> u128 {
    let u = u128::from(rng.u64()) << 64 | u128::from(rng.u64());
    u & !(0xf << 76) | (4 << 76)
}

/// Where each kind of text goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Create,
    Params,
    OtherParams,
    Scheduler,
    Scanout,
    ReadOnly,
    Read,
}

/// Near-valid text for `target`.
fn near_valid(rng: &Rng, target: Target, uuids: &[&str; 2]) -> Vec<u8> {
    let sep = |rng: &Rng| rng.pick(&[" ", ",", ", ", "\n", "", "  ", "\t"]);
    let nl = |rng: &Rng| rng.pick(&["\n", "", "\n\n", " \n"]);
    let s = match target {
        Target::Create => {
            let u = uuid_text(random_uuid(rng));
            match rng.below(8) {
                0..=3 => format!("{u}{}", nl(rng)),
                4 => u.to_uppercase(),
                5 => u.replace('-', ""),
                6 => format!("{u}x"),
                _ => format!("{}\n", rng.pick(uuids)),
            }
        }
        Target::Params | Target::OtherParams => {
            let mut parts = Vec::new();
            for _ in 0..rng.range(0, 3) {
                let key = rng.pick(&["frame_rate_limiter", "precopy", "frame_rate_limiter ", "fps", "", "x"]);
                let val = rng.pick(&["0", "1", "2", "", "yes", "-1", "00", " 1"]);
                parts.push(format!("{key}={val}"));
            }
            let mut t = parts.join(sep(rng));
            if rng.percent(5) {
                t = "frame_rate_limiter=0,".repeat(rng.range(40, 60) as usize);
            }
            format!("{t}{}", nl(rng))
        }
        Target::Scheduler => {
            let policy = rng.pick(&["best_effort", "equal_share", "fixed_share", "round_robin", "", "BEST_EFFORT"]);
            let slice = rng.pick(&["0", "1000", "1500", "30000", "999", "30001", "-1", "", "99999999999999999999"]);
            let t = match rng.below(4) {
                0 => format!("policy={policy}"),
                1 => format!("timeslice_us={slice}"),
                2 => format!("timeslice_us={slice}{}policy={policy}", sep(rng)),
                _ => format!("policy={policy}{}timeslice_us={slice}", sep(rng)),
            };
            format!("{t}{}", nl(rng))
        }
        Target::Scanout => {
            let t = match rng.below(6) {
                0 => "none".to_string(),
                1 | 2 => rng.pick(uuids).to_string(),
                3 => uuid_text(random_uuid(rng)),
                4 => rng.pick(uuids).to_uppercase(),
                _ => format!("{}x", rng.pick(uuids)),
            };
            format!("{t}{}", nl(rng))
        }
        Target::ReadOnly | Target::Read => rng.pick(&["1", "0", "none", ""]).to_string(),
    };
    s.into_bytes()
}

/// Random text: bytes, printable garbage, or near-valid.
fn text(rng: &Rng, target: Target, uuids: &[&str; 2]) -> Vec<u8> {
    match rng.below(10) {
        0..=2 => {
            let n = rng.range(0, 2048) as usize;
            rng.bytes(n)
        }
        3 | 4 => {
            let n = rng.pick(&[rng.range(0, 64), rng.range(0, 2048)]) as usize;
            (0..n).map(|_| rng.range(0x20, 0x7e) as u8).collect()
        }
        _ => near_valid(rng, target, uuids),
    }
}

/// The type directories of the GPU.
fn types(gpu: &str) -> Vec<PathBuf> {
    fs::read_dir(format!("/sys/bus/pci/devices/{gpu}/mdev_supported_types"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// One sysfs operation.
pub fn op(w: &mut Worker) {
    let gpu_dir = PathBuf::from(format!("/sys/bus/pci/devices/{}/nvidia", w.cfg.gpu));
    let mine = PathBuf::from(format!("/sys/bus/mdev/devices/{}/nvidia", w.uuid));
    let other = PathBuf::from(format!("/sys/bus/mdev/devices/{}/nvidia", w.other));
    let uuids = [w.cfg.uuids[0].as_str(), w.cfg.uuids[1].as_str()];
    let rng = &w.rng;
    let sh = w.sh;
    let target = rng.weighted(&[
        (3, Target::Create),
        (3, Target::Params),
        (1, Target::OtherParams),
        (3, Target::Scheduler),
        (3, Target::Scanout),
        (1, Target::ReadOnly),
        (4, Target::Read),
    ]);
    let path = match target {
        Target::Create => {
            let t = types(&w.cfg.gpu);
            if t.is_empty() {
                sh.rec_err(Fam::Sysfs, Some(libc::ENOENT));
                return;
            }
            t[rng.below(t.len() as u64) as usize].join("create")
        }
        Target::Params => mine.join("vgpu_params"),
        Target::OtherParams => other.join("vgpu_params"),
        Target::Scheduler => gpu_dir.join("scheduler"),
        Target::Scanout => gpu_dir.join("scanout"),
        Target::ReadOnly | Target::Read => {
            let ro = target == Target::ReadOnly;
            let gpu_rw: &[&str] = if ro { &[] } else { &["scanout", "scheduler"] };
            let gpu_files = ["vram_total_mib", "vram_free_mib", "vram_largest_free_mib", "placement", "pinned_pages"];
            let gpu_more = ["scheduler_log", "accounting"];
            let vgpu_files =
                ["vm_name", "display", "migration", "accounting", if ro { "vm_name" } else { "vgpu_params" }];
            let type_files = ["name", "description", "available_instances", "device_api"];
            match rng.below(3) {
                0 => {
                    let all: Vec<&str> =
                        gpu_files.iter().chain(gpu_more.iter()).chain(gpu_rw.iter()).copied().collect();
                    gpu_dir.join(rng.pick(&all))
                }
                1 => rng.pick(&[&mine, &other]).join(rng.pick(&vgpu_files)),
                _ => {
                    let t = types(&w.cfg.gpu);
                    match t.get(rng.below(t.len() as u64) as usize) {
                        Some(d) => d.join(rng.pick(&type_files)),
                        None => gpu_dir.join("placement"),
                    }
                }
            }
        }
    };
    if target == Target::Read {
        sh.set_op("sysfs: read");
        let r = read_once(&path);
        sh.rec(Fam::Sysfs, &r);
        return;
    }
    let data = text(rng, target, &uuids);
    sh.set_op(match target {
        Target::Create => "sysfs: create",
        Target::Params | Target::OtherParams => "sysfs: vgpu_params",
        Target::Scheduler => "sysfs: scheduler",
        Target::Scanout => "sysfs: scanout",
        _ => "sysfs: read-only attribute",
    });
    let r = write_once(&path, &data);
    let ok = sh.rec(Fam::Sysfs, &r);
    // A write of nothing never reaches the kernel's store: it "succeeds" creating nothing.
    if ok && target == Target::Create && !data.is_empty() {
        // The mdev core parses the first 36 bytes and ignores what follows.
        match data.get(..36).and_then(parse_uuid) {
            Some(u) => {
                println!("# worker {}: created vGPU {} ({})", w.idx, uuid_text(u), path.display());
                if !sh.add_created(u) {
                    // No room to remember it: remove it now.
                    remove(w, u);
                    return;
                }
                let ops = w.rng.range(0, 20) as u32;
                w.pending.push((u, ops));
            }
            None => println!("# worker {}: {} accepted {:?}, which is no UUID", w.idx, path.display(), data),
        }
    }
}

/// Removes a vGPU this worker created (garbage written to its `remove` first, sometimes).
fn remove(w: &mut Worker, u: u128) -> bool {
    let path = PathBuf::from(format!("/sys/bus/mdev/devices/{}/remove", uuid_text(u)));
    if w.cfg.uuids.iter().any(|x| parse_uuid(x.as_bytes()) == Some(u)) {
        // Never UUID_A or UUID_B (a create of theirs cannot have succeeded anyway).
        return true;
    }
    if w.rng.percent(30) {
        w.sh.set_op("sysfs: remove garbage");
        let g = text(&w.rng, Target::ReadOnly, &["", ""]);
        let r = write_once(&path, &g);
        w.sh.rec(Fam::Sysfs, &r);
        if r.is_ok() && !path.exists() {
            w.sh.drop_created(u);
            return true;
        }
    }
    w.sh.set_op("sysfs: remove");
    let r = write_once(&path, b"1\n");
    let ok = w.sh.rec(Fam::Sysfs, &r);
    if ok || matches!(r, Err(ref e) if e.raw_os_error() == Some(libc::ENOENT)) {
        w.sh.drop_created(u);
        return true;
    }
    false
}

/// Counts down the created vGPUs; removes those whose time has come.
pub fn expire(w: &mut Worker) {
    if w.pending.is_empty() {
        return;
    }
    let mut keep = Vec::new();
    for (u, left) in std::mem::take(&mut w.pending) {
        if left == 0 {
            if !remove(w, u) {
                keep.push((u, 3));
            }
        } else {
            keep.push((u, left - 1));
        }
    }
    w.pending = keep;
}

/// Removes every vGPU this worker created (the parent retries what is left).
pub fn remove_all(w: &mut Worker) {
    for (u, _) in std::mem::take(&mut w.pending) {
        if !remove(w, u) {
            println!("# worker {}: could not remove vGPU {} (the parent tries again)", w.idx, uuid_text(u));
        }
    }
}
