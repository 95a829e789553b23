// SPDX-License-Identifier: GPL-2.0

//! `nvidia/vgpu_params`: per-instance settings, a `key=value,key=value` string of at most
//! 1024 bytes, as on GRID hosts.
//!
//! Known keys (anything else is refused):
//! - `frame_rate_limiter=0|1`: turn the type's frame-rate limit off or on (default on);
//! - `precopy=0|1`: send the framebuffer while the VM runs, in live migration's pre-copy phase
//!   (default on), or only once it is stopped (STOP_COPY).

use kernel::prelude::*;

/// The longest `vgpu_params` string accepted.
pub(crate) const MAX_LEN: usize = 1024;

/// The settings `vgpu_params` controls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Params {
    pub(crate) frame_rate_limiter: bool,
    pub(crate) precopy: bool,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            frame_rate_limiter: true,
            precopy: true,
        }
    }
}

/// Why a `vgpu_params` string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParamsError<'a> {
    TooLong(usize),
    NotKeyValue(&'a [u8]),
    UnknownKey(&'a [u8]),
    BadValue(&'a [u8], &'a [u8]),
}

impl ParamsError<'_> {
    pub(crate) fn errno(&self) -> Error {
        match self {
            ParamsError::TooLong(_) => E2BIG,
            _ => EINVAL,
        }
    }
}

/// Drops one trailing newline (what `echo` adds) and surrounding blanks.
pub(crate) fn trim(input: &[u8]) -> &[u8] {
    input.trim_ascii()
}

/// Parses a (trimmed) `vgpu_params` string. The empty string resets everything to defaults.
pub(crate) fn parse(input: &[u8]) -> Result<Params, ParamsError<'_>> {
    if input.len() > MAX_LEN {
        return Err(ParamsError::TooLong(input.len()));
    }
    let mut p = Params::default();
    if input.is_empty() {
        return Ok(p);
    }
    for item in input.split(|&b| b == b',') {
        let item = item.trim_ascii();
        let mut kv = item.splitn(2, |&b| b == b'=');
        let (Some(key), Some(value)) = (kv.next(), kv.next()) else {
            return Err(ParamsError::NotKeyValue(item));
        };
        let (key, value) = (key.trim_ascii(), value.trim_ascii());
        let flag = match value {
            b"0" => Some(false),
            b"1" => Some(true),
            _ => None,
        };
        let slot = match key {
            b"frame_rate_limiter" => &mut p.frame_rate_limiter,
            b"precopy" => &mut p.precopy,
            _ => return Err(ParamsError::UnknownKey(key)),
        };
        *slot = flag.ok_or(ParamsError::BadValue(key, value))?;
    }
    Ok(p)
}

#[kunit_tests(rvgpu_vgpu_params)]
mod tests {
    use super::*;

    #[test]
    fn accepted() {
        assert_eq!(parse(b""), Ok(Params::default()));
        assert_eq!(
            parse(b"frame_rate_limiter=0"),
            Ok(Params {
                frame_rate_limiter: false,
                precopy: true
            })
        );
        assert_eq!(
            parse(b"precopy=0"),
            Ok(Params {
                frame_rate_limiter: true,
                precopy: false
            })
        );
        assert_eq!(
            parse(b"frame_rate_limiter=0, frame_rate_limiter = 1"),
            Ok(Params {
                frame_rate_limiter: true,
                precopy: true
            })
        );
        assert_eq!(trim(b"frame_rate_limiter=0\n"), b"frame_rate_limiter=0");
    }

    #[test]
    fn refused() {
        assert_eq!(
            parse(b"frame_rate_limiter=2"),
            Err(ParamsError::BadValue(b"frame_rate_limiter", b"2"))
        );
        assert_eq!(parse(b"foo=1"), Err(ParamsError::UnknownKey(b"foo")));
        assert_eq!(
            parse(b"frame_rate_limiter"),
            Err(ParamsError::NotKeyValue(b"frame_rate_limiter"))
        );
        assert_eq!(
            parse(b"frame_rate_limiter=1,"),
            Err(ParamsError::NotKeyValue(b""))
        );
        assert_eq!(
            parse(&[b'a'; MAX_LEN + 1]),
            Err(ParamsError::TooLong(MAX_LEN + 1))
        );
        assert_eq!(ParamsError::TooLong(2000).errno(), E2BIG);
        assert_eq!(ParamsError::UnknownKey(b"x").errno(), EINVAL);
    }
}
