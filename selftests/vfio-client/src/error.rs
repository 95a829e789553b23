// SPDX-License-Identifier: GPL-2.0
//! The error of the multi-step open sequences: which step failed, and the `io::Error` (errno) it
//! failed with. Everything else in the crate returns a bare `io::Error`.

use std::fmt;
use std::io;

/// A failed step of [`crate::Device::open`].
#[derive(Debug)]
pub struct OpenError {
    /// What was being done, e.g. `"VFIO_GROUP_SET_CONTAINER on /dev/vfio/3"`.
    pub step: String,
    /// The underlying error; `raw_os_error()` is the errno when the kernel refused.
    pub source: io::Error,
}

impl OpenError {
    /// The errno, if the failure came from a system call.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.source)
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Keeps the errno when there is one (so `raw_os_error()` still works), the message otherwise.
impl From<OpenError> for io::Error {
    fn from(e: OpenError) -> io::Error {
        match e.source.raw_os_error() {
            Some(errno) => io::Error::from_raw_os_error(errno),
            None => io::Error::new(e.source.kind(), e.to_string()),
        }
    }
}

/// Adds the step description to an `io::Result`.
pub(crate) trait Step<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, OpenError>;
}

impl<T> Step<T> for io::Result<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, OpenError> {
        self.map_err(|source| OpenError { step: what(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_errno_and_step() {
        let r: io::Result<()> = Err(io::Error::from_raw_os_error(libc::EBUSY));
        let e = r.step(|| "VFIO_GROUP_SET_CONTAINER on /dev/vfio/3".into()).expect_err("err");
        assert_eq!(e.raw_os_error(), Some(libc::EBUSY));
        assert!(e.to_string().starts_with("VFIO_GROUP_SET_CONTAINER on /dev/vfio/3: "));
        assert_eq!(io::Error::from(e).raw_os_error(), Some(libc::EBUSY));
    }
}
