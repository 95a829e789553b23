// SPDX-License-Identifier: GPL-2.0
//! The time-sliced scheduler's files: `nvidia/scheduler` (read-write) and
//! `nvidia/scheduler_log`.

use crate::cli::{self, Format};
use crate::csv;
use crate::error::{Error, Result};
use crate::json::Json;
use crate::sysfs::{self, Gpu, Sysfs};
use crate::util;
use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;

/// The scheduling policies the driver knows.
pub const POLICIES: [&str; 3] = ["best_effort", "equal_share", "fixed_share"];

/// `nvidia/scheduler` as read: `policy=<P> timeslice_us=<N>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedConfig {
    pub policy: Option<String>,
    pub timeslice_us: Option<u64>,
}

impl SchedConfig {
    /// Parses `key=value` words; other words are ignored.
    pub fn parse(text: &str) -> Self {
        let mut c = SchedConfig::default();
        for word in text.split_whitespace() {
            match word.split_once('=') {
                Some(("policy", p)) => c.policy = Some(p.to_string()),
                Some(("timeslice_us", n)) => c.timeslice_us = n.parse().ok(),
                _ => {}
            }
        }
        c
    }
}

impl fmt::Display for SchedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words = Vec::new();
        if let Some(p) = &self.policy {
            words.push(format!("policy={p}"));
        }
        if let Some(n) = self.timeslice_us {
            words.push(format!("timeslice_us={n}"));
        }
        f.write_str(&words.join(" "))
    }
}

/// Checks a policy given on the command line.
pub fn check_policy(p: &str) -> Result<()> {
    if POLICIES.contains(&p) {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "'{p}' is not a scheduler policy ({})",
            POLICIES.join(", ")
        )))
    }
}

/// Parses a time slice given on the command line (an unsigned integer, in µs).
pub fn parse_timeslice(s: &str) -> Result<u64> {
    cli::parse_uint(s, "a time slice (an integer number of microseconds)")
}

/// What is written to `nvidia/scheduler`: `policy=P timeslice_us=N`, or just the one given.
pub fn request_text(policy: Option<&str>, timeslice_us: Option<u64>) -> String {
    SchedConfig {
        policy: policy.map(str::to_string),
        timeslice_us,
    }
    .to_string()
}

/// Reads `nvidia/scheduler` (trimmed).
pub fn read_config(sysfs: &Sysfs, bdf: &str) -> Result<String> {
    let path = sysfs.scheduler_path(bdf);
    read_file(&path).map(|s| s.trim().to_string())
}

/// Writes `text` to a `scheduler` file in one write.
pub fn write_config(path: &Path, bdf: &str, text: &str) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| Error::Failure(write_error_message(&e, text, bdf, path)))
}

/// The message (without the `rvgpu-smi: ` prefix) for a failed write of `text` to the
/// `scheduler` file at `path` of GPU `bdf`.
pub fn write_error_message(err: &io::Error, text: &str, bdf: &str, path: &Path) -> String {
    if err.kind() == io::ErrorKind::InvalidInput {
        return format!(
            "the driver refused '{text}' for {bdf}: Invalid argument (see the kernel log)"
        );
    }
    access_message(err, "writing", path)
        .unwrap_or_else(|| format!("writing '{text}' to {}: {err}", path.display()))
}

/// The message for a scheduler file that is missing or that `doing` (`reading`, `writing`) was
/// not permitted on; `None` for other errors.
fn access_message(err: &io::Error, doing: &str, path: &Path) -> Option<String> {
    match err.kind() {
        io::ErrorKind::NotFound => Some(format!(
            "{} does not exist (the driver has no scheduler)",
            path.display()
        )),
        io::ErrorKind::PermissionDenied => Some(format!(
            "permission denied {doing} {}: run as root",
            path.display()
        )),
        _ => None,
    }
}

fn read_file(path: &Path) -> Result<String> {
    sysfs::read_text(path).map_err(|e| {
        Error::Failure(
            access_message(&e, "reading", path)
                .unwrap_or_else(|| format!("reading {}: {e}", path.display())),
        )
    })
}

/// Renders `nvidia/scheduler` as read: the text itself, or `gpu,policy,timeslice_us` (CSV), or
/// `{"gpu":…,"policy":…,"timeslice_us":…}`.
pub fn render_config(bdf: &str, text: &str, format: Format) -> String {
    let c = SchedConfig::parse(text);
    match format {
        Format::Text => format!("{text}\n"),
        Format::Csv => {
            csv::row(&["gpu", "policy", "timeslice_us"])
                + &csv::row(&[
                    bdf,
                    c.policy.as_deref().unwrap_or(""),
                    &c.timeslice_us.map(|n| n.to_string()).unwrap_or_default(),
                ])
        }
        Format::Json => Json::obj(vec![
            ("gpu", Json::str(bdf)),
            ("policy", Json::opt_str(c.policy.as_deref())),
            ("timeslice_us", Json::opt_uint(c.timeslice_us)),
        ])
        .to_line(),
    }
}

/// One line of `nvidia/scheduler_log`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogEntry {
    /// `<seq> <start_us> <sched_id> <run_us> <target_us> <wait_us>`: a time slice.
    Slice {
        seq: u64,
        start_us: u64,
        sched_id: u64,
        run_us: u64,
        target_us: u64,
        wait_us: u64,
    },
    /// `<seq> <t_us> config <policy> <timeslice_us>`: a configuration change.
    Config {
        seq: u64,
        t_us: u64,
        policy: String,
        timeslice_us: u64,
    },
}

/// Parses `nvidia/scheduler_log`; lines of neither form are ignored.
pub fn parse_log(text: &str) -> Vec<LogEntry> {
    text.lines().filter_map(parse_log_line).collect()
}

fn parse_log_line(line: &str) -> Option<LogEntry> {
    let w: Vec<&str> = line.split_whitespace().collect();
    let num = util::parse_digits;
    match w.as_slice() {
        [seq, t, "config", policy, ts] => Some(LogEntry::Config {
            seq: num(seq)?,
            t_us: num(t)?,
            policy: policy.to_string(),
            timeslice_us: num(ts)?,
        }),
        [seq, start, id, run, target, wait] => Some(LogEntry::Slice {
            seq: num(seq)?,
            start_us: num(start)?,
            sched_id: num(id)?,
            run_us: num(run)?,
            target_us: num(target)?,
            wait_us: num(wait)?,
        }),
        _ => None,
    }
}

/// Reads and parses the GPU's `nvidia/scheduler_log`.
pub fn read_log(sysfs: &Sysfs, bdf: &str) -> Result<Vec<LogEntry>> {
    Ok(parse_log(&read_file(&sysfs.scheduler_log_path(bdf))?))
}

/// Renders the log, with the vGPUs' UUIDs resolved from their scheduler ids through `gpu`.
pub fn render_log(gpu: &Gpu, entries: &[LogEntry], format: Format) -> String {
    match format {
        Format::Text => log_text(gpu, entries),
        Format::Csv => log_csv(gpu, entries),
        Format::Json => log_json(gpu, entries),
    }
}

/// The log's CSV columns.
const LOG_COLUMNS: [&str; 10] = [
    "seq",
    "kind",
    "time_us",
    "sched_id",
    "vgpu",
    "run_us",
    "target_us",
    "wait_us",
    "policy",
    "timeslice_us",
];

/// An entry's values, one per [`LOG_COLUMNS`] column: its JSON member (name and value), or
/// `None` where the entry has no such value. Every format renders these.
fn log_members(gpu: &Gpu, e: &LogEntry) -> [Option<(&'static str, Json)>; 10] {
    let uint = |name, v: &u64| Some((name, Json::uint(*v)));
    match e {
        LogEntry::Slice {
            seq,
            start_us,
            sched_id,
            run_us,
            target_us,
            wait_us,
        } => [
            uint("seq", seq),
            Some(("kind", Json::str("slice"))),
            uint("start_us", start_us),
            uint("sched_id", sched_id),
            Some(("vgpu", Json::opt_str(gpu.uuid_of_sched_id(*sched_id)))),
            uint("run_us", run_us),
            uint("target_us", target_us),
            uint("wait_us", wait_us),
            None,
            None,
        ],
        LogEntry::Config {
            seq,
            t_us,
            policy,
            timeslice_us,
        } => [
            uint("seq", seq),
            Some(("kind", Json::str("config"))),
            uint("t_us", t_us),
            None,
            None,
            None,
            None,
            None,
            Some(("policy", Json::str(policy))),
            uint("timeslice_us", timeslice_us),
        ],
    }
}

/// An entry's values as text, `missing` for those it has not (or that are unknown).
fn log_fields(gpu: &Gpu, e: &LogEntry, missing: &str) -> [String; 10] {
    log_members(gpu, e).map(|m| match m {
        Some((_, Json::Num(s) | Json::Str(s))) => s,
        _ => missing.to_string(),
    })
}

fn log_text(gpu: &Gpu, entries: &[LogEntry]) -> String {
    let mut out = format!(
        "{:>8}  {:>14}  {:>4}  {:<36}  {:>8}  {:>9}  {:>8}\n",
        "seq", "start_us", "id", "vgpu", "run_us", "target_us", "wait_us"
    );
    for e in entries {
        let [seq, _, time, id, vgpu, run, target, wait, policy, timeslice] =
            log_fields(gpu, e, "-");
        out += &match e {
            LogEntry::Slice { .. } => format!(
                "{seq:>8}  {time:>14}  {id:>4}  {vgpu:<36}  {run:>8}  {target:>9}  {wait:>8}\n"
            ),
            LogEntry::Config { .. } => format!(
                "{seq:>8}  {time:>14}  {id:>4}  config policy={policy} timeslice_us={timeslice}\n"
            ),
        };
    }
    out
}

fn log_csv(gpu: &Gpu, entries: &[LogEntry]) -> String {
    let mut out = csv::row(&LOG_COLUMNS);
    for e in entries {
        out += &csv::row(&log_fields(gpu, e, ""));
    }
    out
}

fn log_json(gpu: &Gpu, entries: &[LogEntry]) -> String {
    let items = entries
        .iter()
        .map(|e| Json::obj(log_members(gpu, e).into_iter().flatten().collect()))
        .collect();
    Json::obj(vec![
        ("gpu", Json::str(&gpu.bdf)),
        ("log", Json::Arr(items)),
    ])
    .to_line()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeTree;
    use crate::json;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    const BDF: &str = "0000:00:04.0";

    fn running_as_root() -> bool {
        fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }

    fn run(t: &FakeTree, args: &[&str]) -> (u8, String, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = crate::main_with(&args, t.root(), &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    fn sched_file(t: &FakeTree) -> String {
        fs::read_to_string(
            t.root()
                .join("bus/pci/devices/0000:00:04.0/nvidia/scheduler"),
        )
        .unwrap()
    }

    #[test]
    fn config_parsing() {
        let c = SchedConfig::parse("policy=fixed_share timeslice_us=1500\n");
        assert_eq!(c.policy.as_deref(), Some("fixed_share"));
        assert_eq!(c.timeslice_us, Some(1500));
        assert_eq!(c.to_string(), "policy=fixed_share timeslice_us=1500");
        assert_eq!(SchedConfig::parse("junk"), SchedConfig::default());
    }

    #[test]
    fn request_texts() {
        assert_eq!(
            request_text(Some("equal_share"), Some(500)),
            "policy=equal_share timeslice_us=500"
        );
        assert_eq!(
            request_text(Some("best_effort"), None),
            "policy=best_effort"
        );
        assert_eq!(request_text(None, Some(9)), "timeslice_us=9");
    }

    #[test]
    fn local_validation() {
        assert!(check_policy("fixed_share").is_ok());
        assert_eq!(check_policy("fifo").unwrap_err().exit_code(), 2);
        assert_eq!(parse_timeslice("1000").unwrap(), 1000);
        for bad in ["", "-1", "+5", "1.5", "10us", "99999999999999999999999"] {
            assert_eq!(parse_timeslice(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn error_mapping() {
        let p = Path::new("/sys/bus/pci/devices/0000:00:04.0/nvidia/scheduler");
        let einval = io::Error::from_raw_os_error(22);
        assert_eq!(
            write_error_message(&einval, "timeslice_us=1", BDF, p),
            "the driver refused 'timeslice_us=1' for 0000:00:04.0: Invalid argument (see the kernel log)"
        );
        let perm = format!("permission denied writing {}: run as root", p.display());
        for errno in [1, 13] {
            let e = io::Error::from_raw_os_error(errno);
            assert_eq!(write_error_message(&e, "x", BDF, p), perm);
        }
        let e = io::Error::from(io::ErrorKind::PermissionDenied);
        assert_eq!(write_error_message(&e, "x", BDF, p), perm);
        let ebusy = io::Error::from_raw_os_error(16);
        assert!(write_error_message(&ebusy, "x", BDF, p).starts_with("writing 'x' to /sys/"));
    }

    #[test]
    fn show() {
        let t = FakeTree::new("sched-show");
        t.gpu_with_vgpus(BDF, 1);
        let (code, out, _) = run(&t, &["scheduler", "--gpu", "00:04.0"]);
        assert_eq!(code, 0);
        assert_eq!(out, "policy=equal_share timeslice_us=2000\n");
        let (_, out, _) = run(&t, &["scheduler", "--gpu", BDF, "--json"]);
        let v = json::parse(&out).unwrap();
        assert_eq!(v.get("policy").unwrap().as_str(), Some("equal_share"));
        assert_eq!(v.get("timeslice_us").unwrap().as_num(), Some("2000"));
        let (_, out, _) = run(&t, &["scheduler", "--gpu", BDF, "--format", "csv"]);
        assert_eq!(
            out,
            "gpu,policy,timeslice_us\n0000:00:04.0,equal_share,2000\n"
        );
    }

    #[test]
    fn set_writes_exactly_the_request() {
        let t = FakeTree::new("sched-set");
        t.gpu_with_vgpus(BDF, 1);
        let (code, out, err) = run(
            &t,
            &[
                "scheduler",
                "--gpu",
                BDF,
                "--policy",
                "fixed_share",
                "--timeslice-us",
                "1500",
            ],
        );
        assert_eq!((code, err.as_str()), (0, ""));
        assert_eq!(sched_file(&t), "policy=fixed_share timeslice_us=1500");
        assert_eq!(out, "policy=fixed_share timeslice_us=1500\n");

        let (code, _, _) = run(&t, &["scheduler", "--gpu", BDF, "--timeslice-us=700"]);
        assert_eq!(code, 0);
        assert_eq!(sched_file(&t), "timeslice_us=700");

        let (code, _, _) = run(&t, &["scheduler", "--gpu", BDF, "--policy", "best_effort"]);
        assert_eq!(code, 0);
        assert_eq!(sched_file(&t), "policy=best_effort");
    }

    #[test]
    fn set_usage_errors_write_nothing() {
        let t = FakeTree::new("sched-usage");
        t.gpu_with_vgpus(BDF, 1);
        let before = sched_file(&t);
        for args in [
            &["scheduler", "--gpu", BDF, "--policy", "fifo"][..],
            &["scheduler", "--gpu", BDF, "--timeslice-us", "fast"],
            &["scheduler", "--gpu", BDF, "--timeslice-us"],
            &["scheduler", "--gpu", "04.0"],
            &["scheduler", "--policy", "fixed_share"],
            &[
                "scheduler",
                "--gpu",
                BDF,
                "--log",
                "--policy",
                "fixed_share",
            ],
            &["scheduler", "--gpu", BDF, "-q"],
        ] {
            let (code, out, err) = run(&t, args);
            assert_eq!(code, 2, "{args:?}: {err}");
            assert!(out.is_empty());
            assert!(err.starts_with("rvgpu-smi: "), "{err}");
        }
        assert_eq!(sched_file(&t), before);
        let (_, _, err) = run(&t, &["scheduler", "--gpu", "04.0"]);
        assert!(err.starts_with("rvgpu-smi: '04.0' is not a PCI address (DDDD:BB:DD.F)\n"));
        let (code, _, err) = run(&t, &["scheduler", "--gpu", "0000:00:09.0"]);
        assert_eq!(code, 1);
        assert_eq!(err, "rvgpu-smi: no GPU 0000:00:09.0 is bound to rvgpu\n");
    }

    #[test]
    fn set_permission_denied() {
        let t = FakeTree::new("sched-perm");
        t.gpu_with_vgpus(BDF, 1);
        let path = t
            .root()
            .join("bus/pci/devices/0000:00:04.0/nvidia/scheduler");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
        let (code, _, err) = run(&t, &["scheduler", "--gpu", BDF, "--policy", "fixed_share"]);
        if running_as_root() {
            // Root bypasses the mode; the message mapping is covered by error_mapping().
            assert_eq!(code, 0);
        } else {
            assert_eq!(code, 1);
            assert_eq!(
                err,
                format!(
                    "rvgpu-smi: permission denied writing {}: run as root\n",
                    path.display()
                )
            );
            assert_eq!(sched_file(&t), "policy=equal_share timeslice_us=2000\n");
        }
    }

    #[test]
    fn log_parsing() {
        let log = parse_log(
            "1 1000 1 900 1000 50\n2 2000 2 1000 1000 0\n3 2500 config fixed_share 500\n\
             garbage\n4 3000 1 x 1 1\n5 3000 1 1\n6 3500 99 400 500 10\n",
        );
        assert_eq!(log.len(), 4);
        assert_eq!(
            log[0],
            LogEntry::Slice {
                seq: 1,
                start_us: 1000,
                sched_id: 1,
                run_us: 900,
                target_us: 1000,
                wait_us: 50
            }
        );
        assert_eq!(
            log[2],
            LogEntry::Config {
                seq: 3,
                t_us: 2500,
                policy: "fixed_share".into(),
                timeslice_us: 500
            }
        );
    }

    #[test]
    fn log_rendering() {
        let t = FakeTree::new("sched-log");
        let uuids = t.gpu_with_vgpus(BDF, 2);
        t.write(
            "bus/pci/devices/0000:00:04.0/nvidia/scheduler_log",
            "1 1000 1 900 1000 50\n2 2000 2 1000 1000 0\n3 2500 config fixed_share 500\n\
             4 3000 9 400 500 10\n",
        );
        let (code, out, _) = run(&t, &["scheduler", "--gpu", BDF, "--log"]);
        assert_eq!(code, 0);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[0].split_whitespace().eq([
            "seq",
            "start_us",
            "id",
            "vgpu",
            "run_us",
            "target_us",
            "wait_us"
        ]));
        assert!(lines[1]
            .split_whitespace()
            .eq(["1", "1000", "1", &uuids[0], "900", "1000", "50"]));
        assert!(lines[2].contains(&uuids[1]));
        assert!(lines[3].ends_with("config policy=fixed_share timeslice_us=500"));
        assert!(lines[4]
            .split_whitespace()
            .eq(["4", "3000", "9", "-", "400", "500", "10"]));

        let (_, out, _) = run(&t, &["scheduler", "--gpu", BDF, "--log", "--json"]);
        let v = json::parse(&out).unwrap();
        let log = v.get("log").unwrap().as_array().unwrap();
        assert_eq!(log.len(), 4);
        assert_eq!(
            log[0].get("vgpu").unwrap().as_str(),
            Some(uuids[0].as_str())
        );
        assert_eq!(log[2].get("kind").unwrap().as_str(), Some("config"));
        assert_eq!(log[3].get("vgpu"), Some(&Json::Null));

        let (_, out, _) = run(&t, &["scheduler", "--gpu", BDF, "--log", "--format", "csv"]);
        let rows = csv::parse(&out);
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[0][0], "seq");
        assert!(rows.iter().all(|r| r.len() == 10));
        assert_eq!(rows[1][4], uuids[0]);
        assert_eq!(rows[3][1], "config");
        assert_eq!(rows[3][8], "fixed_share");
    }
}
