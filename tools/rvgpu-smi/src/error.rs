// SPDX-License-Identifier: GPL-2.0
//! Errors and their exit statuses.

use std::fmt;
use std::io;

/// Why a command stopped. The message excludes the `rvgpu-smi: ` prefix.
#[derive(Debug)]
pub enum Error {
    /// A bad command line (exit status 2).
    Usage(String),
    /// The command could not be carried out (exit status 1).
    Failure(String),
    /// Writing the output failed; a closed pipe (`rvgpu-smi -u -l 1 | head`) ends the program
    /// quietly with status 0.
    Output(io::Error),
}

/// The result of a command.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => crate::EXIT_USAGE,
            Error::Failure(_) => crate::EXIT_FAILURE,
            Error::Output(_) if self.is_broken_pipe() => 0,
            Error::Output(_) => crate::EXIT_FAILURE,
        }
    }

    /// Whether the output's reader went away.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::Failure(m) => f.write_str(m),
            Error::Output(e) => write!(f, "writing the output: {e}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(Error::Failure("x".into()).exit_code(), 1);
        assert_eq!(
            Error::Output(io::Error::from(io::ErrorKind::BrokenPipe)).exit_code(),
            0
        );
        assert_eq!(
            Error::Output(io::Error::from(io::ErrorKind::Other)).exit_code(),
            1
        );
    }
}
