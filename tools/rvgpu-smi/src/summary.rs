// SPDX-License-Identifier: GPL-2.0
//! The summary (no options): a box table like `nvidia-smi vgpu`'s, one row per GPU and one per
//! vGPU, with the utilisation between two snapshots.

use crate::cli::Format;
use crate::csv;
use crate::json::Json;
use crate::sched::SchedConfig;
use crate::sysfs::{Gpu, Vgpu};
use crate::util::{self, dash_empty, mib_text, percent_field, percent_text};

const NCOL: usize = 6;
/// Columns aligned to the right.
const RIGHT: [bool; NCOL] = [false, false, false, false, true, true];

/// Renders the summary of snapshot `cur`, with the utilisation since snapshot `prev`.
pub fn render(prev: &[Gpu], cur: &[Gpu], driver_version: Option<&str>, format: Format) -> String {
    match format {
        Format::Text => table(prev, cur, driver_version),
        Format::Csv => csv_text(prev, cur),
        Format::Json => json_text(prev, cur, driver_version),
    }
}

enum Line {
    Cells([String; NCOL]),
    /// Text over every column but the first.
    Span(String),
    /// Text over the whole width.
    Full(String),
    Rule,
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn pad(s: &str, w: usize, right: bool) -> String {
    let fill = " ".repeat(w.saturating_sub(width(s)));
    if right {
        fill + s
    } else {
        s.to_string() + &fill
    }
}

fn sched_cell(s: Option<&SchedConfig>) -> String {
    match s.map(|s| (s.policy.as_deref(), s.timeslice_us)) {
        Some((Some(p), Some(t))) => format!("{p} {t} us"),
        Some((Some(p), None)) => p.to_string(),
        _ => "N/A".to_string(),
    }
}

fn sched_id_text(v: &Vgpu) -> String {
    v.sched_id()
        .map_or_else(|| "-".to_string(), |i| i.to_string())
}

fn table(prev: &[Gpu], cur: &[Gpu], driver_version: Option<&str>) -> String {
    let headers = [
        ["GPU", "Name", "Bus-Id", "Scheduler", "FB Total", "GPU-Util"],
        ["vGPU", "UUID", "Type", "VM Name", "", "vGPU-Util"],
    ];
    let mut body = Vec::new();
    if cur.is_empty() {
        body.push(Line::Full("No GPUs are bound to rvgpu".to_string()));
        body.push(Line::Rule);
    }
    for g in cur {
        body.push(Line::Cells([
            format!("GPU {}", g.index),
            g.name(),
            g.bdf.clone(),
            sched_cell(g.scheduler.as_ref()),
            mib_text(g.vram_total_mib),
            percent_text(util::gpu_percent(prev, g)),
        ]));
        if g.vgpus.is_empty() {
            body.push(Line::Span("No vGPUs on this GPU".to_string()));
        }
        for v in &g.vgpus {
            body.push(Line::Cells([
                format!("vGPU {}", sched_id_text(v)),
                v.uuid.clone(),
                v.type_label(),
                // `-` when no VM has the vGPU open.
                dash_empty(v.vm_name.as_deref()),
                mib_text(v.fb_total_mib()),
                percent_text(util::vgpu_percent(prev, g, &v.uuid)),
            ]));
        }
        body.push(Line::Rule);
    }

    let mut w = [0usize; NCOL];
    let all_cells = headers
        .iter()
        .map(|h| h.map(str::to_string))
        .chain(body.iter().filter_map(|l| match l {
            Line::Cells(c) => Some(c.clone()),
            _ => None,
        }));
    for cells in all_cells {
        for (wi, c) in w.iter_mut().zip(cells.iter()) {
            *wi = (*wi).max(width(c));
        }
    }
    let title_left = format!("RVGPU-SMI {}", env!("CARGO_PKG_VERSION"));
    let title_right = match driver_version {
        Some(v) => format!("Driver: rvgpu {v}"),
        None => "Driver: rvgpu".to_string(),
    };
    let span = |w: &[usize; NCOL]| w[1..].iter().sum::<usize>() + 3 * (NCOL - 2);
    let full = |w: &[usize; NCOL]| w.iter().sum::<usize>() + 3 * (NCOL - 1);
    for l in &body {
        if let Line::Span(t) = l {
            w[1] += width(t).saturating_sub(span(&w));
        }
        if let Line::Full(t) = l {
            w[1] += width(t).saturating_sub(full(&w));
        }
    }
    w[1] += (width(&title_left) + 2 + width(&title_right)).saturating_sub(full(&w));
    let inner = full(&w);

    let rule = |fill: &str, edge: char| {
        let parts: Vec<String> = w.iter().map(|wi| fill.repeat(wi + 2)).collect();
        format!("{edge}{}{edge}\n", parts.join("+"))
    };
    let cells = |c: &[String]| {
        let mut s = String::from("|");
        for (i, text) in c.iter().enumerate() {
            s += &format!(" {} |", pad(text, w[i], RIGHT[i]));
        }
        s + "\n"
    };

    let mut out = format!("+{}+\n", "-".repeat(inner + 2));
    out += &format!(
        "| {}{}{} |\n",
        title_left,
        " ".repeat(inner - width(&title_left) - width(&title_right)),
        title_right
    );
    out += &rule("-", '+');
    for h in &headers {
        out += &cells(&h.map(str::to_string));
    }
    out += &rule("=", '|');
    for l in &body {
        out += &match l {
            Line::Cells(c) => cells(c),
            Line::Span(t) => format!(
                "| {} | {} |\n",
                pad("", w[0], false),
                pad(t, span(&w), false)
            ),
            Line::Full(t) => format!("| {} |\n", pad(t, inner, false)),
            Line::Rule => rule("-", '+'),
        };
    }
    out
}

/// Header: `kind,gpu_index,bus_id,sched_id,uuid,name,type,vm_name,fb_total_mib,util_pct`.
/// A GPU row has kind `gpu`, its name, its VRAM; a vGPU row kind `vgpu`, the type's name and
/// id, the VM, its profile. Unknown values are empty.
fn csv_text(prev: &[Gpu], cur: &[Gpu]) -> String {
    let opt = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
    let mut out = csv::row(&[
        "kind",
        "gpu_index",
        "bus_id",
        "sched_id",
        "uuid",
        "name",
        "type",
        "vm_name",
        "fb_total_mib",
        "util_pct",
    ]);
    for g in cur {
        out += &csv::row(&[
            "gpu".to_string(),
            g.index.to_string(),
            g.bdf.clone(),
            String::new(),
            String::new(),
            g.name(),
            String::new(),
            String::new(),
            opt(g.vram_total_mib),
            percent_field(util::gpu_percent(prev, g)),
        ]);
        for v in &g.vgpus {
            out += &csv::row(&[
                "vgpu".to_string(),
                g.index.to_string(),
                g.bdf.clone(),
                opt(v.sched_id()),
                v.uuid.clone(),
                v.type_name.clone().unwrap_or_default(),
                v.type_id.clone().unwrap_or_default(),
                v.vm_name.clone().unwrap_or_default(),
                opt(v.fb_total_mib()),
                percent_field(util::vgpu_percent(prev, g, &v.uuid)),
            ]);
        }
    }
    out
}

/// The scheduler as JSON: `{"policy":…,"timeslice_us":…}` or `null`.
pub(crate) fn sched_json(s: Option<&SchedConfig>) -> Json {
    match s {
        Some(s) => Json::obj(vec![
            ("policy", Json::opt_str(s.policy.as_deref())),
            ("timeslice_us", Json::opt_uint(s.timeslice_us)),
        ]),
        None => Json::Null,
    }
}

/// JSON members, in order.
pub(crate) type Members = Vec<(&'static str, Json)>;

/// The GPUs as a JSON array: per GPU its `index`, `bus_id` and `name`, then `gpu_more`'s
/// members, then `vgpus`, an array with per vGPU its `sched_id`, `uuid`, `type_name`, `type_id`
/// and `vm_name` (`null` when unknown or when no VM has the vGPU open), then `vgpu_more`'s.
pub(crate) fn gpus_json(
    gpus: &[Gpu],
    gpu_more: impl Fn(&Gpu) -> Members,
    vgpu_more: impl Fn(&Gpu, &Vgpu) -> Members,
) -> Json {
    let gpu = |g: &Gpu| {
        let vgpus = g.vgpus.iter().map(|v| {
            let mut members = vec![
                ("sched_id", Json::opt_uint(v.sched_id())),
                ("uuid", Json::str(&v.uuid)),
                ("type_name", Json::opt_str(v.type_name.as_deref())),
                ("type_id", Json::opt_str(v.type_id.as_deref())),
                (
                    "vm_name",
                    Json::opt_str(v.vm_name.as_deref().filter(|n| !n.is_empty())),
                ),
            ];
            members.extend(vgpu_more(g, v));
            Json::obj(members)
        });
        let mut members = vec![
            ("index", Json::uint(g.index as u64)),
            ("bus_id", Json::str(&g.bdf)),
            ("name", Json::str(&g.name())),
        ];
        members.extend(gpu_more(g));
        members.push(("vgpus", Json::Arr(vgpus.collect())));
        Json::obj(members)
    };
    Json::Arr(gpus.iter().map(gpu).collect())
}

fn json_text(prev: &[Gpu], cur: &[Gpu], driver_version: Option<&str>) -> String {
    let gpus = gpus_json(
        cur,
        |g| {
            vec![
                ("scheduler", sched_json(g.scheduler.as_ref())),
                ("fb_total_mib", Json::opt_uint(g.vram_total_mib)),
                ("fb_free_mib", Json::opt_uint(g.vram_free_mib)),
                ("gpu_util_pct", Json::percent(util::gpu_percent(prev, g))),
            ]
        },
        |g, v| {
            vec![
                ("fb_total_mib", Json::opt_uint(v.fb_total_mib())),
                (
                    "vgpu_util_pct",
                    Json::percent(util::vgpu_percent(prev, g, &v.uuid)),
                ),
            ]
        },
    );
    Json::obj(vec![
        ("driver_version", Json::opt_str(driver_version)),
        ("gpus", gpus),
    ])
    .to_line()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeGpu, FakeTree, FakeVgpu};
    use crate::json;
    use crate::sysfs::Sysfs;

    const BDF: &str = "0000:00:04.0";

    /// Two snapshots of a GPU at 50 % with vGPUs at 30 % and 10 % (0.1 s apart), and an idle
    /// GPU without vGPUs.
    fn samples(t: &FakeTree) -> (Vec<Gpu>, Vec<Gpu>, Vec<String>) {
        let uuids = t.gpu_with_vgpus(BDF, 2);
        let mut idle = FakeGpu::new("0000:00:05.0");
        idle.vendor = "0x1af4".into();
        idle.device = "0x1050".into();
        t.add_gpu(&idle);
        let s = Sysfs::new(t.root());
        let prev = s.snapshot(None).unwrap();
        t.set_busy(
            BDF,
            &uuids,
            1_100_000_000,
            (50_000_000, 10),
            &[(30_000_000, 5), (10_000_000, 5)],
        );
        let cur = s.snapshot(None).unwrap();
        (prev, cur, uuids)
    }

    #[test]
    fn table_rows() {
        let t = FakeTree::new("summary-table");
        let (prev, cur, uuids) = samples(&t);
        let text = render(&prev, &cur, Some("0.11"), Format::Text);
        let lines: Vec<&str> = text.lines().collect();
        // Every line of the box is equally wide.
        let w = lines[0].chars().count();
        assert!(lines.iter().all(|l| l.chars().count() == w), "{text}");
        assert!(lines[1].starts_with("| RVGPU-SMI "));
        assert!(lines[1].ends_with("Driver: rvgpu 0.11 |"));
        let row = |needle: &str| -> Vec<String> {
            let l = lines
                .iter()
                .find(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("{needle}: {text}"));
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        };
        assert_eq!(
            row("| GPU 0 "),
            [
                "GPU 0",
                "Bochs display (1234:1111)",
                BDF,
                "equal_share 2000 us",
                "256 MiB",
                "50 %"
            ]
        );
        assert_eq!(
            row(&uuids[0]),
            [
                "vGPU 1",
                uuids[0].as_str(),
                "GRID RVGPU-16Q (nvidia-9104)",
                "qemu-system-x86[1001]",
                "16 MiB",
                "30 %"
            ]
        );
        assert_eq!(row(&uuids[1])[5], "10 %");
        assert_eq!(row("| GPU 1 ")[1], "PCI 1af4:1050");
        assert_eq!(row("| GPU 1 ")[5], "0 %");
        assert!(text.contains("No vGPUs on this GPU"));
        assert!(text.contains("| GPU  "));
        assert!(text.contains("| vGPU "));
    }

    #[test]
    fn no_time_passed_and_no_gpus() {
        let t = FakeTree::new("summary-zero");
        t.gpu_with_vgpus(BDF, 1);
        let s = Sysfs::new(t.root());
        let snap = s.snapshot(None).unwrap();
        let text = render(&snap, &snap, None, Format::Text);
        assert!(
            text.lines().filter(|l| l.contains(" 0 % |")).count() == 2,
            "{text}"
        );
        assert!(text.contains("Driver: rvgpu |"));
        let empty = render(&[], &[], None, Format::Text);
        assert!(empty.contains("No GPUs are bound to rvgpu"));
    }

    #[test]
    fn vgpu_without_vm_or_accounting() {
        let t = FakeTree::new("summary-novm");
        t.add_gpu(&FakeGpu::new(BDF));
        let mut v = FakeVgpu::new(1, 1);
        v.vm_name = String::new();
        v.accounting = "garbage\n".into();
        t.add_vgpu(BDF, &v);
        let snap = Sysfs::new(t.root()).snapshot(None).unwrap();
        let text = render(&snap, &snap, None, Format::Text);
        let line = text.lines().find(|l| l.contains(&v.uuid)).unwrap();
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(
            cells,
            [
                "vGPU -",
                v.uuid.as_str(),
                "GRID RVGPU-16Q (nvidia-9104)",
                "-",
                "N/A",
                "N/A"
            ]
        );
        let j = json::parse(&render(&snap, &snap, None, Format::Json)).unwrap();
        let vg = &j.get("gpus").unwrap().as_array().unwrap()[0]
            .get("vgpus")
            .unwrap()
            .as_array()
            .unwrap()[0];
        assert_eq!(vg.get("vm_name"), Some(&Json::Null));
        assert_eq!(vg.get("vgpu_util_pct"), Some(&Json::Null));
    }

    #[test]
    fn csv_rows() {
        let t = FakeTree::new("summary-csv");
        let (prev, cur, uuids) = samples(&t);
        let rows = csv::parse(&render(&prev, &cur, None, Format::Csv));
        assert_eq!(rows.len(), 5);
        assert_eq!(
            rows[0],
            [
                "kind",
                "gpu_index",
                "bus_id",
                "sched_id",
                "uuid",
                "name",
                "type",
                "vm_name",
                "fb_total_mib",
                "util_pct"
            ]
        );
        assert_eq!(
            rows[1],
            [
                "gpu",
                "0",
                BDF,
                "",
                "",
                "Bochs display (1234:1111)",
                "",
                "",
                "256",
                "50.0"
            ]
        );
        assert_eq!(
            rows[2],
            [
                "vgpu",
                "0",
                BDF,
                "1",
                uuids[0].as_str(),
                "GRID RVGPU-16Q",
                "nvidia-9104",
                "qemu-system-x86[1001]",
                "16",
                "30.0"
            ]
        );
        assert_eq!(rows[4][0], "gpu");
        assert_eq!(rows[4][2], "0000:00:05.0");
    }

    #[test]
    fn json_structure() {
        let t = FakeTree::new("summary-json");
        let (prev, cur, uuids) = samples(&t);
        let text = render(&prev, &cur, None, Format::Json);
        assert_eq!(text.lines().count(), 1);
        let v = json::parse(&text).unwrap();
        assert_eq!(v.get("driver_version"), Some(&Json::Null));
        let gpus = v.get("gpus").unwrap().as_array().unwrap();
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].get("bus_id").unwrap().as_str(), Some(BDF));
        assert_eq!(gpus[0].get("gpu_util_pct").unwrap().as_num(), Some("50.0"));
        assert_eq!(
            gpus[0]
                .get("scheduler")
                .unwrap()
                .get("policy")
                .unwrap()
                .as_str(),
            Some("equal_share")
        );
        let vgpus = gpus[0].get("vgpus").unwrap().as_array().unwrap();
        assert_eq!(
            vgpus[1].get("uuid").unwrap().as_str(),
            Some(uuids[1].as_str())
        );
        assert_eq!(
            vgpus[1].get("vgpu_util_pct").unwrap().as_num(),
            Some("10.0")
        );
        assert_eq!(vgpus[0].get("fb_total_mib").unwrap().as_num(), Some("16"));
        assert!(gpus[1].get("vgpus").unwrap().as_array().unwrap().is_empty());
    }
}
