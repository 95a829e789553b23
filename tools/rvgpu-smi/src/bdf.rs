// SPDX-License-Identifier: GPL-2.0
//! PCI addresses (`DDDD:BB:DD.F`).

use crate::error::{Error, Result};

/// Parses a PCI address, `DDDD:BB:DD.F` or the short form `BB:DD.F` (domain 0000), and
/// returns it in the kernel's form (lowercase, with the domain). Domains of up to 8 hex digits
/// are accepted (VMD domains have 5).
pub fn parse(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (domain, bus, devfn) = match parts.as_slice() {
        [d, b, df] => (*d, *b, *df),
        [b, df] => ("0000", *b, *df),
        _ => return None,
    };
    let (dev, func) = devfn.split_once('.')?;
    let hex = |t: &str| t.bytes().all(|c| c.is_ascii_hexdigit());
    let domain_ok = (4..=8).contains(&domain.len()) && hex(domain);
    let bus_ok = bus.len() == 2 && hex(bus);
    let dev_ok = dev.len() == 2 && hex(dev) && u8::from_str_radix(dev, 16).is_ok_and(|d| d < 0x20);
    let func_ok = func.len() == 1 && matches!(func.as_bytes()[0], b'0'..=b'7');
    (domain_ok && bus_ok && dev_ok && func_ok)
        .then(|| format!("{domain}:{bus}:{dev}.{func}").to_ascii_lowercase())
}

/// Parses a PCI address given on the command line; a malformed one is a usage error.
pub fn parse_arg(s: &str) -> Result<String> {
    parse(s).ok_or_else(|| Error::Usage(format!("'{s}' is not a PCI address (DDDD:BB:DD.F)")))
}

/// Whether a directory entry's name is a full PCI address (with the domain).
pub fn is_bdf(name: &str) -> bool {
    name.split(':').count() == 3 && parse(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_short_forms() {
        assert_eq!(parse("0000:00:04.0").as_deref(), Some("0000:00:04.0"));
        assert_eq!(parse("00:04.0").as_deref(), Some("0000:00:04.0"));
        assert_eq!(parse("0000:AF:1F.7").as_deref(), Some("0000:af:1f.7"));
        assert_eq!(parse("10000:e1:00.0").as_deref(), Some("10000:e1:00.0"));
    }

    #[test]
    fn malformed() {
        for s in [
            "",
            "0",
            "04.0",
            "0000:00:04",
            "0000:00:04.8",
            "0000:00:20.0",
            "000:00:04.0",
            "0000:0:04.0",
            "0000:00:4.0",
            "0000:00:04.00",
            "g000:00:04.0",
            "0000:00:04.0:1",
            "0000-00-04.0",
            "+000:00:04.0",
            "0000:00:04.-",
        ] {
            assert_eq!(parse(s), None, "{s:?}");
        }
        let e = parse_arg("bogus").unwrap_err();
        assert_eq!(e.to_string(), "'bogus' is not a PCI address (DDDD:BB:DD.F)");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn directory_entries() {
        assert!(is_bdf("0000:00:04.0"));
        assert!(!is_bdf("00:04.0"));
        for name in ["bind", "unbind", "module", "new_id", "remove_id", "uevent"] {
            assert!(!is_bdf(name));
        }
    }
}
