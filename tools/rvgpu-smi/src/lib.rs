// SPDX-License-Identifier: GPL-2.0
//! `rvgpu-smi`: shows and sets the state of the rvgpu vGPU host driver, reading and writing only
//! its sysfs files, in the manner of `nvidia-smi vgpu`.
//!
//! Everything works on an explicit sysfs root ([`sysfs::Sysfs`]), so that tests run against fake
//! trees ([`fake`]); the renderers are pure functions of snapshots ([`sysfs::Gpu`]).

pub mod accounting;
pub mod bdf;
pub mod cli;
pub mod csv;
pub mod error;
pub mod fake;
pub mod json;
pub mod monitor;
pub mod query;
pub mod sched;
pub mod summary;
pub mod sysfs;
pub mod util;

pub use cli::{Command, Format};
pub use error::{Error, Result};
pub use sysfs::Sysfs;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// The exit status of a failed command (the driver or a GPU is missing, a write was refused).
pub const EXIT_FAILURE: u8 = 1;
/// The exit status of a bad command line.
pub const EXIT_USAGE: u8 = 2;

/// Runs the program with `args` (without the program name) on the sysfs tree at `root`: the
/// output goes to `out`, error messages (prefixed `rvgpu-smi: `) to `err`. Returns the exit
/// status.
pub fn main_with(args: &[String], root: &Path, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match run(args, root, out) {
        Ok(()) => 0,
        Err(e) => {
            if !e.is_broken_pipe() {
                let _ = writeln!(err, "rvgpu-smi: {e}");
                if let Error::Usage(_) = e {
                    let _ = writeln!(err, "Try 'rvgpu-smi --help' for more information.");
                }
            }
            e.exit_code()
        }
    }
}

/// Runs the program with `args` on the sysfs tree at `root`, writing the output to `out`.
pub fn run(args: &[String], root: &Path, out: &mut dyn Write) -> Result<()> {
    let sysfs = Sysfs::new(root);
    match cli::parse(args)? {
        Command::Help => emit(out, cli::USAGE),
        Command::Summary {
            gpu,
            interval,
            format,
        } => {
            let prev = sysfs.snapshot(gpu.as_deref())?;
            pause(interval);
            let cur = sysfs.snapshot(gpu.as_deref())?;
            let version = sysfs.driver_version();
            emit(
                out,
                &summary::render(&prev, &cur, version.as_deref(), format),
            )
        }
        Command::Query { gpu, format } => {
            let gpus = sysfs.snapshot(gpu.as_deref())?;
            emit(out, &query::render(&gpus, format))
        }
        Command::Utilization {
            gpu,
            interval,
            count,
            format,
        } => monitor::run(&sysfs, gpu.as_deref(), interval, count, format, out),
        Command::SchedShow { gpu, format } => {
            sysfs.select(Some(&gpu))?;
            let text = sched::read_config(&sysfs, &gpu)?;
            emit(out, &sched::render_config(&gpu, &text, format))
        }
        Command::SchedSet {
            gpu,
            policy,
            timeslice_us,
            format,
        } => {
            sysfs.select(Some(&gpu))?;
            let request = sched::request_text(policy.as_deref(), timeslice_us);
            sched::write_config(&sysfs.scheduler_path(&gpu), &gpu, &request)?;
            let text = sched::read_config(&sysfs, &gpu)?;
            emit(out, &sched::render_config(&gpu, &text, format))
        }
        Command::SchedLog { gpu, format } => {
            let gpus = sysfs.snapshot(Some(&gpu))?;
            let entries = sched::read_log(&sysfs, &gpu)?;
            emit(out, &sched::render_log(&gpus[0], &entries, format))
        }
    }
}

/// Writes `text` to `out` and flushes it.
pub(crate) fn emit(out: &mut dyn Write, text: &str) -> Result<()> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(Error::Output)
}

/// Sleeps for `d` (not at all for zero).
pub(crate) fn pause(d: Duration) {
    if !d.is_zero() {
        std::thread::sleep(d);
    }
}
