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
    /// The maximum resolution of one head, as the `description` shows it.
    pub(crate) max_width: u32,
    pub(crate) max_height: u32,
    /// The largest mode the vGPU's display offers: `max_width` x `max_height`, or for a
    /// persona's type (whose framebuffer is scaled down) the largest common mode within it that
    /// one head can scan out of the usable framebuffer at 32 bpp.
    pub(crate) mode_width: u32,
    pub(crate) mode_height: u32,
    /// The frame-rate limit.
    pub(crate) frl_fps: u32,
    /// How many instances of this type alone fill the board.
    pub(crate) max_instances: u32,
}

/// The types of one board model with one VRAM size.
pub(crate) struct TypeTable {
    /// The board model, or the persona (`mdev_types/<board>.types`).
    pub(crate) board: &'static str,
    pub(crate) vram_mib: u32,
    /// A persona's table: the real board's VRAM (its profiles are divided by
    /// `persona_mib / vram_mib`); 0 for a board's own table.
    pub(crate) persona_mib: u32,
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

/// The persona the module was loaded with (`persona=`), if any.
pub(crate) fn persona() -> Option<&'static str> {
    let p = crate::vfio::support::persona_param().to_str().ok()?;
    (!p.is_empty()).then_some(p)
}

/// `EINVAL` (with one log line naming the known ones) if `persona=` names no persona table.
pub(crate) fn check_persona() -> Result {
    let Some(p) = persona() else {
        return Ok(());
    };
    if TYPE_TABLES
        .iter()
        .any(|t| t.persona_mib != 0 && t.board == p)
    {
        return Ok(());
    }
    let mut known = [""; 8];
    let mut n = 0;
    for t in TYPE_TABLES.iter().filter(|t| t.persona_mib != 0) {
        if n < known.len() && !known[..n].contains(&t.board) {
            known[n] = t.board;
            n += 1;
        }
    }
    pr_err!(
        "persona={}: no such persona (known: {}; mdev_types/<persona>.types)\n",
        p,
        Joined(&known[..n])
    );
    Err(EINVAL)
}

/// `a, b, c`.
struct Joined<'a>(&'a [&'a str]);

impl fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(s)?;
        }
        Ok(())
    }
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
    fn personas() -> Result {
        // The T4 on a 256 MiB board: the real ids, names and description, the slices divided
        // by 64, and a display mode that fits the 16 MiB slice.
        let t = table_for("t4", 256 << 20).ok_or(ENOENT)?;
        assert_eq!(t.persona_mib, 16384);
        let b1 = t.types.iter().find(|t| t.id == 222).ok_or(ENOENT)?;
        assert_eq!(b1.name.to_bytes(), b"GRID T4-1B");
        let s = CString::try_from_fmt(fmt!("{}", b1.description()))?;
        assert_eq!(
            s.to_bytes(),
            b"num_heads=4, frl_config=45, framebuffer=16M, max_resolution=5120x2880, max_instance=16\n"
        );
        assert_eq!((b1.mode_width, b1.mode_height), (1920, 1200));
        assert!(u64::from(b1.mode_width) * u64::from(b1.mode_height) * 4 <= b1.usable_bytes());
        let m60 = table_for("m60", 256 << 20).ok_or(ENOENT)?;
        assert_eq!(m60.types.len(), 12);
        assert!(m60.types.iter().all(|t| (11..=22).contains(&t.id)));
        Ok(())
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
                    || t.mode_width > t.max_width
                    || t.mode_height > t.max_height
                    || u64::from(t.mode_width) * u64::from(t.mode_height) * 4 > t.usable_bytes()
            })
            .count();
        assert_eq!(bad, 0);
    }
}
