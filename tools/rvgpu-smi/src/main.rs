// SPDX-License-Identifier: GPL-2.0
//! `rvgpu-smi`: the command; everything it does is in the library.

use std::io::{self, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = match std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect::<Result<_, _>>()
    {
        Ok(args) => args,
        Err(bad) => {
            eprintln!(
                "rvgpu-smi: argument '{}' is not valid UTF-8",
                bad.to_string_lossy()
            );
            return ExitCode::from(2);
        }
    };
    let root = rvgpu_smi::sysfs::root_from_env();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let code = rvgpu_smi::main_with(&args, &root, &mut out, &mut io::stderr());
    let _ = out.flush();
    ExitCode::from(code)
}
