// SPDX-License-Identifier: GPL-2.0
//! Runs the built `rvgpu-smi` against fake sysfs trees (`RVGPU_SYSFS_ROOT`).

use rvgpu_smi::fake::FakeTree;
use rvgpu_smi::json;
use std::fs;
use std::process::{Command, Output};

const BDF: &str = "0000:00:04.0";

fn smi(t: &FakeTree, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rvgpu-smi"))
        .args(args)
        .env("RVGPU_SYSFS_ROOT", t.root())
        .output()
        .expect("running rvgpu-smi")
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

#[test]
fn binary_against_a_fake_tree() {
    let t = FakeTree::new("binary");
    let uuids = t.gpu_with_vgpus(BDF, 2);

    let o = smi(&t, &["--interval-ms", "0"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("GPU 0 ") && out.contains(BDF) && out.contains(&uuids[1]),
        "{out}"
    );
    assert!(out.contains("GRID RVGPU-16Q (nvidia-9104)"));

    let o = smi(&t, &["-q", "-i", "00:04.0", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v = json::parse(&text(&o.stdout)).unwrap();
    assert_eq!(v.get("gpus").unwrap().as_array().unwrap().len(), 1);

    let o = smi(
        &t,
        &["-u", "-c", "2", "--interval-ms", "0", "--format", "csv"],
    );
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(text(&o.stdout).lines().count(), 1 + 2 * 3);

    let o = smi(
        &t,
        &[
            "scheduler",
            "--gpu",
            BDF,
            "--policy",
            "fixed_share",
            "--timeslice-us",
            "800",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let sched = t
        .root()
        .join("bus/pci/devices/0000:00:04.0/nvidia/scheduler");
    assert_eq!(
        fs::read_to_string(sched).unwrap(),
        "policy=fixed_share timeslice_us=800"
    );
    assert_eq!(text(&o.stdout), "policy=fixed_share timeslice_us=800\n");
}

#[test]
fn binary_errors_and_exit_codes() {
    let t = FakeTree::new("binary-errors");
    t.gpu_with_vgpus(BDF, 1);
    let o = smi(&t, &["-i", "0000:00:09.0"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "rvgpu-smi: no GPU 0000:00:09.0 is bound to rvgpu\n"
    );
    let o = smi(&t, &["-i", "nine"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).starts_with("rvgpu-smi: 'nine' is not a PCI address (DDDD:BB:DD.F)\n"));
    let o = smi(&t, &["--frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).starts_with("rvgpu-smi: unknown option '--frobnicate'\n"));
    assert!(o.stdout.is_empty());
    let o = smi(&t, &["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).starts_with("Usage:\n"));

    let none = FakeTree::empty("binary-nodriver");
    let o = smi(&none, &["-q"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        format!(
            "rvgpu-smi: the rvgpu driver is not loaded (no {}/bus/pci/drivers/nvidia)\n",
            none.root().display()
        )
    );
}
