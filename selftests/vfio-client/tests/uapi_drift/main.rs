// SPDX-License-Identifier: GPL-2.0
//! `src/rvgpu.rs` against `uapi/rvgpu.h`, the single source of the vGPU's interface (the kernel
//! module gets it through bindgen; this crate carries a copy, which must not drift).
//!
//! The header is parsed here (`header.rs`), with no C compiler: every `#define RVGPU_<NAME> <value>` (hex or
//! decimal literals and simple expressions such as `(1 << 2)`, evaluated), and every `struct`
//! (`__u8`..`__u64` fields, arrays, nested and anonymous structs and unions), laid out with the C
//! rules. The tables below map each header name to its Rust counterpart; a header constant or
//! field without one, a different value, offset or size, or a table entry the header does not
//! have, fails the test, naming each. Commands and the migration stream's structs are also
//! encoded and read back field by field at the header's offsets.

use std::collections::HashMap;
use std::mem::{align_of, offset_of, size_of};
use std::path::PathBuf;

use vfio_client::rvgpu::{self, Cmd, CmdCopy, CmdFence, CmdFill, MigHeader, MigRecord, MigState};

mod header;

use header::{defines, resolve, structs, Layout};

// ----- the Rust side -----------------------------------------------------------------------------

/// `("RVGPU_NAME", value)` for each listed constant of `vfio_client::rvgpu` (named without the
/// prefix).
macro_rules! rust_consts {
    ($($n:ident),* $(,)?) => {
        vec![$((concat!("RVGPU_", stringify!($n)), u64::from(rvgpu::$n))),*]
    };
}

/// Every constant of the header, by its Rust name (grouped as in the header).
#[rustfmt::skip]
fn rust_constants() -> Vec<(&'static str, u64)> {
    rust_consts![
        PCI_VENDOR_ID, PCI_DEVICE_ID, PCI_CLASS, PCI_REVISION, PCI_SUBSYSTEM_VENDOR_ID, PCI_SUBSYSTEM_ID,
        MMIO_SIZE, REGION_SUBTYPE_SCANOUT, MMIO_EDID, MMIO_EDID_SIZE,
        MMIO_DISPI, DISPI_INDEX_ID, DISPI_INDEX_XRES, DISPI_INDEX_YRES, DISPI_INDEX_BPP, DISPI_INDEX_ENABLE,
        DISPI_INDEX_BANK, DISPI_INDEX_VIRT_WIDTH, DISPI_INDEX_VIRT_HEIGHT, DISPI_INDEX_X_OFFSET,
        DISPI_INDEX_Y_OFFSET, DISPI_INDEX_VIDEO_MEMORY_64K, DISPI_COUNT,
        DISPI_ID, DISPI_ENABLED, DISPI_GETCAPS, DISPI_8BIT_DAC, DISPI_LFB_ENABLED, DISPI_NOCLEARMEM,
        MMIO_QEXT, MMIO_QEXT_END, MMIO_QEXT_SIZE, MMIO_QEXT_BYTEORDER, BYTEORDER_LE, BYTEORDER_BE,
        REG_MAGIC, REG_HEADS, REG_MAX_WIDTH, REG_MAX_HEIGHT, REG_FB_SIZE, REG_FRL_FPS, MAGIC,
        MMIO_ENGINE, MMIO_ENGINE_SIZE,
        REG_IRQ_STATUS, REG_IRQ_ENABLE, IRQ_COMPLETION, IRQ_ERROR, IRQ_VBLANK,
        REG_RING_BASE_LO, REG_RING_BASE_HI, REG_RING_SIZE, REG_RING_HEAD, REG_RING_TAIL, REG_ERROR,
        REG_ERROR_HEAD, REG_FENCE, REG_COMPLETED, REG_VBLANK_COUNT, REG_ENGINE_STATUS,
        ERR_NONE, ERR_BAD_OPCODE, ERR_FB_RANGE, ERR_DMA_FAULT, ERR_RING, ERR_BAD_ARGS, ERR_HOST,
        CMD_NOP, CMD_FILL, CMD_COPY_TO_FB, CMD_COPY_FROM_FB, CMD_FENCE, CMD_WAIT_VBLANK,
        CMD_SIZE, RING_MIN_SIZE, RING_MAX_SIZE,
        MIG_MAGIC, MIG_VERSION, MIG_REC_VRAM, MIG_REC_STATE, MIG_REC_END, MIG_VRAM_MAX, MIG_PARAMS_MAX,
    ]
}

/// A header struct as Rust has it: size, alignment, and `(C field, offset, size)`.
struct RustStruct {
    c_name: &'static str,
    size: usize,
    align: usize,
    fields: Vec<(&'static str, usize, usize)>,
}

/// `c_name => Type { field, ..., c_field => rust_field as T }`: a C field with a Rust field of
/// the same name, or one represented by `rust_field` (offset) holding a `T` (size).
macro_rules! rust_struct {
    (@field $t:ty, $f:ident) => {
        (stringify!($f), offset_of!($t, $f), std::mem::size_of_val(&<$t>::default().$f))
    };
    (@field $t:ty, $f:ident, $rf:ident, $ft:ty) => {
        (stringify!($f), offset_of!($t, $rf), size_of::<$ft>())
    };
    ($c:literal => $t:ty { $($f:ident $(=> $rf:ident as $ft:ty)?),* $(,)? }) => {
        RustStruct {
            c_name: $c,
            size: size_of::<$t>(),
            align: align_of::<$t>(),
            fields: vec![$(rust_struct!(@field $t, $f $(, $rf, $ft)?)),*],
        }
    };
}

fn rust_structs() -> Vec<RustStruct> {
    vec![
        rust_struct!("rvgpu_cmd_fill" => CmdFill { fb_offset, fb_stride, width, value, pad }),
        rust_struct!("rvgpu_cmd_copy" => CmdCopy { iova, iova_stride, fb_offset, fb_stride, width }),
        rust_struct!("rvgpu_cmd_fence" => CmdFence { iova, value, pad }),
        // The anonymous union's members all live in `args`.
        rust_struct!("rvgpu_cmd" => Cmd {
            opcode,
            height,
            fill => args as CmdFill,
            copy => args as CmdCopy,
            fence => args as CmdFence,
            args,
        }),
        rust_struct!("rvgpu_mig_header" => MigHeader {
            magic, version, header_size, type_id, fb_size, state_size, flags, reserved,
        }),
        rust_struct!("rvgpu_mig_record" => MigRecord { kind, len, offset }),
        rust_struct!("rvgpu_mig_state" => MigState {
            config, ring_base, byteorder, irq_status, irq_enable, ring_size, ring_head, ring_tail, error,
            error_head, fence, completed, vblank_count, intx_masked, params_len, dispi, pad, params, reserved,
        }),
    ]
}

// ----- the header and the checks -------------------------------------------------------------

fn header_path() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../uapi/rvgpu.h");
    p.canonicalize().unwrap_or(p)
}

fn header() -> String {
    let p = header_path();
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn fail_on(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "src/rvgpu.rs has drifted from {}:\n  {}",
        header_path().display(),
        problems.join("\n  ")
    );
}

#[test]
fn constants_match_the_header() {
    let header = defines(&header());
    assert!(header.len() > 50, "only {} RVGPU_ defines found: is the parser broken?", header.len());
    let rust = rust_constants();
    let mut problems = Vec::new();
    let mut table: HashMap<&str, u64> = HashMap::new();
    for &(n, v) in &rust {
        if table.insert(n, v).is_some() {
            problems.push(format!("{n} is listed twice in this test's table"));
        }
    }
    for (name, value) in &header {
        let short = &name["RVGPU_".len()..];
        match (value, table.get(name.as_str())) {
            (Err(e), _) => problems.push(format!("{name}: cannot evaluate its value in the header ({e})")),
            (Ok(h), None) => problems.push(format!("{name} = {h:#x} is missing from src/rvgpu.rs (as {short})")),
            (Ok(h), Some(r)) if h != r => {
                problems.push(format!("{name}: the header says {h:#x}, src/rvgpu.rs {short} = {r:#x}"))
            }
            _ => {}
        }
    }
    for (n, _) in &rust {
        if !header.iter().any(|(h, _)| h == n) {
            problems.push(format!("{n} is in src/rvgpu.rs but not in the header"));
        }
    }
    eprintln!("{} RVGPU_ constants in the header, {} in src/rvgpu.rs", header.len(), rust.len());
    fail_on(problems);
}

#[test]
fn structs_match_the_header() {
    let header = structs(&header()).unwrap_or_else(|e| panic!("parsing {}: {e}", header_path().display()));
    let rust = rust_structs();
    let mut problems = Vec::new();
    for (name, l) in &header {
        let Some(r) = rust.iter().find(|r| r.c_name == name) else {
            problems.push(format!("struct {name} (size {}) has no Rust counterpart in this test's table", l.size));
            continue;
        };
        if (r.size, r.align) != (l.size, l.align) {
            problems.push(format!(
                "struct {name}: size {} align {} in the header, {} and {} in Rust",
                l.size, l.align, r.size, r.align
            ));
        }
        for f in &l.fields {
            match r.fields.iter().find(|(n, _, _)| *n == f.name) {
                None => {
                    problems.push(format!("{name}.{} (offset {}) is missing from the Rust struct", f.name, f.offset))
                }
                Some(&(_, off, size)) if (off, size) != (f.offset, f.size) => problems.push(format!(
                    "{name}.{}: offset {} size {} in the header, offset {off} size {size} in Rust",
                    f.name, f.offset, f.size
                )),
                _ => {}
            }
        }
        for (n, _, _) in &r.fields {
            if !l.fields.iter().any(|f| f.name == *n) {
                problems.push(format!("{name}.{n} is in Rust but not in the header"));
            }
        }
    }
    for r in &rust {
        if !header.iter().any(|(n, _)| n == r.c_name) {
            problems.push(format!("struct {} is in Rust but not in the header", r.c_name));
        }
    }
    for (name, l) in &header {
        let fields: Vec<String> = l.fields.iter().map(|f| format!("{}@{}+{}", f.name, f.offset, f.size)).collect();
        eprintln!("struct {name}: size {} align {}: {}", l.size, l.align, fields.join(" "));
    }
    fail_on(problems);
}

/// A command, what it is, and the value each of its fields (`rvgpu_cmd` paths) must have.
type Case = (&'static str, Cmd, Vec<(&'static str, u64)>);

#[test]
fn commands_lay_out_as_the_header_says() {
    let layouts: HashMap<String, Layout> = structs(&header()).expect("the header parses").into_iter().collect();
    let iova = 0x1122_3344_5566_7788;
    let cases: Vec<Case> = vec![
        ("NOP", Cmd::nop(), vec![("opcode", rvgpu::CMD_NOP.into()), ("height", 0)]),
        (
            "FILL",
            Cmd::fill(0x100, 0x200, 0x300, 7, 0xdead_beef),
            vec![
                ("opcode", rvgpu::CMD_FILL.into()),
                ("height", 7),
                ("fill.fb_offset", 0x100),
                ("fill.fb_stride", 0x200),
                ("fill.width", 0x300),
                ("fill.value", 0xdead_beef),
                ("fill.pad", 0),
            ],
        ),
        (
            "COPY_TO_FB",
            Cmd::copy_to_fb(iova, 0x10, 0x20, 0x30, 0x40, 9),
            vec![
                ("opcode", rvgpu::CMD_COPY_TO_FB.into()),
                ("height", 9),
                ("copy.iova", iova),
                ("copy.iova_stride", 0x10),
                ("copy.fb_offset", 0x20),
                ("copy.fb_stride", 0x30),
                ("copy.width", 0x40),
            ],
        ),
        (
            "COPY_FROM_FB",
            Cmd::copy_from_fb(iova, 0x10, 0x20, 0x30, 0x40, 9),
            vec![("opcode", rvgpu::CMD_COPY_FROM_FB.into()), ("height", 9), ("copy.iova", iova), ("copy.width", 0x40)],
        ),
        (
            "FENCE",
            Cmd::fence(iova, 0xfeed),
            vec![
                ("opcode", rvgpu::CMD_FENCE.into()),
                ("height", 0),
                ("fence.iova", iova),
                ("fence.value", 0xfeed),
                ("fence.pad", 0),
            ],
        ),
    ];
    let mut problems = Vec::new();
    for (what, cmd, fields) in cases {
        let bytes = cmd.to_bytes();
        let size = layouts.get("rvgpu_cmd").map_or(0, |l| l.size);
        if bytes.len() != size {
            problems.push(format!("{what}: {} bytes, struct rvgpu_cmd is {size}", bytes.len()));
            continue;
        }
        for (path, want) in fields {
            match resolve(&layouts, "rvgpu_cmd", path) {
                Err(e) => problems.push(format!("{what}: {e}")),
                Ok((off, len)) => {
                    // Arrays (pad) are checked as all zero bytes.
                    let le = &bytes[off..off + len];
                    let got = le.iter().rev().fold(0u128, |v, &b| v << 8 | u128::from(b));
                    if got != u128::from(want) {
                        problems.push(format!("{what}: {path} at byte {off} is {got:#x}, want {want:#x}"));
                    }
                }
            }
        }
    }
    fail_on(problems);
}

/// The value the little-endian bytes `b` hold.
fn le_value(b: &[u8]) -> u128 {
    b.iter().rev().fold(0u128, |v, &x| v << 8 | u128::from(x))
}

#[test]
fn migration_structs_encode_as_the_header_says() {
    let layouts: HashMap<String, Layout> = structs(&header()).expect("the header parses").into_iter().collect();
    let mut problems = Vec::new();
    let mut check = |st: &str, bytes: &[u8], fields: &[(&str, u128)]| {
        let size = layouts.get(st).map_or(0, |l| l.size);
        if bytes.len() != size {
            problems.push(format!("{st}: {} bytes encoded, the header's struct is {size}", bytes.len()));
            return;
        }
        for &(path, want) in fields {
            match resolve(&layouts, st, path) {
                Err(e) => problems.push(e),
                Ok((off, len)) => {
                    let got = le_value(&bytes[off..off + len.min(16)]);
                    if got != want {
                        problems.push(format!("{st}.{path} at byte {off} is {got:#x}, want {want:#x}"));
                    }
                }
            }
        }
    };
    let h = MigHeader {
        magic: rvgpu::MIG_MAGIC,
        version: 0x11,
        header_size: 0x22,
        type_id: 0x33,
        fb_size: 0x44,
        state_size: 0x55,
        flags: 0x66,
        reserved: [0x77, 0, 0, 0x88, 0, 0, 0, 0],
    };
    check(
        "rvgpu_mig_header",
        &h.to_bytes(),
        &[
            ("magic", rvgpu::MIG_MAGIC.into()),
            ("version", 0x11),
            ("header_size", 0x22),
            ("type_id", 0x33),
            ("fb_size", 0x44),
            ("state_size", 0x55),
            ("flags", 0x66),
            ("reserved", 0x88 << 96 | 0x77),
        ],
    );
    let r = MigRecord { kind: 7, len: 0x1234, offset: 0x0102_0304_0506_0708 };
    check("rvgpu_mig_record", &r.to_bytes(), &[("kind", 7), ("len", 0x1234), ("offset", 0x0102_0304_0506_0708)]);
    let mut s = MigState {
        ring_base: 0x1_2340_0000,
        byteorder: 1,
        irq_status: 2,
        irq_enable: 3,
        ring_size: 4,
        ring_head: 5,
        ring_tail: 6,
        error: 7,
        error_head: 8,
        fence: 9,
        completed: 10,
        vblank_count: 11,
        intx_masked: 12,
        params_len: 13,
        pad: 14,
        reserved: 15,
        ..MigState::default()
    };
    s.config[0] = 0xc0;
    s.config[255] = 0xcf;
    s.dispi[0] = 0xb0c5;
    s.dispi[rvgpu::DISPI_COUNT as usize - 1] = 0x1a;
    s.params[0] = b'f';
    s.params[rvgpu::MIG_PARAMS_MAX as usize - 1] = b'z';
    let b = s.to_bytes();
    let mut fields = vec![
        ("ring_base", 0x1_2340_0000),
        ("byteorder", 1),
        ("irq_status", 2),
        ("irq_enable", 3),
        ("ring_size", 4),
        ("ring_head", 5),
        ("ring_tail", 6),
        ("error", 7),
        ("error_head", 8),
        ("fence", 9),
        ("completed", 10),
        ("vblank_count", 11),
        ("intx_masked", 12),
        ("params_len", 13),
        ("pad", 14),
        ("reserved", 15),
    ];
    // Arrays: their first bytes (up to 16) here, their last elements below.
    fields.extend([("config", 0xc0), ("dispi", 0xb0c5), ("params", u128::from(b'f'))]);
    check("rvgpu_mig_state", &b, &fields);
    for (path, want) in [("config", 0xcfu16), ("dispi", 0x1a), ("params", u16::from(b'z'))] {
        let (off, len) = resolve(&layouts, "rvgpu_mig_state", path).expect("the field exists");
        let w = if path == "dispi" { 2 } else { 1 };
        let got = le_value(&b[off + len - w..off + len]);
        if got != u128::from(want) {
            problems.push(format!("rvgpu_mig_state.{path}: its last element is {got:#x}, want {want:#x}"));
        }
    }
    fail_on(problems);
}
