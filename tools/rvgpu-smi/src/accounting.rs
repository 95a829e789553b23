// SPDX-License-Identifier: GPL-2.0
//! The `nvidia/accounting` files, modelled on DRM fdinfo (Documentation/gpu/drm-usage-stats.rst):
//! one `key: value` per line, the value an unsigned integer optionally followed by a unit
//! (`ns`, `KiB`), or a string.

use std::fmt;

/// The driver's name (a string).
pub const DRIVER: &str = "drm-driver";
/// The GPU's PCI address (a string).
pub const PDEV: &str = "drm-pdev";
/// CLOCK_MONOTONIC when the file was read (ns).
pub const TIME: &str = "rvgpu-time";
/// Engine busy time (ns).
pub const ENGINE_GFX: &str = "drm-engine-gfx";
/// The vGPU's id in the scheduler (and its log).
pub const SCHED_ID: &str = "rvgpu-sched-id";
/// Time slices run.
pub const SLICES: &str = "rvgpu-slices";
/// The longest wait for a time slice (ns).
pub const WAIT_MAX: &str = "rvgpu-wait-max";
/// A vGPU's framebuffer profile (KiB).
pub const FB_TOTAL: &str = "rvgpu-fb-total";
/// The framebuffer a vGPU's display scans out now (KiB).
pub const FB_USED: &str = "rvgpu-fb-used";

/// The keys whose values are strings even when they look like numbers.
const STRING_KEYS: [&str; 2] = [DRIVER, PDEV];

/// One value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// An unsigned integer and its unit, if any.
    Int { value: u64, unit: Option<String> },
    /// Anything else, as written.
    Str(String),
}

impl Value {
    /// The integer, if the value is one.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Int { value, .. } => Some(*value),
            Value::Str(_) => None,
        }
    }

    /// The unit, if the value is an integer with one.
    pub fn unit(&self) -> Option<&str> {
        match self {
            Value::Int { unit, .. } => unit.as_deref(),
            Value::Str(_) => None,
        }
    }

    /// The size in MiB of a memory value (`KiB`, `MiB`, `GiB`; no unit: bytes), rounded down.
    pub fn as_mib(&self) -> Option<u64> {
        let v = self.as_u64()?;
        match self.unit() {
            Some("KiB") => Some(v / 1024),
            Some("MiB") => Some(v),
            Some("GiB") => v.checked_mul(1024),
            None => Some(v / (1024 * 1024)),
            Some(_) => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int {
                value,
                unit: Some(u),
            } => write!(f, "{value} {u}"),
            Value::Int { value, unit: None } => write!(f, "{value}"),
            Value::Str(s) => f.write_str(s),
        }
    }
}

/// A parsed accounting file: every entry in file order (unknown keys included).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accounting {
    pub entries: Vec<(String, Value)>,
    /// Non-empty lines that were not `key: value` (ignored).
    pub malformed: usize,
}

impl Accounting {
    /// Parses an accounting file. Lines without `: ` are counted in `malformed` and ignored.
    pub fn parse(text: &str) -> Self {
        let mut acct = Accounting::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            match line.split_once(": ") {
                Some((key, raw)) if !key.trim().is_empty() => {
                    let key = key.trim();
                    acct.entries
                        .push((key.to_string(), parse_value(key, raw.trim())));
                }
                _ => acct.malformed += 1,
            }
        }
        acct
    }

    /// The value of `key` (the last one if it repeats).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The integer value of `key`.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }

    /// Every key once, in the order of first appearance, with its last value.
    pub fn unique(&self) -> Vec<(&str, &Value)> {
        let mut out: Vec<(&str, &Value)> = Vec::new();
        for (k, v) in &self.entries {
            match out.iter_mut().find(|(key, _)| key == k) {
                Some(slot) => slot.1 = v,
                None => out.push((k, v)),
            }
        }
        out
    }
}

/// How `-q` names a key: `drm-engine-gfx` is `Engine Busy`, the others keep their names.
pub fn label(key: &str) -> &str {
    if key == ENGINE_GFX {
        "Engine Busy"
    } else {
        key
    }
}

fn parse_value(key: &str, raw: &str) -> Value {
    if !STRING_KEYS.contains(&key) {
        let mut words = raw.split_whitespace();
        if let (Some(n), unit, None) = (words.next(), words.next(), words.next()) {
            if let Some(value) = crate::util::parse_digits(n) {
                return Value::Int {
                    value,
                    unit: unit.map(str::to_string),
                };
            }
        }
    }
    Value::Str(raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_strings_and_unknown_keys() {
        let a = Accounting::parse(
            "drm-driver: rvgpu\ndrm-pdev: 0000:00:04.0\nrvgpu-time: 123456789 ns\n\
             drm-engine-gfx: 1234567 ns\nrvgpu-commands: 100\nrvgpu-fb-total: 16384 KiB\n\
             rvgpu-future-thing: 42 widgets\nrvgpu-label: hello world\n",
        );
        assert_eq!(a.malformed, 0);
        assert_eq!(a.entries.len(), 8);
        assert_eq!(a.get(DRIVER), Some(&Value::Str("rvgpu".into())));
        assert_eq!(a.get(PDEV), Some(&Value::Str("0000:00:04.0".into())));
        assert_eq!(a.get_u64(TIME), Some(123_456_789));
        assert_eq!(a.get(TIME).unwrap().unit(), Some("ns"));
        assert_eq!(a.get_u64("rvgpu-commands"), Some(100));
        assert_eq!(a.get("rvgpu-commands").unwrap().unit(), None);
        assert_eq!(a.get(FB_TOTAL).unwrap().as_mib(), Some(16));
        assert_eq!(
            a.get("rvgpu-future-thing").unwrap().to_string(),
            "42 widgets"
        );
        assert_eq!(
            a.get("rvgpu-label"),
            Some(&Value::Str("hello world".into()))
        );
        assert_eq!(a.get("missing"), None);
    }

    #[test]
    fn malformed_lines_are_ignored() {
        let a = Accounting::parse(
            "garbage\nrvgpu-slices:500\n: 5\n\nrvgpu-slices: 7\nrvgpu-x: -3 ns\nrvgpu-y: 1 2 3\n\
             rvgpu-z: 99999999999999999999999\nrvgpu-e: \n",
        );
        // "garbage", "rvgpu-slices:500", ": 5" and "rvgpu-e: " (a line is trimmed first).
        assert_eq!(a.malformed, 4);
        assert_eq!(a.get_u64(SLICES), Some(7));
        assert_eq!(a.get("rvgpu-x"), Some(&Value::Str("-3 ns".into())));
        assert_eq!(a.get("rvgpu-y"), Some(&Value::Str("1 2 3".into())));
        assert_eq!(a.get_u64("rvgpu-z"), None);
        assert_eq!(a.get("rvgpu-e"), None);
    }

    #[test]
    fn repeated_keys() {
        let a = Accounting::parse("a: 1\nb: 2\na: 3\n");
        assert_eq!(a.get_u64("a"), Some(3));
        let u = a.unique();
        assert_eq!(u.len(), 2);
        assert_eq!(u[0].0, "a");
        assert_eq!(u[0].1.as_u64(), Some(3));
    }

    #[test]
    fn labels() {
        assert_eq!(label("drm-engine-gfx"), "Engine Busy");
        assert_eq!(label("rvgpu-commands"), "rvgpu-commands");
    }
}
