// SPDX-License-Identifier: GPL-2.0
//! `-u`: scrolling utilisation rows, one per GPU and one per vGPU each interval, like
//! `nvidia-smi vgpu -u`. A row shows the engine busy percentage over the interval, the time
//! slices run in it (Δ`rvgpu-slices`) and the longest wait for a slice so far
//! (`rvgpu-wait-max`, µs).

use crate::accounting::{Accounting, SLICES, WAIT_MAX};
use crate::cli::Format;
use crate::csv;
use crate::error::Result;
use crate::json::Json;
use crate::sysfs::{Gpu, Sysfs};
use crate::util;
use std::io::Write;
use std::time::{Duration, Instant};

/// One row.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub gpu: String,
    /// `None` for the GPU's own row.
    pub vgpu: Option<String>,
    pub gfx_pct: Option<f64>,
    pub slices: Option<u64>,
    pub wait_max_us: Option<u64>,
}

fn row(gpu: &str, vgpu: Option<&str>, prev: Option<&Accounting>, cur: Option<&Accounting>) -> Row {
    Row {
        gpu: gpu.to_string(),
        vgpu: vgpu.map(str::to_string),
        gfx_pct: util::busy_percent(prev, cur),
        slices: prev.zip(cur).and_then(|(p, c)| util::delta(p, c, SLICES)),
        wait_max_us: cur.and_then(|c| c.get_u64(WAIT_MAX)).map(|ns| ns / 1000),
    }
}

/// The rows for the interval from snapshot `prev` to snapshot `cur`: per GPU its own row, then
/// its vGPUs'.
pub fn rows(prev: &[Gpu], cur: &[Gpu]) -> Vec<Row> {
    let mut out = Vec::new();
    for g in cur {
        out.push(row(
            &g.bdf,
            None,
            util::gpu_accounting(prev, &g.bdf),
            g.accounting.as_ref(),
        ));
        for v in &g.vgpus {
            out.push(row(
                &g.bdf,
                Some(&v.uuid),
                util::vgpu_accounting(prev, &g.bdf, &v.uuid),
                v.accounting.as_ref(),
            ));
        }
    }
    out
}

/// The text columns: bus id, UUID, gfx %, slices, longest wait.
fn text_row(gpu: &str, vgpu: &str, gfx: &str, slices: &str, wait: &str) -> String {
    format!("{gpu:<12}  {vgpu:<36}  {gfx:>5}  {slices:>8}  {wait:>11}")
}

/// What comes before the first interval: two `#` lines (text), the CSV header, or nothing.
pub fn header(format: Format) -> String {
    match format {
        Format::Text => format!(
            "# {}\n# {}\n",
            text_row("gpu", "vgpu", "gfx", "slices", "wait_max_us"),
            text_row("Bus-Id", "UUID", "%", "#", "us")
        ),
        Format::Csv => csv::row(&[
            "interval",
            "gpu",
            "vgpu",
            "gfx_pct",
            "slices",
            "wait_max_us",
        ]),
        Format::Json => String::new(),
    }
}

/// The output for interval number `n` (from 1), `interval` long.
pub fn render(rows: &[Row], n: u64, interval: Duration, format: Format) -> String {
    let opt = |v: Option<u64>| v.map(|x| x.to_string());
    match format {
        Format::Text => rows
            .iter()
            .map(|r| {
                let dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
                format!(
                    "  {}\n",
                    text_row(
                        &r.gpu,
                        r.vgpu.as_deref().unwrap_or("-"),
                        &dash(r.gfx_pct.map(|p| format!("{p:.0}"))),
                        &dash(opt(r.slices)),
                        &dash(opt(r.wait_max_us)),
                    )
                )
            })
            .collect(),
        Format::Csv => rows
            .iter()
            .map(|r| {
                csv::row(&[
                    n.to_string(),
                    r.gpu.clone(),
                    r.vgpu.clone().unwrap_or_default(),
                    util::percent_field(r.gfx_pct),
                    opt(r.slices).unwrap_or_default(),
                    opt(r.wait_max_us).unwrap_or_default(),
                ])
            })
            .collect(),
        Format::Json => {
            let items = rows
                .iter()
                .map(|r| {
                    Json::obj(vec![
                        ("gpu", Json::str(&r.gpu)),
                        ("vgpu", Json::opt_str(r.vgpu.as_deref())),
                        ("gfx_pct", Json::percent(r.gfx_pct)),
                        ("slices", Json::opt_uint(r.slices)),
                        ("wait_max_us", Json::opt_uint(r.wait_max_us)),
                    ])
                })
                .collect();
            Json::obj(vec![
                ("interval", Json::uint(n)),
                (
                    "interval_ms",
                    Json::uint(u64::try_from(interval.as_millis()).unwrap_or(u64::MAX)),
                ),
                ("rows", Json::Arr(items)),
            ])
            .to_line()
        }
    }
}

/// Samples every `interval`, writing rows after each, `count` times (`None`: until the output
/// is closed or the program is interrupted).
pub fn run(
    sysfs: &Sysfs,
    gpu: Option<&str>,
    interval: Duration,
    count: Option<u64>,
    format: Format,
    out: &mut dyn Write,
) -> Result<()> {
    let mut prev = sysfs.snapshot(gpu)?;
    crate::emit(out, &header(format))?;
    let mut deadline = Instant::now();
    let mut n = 0;
    while count.is_none_or(|c| n < c) {
        deadline += interval;
        let now = Instant::now();
        if deadline > now {
            crate::pause(deadline - now);
        } else {
            deadline = now;
        }
        let cur = sysfs.snapshot(gpu)?;
        n += 1;
        crate::emit(out, &render(&rows(&prev, &cur), n, interval, format))?;
        prev = cur;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeTree;
    use crate::json;

    const BDF: &str = "0000:00:04.0";

    fn samples(t: &FakeTree) -> (Vec<Gpu>, Vec<Gpu>, Vec<String>) {
        let uuids = t.gpu_with_vgpus(BDF, 2);
        let s = Sysfs::new(t.root());
        let prev = s.snapshot(None).unwrap();
        t.set_busy(
            BDF,
            &uuids,
            2_000_000_000,
            (750_000_000, 40),
            &[(500_000_000, 25), (250_000_000, 15)],
        );
        (prev, s.snapshot(None).unwrap(), uuids)
    }

    #[test]
    fn computes_rows() {
        let t = FakeTree::new("monitor-rows");
        let (prev, cur, uuids) = samples(&t);
        let r = rows(&prev, &cur);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].vgpu, None);
        assert_eq!(r[0].gfx_pct, Some(75.0));
        assert_eq!(r[0].slices, Some(40));
        assert_eq!(r[0].wait_max_us, Some(100));
        assert_eq!(r[1].vgpu.as_deref(), Some(uuids[0].as_str()));
        assert_eq!(r[1].gfx_pct, Some(50.0));
        assert_eq!(r[2].gfx_pct, Some(25.0));
        assert_eq!(r[2].slices, Some(15));
        // A vGPU that is new in the second snapshot has no interval yet.
        let r = rows(&[], &cur);
        assert!(r.iter().all(|r| r.gfx_pct.is_none() && r.slices.is_none()));
    }

    #[test]
    fn text_output() {
        let t = FakeTree::new("monitor-text");
        let (prev, cur, uuids) = samples(&t);
        let h = header(Format::Text);
        let hl: Vec<&str> = h.lines().collect();
        assert_eq!(hl.len(), 2);
        assert!(hl[0].starts_with("# gpu"));
        assert!(hl[0]
            .split_whitespace()
            .eq(["#", "gpu", "vgpu", "gfx", "slices", "wait_max_us"]));
        assert!(hl[1]
            .split_whitespace()
            .eq(["#", "Bus-Id", "UUID", "%", "#", "us"]));
        let out = render(&rows(&prev, &cur), 1, Duration::from_secs(1), Format::Text);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0]
            .split_whitespace()
            .eq([BDF, "-", "75", "40", "100"]));
        assert!(lines[1]
            .split_whitespace()
            .eq([BDF, &uuids[0], "50", "25", "100"]));
        // Columns line up with the header.
        assert_eq!(lines[1].find(&uuids[0]), hl[0].find("vgpu"));
        assert_eq!(lines[1].len(), hl[0].len());
    }

    #[test]
    fn csv_and_json_output() {
        let t = FakeTree::new("monitor-fmt");
        let (prev, cur, uuids) = samples(&t);
        let r = rows(&prev, &cur);
        let text = header(Format::Csv) + &render(&r, 3, Duration::from_secs(1), Format::Csv);
        let csv_rows = csv::parse(&text);
        assert_eq!(
            csv_rows[0],
            [
                "interval",
                "gpu",
                "vgpu",
                "gfx_pct",
                "slices",
                "wait_max_us"
            ]
        );
        assert_eq!(csv_rows[1], ["3", BDF, "", "75.0", "40", "100"]);
        assert_eq!(
            csv_rows[2],
            ["3", BDF, uuids[0].as_str(), "50.0", "25", "100"]
        );

        assert_eq!(header(Format::Json), "");
        let text = render(&r, 2, Duration::from_millis(250), Format::Json);
        assert_eq!(text.lines().count(), 1);
        let v = json::parse(&text).unwrap();
        assert_eq!(v.get("interval").unwrap().as_num(), Some("2"));
        assert_eq!(v.get("interval_ms").unwrap().as_num(), Some("250"));
        let items = v.get("rows").unwrap().as_array().unwrap();
        assert_eq!(items[0].get("vgpu"), Some(&Json::Null));
        assert_eq!(items[2].get("gfx_pct").unwrap().as_num(), Some("25.0"));
    }

    #[test]
    fn runs_count_intervals() {
        let t = FakeTree::new("monitor-run");
        t.gpu_with_vgpus(BDF, 1);
        let s = Sysfs::new(t.root());
        let mut out = Vec::new();
        run(
            &s,
            Some(BDF),
            Duration::ZERO,
            Some(3),
            Format::Json,
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 3);
        for (i, l) in text.lines().enumerate() {
            let v = json::parse(l).unwrap();
            assert_eq!(
                v.get("interval").unwrap().as_num(),
                Some((i + 1).to_string().as_str())
            );
            // Nothing changed between the reads: no time passed, 0 %.
            let items = v.get("rows").unwrap().as_array().unwrap();
            assert_eq!(items.len(), 2);
            assert_eq!(items[0].get("gfx_pct").unwrap().as_num(), Some("0.0"));
        }
    }
}
