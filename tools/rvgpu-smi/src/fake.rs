// SPDX-License-Identifier: GPL-2.0
//! Fake sysfs trees in a temporary directory, laid out as the driver's, for tests.
//! A tree is removed when its [`FakeTree`] is dropped.

use std::fmt::Display;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fake sysfs root.
pub struct FakeTree {
    root: PathBuf,
}

/// A GPU to create with [`FakeTree::add_gpu`]; the files hold these texts as they are.
#[derive(Clone, Debug)]
pub struct FakeGpu {
    pub bdf: String,
    pub vendor: String,
    pub device: String,
    pub vram_total_mib: u64,
    pub vram_free_mib: u64,
    pub scheduler: String,
    pub accounting: String,
    pub scheduler_log: String,
    /// Bind the GPU as a symlink to its device (as sysfs does) rather than a plain directory.
    pub link: bool,
}

/// A vGPU to create with [`FakeTree::add_vgpu`].
#[derive(Clone, Debug)]
pub struct FakeVgpu {
    pub uuid: String,
    pub type_id: String,
    pub type_name: String,
    pub vm_name: String,
    pub params: String,
    pub accounting: String,
}

impl FakeGpu {
    /// A Bochs board with 256 MiB of VRAM, 224 free, `equal_share` 2000 µs, idle accounting.
    pub fn new(bdf: &str) -> Self {
        FakeGpu {
            bdf: bdf.to_string(),
            vendor: "0x1234".into(),
            device: "0x1111".into(),
            vram_total_mib: 256,
            vram_free_mib: 224,
            scheduler: "policy=equal_share timeslice_us=2000\n".into(),
            accounting: gpu_accounting(bdf, 1_000_000_000, 0, 0, 0),
            scheduler_log: String::new(),
            link: true,
        }
    }
}

impl FakeVgpu {
    /// vGPU number `n` (its UUID is [`uuid`]`(n)`), a `GRID RVGPU-16Q` with scheduler id
    /// `sched_id`, open by `qemu-system-x86[1000+n]`, idle accounting.
    pub fn new(n: usize, sched_id: u64) -> Self {
        FakeVgpu {
            uuid: uuid(n),
            type_id: "nvidia-9104".into(),
            type_name: "GRID RVGPU-16Q".into(),
            vm_name: format!("qemu-system-x86[{}]", 1000 + n),
            params: "frame_rate_limiter=1".into(),
            accounting: vgpu_accounting("0000:00:04.0", sched_id, 1_000_000_000, 0, 0),
        }
    }
}

/// A UUID for vGPU number `n`.
pub fn uuid(n: usize) -> String {
    format!("{n:08x}-0000-4000-8000-{n:012x}")
}

/// A GPU's accounting file with these values (and fixed others).
pub fn gpu_accounting(bdf: &str, time_ns: u64, busy_ns: u64, vgpus: usize, slices: u64) -> String {
    format!(
        "drm-driver: rvgpu\ndrm-pdev: {bdf}\nrvgpu-time: {time_ns} ns\ndrm-engine-gfx: {busy_ns} ns\n\
         rvgpu-commands: 100\nrvgpu-bytes-moved: 4096\nrvgpu-interrupts: 7\nrvgpu-vblanks: 60\n\
         rvgpu-frl-delayed-frames: 59\nrvgpu-slices: {slices}\nrvgpu-wait-total: 1000 ns\n\
         rvgpu-wait-max: 100000 ns\nrvgpu-overrun-total: 10 ns\nrvgpu-overrun-max: 5 ns\n\
         rvgpu-pinned-pages: 2\nrvgpu-vgpus: {vgpus}\nrvgpu-runnable-idle: 0 ns\n"
    )
}

/// A vGPU's accounting file with these values (and fixed others).
pub fn vgpu_accounting(
    bdf: &str,
    sched_id: u64,
    time_ns: u64,
    busy_ns: u64,
    slices: u64,
) -> String {
    format!(
        "drm-driver: rvgpu\ndrm-pdev: {bdf}\nrvgpu-time: {time_ns} ns\ndrm-engine-gfx: {busy_ns} ns\n\
         rvgpu-sched-id: {sched_id}\nrvgpu-commands: 100\nrvgpu-bytes-moved: 4096\n\
         rvgpu-interrupts: 7\nrvgpu-vblanks: 60\nrvgpu-frl-delayed-frames: 59\n\
         rvgpu-slices: {slices}\nrvgpu-wait-total: 1000 ns\nrvgpu-wait-max: 100000 ns\n\
         rvgpu-overrun-total: 10 ns\nrvgpu-overrun-max: 5 ns\nrvgpu-pinned-pages: 2\n\
         rvgpu-fb-total: 16384 KiB\nrvgpu-fb-used: 4800 KiB\n"
    )
}

impl FakeTree {
    /// An empty root (no driver).
    pub fn empty(tag: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let root = std::env::temp_dir().join(format!(
            "rvgpu-smi-test-{tag}-{}-{n}-{nanos}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).expect("creating the fake sysfs root");
        FakeTree { root }
    }

    /// A root with the driver loaded and no GPUs bound: the driver directory holds `bind`,
    /// `unbind`, `new_id`, `remove_id`, `uevent` and `module`, as sysfs does.
    pub fn new(tag: &str) -> Self {
        let t = Self::empty(tag);
        for f in ["bind", "unbind", "new_id", "remove_id", "uevent"] {
            t.write(&format!("bus/pci/drivers/nvidia/{f}"), "");
        }
        t.write("module/rvgpu/refcnt", "0\n");
        symlink(
            "../../../module/rvgpu",
            t.root.join("bus/pci/drivers/nvidia/module"),
        )
        .expect("creating the module link");
        t
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes `content` to the file at `rel` (relative to the root), creating directories.
    pub fn write(&self, rel: &str, content: &str) {
        let path = self.root.join(rel);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).expect("creating a fake sysfs directory");
        }
        fs::write(&path, content).expect("writing a fake sysfs file");
    }

    /// Writes `value` and a line break to the file at `rel`, as a one-value sysfs file reads.
    pub fn write_line(&self, rel: &str, value: impl Display) {
        self.write(rel, &format!("{value}\n"));
    }

    /// The device directory of GPU `bdf`, relative to the root.
    pub fn device_rel(bdf: &str) -> String {
        format!("bus/pci/devices/{bdf}")
    }

    /// Creates a GPU and binds it; returns its device directory.
    pub fn add_gpu(&self, g: &FakeGpu) -> PathBuf {
        let dev = Self::device_rel(&g.bdf);
        self.write_line(&format!("{dev}/vendor"), &g.vendor);
        self.write_line(&format!("{dev}/device"), &g.device);
        self.write_line(&format!("{dev}/uevent"), "DRIVER=nvidia");
        let nv = format!("{dev}/nvidia");
        self.write_line(&format!("{nv}/vram_total_mib"), g.vram_total_mib);
        self.write_line(&format!("{nv}/vram_free_mib"), g.vram_free_mib);
        self.write(&format!("{nv}/scheduler"), &g.scheduler);
        self.write(&format!("{nv}/accounting"), &g.accounting);
        self.write(&format!("{nv}/scheduler_log"), &g.scheduler_log);
        for (id, name) in [
            ("nvidia-9104", "GRID RVGPU-16Q"),
            ("nvidia-9105", "GRID RVGPU-32Q"),
        ] {
            self.write_line(&format!("{dev}/mdev_supported_types/{id}/name"), name);
        }
        let bound = self.root.join("bus/pci/drivers/nvidia").join(&g.bdf);
        if g.link {
            symlink(format!("../../devices/{}", g.bdf), &bound).expect("binding a fake GPU");
        } else {
            fs::create_dir_all(&bound).expect("binding a fake GPU");
        }
        self.root.join(dev)
    }

    /// Creates a vGPU on GPU `bdf` (which must exist); returns its directory.
    pub fn add_vgpu(&self, bdf: &str, v: &FakeVgpu) -> PathBuf {
        let dev = Self::device_rel(bdf);
        let dir = format!("{dev}/{}", v.uuid);
        self.write_line(&format!("{dir}/nvidia/vm_name"), &v.vm_name);
        self.write_line(&format!("{dir}/nvidia/vgpu_params"), &v.params);
        self.write(&format!("{dir}/nvidia/accounting"), &v.accounting);
        let types = format!("{dev}/mdev_supported_types/{}", v.type_id);
        if !self.root.join(&types).exists() {
            self.write_line(&format!("{types}/name"), &v.type_name);
        }
        symlink(
            format!("../mdev_supported_types/{}", v.type_id),
            self.root.join(&dir).join("mdev_type"),
        )
        .expect("creating a fake mdev_type link");
        self.root.join(dir)
    }

    /// Creates GPU `bdf` (a [`FakeGpu::new`]) with `n` vGPUs ([`FakeVgpu::new`]`(i, i)` for
    /// i = 1..=n, accounting naming this GPU); returns the vGPUs' UUIDs.
    pub fn gpu_with_vgpus(&self, bdf: &str, n: usize) -> Vec<String> {
        let mut g = FakeGpu::new(bdf);
        g.accounting = gpu_accounting(bdf, 1_000_000_000, 0, n, 0);
        self.add_gpu(&g);
        (1..=n)
            .map(|i| {
                let mut v = FakeVgpu::new(i, i as u64);
                v.accounting = vgpu_accounting(bdf, i as u64, 1_000_000_000, 0, 0);
                self.add_vgpu(bdf, &v);
                v.uuid
            })
            .collect()
    }

    /// Replaces GPU `bdf`'s accounting file.
    pub fn set_gpu_accounting(&self, bdf: &str, text: &str) {
        self.write(
            &format!("{}/nvidia/accounting", Self::device_rel(bdf)),
            text,
        );
    }

    /// Replaces vGPU `uuid`'s accounting file.
    pub fn set_vgpu_accounting(&self, bdf: &str, uuid: &str, text: &str) {
        self.write(
            &format!("{}/{uuid}/nvidia/accounting", Self::device_rel(bdf)),
            text,
        );
    }

    /// Replaces the accounting files of GPU `bdf` and its vGPUs `uuids` (as made by
    /// [`FakeTree::gpu_with_vgpus`]) with reads at `time_ns`: `(busy_ns, slices)` is `gpu` for
    /// the GPU and `vgpus[i]` for vGPU `uuids[i]` (scheduler id i + 1).
    pub fn set_busy(
        &self,
        bdf: &str,
        uuids: &[String],
        time_ns: u64,
        gpu: (u64, u64),
        vgpus: &[(u64, u64)],
    ) {
        let (busy_ns, slices) = gpu;
        self.set_gpu_accounting(
            bdf,
            &gpu_accounting(bdf, time_ns, busy_ns, uuids.len(), slices),
        );
        for (i, (uuid, &(busy_ns, slices))) in uuids.iter().zip(vgpus).enumerate() {
            self.set_vgpu_accounting(
                bdf,
                uuid,
                &vgpu_accounting(bdf, i as u64 + 1, time_ns, busy_ns, slices),
            );
        }
    }
}

impl Drop for FakeTree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}
