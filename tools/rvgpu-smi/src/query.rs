// SPDX-License-Identifier: GPL-2.0
//! `-q`: key : value blocks like `nvidia-smi vgpu -q`, 4 spaces of indentation per level, the
//! colons of one GPU's block (its vGPUs included) in one column.

use crate::accounting::{self, Accounting};
use crate::cli::Format;
use crate::csv;
use crate::json::Json;
use crate::summary::{gpus_json, sched_json};
use crate::sysfs::{Gpu, Vgpu};
use crate::util::{dash_empty, mib_text};

/// A line of a block: a key with a value, or a heading (no value) over its children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub key: String,
    pub value: Option<String>,
    pub children: Vec<Node>,
}

impl Node {
    fn leaf(key: &str, value: String) -> Node {
        Node {
            key: key.to_string(),
            value: Some(value),
            children: Vec::new(),
        }
    }

    fn heading(key: &str, children: Vec<Node>) -> Node {
        Node {
            key: key.to_string(),
            value: None,
            children,
        }
    }
}

/// Renders the GPUs.
pub fn render(gpus: &[Gpu], format: Format) -> String {
    match format {
        Format::Text => text(gpus),
        Format::Csv => csv_text(gpus),
        Format::Json => json_text(gpus),
    }
}

fn or_na(v: Option<String>) -> String {
    v.unwrap_or_else(|| "N/A".to_string())
}

fn accounting_nodes(a: Option<&Accounting>) -> Vec<Node> {
    match a {
        None => vec![Node::leaf("Accounting", "N/A".to_string())],
        Some(a) => a
            .entries
            .iter()
            .map(|(k, v)| Node::leaf(accounting::label(k), v.to_string()))
            .collect(),
    }
}

/// The lines of a GPU's block about the GPU itself.
pub fn gpu_nodes(g: &Gpu) -> Vec<Node> {
    let sched = g.scheduler.as_ref();
    let mut nodes = vec![
        Node::leaf("Active vGPUs", g.vgpus.len().to_string()),
        Node::leaf(
            "Scheduler Policy",
            or_na(sched.and_then(|s| s.policy.clone())),
        ),
        Node::leaf(
            "Time Slice",
            or_na(
                sched
                    .and_then(|s| s.timeslice_us)
                    .map(|t| format!("{t} us")),
            ),
        ),
        Node::heading(
            "FB Memory Usage",
            vec![
                Node::leaf("Total", mib_text(g.vram_total_mib)),
                Node::leaf("Free", mib_text(g.vram_free_mib)),
            ],
        ),
    ];
    nodes.extend(accounting_nodes(g.accounting.as_ref()));
    nodes
}

/// The lines under a vGPU's `vGPU ID`.
pub fn vgpu_nodes(v: &Vgpu) -> Vec<Node> {
    let mut nodes = vec![
        Node::leaf("vGPU UUID", v.uuid.clone()),
        Node::leaf("vGPU Name", or_na(v.type_name.clone())),
        Node::leaf("vGPU Type", or_na(v.type_id.clone())),
        Node::leaf("VM Name", dash_empty(v.vm_name.as_deref())),
        Node::leaf("vGPU Params", dash_empty(v.params.as_deref())),
        Node::heading(
            "FB Memory Usage",
            vec![
                Node::leaf("Total", mib_text(v.fb_total_mib())),
                Node::leaf("Used", mib_text(v.fb_used_mib())),
            ],
        ),
    ];
    nodes.extend(accounting_nodes(v.accounting.as_ref()));
    nodes
}

fn vgpu_id(v: &Vgpu) -> String {
    or_na(v.sched_id().map(|i| i.to_string()))
}

/// A GPU's whole block: `GPU <bdf>` over its lines and one `vGPU ID` per vGPU.
pub fn gpu_block(g: &Gpu) -> Node {
    let mut children = gpu_nodes(g);
    for v in &g.vgpus {
        children.push(Node {
            key: "vGPU ID".to_string(),
            value: Some(vgpu_id(v)),
            children: vgpu_nodes(v),
        });
    }
    Node::heading(&format!("GPU {}", g.bdf), children)
}

/// The widest `indentation + key` of the lines with values.
fn key_column(n: &Node, depth: usize) -> usize {
    let own = if n.value.is_some() {
        4 * depth + n.key.chars().count()
    } else {
        0
    };
    n.children
        .iter()
        .map(|c| key_column(c, depth + 1))
        .fold(own, usize::max)
}

fn write_node(n: &Node, depth: usize, column: usize, out: &mut String) {
    let indent = " ".repeat(4 * depth);
    match &n.value {
        Some(v) => {
            let fill = " ".repeat(column - 4 * depth - n.key.chars().count());
            let line = format!("{indent}{}{fill} : {v}", n.key);
            out.push_str(line.trim_end());
        }
        None => out.push_str(&format!("{indent}{}", n.key)),
    }
    out.push('\n');
    for c in &n.children {
        write_node(c, depth + 1, column, out);
    }
}

/// Renders blocks, a blank line between them.
pub fn render_blocks(blocks: &[Node]) -> String {
    let mut out = String::new();
    for (i, b) in blocks.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        write_node(b, 0, key_column(b, 0), &mut out);
    }
    out
}

fn text(gpus: &[Gpu]) -> String {
    if gpus.is_empty() {
        return "No GPUs are bound to rvgpu\n".to_string();
    }
    render_blocks(&gpus.iter().map(gpu_block).collect::<Vec<_>>())
}

fn flatten(nodes: &[Node], prefix: &str, out: &mut Vec<(String, String)>) {
    for n in nodes {
        let key = if prefix.is_empty() {
            n.key.clone()
        } else {
            format!("{prefix}.{}", n.key)
        };
        if let Some(v) = &n.value {
            out.push((key.clone(), v.clone()));
        }
        flatten(&n.children, &key, out);
    }
}

/// Header `gpu,vgpu,key,value`: one row per line of the text output, `vgpu` empty for the
/// GPU's own lines, a heading's name joined to its lines' keys with `.`
/// (`FB Memory Usage.Total`).
fn csv_text(gpus: &[Gpu]) -> String {
    let mut out = csv::row(&["gpu", "vgpu", "key", "value"]);
    for g in gpus {
        let mut rows = Vec::new();
        flatten(&gpu_nodes(g), "", &mut rows);
        for (k, v) in rows {
            out += &csv::row(&[g.bdf.as_str(), "", &k, &v]);
        }
        for vg in &g.vgpus {
            let mut rows = vec![("vGPU ID".to_string(), vgpu_id(vg))];
            flatten(&vgpu_nodes(vg), "", &mut rows);
            for (k, v) in rows {
                out += &csv::row(&[g.bdf.as_str(), &vg.uuid, &k, &v]);
            }
        }
    }
    out
}

/// An accounting file as a JSON object: each key (once, its last value) to
/// `{"value": <number or string>, "unit": <string or null>}`.
pub fn accounting_json(a: Option<&Accounting>) -> Json {
    let Some(a) = a else {
        return Json::Null;
    };
    Json::Obj(
        a.unique()
            .into_iter()
            .map(|(k, v)| {
                let value = match v {
                    accounting::Value::Int { value, .. } => Json::uint(*value),
                    accounting::Value::Str(s) => Json::str(s),
                };
                (
                    k.to_string(),
                    Json::obj(vec![("value", value), ("unit", Json::opt_str(v.unit()))]),
                )
            })
            .collect(),
    )
}

fn json_text(gpus: &[Gpu]) -> String {
    let gpus = gpus_json(
        gpus,
        |g| {
            vec![
                ("active_vgpus", Json::uint(g.vgpus.len() as u64)),
                ("scheduler", sched_json(g.scheduler.as_ref())),
                ("fb_total_mib", Json::opt_uint(g.vram_total_mib)),
                ("fb_free_mib", Json::opt_uint(g.vram_free_mib)),
                ("accounting", accounting_json(g.accounting.as_ref())),
            ]
        },
        |_, v| {
            vec![
                ("vgpu_params", Json::opt_str(v.params.as_deref())),
                ("fb_total_mib", Json::opt_uint(v.fb_total_mib())),
                ("fb_used_mib", Json::opt_uint(v.fb_used_mib())),
                ("accounting", accounting_json(v.accounting.as_ref())),
            ]
        },
    );
    Json::obj(vec![("gpus", gpus)]).to_line()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeTree, FakeVgpu};
    use crate::json;
    use crate::sysfs::Sysfs;

    const BDF: &str = "0000:00:04.0";

    fn snapshot(t: &FakeTree) -> Vec<Gpu> {
        Sysfs::new(t.root()).snapshot(None).unwrap()
    }

    /// The column of `" : "` in a line, in characters.
    fn colon(l: &str) -> Option<usize> {
        l.find(" : ").map(|b| l[..b].chars().count())
    }

    #[test]
    fn text_blocks_are_aligned() {
        let t = FakeTree::new("query-text");
        let uuids = t.gpu_with_vgpus(BDF, 2);
        t.set_vgpu_accounting(
            BDF,
            &uuids[1],
            &(crate::fake::vgpu_accounting(BDF, 2, 1, 2, 3)
                + "rvgpu-a-very-long-unknown-key-name: 5 widgets\nnot a pair\n"),
        );
        let text = render(&snapshot(&t), Format::Text);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "GPU 0000:00:04.0");
        let cols: Vec<usize> = lines.iter().filter_map(|l| colon(l)).collect();
        assert!(cols.len() > 40);
        assert!(cols.iter().all(|&c| c == cols[0]), "{text}");
        assert!(lines
            .iter()
            .all(|l| l.is_empty() || (l.len() - l.trim_start().len()) % 4 == 0));
        let find = |prefix: &str| {
            lines
                .iter()
                .find(|l| l.trim_start().starts_with(prefix))
                .unwrap_or_else(|| panic!("{prefix}: {text}"))
                .to_string()
        };
        let value = |l: &str| l.split_once(" : ").unwrap().1.to_string();
        assert_eq!(value(&find("Active vGPUs")), "2");
        assert_eq!(value(&find("Scheduler Policy")), "equal_share");
        assert_eq!(value(&find("Time Slice")), "2000 us");
        assert!(find("FB Memory Usage").starts_with("    FB"));
        assert_eq!(
            find("Total"),
            format!("        Total{}: 256 MiB", " ".repeat(cols[0] - 13 + 1))
        );
        assert_eq!(value(&find("Free")), "224 MiB");
        assert!(find("Engine Busy").starts_with("    Engine Busy "));
        assert_eq!(value(&find("vGPU ID")), "1");
        assert!(find("vGPU ID").starts_with("    vGPU ID "));
        assert!(find("vGPU UUID").starts_with("        vGPU UUID "));
        assert_eq!(value(&find("vGPU UUID")), uuids[0]);
        assert_eq!(value(&find("vGPU Name")), "GRID RVGPU-16Q");
        assert_eq!(value(&find("vGPU Type")), "nvidia-9104");
        assert_eq!(value(&find("VM Name")), "qemu-system-x86[1001]");
        assert_eq!(value(&find("vGPU Params")), "frame_rate_limiter=1");
        assert_eq!(value(&find("Used")), "4 MiB");
        assert_eq!(value(&find("rvgpu-commands")), "100");
        assert_eq!(value(&find("rvgpu-sched-id")), "1");
        assert!(find("rvgpu-sched-id").starts_with("        rvgpu"));
        assert_eq!(value(&find("rvgpu-a-very-long")), "5 widgets");
        assert!(!text.contains("not a pair"));
        assert!(!text.contains("drm-engine-gfx"));
    }

    #[test]
    fn empty_values() {
        let t = FakeTree::new("query-empty");
        crate::fake::FakeTree::add_gpu(&t, &crate::fake::FakeGpu::new(BDF));
        let mut v = FakeVgpu::new(1, 1);
        v.vm_name = String::new();
        v.params = String::new();
        t.add_vgpu(BDF, &v);
        let text = render(&snapshot(&t), Format::Text);
        assert!(text
            .lines()
            .any(|l| l.trim_start().starts_with("VM Name") && l.ends_with(": -")));
        assert!(text
            .lines()
            .any(|l| l.trim_start().starts_with("vGPU Params") && l.ends_with(": -")));
        assert!(text.lines().all(|l| l == l.trim_end()));
    }

    #[test]
    fn csv_rows() {
        let t = FakeTree::new("query-csv");
        let uuids = t.gpu_with_vgpus(BDF, 1);
        let rows = crate::csv::parse(&render(&snapshot(&t), Format::Csv));
        assert_eq!(rows[0], ["gpu", "vgpu", "key", "value"]);
        assert!(rows.iter().all(|r| r.len() == 4));
        let vgpu = uuids[0].as_str();
        for row in [
            [BDF, "", "FB Memory Usage.Total", "256 MiB"],
            [BDF, "", "Engine Busy", "0 ns"],
            [BDF, vgpu, "vGPU ID", "1"],
            [BDF, vgpu, "FB Memory Usage.Used", "4 MiB"],
            [BDF, vgpu, "rvgpu-fb-used", "4800 KiB"],
        ] {
            assert!(rows.iter().any(|r| r == &row), "{row:?}");
        }
    }

    #[test]
    fn json_structure() {
        let t = FakeTree::new("query-json");
        let uuids = t.gpu_with_vgpus(BDF, 1);
        t.set_vgpu_accounting(
            BDF,
            &uuids[0],
            "drm-driver: rvgpu\nrvgpu-sched-id: 1\nrvgpu-x: \"quoted\" \\ text\n",
        );
        let v = json::parse(&render(&snapshot(&t), Format::Json)).unwrap();
        let g = &v.get("gpus").unwrap().as_array().unwrap()[0];
        assert_eq!(g.get("active_vgpus").unwrap().as_num(), Some("1"));
        assert_eq!(g.get("fb_free_mib").unwrap().as_num(), Some("224"));
        let gfx = g.get("accounting").unwrap().get("drm-engine-gfx").unwrap();
        assert_eq!(gfx.get("value").unwrap().as_num(), Some("0"));
        assert_eq!(gfx.get("unit").unwrap().as_str(), Some("ns"));
        let vg = &g.get("vgpus").unwrap().as_array().unwrap()[0];
        assert_eq!(vg.get("uuid").unwrap().as_str(), Some(uuids[0].as_str()));
        let acct = vg.get("accounting").unwrap();
        assert_eq!(
            acct.get("drm-driver")
                .unwrap()
                .get("value")
                .unwrap()
                .as_str(),
            Some("rvgpu")
        );
        assert_eq!(
            acct.get("rvgpu-x").unwrap().get("value").unwrap().as_str(),
            Some("\"quoted\" \\ text")
        );
        assert_eq!(vg.get("fb_total_mib"), Some(&Json::Null));
    }

    #[test]
    fn no_gpus() {
        assert_eq!(render(&[], Format::Text), "No GPUs are bound to rvgpu\n");
        assert_eq!(render(&[], Format::Json), "{\"gpus\":[]}\n");
        assert_eq!(render(&[], Format::Csv), "gpu,vgpu,key,value\n");
    }
}
