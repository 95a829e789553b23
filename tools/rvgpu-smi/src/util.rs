// SPDX-License-Identifier: GPL-2.0
//! Utilisation from two reads of an accounting file: Δ`drm-engine-gfx` / Δ`rvgpu-time`, as a
//! percentage of the physical GPU.

use crate::accounting::{Accounting, ENGINE_GFX, TIME};
use crate::sysfs::Gpu;

/// The increase of counter `key` from `prev` to `cur`; `None` if either lacks it or it went
/// down (the counters were reset: a vGPU of the same UUID was created anew).
pub fn delta(prev: &Accounting, cur: &Accounting, key: &str) -> Option<u64> {
    cur.get_u64(key)?.checked_sub(prev.get_u64(key)?)
}

/// The engine busy percentage between two reads; 0 when no time passed between them.
pub fn busy_percent(prev: Option<&Accounting>, cur: Option<&Accounting>) -> Option<f64> {
    let (prev, cur) = (prev?, cur?);
    let time = delta(prev, cur, TIME)?;
    let busy = delta(prev, cur, ENGINE_GFX)?;
    if time == 0 {
        return Some(0.0);
    }
    Some(busy as f64 * 100.0 / time as f64)
}

/// The GPU's accounting in an earlier snapshot.
pub fn gpu_accounting<'a>(snapshot: &'a [Gpu], bdf: &str) -> Option<&'a Accounting> {
    snapshot.iter().find(|g| g.bdf == bdf)?.accounting.as_ref()
}

/// A vGPU's accounting in an earlier snapshot.
pub fn vgpu_accounting<'a>(snapshot: &'a [Gpu], bdf: &str, uuid: &str) -> Option<&'a Accounting> {
    snapshot
        .iter()
        .find(|g| g.bdf == bdf)?
        .vgpu(uuid)?
        .accounting
        .as_ref()
}

/// A GPU's utilisation between snapshot `prev` and its read `gpu`.
pub fn gpu_percent(prev: &[Gpu], gpu: &Gpu) -> Option<f64> {
    busy_percent(gpu_accounting(prev, &gpu.bdf), gpu.accounting.as_ref())
}

/// A vGPU's utilisation between snapshot `prev` and `gpu`'s vGPU `uuid`.
pub fn vgpu_percent(prev: &[Gpu], gpu: &Gpu, uuid: &str) -> Option<f64> {
    busy_percent(
        vgpu_accounting(prev, &gpu.bdf, uuid),
        gpu.vgpu(uuid)?.accounting.as_ref(),
    )
}

/// `12 %`, or `N/A`.
pub fn percent_text(p: Option<f64>) -> String {
    p.map_or_else(|| "N/A".to_string(), |p| format!("{p:.0} %"))
}

/// `256 MiB`, or `N/A`.
pub fn mib_text(v: Option<u64>) -> String {
    v.map_or_else(|| "N/A".to_string(), |m| format!("{m} MiB"))
}

/// A value that may be empty (no VM, default parameters): `-` when empty, `N/A` when unknown.
pub fn dash_empty(v: Option<&str>) -> String {
    match v {
        None => "N/A".to_string(),
        Some("") => "-".to_string(),
        Some(s) => s.to_string(),
    }
}

/// An unsigned decimal integer: digits only (no sign, no spaces) that fit in a `u64`.
pub fn parse_digits(s: &str) -> Option<u64> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// `12.3`, or empty (for CSV).
pub fn percent_field(p: Option<f64>) -> String {
    p.map(|p| format!("{p:.1}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(time: u64, busy: u64) -> Accounting {
        Accounting::parse(&format!(
            "rvgpu-time: {time} ns\ndrm-engine-gfx: {busy} ns\n"
        ))
    }

    #[test]
    fn percentages() {
        let a = acct(1_000_000_000, 5_000_000);
        let b = acct(1_100_000_000, 30_000_000);
        assert_eq!(busy_percent(Some(&a), Some(&b)), Some(25.0));
        assert_eq!(percent_text(busy_percent(Some(&a), Some(&b))), "25 %");
        assert_eq!(percent_field(Some(25.0)), "25.0");
    }

    #[test]
    fn no_time_passed_is_zero() {
        let a = acct(1_000, 500);
        assert_eq!(busy_percent(Some(&a), Some(&a)), Some(0.0));
        assert_eq!(percent_text(Some(0.0)), "0 %");
    }

    #[test]
    fn missing_or_reset_counters() {
        let a = acct(2_000, 500);
        let b = acct(1_000, 600);
        assert_eq!(busy_percent(Some(&a), Some(&b)), None);
        assert_eq!(busy_percent(None, Some(&b)), None);
        let c = Accounting::parse("rvgpu-time: 3000 ns\n");
        assert_eq!(busy_percent(Some(&a), Some(&c)), None);
        assert_eq!(percent_text(None), "N/A");
        assert_eq!(percent_field(None), "");
    }
}
