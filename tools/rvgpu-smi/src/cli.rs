// SPDX-License-Identifier: GPL-2.0
//! The command line.

use crate::bdf;
use crate::error::{Error, Result};
use crate::sched;
use crate::util;
use std::time::Duration;

/// How output is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Csv,
    Json,
}

/// What to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Help,
    /// The summary table, utilisation sampled over `interval`.
    Summary {
        gpu: Option<String>,
        interval: Duration,
        format: Format,
    },
    /// `-q`: every detail.
    Query {
        gpu: Option<String>,
        format: Format,
    },
    /// `-u`: utilisation rows every `interval`, `count` times (`None`: forever).
    Utilization {
        gpu: Option<String>,
        interval: Duration,
        count: Option<u64>,
        format: Format,
    },
    /// `scheduler --gpu BDF`.
    SchedShow {
        gpu: String,
        format: Format,
    },
    /// `scheduler --gpu BDF --policy P --timeslice-us N` (at least one of them).
    SchedSet {
        gpu: String,
        policy: Option<String>,
        timeslice_us: Option<u64>,
        format: Format,
    },
    /// `scheduler --gpu BDF --log`.
    SchedLog {
        gpu: String,
        format: Format,
    },
}

/// `--help`.
pub const USAGE: &str = "\
Usage:
  rvgpu-smi [-i BDF] [--interval-ms MS] [FORMAT]
  rvgpu-smi -q [-i BDF] [FORMAT]
  rvgpu-smi -u [-i BDF] [-l SECONDS] [-c COUNT] [--interval-ms MS] [FORMAT]
  rvgpu-smi scheduler --gpu BDF [--policy POLICY] [--timeslice-us N] [FORMAT]
  rvgpu-smi scheduler --gpu BDF --log [FORMAT]
  rvgpu-smi -h | --help

Shows the GPUs bound to the rvgpu vGPU host driver and their vGPUs (the summary table without
options), in the manner of nvidia-smi vgpu. It reads and writes sysfs only: /sys, or
$RVGPU_SYSFS_ROOT.

Options:
  -q, --query              every detail of each GPU and vGPU, with all accounting keys
  -u, --utilization        utilisation rows (gfx %, time slices, longest wait) per interval
  -i, --id BDF             one GPU only (DDDD:BB:DD.F, or BB:DD.F for domain 0000)
  -l, --loop SECONDS       with -u: the interval (default 1), and repeat until interrupted
  -c, --count COUNT        with -u: stop after COUNT intervals (default 1 without -l)
      --interval-ms MS     the sampling interval in ms (summary: default 100; -u: overrides -l)
      --format FMT         text (default), csv or json
      --json               the same as --format json
  -h, --help               this text

scheduler (one GPU's time-sliced scheduler):
      --gpu BDF            the GPU (required)
      --policy POLICY      set the policy: best_effort, equal_share or fixed_share
      --timeslice-us N     set the time slice in microseconds
      --log                show the recent time slices and configuration changes
  Without --policy, --timeslice-us or --log: show the setting. With them: write it in one
  write and show the setting read back.

Exit status: 0 success, 1 failure (driver not loaded, unknown GPU, write refused),
2 bad command line.
";

/// One option as given: its name (`-i`, `--id`) and value.
struct Opt {
    name: String,
    value: Option<String>,
}

/// Splits `args` into options; `valued` take a value (`--id X`, `--id=X`, `-i X`, `-iX`),
/// `flags` do not. Anything else is a usage error.
fn options(args: &[String], valued: &[&str], flags: &[&str]) -> Result<Vec<Opt>> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (name, inline) = if let Some(long) = a.strip_prefix("--") {
            if long.is_empty() {
                return Err(Error::Usage(format!("unexpected argument '{a}'")));
            }
            match long.split_once('=') {
                Some((n, v)) => (format!("--{n}"), Some(v.to_string())),
                None => (a.clone(), None),
            }
        } else if let Some(short) = a.strip_prefix('-').and_then(|s| s.chars().next()) {
            let rest = &a[1 + short.len_utf8()..];
            let name = format!("-{short}");
            if valued.contains(&name.as_str()) && !rest.is_empty() {
                (name, Some(rest.to_string()))
            } else if rest.is_empty() {
                (name, None)
            } else {
                return Err(Error::Usage(format!("unknown option '{a}'")));
            }
        } else {
            return Err(Error::Usage(format!("unexpected argument '{a}'")));
        };
        if valued.contains(&name.as_str()) {
            let value = match inline {
                Some(v) => v,
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| Error::Usage(format!("option '{name}' needs a value")))?,
            };
            out.push(Opt {
                name,
                value: Some(value),
            });
        } else if flags.contains(&name.as_str()) {
            if inline.is_some() {
                return Err(Error::Usage(format!("option '{name}' takes no value")));
            }
            out.push(Opt { name, value: None });
        } else {
            return Err(Error::Usage(format!("unknown option '{name}'")));
        }
    }
    Ok(out)
}

fn set_format(slot: &mut Option<Format>, f: Format) -> Result<()> {
    match *slot {
        Some(old) if old != f => Err(Error::Usage(
            "conflicting output formats (--json, --format)".to_string(),
        )),
        _ => {
            *slot = Some(f);
            Ok(())
        }
    }
}

fn parse_format(v: &str) -> Result<Format> {
    match v {
        "text" => Ok(Format::Text),
        "csv" => Ok(Format::Csv),
        "json" => Ok(Format::Json),
        _ => Err(Error::Usage(format!(
            "'{v}' is not an output format (text, csv, json)"
        ))),
    }
}

/// Parses an unsigned integer given on the command line; `what` names it in the usage error.
pub(crate) fn parse_uint(v: &str, what: &str) -> Result<u64> {
    util::parse_digits(v).ok_or_else(|| Error::Usage(format!("'{v}' is not {what}")))
}

fn parse_seconds(v: &str) -> Result<Duration> {
    let well_formed = v.bytes().any(|b| b.is_ascii_digit())
        && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && v.bytes().filter(|&b| b == b'.').count() <= 1;
    match v.parse::<f64>() {
        Ok(s) if well_formed && s > 0.0 && s <= 1e9 => Ok(Duration::from_secs_f64(s)),
        _ => Err(Error::Usage(format!(
            "'{v}' is not a number of seconds above 0 (-l/--loop)"
        ))),
    }
}

/// Parses the command line (without the program name).
pub fn parse(args: &[String]) -> Result<Command> {
    if args.first().map(String::as_str) == Some("scheduler") {
        return parse_scheduler(&args[1..]);
    }
    let opts = options(
        args,
        &[
            "-i",
            "--id",
            "-l",
            "--loop",
            "-c",
            "--count",
            "--interval-ms",
            "--format",
        ],
        &[
            "-h",
            "--help",
            "-q",
            "--query",
            "-u",
            "--utilization",
            "--json",
        ],
    )?;
    let (mut query, mut util) = (false, false);
    let mut gpu = None;
    let mut lp = None;
    let mut count = None;
    let mut interval_ms = None;
    let mut format = None;
    for o in opts {
        let value = o.value.as_deref().unwrap_or("");
        match o.name.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-q" | "--query" => query = true,
            "-u" | "--utilization" => util = true,
            "-i" | "--id" => gpu = Some(bdf::parse_arg(value)?),
            "-l" | "--loop" => lp = Some(parse_seconds(value)?),
            "-c" | "--count" => match parse_uint(value, "a count above 0 (-c/--count)")? {
                0 => {
                    return Err(Error::Usage(
                        "'0' is not a count above 0 (-c/--count)".to_string(),
                    ))
                }
                n => count = Some(n),
            },
            "--interval-ms" => {
                interval_ms = Some(parse_uint(
                    value,
                    "a number of milliseconds (--interval-ms)",
                )?)
            }
            "--format" => set_format(&mut format, parse_format(value)?)?,
            "--json" => set_format(&mut format, Format::Json)?,
            _ => unreachable!("option table"),
        }
    }
    let format = format.unwrap_or(Format::Text);
    if query && util {
        return Err(Error::Usage(
            "-q/--query and -u/--utilization exclude each other".to_string(),
        ));
    }
    if !util && (lp.is_some() || count.is_some()) {
        return Err(Error::Usage(
            "-l/--loop and -c/--count need -u/--utilization".to_string(),
        ));
    }
    let interval_ms = interval_ms.map(Duration::from_millis);
    if query {
        if interval_ms.is_some() {
            return Err(Error::Usage(
                "--interval-ms does not apply to -q/--query".to_string(),
            ));
        }
        return Ok(Command::Query { gpu, format });
    }
    if util {
        return Ok(Command::Utilization {
            gpu,
            interval: interval_ms.or(lp).unwrap_or(Duration::from_secs(1)),
            count: count.or(if lp.is_some() { None } else { Some(1) }),
            format,
        });
    }
    Ok(Command::Summary {
        gpu,
        interval: interval_ms.unwrap_or(Duration::from_millis(100)),
        format,
    })
}

fn parse_scheduler(args: &[String]) -> Result<Command> {
    let opts = options(
        args,
        &["--gpu", "--policy", "--timeslice-us", "--format"],
        &["-h", "--help", "--log", "--json"],
    )?;
    let mut gpu = None;
    let mut policy = None;
    let mut timeslice_us = None;
    let mut log = false;
    let mut format = None;
    for o in opts {
        let value = o.value.as_deref().unwrap_or("");
        match o.name.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--gpu" => gpu = Some(bdf::parse_arg(value)?),
            "--policy" => {
                sched::check_policy(value)?;
                policy = Some(value.to_string());
            }
            "--timeslice-us" => timeslice_us = Some(sched::parse_timeslice(value)?),
            "--log" => log = true,
            "--format" => set_format(&mut format, parse_format(value)?)?,
            "--json" => set_format(&mut format, Format::Json)?,
            _ => unreachable!("option table"),
        }
    }
    let format = format.unwrap_or(Format::Text);
    let gpu = gpu.ok_or_else(|| Error::Usage("scheduler needs --gpu BDF".to_string()))?;
    if log {
        if policy.is_some() || timeslice_us.is_some() {
            return Err(Error::Usage(
                "--log cannot be combined with --policy or --timeslice-us".to_string(),
            ));
        }
        return Ok(Command::SchedLog { gpu, format });
    }
    if policy.is_none() && timeslice_us.is_none() {
        return Ok(Command::SchedShow { gpu, format });
    }
    Ok(Command::SchedSet {
        gpu,
        policy,
        timeslice_us,
        format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn usage(args: &[&str]) -> String {
        match p(args) {
            Err(Error::Usage(m)) => m,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn summary_defaults() {
        assert_eq!(
            p(&[]).unwrap(),
            Command::Summary {
                gpu: None,
                interval: Duration::from_millis(100),
                format: Format::Text
            }
        );
        assert_eq!(
            p(&["-i", "00:04.0", "--interval-ms=0", "--json"]).unwrap(),
            Command::Summary {
                gpu: Some("0000:00:04.0".into()),
                interval: Duration::ZERO,
                format: Format::Json
            }
        );
    }

    #[test]
    fn utilization_intervals() {
        let u = |args: &[&str]| match p(args).unwrap() {
            Command::Utilization {
                interval, count, ..
            } => (interval, count),
            other => panic!("{other:?}"),
        };
        assert_eq!(u(&["-u"]), (Duration::from_secs(1), Some(1)));
        assert_eq!(u(&["-u", "-l", "5"]), (Duration::from_secs(5), None));
        assert_eq!(
            u(&["-u", "-l0.5", "-c", "3"]),
            (Duration::from_millis(500), Some(3))
        );
        assert_eq!(
            u(&["--utilization", "--count=2"]),
            (Duration::from_secs(1), Some(2))
        );
        assert_eq!(
            u(&["-u", "-l", "2", "--interval-ms", "10"]),
            (Duration::from_millis(10), None)
        );
    }

    #[test]
    fn formats() {
        let f = |args: &[&str]| match p(args).unwrap() {
            Command::Query { format, .. } => format,
            other => panic!("{other:?}"),
        };
        assert_eq!(f(&["-q"]), Format::Text);
        assert_eq!(f(&["-q", "--format", "csv"]), Format::Csv);
        assert_eq!(f(&["-q", "--json", "--format=json"]), Format::Json);
        usage(&["-q", "--json", "--format", "csv"]);
        usage(&["-q", "--format", "xml"]);
    }

    #[test]
    fn help() {
        assert_eq!(p(&["-h"]).unwrap(), Command::Help);
        assert_eq!(p(&["-q", "--help"]).unwrap(), Command::Help);
        assert_eq!(p(&["scheduler", "--help"]).unwrap(), Command::Help);
    }

    #[test]
    fn scheduler() {
        assert_eq!(
            p(&["scheduler", "--gpu", "00:04.0"]).unwrap(),
            Command::SchedShow {
                gpu: "0000:00:04.0".into(),
                format: Format::Text
            }
        );
        assert_eq!(
            p(&["scheduler", "--gpu=0000:00:04.0", "--timeslice-us", "100"]).unwrap(),
            Command::SchedSet {
                gpu: "0000:00:04.0".into(),
                policy: None,
                timeslice_us: Some(100),
                format: Format::Text
            }
        );
        assert_eq!(
            p(&["scheduler", "--gpu", "00:04.0", "--log", "--json"]).unwrap(),
            Command::SchedLog {
                gpu: "0000:00:04.0".into(),
                format: Format::Json
            }
        );
    }

    #[test]
    fn usage_errors() {
        assert_eq!(usage(&["--bogus"]), "unknown option '--bogus'");
        assert_eq!(usage(&["-x"]), "unknown option '-x'");
        assert_eq!(usage(&["-qu"]), "unknown option '-qu'");
        assert_eq!(usage(&["extra"]), "unexpected argument 'extra'");
        assert_eq!(usage(&["-i"]), "option '-i' needs a value");
        assert_eq!(usage(&["--query=1"]), "option '--query' takes no value");
        assert_eq!(
            usage(&["-i", "4.0"]),
            "'4.0' is not a PCI address (DDDD:BB:DD.F)"
        );
        usage(&["-q", "-u"]);
        usage(&["-l", "1"]);
        usage(&["-q", "-c", "1"]);
        usage(&["-q", "--interval-ms", "5"]);
        usage(&["-u", "-l", "0"]);
        usage(&["-u", "-l", "x"]);
        usage(&["-u", "-l", "1e3"]);
        usage(&["-u", "-c", "0"]);
        usage(&["-u", "-c", "-1"]);
        usage(&["--interval-ms", "-5"]);
        usage(&["scheduler"]);
        usage(&["scheduler", "--gpu", "00:04.0", "--policy", "round_robin"]);
        usage(&["scheduler", "--gpu", "00:04.0", "-u"]);
        usage(&["scheduler", "--gpu", "00:04.0", "extra"]);
        usage(&["-q", "scheduler"]);
    }
}
