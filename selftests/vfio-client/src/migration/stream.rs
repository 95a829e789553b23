// SPDX-License-Identifier: GPL-2.0
//! rvgpu's migration stream (`uapi/rvgpu.h`, "Live migration"): one [`MigHeader`], then records
//! (a [`MigRecord`] head and `len` bytes), the last one `MIG_REC_END`. All pure: [`parse`] splits
//! bytes into their parts (as far as they go), [`validate`] lists what a destination must refuse,
//! [`Builder`] writes a stream from parts, and [`Corruption`] makes each kind of bad stream a
//! destination must refuse out of a good one.

use std::mem::{offset_of, size_of};

use crate::rvgpu::{
    MigHeader, MigRecord, MigState, MIG_MAGIC, MIG_REC_END, MIG_REC_STATE, MIG_REC_VRAM, MIG_VERSION, MIG_VRAM_MAX,
    PCI_DEVICE_ID, PCI_VENDOR_ID,
};

/// `sizeof(struct rvgpu_mig_header)`.
pub const HEADER_SIZE: usize = size_of::<MigHeader>();
/// `sizeof(struct rvgpu_mig_record)`.
pub const RECORD_SIZE: usize = size_of::<MigRecord>();
/// `sizeof(struct rvgpu_mig_state)`.
pub const STATE_SIZE: usize = size_of::<MigState>();

/// The `type_id` of the mdev type named `nvidia-<type_id>` (the name of the `mdev_type` link).
pub fn type_id_of(type_name: &str) -> Option<u32> {
    let id = type_name.strip_prefix("nvidia-")?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

/// A record kind's name (`"VRAM"`, `"STATE"`, `"END"`, or the number).
pub fn kind_name(kind: u32) -> String {
    match kind {
        MIG_REC_VRAM => "VRAM".into(),
        MIG_REC_STATE => "STATE".into(),
        MIG_REC_END => "END".into(),
        k => format!("kind {k}"),
    }
}

// ----- parsing ------------------------------------------------------------------------------

/// One record of a parsed stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Byte offset of the record's head in the stream.
    pub at: usize,
    /// The head.
    pub head: MigRecord,
    /// The `len` bytes after it.
    pub data: &'a [u8],
}

impl Record<'_> {
    /// Byte offset just after the record.
    pub fn end(&self) -> usize {
        self.at + RECORD_SIZE + self.data.len()
    }
}

/// A stream split into its parts, as far as the bytes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// The header, if the bytes hold one.
    pub header: Option<MigHeader>,
    /// The complete records, in order, up to and including END.
    pub records: Vec<Record<'a>>,
    /// What follows the last complete record: the start of one cut short, or anything after END.
    pub rest: &'a [u8],
}

/// Splits `bytes` into header and records; stops at the END record, at a record cut short, or
/// (with no header) at once.
pub fn parse(bytes: &[u8]) -> Parsed<'_> {
    let Some(header) = MigHeader::from_bytes(bytes) else {
        return Parsed { header: None, records: Vec::new(), rest: bytes };
    };
    let mut records: Vec<Record<'_>> = Vec::new();
    let mut at = HEADER_SIZE;
    while !records.last().is_some_and(|r| r.head.kind == MIG_REC_END) {
        let Some(head) = MigRecord::from_bytes(&bytes[at..]) else { break };
        let start = at + RECORD_SIZE;
        let Some(data) = bytes.get(start..start + head.len as usize) else { break };
        records.push(Record { at, head, data });
        at = start + data.len();
    }
    Parsed { header: Some(header), records, rest: &bytes[at..] }
}

impl<'a> Parsed<'a> {
    /// Whether the records reach the END record.
    pub fn ended(&self) -> bool {
        self.records.last().is_some_and(|r| r.head.kind == MIG_REC_END)
    }

    /// The records of one kind.
    pub fn of_kind(&self, kind: u32) -> impl Iterator<Item = &Record<'a>> + '_ {
        self.records.iter().filter(move |r| r.head.kind == kind)
    }

    /// The device state of the first STATE record, if it is long enough to hold one.
    pub fn state(&self) -> Option<MigState> {
        self.of_kind(MIG_REC_STATE).next().and_then(|r| MigState::from_bytes(r.data))
    }
}

// ----- validation ---------------------------------------------------------------------------

/// What the destination expects of a stream: its own type and framebuffer size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    /// `nvidia-<type_id>`.
    pub type_id: u32,
    /// `RVGPU_REG_FB_SIZE`.
    pub fb_size: u32,
}

/// What is wrong with a header for a destination expecting `e`.
pub fn header_problems(h: &MigHeader, e: &Expect) -> Vec<String> {
    let mut p = Vec::new();
    let mut field = |name: &str, got: u64, want: u64| {
        if got != want {
            p.push(format!("header {name} is {got:#x}, expected {want:#x}"));
        }
    };
    field("magic", h.magic, MIG_MAGIC);
    field("version", h.version.into(), MIG_VERSION.into());
    field("header_size", h.header_size.into(), HEADER_SIZE as u64);
    field("type_id", h.type_id.into(), e.type_id.into());
    field("fb_size", h.fb_size.into(), e.fb_size.into());
    field("state_size", h.state_size.into(), STATE_SIZE as u64);
    field("flags", h.flags.into(), 0);
    if h.reserved != [0; 8] {
        p.push(format!("header reserved is {:x?}, expected zeros", h.reserved));
    }
    p
}

/// What is wrong with one record on its own, for a framebuffer of `fb_size` bytes.
pub fn record_problems(r: &MigRecord, fb_size: u32) -> Vec<String> {
    let mut p = Vec::new();
    match r.kind {
        MIG_REC_VRAM => {
            if r.len > MIG_VRAM_MAX {
                p.push(format!("VRAM record of {:#x} bytes, more than MIG_VRAM_MAX", r.len));
            }
            if r.offset.checked_add(r.len.into()).map_or(true, |e| e > fb_size.into()) {
                p.push(format!("VRAM record {:#x}+{:#x} beyond fb_size {fb_size:#x}", r.offset, r.len));
            }
        }
        MIG_REC_STATE => {
            if r.len as usize != STATE_SIZE || r.offset != 0 {
                p.push(format!("STATE record len {} offset {:#x}, expected {STATE_SIZE} and 0", r.len, r.offset));
            }
        }
        MIG_REC_END => {
            if r.len != 0 || r.offset != 0 {
                p.push(format!("END record len {} offset {:#x}, expected 0 and 0", r.len, r.offset));
            }
        }
        k => p.push(format!("unknown record kind {k}")),
    }
    p
}

/// What is wrong with a device state (what the contract has the destination check).
pub fn state_problems(s: &MigState) -> Vec<String> {
    let mut p = Vec::new();
    let (v, d) = s.ids();
    if (v, d) != (PCI_VENDOR_ID, PCI_DEVICE_ID) {
        p.push(format!("STATE config space IDs {v:04x}:{d:04x}, expected {PCI_VENDOR_ID:04x}:{PCI_DEVICE_ID:04x}"));
    }
    if s.params_len as usize > s.params.len() {
        p.push(format!("STATE params_len {} over {}", s.params_len, s.params.len()));
    }
    p
}

/// Everything a destination expecting `e` must refuse in the complete stream `bytes` (empty:
/// a valid stream).
pub fn validate(bytes: &[u8], e: &Expect) -> Vec<String> {
    let s = parse(bytes);
    let Some(h) = s.header else {
        return vec![format!("the header is incomplete ({} bytes)", bytes.len())];
    };
    let mut p = header_problems(&h, e);
    for (i, r) in s.records.iter().enumerate() {
        p.extend(record_problems(&r.head, e.fb_size).into_iter().map(|x| format!("record {i} at byte {}: {x}", r.at)));
    }
    let states: Vec<&Record<'_>> = s.of_kind(MIG_REC_STATE).collect();
    match states.as_slice() {
        [] => p.push("no STATE record".into()),
        [one] => p.extend(MigState::from_bytes(one.data).map(|st| state_problems(&st)).unwrap_or_default()),
        many => p.push(format!("{} STATE records", many.len())),
    }
    match (s.ended(), s.rest.len()) {
        (true, 0) => {}
        (true, n) => p.push(format!("{n} bytes after the END record")),
        (false, 0) => p.push("no END record".into()),
        (false, n) => p.push(format!("no END record; a record cut short at byte {} ({n} bytes)", bytes.len() - n)),
    }
    p
}

/// Checks the VRAM records of `records` cover `[0, fb_size)` with ascending offsets and no gap.
pub fn check_vram_cover(records: &[Record<'_>], fb_size: u32) -> Result<(), String> {
    let (mut next, mut prev) = (0u64, None::<u64>);
    for r in records.iter().filter(|r| r.head.kind == MIG_REC_VRAM) {
        let off = r.head.offset;
        if prev.is_some_and(|p| off <= p) {
            return Err(format!("VRAM record at byte {} (offset {off:#x}) is not above the one before", r.at));
        }
        if off > next {
            return Err(format!("VRAM records leave {next:#x}..{off:#x} out (record at byte {})", r.at));
        }
        next = next.max(off.saturating_add(r.head.len.into()));
        prev = Some(off);
    }
    if next != u64::from(fb_size) {
        return Err(format!("VRAM records cover {next:#x} bytes, the framebuffer is {fb_size:#x}"));
    }
    Ok(())
}

// ----- building -----------------------------------------------------------------------------

/// Writes a stream from parts, any of them wrong if asked.
#[derive(Debug, Clone)]
pub struct Builder {
    bytes: Vec<u8>,
}

impl Builder {
    /// A stream starting with `h`.
    pub fn new(h: &MigHeader) -> Builder {
        Builder { bytes: h.to_bytes().to_vec() }
    }

    /// A record whose head says `kind`, `len` and `offset`, followed by `data` (whatever its
    /// length).
    pub fn raw(mut self, kind: u32, len: u32, offset: u64, data: &[u8]) -> Builder {
        self.bytes.extend_from_slice(&MigRecord { kind, len, offset }.to_bytes());
        self.bytes.extend_from_slice(data);
        self
    }

    /// A record of `kind` at `offset` holding `data`.
    pub fn record(self, kind: u32, offset: u64, data: &[u8]) -> Builder {
        self.raw(kind, data.len() as u32, offset, data)
    }

    /// Framebuffer bytes at `offset`, in records of at most `MIG_VRAM_MAX` bytes.
    pub fn vram(mut self, offset: u64, data: &[u8]) -> Builder {
        for (i, c) in data.chunks(MIG_VRAM_MAX as usize).enumerate() {
            self = self.record(MIG_REC_VRAM, offset + (i * MIG_VRAM_MAX as usize) as u64, c);
        }
        self
    }

    /// The STATE record.
    pub fn state(self, s: &MigState) -> Builder {
        self.record(MIG_REC_STATE, 0, &s.to_bytes())
    }

    /// The END record.
    pub fn end(self) -> Builder {
        self.record(MIG_REC_END, 0, &[])
    }

    /// The stream's bytes.
    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

// ----- corrupting ---------------------------------------------------------------------------

/// Where a destination refuses a bad stream, by the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `write()` fails with `EINVAL` (the header as soon as it is complete, a record as it
    /// arrives).
    Write,
    /// Only `RESUMING -> STOP` can tell (the stream is incomplete or its state is invalid); it
    /// fails with `EINVAL`.
    Stop,
}

/// One way to spoil a good stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    /// The header's magic with its lowest bit flipped.
    BadMagic,
    /// The header's version one higher.
    BadVersion,
    /// The header's `header_size` 8 too large (the header itself unchanged).
    BadHeaderSize,
    /// The header's `type_id` another type's.
    OtherTypeId,
    /// The header's `fb_size` 64 KiB off.
    OtherFbSize,
    /// The header's `state_size` 8 too large.
    BadStateSize,
    /// The header's `flags` 1.
    HeaderFlags,
    /// The header's last reserved word 1.
    HeaderReserved,
    /// Only the first half of the header.
    HeaderCut,
    /// Everything but the END record.
    NoEnd,
    /// Everything but the STATE record.
    NoState,
    /// A first VRAM record of 4 KiB from 2 KiB below `fb_size`.
    VramBeyondFb,
    /// A first VRAM record of `MIG_VRAM_MAX` + 4 KiB at offset 0.
    VramTooLong,
    /// A first record of kind 0x7f with 16 bytes.
    UnknownKind,
    /// The STATE record 8 bytes short (`len` and data).
    StateBadLen,
    /// A second END record after the END record.
    DataAfterEnd,
    /// The STATE record's configuration space with IDs 10de:2204.
    BadConfigIds,
}

impl Corruption {
    /// Every corruption.
    pub const ALL: [Corruption; 17] = [
        Corruption::BadMagic,
        Corruption::BadVersion,
        Corruption::BadHeaderSize,
        Corruption::OtherTypeId,
        Corruption::OtherFbSize,
        Corruption::BadStateSize,
        Corruption::HeaderFlags,
        Corruption::HeaderReserved,
        Corruption::HeaderCut,
        Corruption::NoEnd,
        Corruption::NoState,
        Corruption::VramBeyondFb,
        Corruption::VramTooLong,
        Corruption::UnknownKind,
        Corruption::StateBadLen,
        Corruption::DataAfterEnd,
        Corruption::BadConfigIds,
    ];

    /// What the corruption does.
    pub fn describe(self) -> &'static str {
        match self {
            Corruption::BadMagic => "bad magic",
            Corruption::BadVersion => "version 2",
            Corruption::BadHeaderSize => "header_size 72",
            Corruption::OtherTypeId => "another type_id",
            Corruption::OtherFbSize => "another fb_size",
            Corruption::BadStateSize => "state_size + 8",
            Corruption::HeaderFlags => "header flags 1",
            Corruption::HeaderReserved => "header reserved word nonzero",
            Corruption::HeaderCut => "half a header only",
            Corruption::NoEnd => "truncated before END",
            Corruption::NoState => "no STATE record",
            Corruption::VramBeyondFb => "a VRAM record crossing fb_size",
            Corruption::VramTooLong => "a VRAM record of MIG_VRAM_MAX + 4 KiB",
            Corruption::UnknownKind => "a record of unknown kind 0x7f",
            Corruption::StateBadLen => "a STATE record 8 bytes short",
            Corruption::DataAfterEnd => "a second END record after END",
            Corruption::BadConfigIds => "STATE with config IDs 10de:2204",
        }
    }

    /// Where the contract has the destination refuse it.
    pub fn stage(self) -> Stage {
        match self {
            Corruption::HeaderCut | Corruption::NoEnd | Corruption::NoState | Corruption::BadConfigIds => Stage::Stop,
            _ => Stage::Write,
        }
    }

    /// The corrupted copy of `good`, a complete stream with a header, one STATE and END.
    pub fn apply(self, good: &[u8]) -> Result<Vec<u8>, String> {
        let s = parse(good);
        let h = s.header.ok_or("the stream has no header")?;
        let state = s.of_kind(MIG_REC_STATE).next().copied().ok_or("the stream has no STATE record")?;
        let end = s.records.last().filter(|_| s.ended()).copied().ok_or("the stream has no END record")?;
        let body = &good[HEADER_SIZE..];
        let header_with = |f: &dyn Fn(&mut MigHeader)| {
            let mut h2 = h;
            f(&mut h2);
            let mut v = h2.to_bytes().to_vec();
            v.extend_from_slice(body);
            v
        };
        // A record put first, before the good ones.
        let first = |kind: u32, len: u32, offset: u64, data: &[u8]| {
            let mut v = Builder::new(&h).raw(kind, len, offset, data).finish();
            v.extend_from_slice(body);
            v
        };
        // The STATE record replaced by `with`.
        let replace_state = |with: &[u8]| {
            let mut v = good[..state.at].to_vec();
            v.extend_from_slice(with);
            v.extend_from_slice(&good[state.end()..]);
            v
        };
        Ok(match self {
            Corruption::BadMagic => header_with(&|h| h.magic ^= 1),
            Corruption::BadVersion => header_with(&|h| h.version = MIG_VERSION + 1),
            Corruption::BadHeaderSize => header_with(&|h| h.header_size = HEADER_SIZE as u32 + 8),
            Corruption::OtherTypeId => header_with(&|h| h.type_id = h.type_id.wrapping_add(1)),
            Corruption::OtherFbSize => header_with(&|h| {
                h.fb_size = if h.fb_size > 0x10000 { h.fb_size - 0x10000 } else { h.fb_size + 0x10000 }
            }),
            Corruption::BadStateSize => header_with(&|h| h.state_size = STATE_SIZE as u32 + 8),
            Corruption::HeaderFlags => header_with(&|h| h.flags = 1),
            Corruption::HeaderReserved => header_with(&|h| h.reserved[7] = 1),
            Corruption::HeaderCut => good[..HEADER_SIZE / 2].to_vec(),
            Corruption::NoEnd => good[..end.at].to_vec(),
            Corruption::NoState => replace_state(&[]),
            Corruption::VramBeyondFb => {
                first(MIG_REC_VRAM, 4096, u64::from(h.fb_size.saturating_sub(2048)), &[0x5a; 4096])
            }
            Corruption::VramTooLong => {
                let n = MIG_VRAM_MAX + 4096;
                first(MIG_REC_VRAM, n, 0, &vec![0xa5; n as usize])
            }
            Corruption::UnknownKind => first(0x7f, 16, 0, &[0; 16]),
            Corruption::StateBadLen => {
                let short = &state.data[..state.data.len().saturating_sub(8)];
                replace_state(&Builder::new(&h).record(MIG_REC_STATE, 0, short).finish()[HEADER_SIZE..])
            }
            Corruption::DataAfterEnd => {
                let mut v = good.to_vec();
                v.extend_from_slice(&MigRecord { kind: MIG_REC_END, len: 0, offset: 0 }.to_bytes());
                v
            }
            Corruption::BadConfigIds => {
                let mut v = good.to_vec();
                let c = state.at + RECORD_SIZE + offset_of!(MigState, config);
                v[c..c + 4].copy_from_slice(&[0xde, 0x10, 0x04, 0x22]);
                v
            }
        })
    }
}

#[cfg(test)]
mod tests;
