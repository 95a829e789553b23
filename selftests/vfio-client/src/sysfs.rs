// SPDX-License-Identifier: GPL-2.0
//! sysfs look-ups that turn a mediated device's UUID into its VFIO group or cdev node (and its
//! mdev type).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Where mediated devices appear.
pub const MDEV_DEVICES: &str = "/sys/bus/mdev/devices";

/// `/sys/bus/mdev/devices/UUID`, after checking that `uuid` is a single path component.
pub fn mdev_dir(uuid: &str) -> io::Result<PathBuf> {
    if uuid.is_empty() || uuid.contains('/') || uuid == "." || uuid == ".." {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad device name {uuid:?}")));
    }
    Ok(Path::new(MDEV_DEVICES).join(uuid))
}

/// The IOMMU group number of the device at sysfs directory `dev`: the last component of the
/// `iommu_group` symlink (e.g. `../../../kernel/iommu_groups/5` -> 5).
pub fn iommu_group(dev: &Path) -> io::Result<u32> {
    let link = fs::read_link(dev.join("iommu_group"))?;
    link.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("odd iommu_group link {}", link.display())))
}

/// The name of the mdev type of the device at sysfs directory `dev` (e.g. `nvidia-9106`): the
/// last component of its `mdev_type` symlink.
pub fn mdev_type(dev: &Path) -> io::Result<String> {
    let link = fs::read_link(dev.join("mdev_type"))?;
    link.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("odd mdev_type link {}", link.display())))
}

/// The VFIO cdev name (`vfioN`) of the device at sysfs directory `dev`, from `dev/vfio-dev/`.
pub fn vfio_cdev(dev: &Path) -> io::Result<String> {
    let dir = dev.join("vfio-dev");
    for entry in fs::read_dir(&dir)? {
        let name = entry?.file_name();
        if let Some(n) = name.to_str() {
            if n.strip_prefix("vfio").is_some_and(|num| !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit())) {
                return Ok(n.to_owned());
            }
        }
    }
    Err(io::Error::new(io::ErrorKind::NotFound, format!("no vfioN entry in {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_path_tricks() {
        assert!(mdev_dir("").is_err());
        assert!(mdev_dir("..").is_err());
        assert!(mdev_dir("a/b").is_err());
        assert_eq!(
            mdev_dir("83b8f4f2-509f-382f-3c1e-e6bfe0fa1001").expect("ok"),
            Path::new("/sys/bus/mdev/devices/83b8f4f2-509f-382f-3c1e-e6bfe0fa1001")
        );
    }

    #[test]
    fn resolves_a_fake_sysfs_tree() {
        let base = std::env::temp_dir().join(format!("vfio-client-sysfs-{}", std::process::id()));
        let dev = base.join("dev");
        fs::create_dir_all(dev.join("vfio-dev/vfio3")).expect("mkdir");
        fs::create_dir_all(dev.join("vfio-dev/other")).expect("mkdir");
        std::os::unix::fs::symlink("../../../kernel/iommu_groups/17", dev.join("iommu_group")).expect("symlink");
        std::os::unix::fs::symlink("../mdev_supported_types/nvidia-9106", dev.join("mdev_type")).expect("symlink");
        assert_eq!(iommu_group(&dev).expect("group"), 17);
        assert_eq!(mdev_type(&dev).expect("type"), "nvidia-9106");
        assert_eq!(vfio_cdev(&dev).expect("cdev"), "vfio3");
        fs::remove_dir_all(&base).expect("cleanup");
    }
}
