// SPDX-License-Identifier: GPL-2.0

//! vGPU types: the tables in `mdev_types/*.types`, turned into Rust at build time by
//! `scripts/gen-types.py`, and the sysfs strings management tools parse.

use kernel::{
    fmt,
    prelude::*, //
};

/// The GRID type classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TypeClass {
    /// Virtual workstation.
    Q,
    /// Virtual desktop.
    B,
    /// Virtual applications.
    A,
    /// Compute only.
    #[expect(dead_code)]
    C,
}

/// One vGPU type of a board's table.
#[derive(Debug)]
pub(crate) struct VgpuType {
    /// The type id: the sysfs directory is `nvidia-<id>`.
    pub(crate) id: u32,
    /// The `name` file, e.g. `GRID RVGPU-64Q`.
    pub(crate) name: &'static CStr,
    pub(crate) class: TypeClass,
    /// The profile size: usable framebuffer plus the host's reservation.
    pub(crate) profile_mib: u32,
    /// The part of the profile the host keeps for itself.
    pub(crate) reserved_mib: u32,
    pub(crate) heads: u32,
    pub(crate) max_width: u32,
    pub(crate) max_height: u32,
    /// The frame-rate limit.
    pub(crate) frl_fps: u32,
    /// How many instances of this type alone fill the board.
    pub(crate) max_instances: u32,
}

/// The types of one board model with one VRAM size.
pub(crate) struct TypeTable {
    pub(crate) board: &'static str,
    pub(crate) vram_mib: u32,
    pub(crate) types: &'static [VgpuType],
}

include!("../generated/types.rs");

impl VgpuType {
    /// The profile size in bytes (also the size of the VRAM slice an instance gets).
    pub(crate) fn profile_bytes(&self) -> u64 {
        u64::from(self.profile_mib) << 20
    }

    /// The usable framebuffer in bytes (what the guest gets; the rest of the profile is the
    /// host's reservation).
    pub(crate) fn usable_bytes(&self) -> u64 {
        u64::from(self.profile_mib - self.reserved_mib) << 20
    }

    /// The `description` file, in the format GRID hosts use.
    pub(crate) fn description(&self) -> Description<'_> {
        Description(self)
    }
}

/// Formats a type's `description`:
/// `num_heads=4, frl_config=60, framebuffer=64M, max_resolution=5120x2880, max_instance=4`.
pub(crate) struct Description<'a>(&'a VgpuType);

impl fmt::Display for Description<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        writeln!(
            f,
            "num_heads={}, frl_config={}, framebuffer={}M, max_resolution={}x{}, max_instance={}",
            t.heads, t.frl_fps, t.profile_mib, t.max_width, t.max_height, t.max_instances
        )
    }
}

/// The table for a board model with `vram` bytes: the exact size if there is one, else the
/// largest table that fits (the rest of the VRAM stays unused).
pub(crate) fn table_for(board: &str, vram: u64) -> Option<&'static TypeTable> {
    TYPE_TABLES
        .iter()
        .filter(|t| t.board == board && (u64::from(t.vram_mib) << 20) <= vram)
        .max_by_key(|t| t.vram_mib)
}

#[kunit_tests(rvgpu_vgpu_types)]
mod tests {
    use super::*;
    use kernel::str::CString;

    #[test]
    fn description_format() -> Result {
        let t = table_for("bochs", 256 << 20).ok_or(ENOENT)?;
        let q64 = t.types.iter().find(|t| t.id == 9106).ok_or(ENOENT)?;
        let s = CString::try_from_fmt(fmt!("{}", q64.description()))?;
        assert_eq!(
            s.to_bytes(),
            b"num_heads=4, frl_config=60, framebuffer=64M, max_resolution=5120x2880, max_instance=4\n"
        );
        Ok(())
    }

    #[test]
    fn table_selection() {
        assert_eq!(table_for("bochs", 256 << 20).map(|t| t.vram_mib), Some(256));
        assert_eq!(table_for("bochs", 512 << 20).map(|t| t.vram_mib), Some(512));
        // 96 MiB: the 64 MiB table, the rest unused.
        assert_eq!(table_for("bochs", 96 << 20).map(|t| t.vram_mib), Some(64));
        assert!(table_for("bochs", 16 << 20).is_none());
        assert!(table_for("no-such-board", 256 << 20).is_none());
    }

    #[test]
    fn tables_are_consistent() {
        let bad = TYPE_TABLES
            .iter()
            .flat_map(|table| table.types.iter().map(move |t| (table, t)))
            .filter(|(table, t)| {
                !t.profile_mib.is_power_of_two()
                    || t.reserved_mib >= t.profile_mib
                    || t.max_instances != table.vram_mib / t.profile_mib
            })
            .count();
        assert_eq!(bad, 0);
    }
}
