// SPDX-License-Identifier: GPL-2.0
//! Reading the driver's sysfs files: the bound GPUs, their vGPUs and what they show.
//!
//! Every path is relative to a root (`/sys`, or `RVGPU_SYSFS_ROOT`). A file that is missing or
//! unreadable is `None` (shown as `N/A`); only a missing driver or an unknown GPU is an error.

use crate::accounting::{self, Accounting};
use crate::bdf;
use crate::error::{Error, Result};
use crate::sched::SchedConfig;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The sysfs root without `RVGPU_SYSFS_ROOT`.
pub const DEFAULT_ROOT: &str = "/sys";
/// The environment variable that moves the sysfs root.
pub const ROOT_ENV: &str = "RVGPU_SYSFS_ROOT";
/// The PCI driver's directory (its entries named like PCI addresses are the bound GPUs).
pub const DRIVER_DIR: &str = "bus/pci/drivers/nvidia";
/// The PCI devices' directory.
pub const DEVICES_DIR: &str = "bus/pci/devices";

/// The sysfs root: `RVGPU_SYSFS_ROOT` if set and not empty, otherwise `/sys`.
pub fn root_from_env() -> PathBuf {
    match std::env::var_os(ROOT_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(DEFAULT_ROOT),
    }
}

/// A physical GPU bound to rvgpu, as read at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Gpu {
    /// Its position among the bound GPUs (sorted by PCI address).
    pub index: usize,
    pub bdf: String,
    pub vendor: Option<u16>,
    pub device: Option<u16>,
    pub vram_total_mib: Option<u64>,
    pub vram_free_mib: Option<u64>,
    pub scheduler: Option<SchedConfig>,
    pub accounting: Option<Accounting>,
    /// Sorted by scheduler id, then UUID.
    pub vgpus: Vec<Vgpu>,
}

/// A vGPU, as read at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Vgpu {
    pub uuid: String,
    /// `nvidia-<id>`, the final component of the `mdev_type` link.
    pub type_id: Option<String>,
    /// `mdev_type/name`, e.g. `GRID RVGPU-16Q`.
    pub type_name: Option<String>,
    /// `nvidia/vm_name`: empty when no VM has the vGPU open.
    pub vm_name: Option<String>,
    pub params: Option<String>,
    pub accounting: Option<Accounting>,
}

impl Gpu {
    /// `Bochs display (1234:1111)` for the Bochs board, `PCI <vendor>:<device>` otherwise.
    pub fn name(&self) -> String {
        match (self.vendor, self.device) {
            (Some(0x1234), Some(0x1111)) => "Bochs display (1234:1111)".to_string(),
            (Some(v), Some(d)) => format!("PCI {v:04x}:{d:04x}"),
            _ => "N/A".to_string(),
        }
    }

    /// The vGPU with this UUID.
    pub fn vgpu(&self, uuid: &str) -> Option<&Vgpu> {
        self.vgpus.iter().find(|v| v.uuid == uuid)
    }

    /// The UUID of the vGPU with this scheduler id.
    pub fn uuid_of_sched_id(&self, id: u64) -> Option<&str> {
        self.vgpus
            .iter()
            .find(|v| v.sched_id() == Some(id))
            .map(|v| v.uuid.as_str())
    }
}

impl Vgpu {
    /// `rvgpu-sched-id` from its accounting.
    pub fn sched_id(&self) -> Option<u64> {
        self.accounting.as_ref()?.get_u64(accounting::SCHED_ID)
    }

    /// Its framebuffer profile (`rvgpu-fb-total`) in MiB.
    pub fn fb_total_mib(&self) -> Option<u64> {
        self.accounting
            .as_ref()?
            .get(accounting::FB_TOTAL)?
            .as_mib()
    }

    /// The framebuffer its display scans out now (`rvgpu-fb-used`) in MiB.
    pub fn fb_used_mib(&self) -> Option<u64> {
        self.accounting.as_ref()?.get(accounting::FB_USED)?.as_mib()
    }

    /// `GRID RVGPU-16Q (nvidia-9104)`.
    pub fn type_label(&self) -> String {
        match (&self.type_name, &self.type_id) {
            (Some(n), Some(id)) => format!("{n} ({id})"),
            (Some(n), None) => n.clone(),
            (None, Some(id)) => format!("N/A ({id})"),
            (None, None) => "N/A".to_string(),
        }
    }
}

/// The sysfs tree at a root.
#[derive(Clone, Debug)]
pub struct Sysfs {
    root: PathBuf,
}

impl Sysfs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Sysfs { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn driver_dir(&self) -> PathBuf {
        self.root.join(DRIVER_DIR)
    }

    pub fn device_dir(&self, bdf: &str) -> PathBuf {
        self.root.join(DEVICES_DIR).join(bdf)
    }

    pub fn scheduler_path(&self, bdf: &str) -> PathBuf {
        self.device_dir(bdf).join("nvidia/scheduler")
    }

    pub fn scheduler_log_path(&self, bdf: &str) -> PathBuf {
        self.device_dir(bdf).join("nvidia/scheduler_log")
    }

    /// The PCI addresses of the bound GPUs, sorted.
    pub fn bound_gpus(&self) -> Result<Vec<String>> {
        let dir = self.driver_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Err(Error::Failure(format!(
                    "the rvgpu driver is not loaded (no {})",
                    dir.display()
                )))
            }
            Err(e) => return Err(Error::Failure(format!("reading {}: {e}", dir.display()))),
        };
        let mut gpus = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| Error::Failure(format!("reading {}: {e}", dir.display())))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let is_entry = entry
                .file_type()
                .is_ok_and(|t| t.is_dir() || t.is_symlink());
            if is_entry && bdf::is_bdf(&name) {
                gpus.push(name);
            }
        }
        gpus.sort();
        Ok(gpus)
    }

    /// The bound GPUs with their indices: all of them, or the one `filter` (a normalized PCI
    /// address) names, which is an error if it is not bound.
    pub fn select(&self, filter: Option<&str>) -> Result<Vec<(usize, String)>> {
        let all = self.bound_gpus()?.into_iter().enumerate();
        match filter {
            None => Ok(all.collect()),
            Some(f) => {
                let one: Vec<_> = all.filter(|(_, b)| b.eq_ignore_ascii_case(f)).collect();
                if one.is_empty() {
                    Err(Error::Failure(format!("no GPU {f} is bound to rvgpu")))
                } else {
                    Ok(one)
                }
            }
        }
    }

    /// Reads the selected GPUs (see [`Sysfs::select`]) and their vGPUs.
    pub fn snapshot(&self, filter: Option<&str>) -> Result<Vec<Gpu>> {
        Ok(self
            .select(filter)?
            .into_iter()
            .map(|(index, bdf)| self.read_gpu(index, &bdf))
            .collect())
    }

    /// Reads one GPU and its vGPUs.
    pub fn read_gpu(&self, index: usize, bdf: &str) -> Gpu {
        let dir = self.device_dir(bdf);
        let nv = dir.join("nvidia");
        Gpu {
            index,
            bdf: bdf.to_string(),
            vendor: read_value(&dir.join("vendor")).and_then(|s| parse_hex_u16(&s)),
            device: read_value(&dir.join("device")).and_then(|s| parse_hex_u16(&s)),
            vram_total_mib: read_u64(&nv.join("vram_total_mib")),
            vram_free_mib: read_u64(&nv.join("vram_free_mib")),
            scheduler: read_value(&nv.join("scheduler")).map(|s| SchedConfig::parse(&s)),
            accounting: read_accounting(&nv.join("accounting")),
            vgpus: read_vgpus(&dir),
        }
    }

    /// The driver module's version (`module/version`), if it has one.
    pub fn driver_version(&self) -> Option<String> {
        read_value(&self.driver_dir().join("module/version")).filter(|v| !v.is_empty())
    }
}

/// Whether `s` is a UUID as the mdev core names vGPUs (8-4-4-4-12 lowercase hex).
pub fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| {
            g.len() == n
                && g.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// A file's text (invalid UTF-8 replaced).
pub fn read_text(path: &Path) -> io::Result<String> {
    fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// A one-value file, trimmed.
pub fn read_value(path: &Path) -> Option<String> {
    Some(read_text(path).ok()?.trim().to_string())
}

fn read_u64(path: &Path) -> Option<u64> {
    read_value(path)?.parse().ok()
}

fn read_accounting(path: &Path) -> Option<Accounting> {
    Some(Accounting::parse(&read_text(path).ok()?))
}

fn parse_hex_u16(s: &str) -> Option<u16> {
    let h = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if h.is_empty() || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(h, 16).ok()
}

fn read_vgpus(dir: &Path) -> Vec<Vgpu> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut vgpus: Vec<Vgpu> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir() || t.is_symlink()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| is_uuid(name))
        .map(|uuid| read_vgpu(&dir.join(&uuid), uuid))
        .collect();
    vgpus.sort_by(|a, b| {
        let key = |v: &Vgpu| (v.sched_id().is_none(), v.sched_id());
        key(a).cmp(&key(b)).then_with(|| a.uuid.cmp(&b.uuid))
    });
    vgpus
}

fn read_vgpu(dir: &Path, uuid: String) -> Vgpu {
    let nv = dir.join("nvidia");
    let type_link = dir.join("mdev_type");
    Vgpu {
        uuid,
        type_id: fs::read_link(&type_link)
            .ok()
            .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned())),
        type_name: read_value(&type_link.join("name")),
        vm_name: read_value(&nv.join("vm_name")),
        params: read_value(&nv.join("vgpu_params")),
        accounting: read_accounting(&nv.join("accounting")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeGpu, FakeTree, FakeVgpu};

    #[test]
    fn discovers_gpus_and_vgpus() {
        let t = FakeTree::new("discover");
        let uuids = t.gpu_with_vgpus("0000:00:05.0", 2);
        t.gpu_with_vgpus("0000:00:04.0", 0);
        // A GPU bound as a plain directory rather than a symlink.
        let mut g = FakeGpu::new("0000:00:06.0");
        g.link = false;
        g.vendor = "0x10de".into();
        g.device = "0x1eb8".into();
        t.add_gpu(&g);
        // Not GPUs: a file named like one, a device not bound to the driver.
        t.write("bus/pci/drivers/nvidia/0000:00:07.0", "");
        t.write("bus/pci/devices/0000:00:08.0/vendor", "0x8086\n");

        let s = Sysfs::new(t.root());
        assert_eq!(
            s.bound_gpus().unwrap(),
            ["0000:00:04.0", "0000:00:05.0", "0000:00:06.0"]
        );
        let gpus = s.snapshot(None).unwrap();
        assert_eq!(gpus.len(), 3);
        assert_eq!(gpus[0].index, 0);
        assert!(gpus[0].vgpus.is_empty());
        assert_eq!(gpus[0].name(), "Bochs display (1234:1111)");
        assert_eq!(gpus[2].name(), "PCI 10de:1eb8");
        let g = &gpus[1];
        assert_eq!(g.index, 1);
        assert_eq!(g.vram_total_mib, Some(256));
        assert_eq!(g.vram_free_mib, Some(224));
        let sch = g.scheduler.as_ref().unwrap();
        assert_eq!(sch.policy.as_deref(), Some("equal_share"));
        assert_eq!(sch.timeslice_us, Some(2000));
        assert_eq!(g.vgpus.len(), 2);
        let v = &g.vgpus[0];
        assert_eq!(v.uuid, uuids[0]);
        assert_eq!(v.sched_id(), Some(1));
        assert_eq!(v.type_id.as_deref(), Some("nvidia-9104"));
        assert_eq!(v.type_name.as_deref(), Some("GRID RVGPU-16Q"));
        assert_eq!(v.type_label(), "GRID RVGPU-16Q (nvidia-9104)");
        assert_eq!(v.vm_name.as_deref(), Some("qemu-system-x86[1001]"));
        assert_eq!(v.fb_total_mib(), Some(16));
        assert_eq!(v.fb_used_mib(), Some(4));
        assert_eq!(g.vgpus[1].sched_id(), Some(2));
        assert_eq!(g.uuid_of_sched_id(2), Some(uuids[1].as_str()));

        let one = s.snapshot(Some("0000:00:05.0")).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].index, 1);
    }

    #[test]
    fn vgpus_sorted_by_sched_id() {
        let t = FakeTree::new("sorted");
        t.add_gpu(&FakeGpu::new("0000:00:04.0"));
        for (n, id) in [(1, 7), (2, 3), (3, 5)] {
            t.add_vgpu("0000:00:04.0", &FakeVgpu::new(n, id));
        }
        let mut v = FakeVgpu::new(4, 0);
        v.accounting = "drm-driver: rvgpu\n".into();
        t.add_vgpu("0000:00:04.0", &v);
        // Not a vGPU: a directory that is not named like a UUID.
        t.write("bus/pci/devices/0000:00:04.0/power/control", "auto\n");
        let g = Sysfs::new(t.root()).read_gpu(0, "0000:00:04.0");
        let ids: Vec<_> = g.vgpus.iter().map(Vgpu::sched_id).collect();
        assert_eq!(ids, [Some(3), Some(5), Some(7), None]);
    }

    #[test]
    fn missing_driver() {
        let t = FakeTree::empty("nodriver");
        let e = Sysfs::new(t.root()).snapshot(None).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "the rvgpu driver is not loaded (no {}/bus/pci/drivers/nvidia)",
                t.root().display()
            )
        );
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn unknown_gpu() {
        let t = FakeTree::new("unknown");
        t.gpu_with_vgpus("0000:00:04.0", 1);
        let e = Sysfs::new(t.root())
            .snapshot(Some("0000:00:09.0"))
            .unwrap_err();
        assert_eq!(e.to_string(), "no GPU 0000:00:09.0 is bound to rvgpu");
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn missing_files_are_none() {
        let t = FakeTree::new("sparse");
        t.write("bus/pci/devices/0000:00:04.0/vendor", "0x1234\n");
        std::os::unix::fs::symlink(
            "../../devices/0000:00:04.0",
            t.root().join("bus/pci/drivers/nvidia/0000:00:04.0"),
        )
        .unwrap();
        let g = Sysfs::new(t.root()).read_gpu(0, "0000:00:04.0");
        assert_eq!(g.vendor, Some(0x1234));
        assert_eq!(g.device, None);
        assert_eq!(g.name(), "N/A");
        assert_eq!(g.scheduler, None);
        assert_eq!(g.accounting, None);
    }

    #[test]
    fn uuids() {
        assert!(is_uuid("2b5f1a3c-0d4e-4f60-8a7b-9c0d1e2f3a4b"));
        assert!(!is_uuid("2B5F1A3C-0D4E-4F60-8A7B-9C0D1E2F3A4B"));
        assert!(!is_uuid("2b5f1a3c-0d4e-4f60-8a7b-9c0d1e2f3a4"));
        assert!(!is_uuid("2b5f1a3c0d4e4f608a7b9c0d1e2f3a4b"));
        assert!(!is_uuid("mdev_supported_types"));
    }

    #[test]
    fn hex_ids() {
        assert_eq!(parse_hex_u16("0x1234"), Some(0x1234));
        assert_eq!(parse_hex_u16("1af4"), Some(0x1af4));
        assert_eq!(parse_hex_u16("0x"), None);
        assert_eq!(parse_hex_u16("0x12345"), None);
    }
}
