// SPDX-License-Identifier: GPL-2.0

//! The migration data stream of a vGPU (`struct rvgpu_mig_header`, `rvgpu_mig_record`,
//! `rvgpu_mig_state` in `uapi/rvgpu.h`): [`Saver`] produces it on `read()`, [`Resumer`] consumes
//! and validates it on `write()`. Neither holds more than one record header or the device state
//! in memory: framebuffer records stream straight between the VRAM slice and user space.

use zerocopy::FromZeros;

use kernel::{
    device, new_mutex,
    prelude::*,
    sync::{
        aref::ARef,
        Arc,
        Mutex, //
    },
    uaccess::{
        UserSliceReader,
        UserSliceWriter, //
    },
};

use super::super::{
    dirty,
    scanout::{
        Scanout,
        REGION_DISPLAY, //
    },
    slice::VramSlice,
    uapi::{
        self,
        rvgpu_mig_header,
        rvgpu_mig_record,
        rvgpu_mig_state, //
    },
};
use crate::vfio::{
    bindings::VFIO_PCI_BAR0_REGION_INDEX as FB_REGION,
    migration::{
        DataFile,
        PrecopyInfo, //
    },
    vma::Mappings,
};

const HEADER: usize = size_of::<rvgpu_mig_header>();
const RECORD: usize = size_of::<rvgpu_mig_record>();
const STATE: usize = size_of::<rvgpu_mig_state>();
const VRAM_MAX: u64 = uapi::RVGPU_MIG_VRAM_MAX as u64;
// A saver's record is a run of pages within one bitmap word.
const _: () = assert!(dirty::WORD_PAGES * dirty::PAGE <= VRAM_MAX);
/// VRAM moves between the slice and user space through a buffer of this size.
const CHUNK: usize = 4096;

/// What identifies a compatible stream: the vGPU's type and framebuffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StreamId {
    pub(crate) type_id: u32,
    pub(crate) fb_size: u32,
}

impl StreamId {
    fn header(&self) -> rvgpu_mig_header {
        let mut h = rvgpu_mig_header::new_zeroed();
        h.magic = uapi::RVGPU_MIG_MAGIC.to_le();
        h.version = uapi::RVGPU_MIG_VERSION.to_le();
        h.header_size = (HEADER as u32).to_le();
        h.type_id = self.type_id.to_le();
        h.fb_size = self.fb_size.to_le();
        h.state_size = (STATE as u32).to_le();
        h
    }

    /// Why `h` is not a header for this vGPU, if it is not.
    fn mismatch(&self, h: &rvgpu_mig_header) -> Option<Mismatch> {
        let magic = u64::from_le(h.magic);
        let version = u32::from_le(h.version);
        let type_id = u32::from_le(h.type_id);
        let fb_size = u32::from_le(h.fb_size);
        if magic != uapi::RVGPU_MIG_MAGIC {
            Some(Mismatch::Magic(magic))
        } else if version != uapi::RVGPU_MIG_VERSION {
            Some(Mismatch::Version(version))
        } else if u32::from_le(h.header_size) as usize != HEADER
            || u32::from_le(h.state_size) as usize != STATE
        {
            Some(Mismatch::Sizes(
                u32::from_le(h.header_size),
                u32::from_le(h.state_size),
            ))
        } else if type_id != self.type_id {
            Some(Mismatch::Type(type_id))
        } else if fb_size != self.fb_size {
            Some(Mismatch::FbSize(fb_size))
        } else if h.flags != 0 || h.reserved.iter().any(|&r| r != 0) {
            Some(Mismatch::Flags)
        } else {
            None
        }
    }
}

/// Why a stream was refused (logged once, in one line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mismatch {
    Magic(u64),
    Version(u32),
    Sizes(u32, u32),
    Type(u32),
    FbSize(u32),
    Flags,
    Record { kind: u32, len: u32, offset: u64 },
    StateTwice,
    AfterEnd,
    Truncated,
    NoState,
}

fn record(kind: u32, len: u32, offset: u64) -> rvgpu_mig_record {
    rvgpu_mig_record {
        kind: kind.to_le(),
        len: len.to_le(),
        offset: offset.to_le(),
    }
}

/// Where a saving stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Pre-copy: sweeps of the framebuffer's changed pages (the first sweep is the initial data).
    PreCopy,
    /// Pre-copy with the framebuffer left for stop-copy: only the header, then a temporary end.
    Idle,
    /// Stop-copy: the pages still changed, then the device state and the end.
    Final,
    State,
    End,
    Done,
}

struct SaverInner {
    phase: Phase,
    /// Bytes of the record (or header) being read, and how far.
    pending: KVec<u8>,
    pending_pos: usize,
    /// The framebuffer bytes of the VRAM record being read: offset and bytes left.
    body: Option<(u64, u64)>,
    /// The dirty-bitmap word the sweep looks at next.
    cursor: usize,
    /// Pages of word `word` taken from the bitmap and not sent yet (a record per run).
    taken: u64,
    word: usize,
    /// The first sweep of the pre-copy phase is complete (`initial_bytes` is 0 from then on).
    initial_done: bool,
    /// The framebuffer went in the pre-copy phase: pages sent after the first sweep are pages
    /// sent again.
    tracked: bool,
    /// The device state, from the switch to stop-copy.
    state: Option<KBox<rvgpu_mig_state>>,
    /// The device left the saving states (reset, close, the end of the transfer).
    disabled: bool,
    /// Bytes read so far, pre-copy sweeps completed, and pages sent again after the first sweep.
    sent: u64,
    rounds: u64,
    resent: u64,
    /// Pages sent in the sweep under way.
    swept: u64,
}

/// The saving stream of one transfer (PRE_COPY, PRE_COPY_P2P and STOP_COPY share it).
///
/// The framebuffer goes as VRAM records of changed pages (see `super::super::dirty`): pre-copy
/// sweeps the dirty bitmap from start to end again and again, sending what the guest and the
/// engine changed since; stop-copy sends what is still marked. So `initial_bytes` is what the first
/// sweep still has to send, `dirty_bytes` what later sweeps have, and the stop-copy size the
/// pages marked now.
#[pin_data]
pub(crate) struct Saver {
    slice: Arc<VramSlice>,
    /// Where the display region starts: its mappings show framebuffer pages too.
    scanout: Arc<Scanout>,
    mappings: Mappings,
    fb_size: u64,
    #[pin]
    inner: Mutex<SaverInner>,
}

/// Framebuffer bytes of `pages` pages in VRAM records (a record holds up to a word's pages:
/// exact for whole words, as in a first sweep).
fn page_bytes(pages: u64) -> u64 {
    pages * dirty::PAGE + pages.div_ceil(dirty::WORD_PAGES) * RECORD as u64
}

impl Saver {
    /// A stream for `id`; `precopy`: the framebuffer goes in the pre-copy phase (else only the
    /// header, and everything in stop-copy). `mappings` are zapped as pages are taken, so that
    /// the guest's next write to one is seen.
    pub(crate) fn new(
        slice: Arc<VramSlice>,
        scanout: Arc<Scanout>,
        mappings: Mappings,
        id: StreamId,
        precopy: bool,
    ) -> Result<Arc<Self>> {
        let mut pending = KVec::with_capacity(HEADER, GFP_KERNEL)?;
        pending.extend_from_slice(id.header().as_bytes(), GFP_KERNEL)?;
        let fb_size = u64::from(id.fb_size);
        if precopy {
            // Everything is to be sent; the pages mapped writable now must report their next
            // write.
            slice.dirty().mark_all();
            mappings.zap(FB_REGION, 0, fb_size);
            mappings.zap(REGION_DISPLAY, 0, fb_size);
        }
        Arc::pin_init(
            pin_init!(Self {
                slice,
                scanout,
                mappings,
                fb_size,
                inner <- new_mutex!(SaverInner {
                    phase: if precopy { Phase::PreCopy } else { Phase::Idle },
                    pending,
                    pending_pos: 0,
                    body: None,
                    cursor: 0,
                    taken: 0,
                    word: 0,
                    initial_done: !precopy,
                    tracked: precopy,
                    state: None,
                    disabled: false,
                    sent: 0,
                    rounds: 0,
                    resent: 0,
                    swept: 0,
                }),
            }),
            GFP_KERNEL,
        )
    }

    /// The switch to stop-copy (the guest and the engine are stopped): the pages still marked
    /// (all of them if the framebuffer was left for stop-copy), then `state`, then the end.
    pub(crate) fn stop_copy(&self, state: KBox<rvgpu_mig_state>) {
        let mut s = self.inner.lock();
        if s.phase == Phase::Idle {
            self.slice.dirty().mark_all();
        }
        s.state = Some(state);
        s.cursor = 0;
        s.phase = Phase::Final;
    }

    /// The device left the saving states: the stream ends (reads fail with `ENODEV`).
    pub(crate) fn disable(&self) {
        self.inner.lock().disabled = true;
    }

    /// Bytes read so far, pre-copy sweeps completed, pages sent again after the first sweep.
    pub(crate) fn progress(&self) -> (u64, u64, u64) {
        let s = self.inner.lock();
        (s.sent, s.rounds, s.resent)
    }

    /// Zaps `[off, off + len)` of the framebuffer from every mapping that shows it: BAR0, and
    /// the display region from its start (which moving zaps the whole region anyway).
    fn zap(&self, off: u64, len: u64) {
        self.mappings.zap(FB_REGION, off, len);
        let start = self.scanout.start();
        let end = off + len;
        if end > start {
            let from = off.saturating_sub(start);
            self.mappings.zap(REGION_DISPLAY, from, end - start - from);
        }
    }

    /// Bytes of the record being read, and of the pages taken but not sent yet.
    fn in_flight(s: &SaverInner) -> u64 {
        (s.pending.len() - s.pending_pos) as u64
            + s.body.map_or(0, |(_, l)| l)
            + page_bytes(u64::from(s.taken.count_ones()))
    }

    /// What stop-copy still has to send from here (an estimate while in pre-copy).
    pub(crate) fn stop_copy_bytes(&self) -> u64 {
        let s = self.inner.lock();
        let tail = (RECORD + STATE + RECORD) as u64;
        let dirty = self.slice.dirty();
        let now = Self::in_flight(&s);
        match s.phase {
            Phase::Idle => now + page_bytes(self.fb_size.div_ceil(dirty::PAGE)) + tail,
            Phase::PreCopy | Phase::Final => now + page_bytes(dirty.count(0, dirty.len())) + tail,
            Phase::State => now + tail,
            Phase::End => now + RECORD as u64,
            Phase::Done => now,
        }
    }

    /// Moves on to the next record; false at a (temporary or final) end.
    fn advance(&self, s: &mut SaverInner) -> Result<bool> {
        s.pending.clear();
        s.pending_pos = 0;
        match s.phase {
            Phase::PreCopy | Phase::Final => loop {
                if s.taken != 0 {
                    // The next run of taken pages: one record.
                    let first = s.taken.trailing_zeros();
                    let run = (!(s.taken >> first)).trailing_zeros().min(64 - first);
                    let mask = if run == 64 {
                        u64::MAX
                    } else {
                        ((1u64 << run) - 1) << first
                    };
                    s.taken &= !mask;
                    let off = (s.word as u64 * dirty::WORD_PAGES + u64::from(first)) * dirty::PAGE;
                    let len = (u64::from(run) * dirty::PAGE).min(self.fb_size.saturating_sub(off));
                    if len == 0 {
                        continue;
                    }
                    if s.initial_done && s.tracked {
                        s.resent += u64::from(run);
                    }
                    s.swept += u64::from(run);
                    let r = record(uapi::RVGPU_MIG_REC_VRAM, len as u32, off);
                    s.pending.extend_from_slice(r.as_bytes(), GFP_KERNEL)?;
                    s.body = Some((off, len));
                    return Ok(true);
                }
                let dirty = self.slice.dirty();
                if let Some(w) = dirty.next(s.cursor) {
                    s.taken = dirty.take(w);
                    s.word = w;
                    s.cursor = w + 1;
                    if s.phase == Phase::PreCopy {
                        // Before the pages are read: the guest's next write to one of them
                        // marks it again.
                        let span = dirty::WORD_PAGES * dirty::PAGE;
                        self.zap(w as u64 * span, span);
                    }
                    continue;
                }
                // The end of a sweep.
                s.cursor = 0;
                if s.phase == Phase::PreCopy {
                    // A round is a sweep that sent something (or the first, initial one).
                    if s.swept > 0 || !s.initial_done {
                        s.rounds += 1;
                    }
                    s.swept = 0;
                    s.initial_done = true;
                    // Pages changed behind the sweep start the next one at the next read: a
                    // temporary end of stream now lets QEMU see how much is left.
                    return Ok(false);
                }
                if dirty.next(0).is_none() {
                    s.phase = Phase::State;
                    return Ok(true);
                }
            },
            Phase::Idle | Phase::Done => Ok(false),
            Phase::State => {
                let r = record(uapi::RVGPU_MIG_REC_STATE, STATE as u32, 0);
                s.pending.extend_from_slice(r.as_bytes(), GFP_KERNEL)?;
                let st = s.state.take().ok_or(EINVAL)?;
                s.pending.extend_from_slice(st.as_bytes(), GFP_KERNEL)?;
                s.phase = Phase::End;
                Ok(true)
            }
            Phase::End => {
                let r = record(uapi::RVGPU_MIG_REC_END, 0, 0);
                s.pending.extend_from_slice(r.as_bytes(), GFP_KERNEL)?;
                s.phase = Phase::Done;
                Ok(true)
            }
        }
    }
}

impl DataFile for Saver {
    fn read(&self, out: &mut UserSliceWriter) -> Result<usize> {
        let mut s = self.inner.lock();
        if s.disabled {
            return Err(ENODEV);
        }
        let want = out.len();
        let mut done = 0;
        let mut buf = [0u8; CHUNK];
        while done < want {
            if s.pending_pos < s.pending.len() {
                let n = (s.pending.len() - s.pending_pos).min(want - done);
                out.write_slice(&s.pending[s.pending_pos..s.pending_pos + n])?;
                s.pending_pos += n;
                done += n;
            } else if let Some((off, left)) = s.body {
                let n = (left as usize).min(want - done).min(CHUNK);
                self.slice.read(off, &mut buf[..n])?;
                out.write_slice(&buf[..n])?;
                let left = left - n as u64;
                s.body = (left > 0).then_some((off + n as u64, left));
                done += n;
            } else if !self.advance(&mut s)? {
                break;
            }
        }
        s.sent += done as u64;
        if done == 0 && matches!(s.phase, Phase::PreCopy | Phase::Idle) {
            // A temporary end of stream: more may come (later sweeps, stop-copy).
            return Err(ENOMSG);
        }
        Ok(done)
    }

    fn precopy_info(&self) -> Result<PrecopyInfo> {
        let s = self.inner.lock();
        let dirty = self.slice.dirty();
        let now = Self::in_flight(&s);
        let (initial, later) = match s.phase {
            Phase::Idle => (now, 0),
            // The first sweep: what it has left ahead of it is initial data, what changed behind
            // it is dirty.
            Phase::PreCopy if !s.initial_done => (
                now + page_bytes(dirty.count(s.cursor, dirty.len())),
                page_bytes(dirty.count(0, s.cursor)),
            ),
            Phase::PreCopy => (0, now + page_bytes(dirty.count(0, dirty.len()))),
            // Only valid in the pre-copy states.
            _ => return Err(EINVAL),
        };
        Ok(PrecopyInfo {
            initial_bytes: initial,
            dirty_bytes: later,
            // The initial data never starts over: a sweep only sends pages again.
            reinit: false,
        })
    }
}

/// Where a resuming stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Header,
    Record,
    Vram { offset: u64, left: u64 },
    State,
    Ended,
}

struct ResumerInner {
    stage: Stage,
    /// The header, record header or state being gathered.
    buf: KVec<u8>,
    state: Option<KBox<rvgpu_mig_state>>,
    /// Why the stream was refused (sticky).
    refused: Option<Mismatch>,
    disabled: bool,
    received: u64,
}

/// The resuming stream of one transfer.
#[pin_data]
pub(crate) struct Resumer {
    slice: Arc<VramSlice>,
    id: StreamId,
    dev: ARef<device::Device>,
    #[pin]
    inner: Mutex<ResumerInner>,
}

impl Resumer {
    pub(crate) fn new(
        slice: Arc<VramSlice>,
        id: StreamId,
        dev: ARef<device::Device>,
    ) -> Result<Arc<Self>> {
        let buf = KVec::with_capacity(STATE, GFP_KERNEL)?;
        Arc::pin_init(
            pin_init!(Self {
                slice,
                id,
                dev,
                inner <- new_mutex!(ResumerInner {
                    stage: Stage::Header,
                    buf,
                    state: None,
                    refused: None,
                    disabled: false,
                    received: 0,
                }),
            }),
            GFP_KERNEL,
        )
    }

    /// The device left RESUMING (reset, close): the stream is refused from now on.
    pub(crate) fn disable(&self) {
        self.inner.lock().disabled = true;
    }

    pub(crate) fn received(&self) -> u64 {
        self.inner.lock().received
    }

    /// Refuses the stream for `why`, with one log line.
    fn refuse(&self, s: &mut ResumerInner, why: Mismatch) -> Error {
        if s.refused.is_none() {
            match why {
                Mismatch::Magic(m) => dev_err!(
                    self.dev,
                    "migration: not an rvgpu stream (magic {:#x})\n",
                    m
                ),
                Mismatch::Version(v) => dev_err!(
                    self.dev,
                    "migration: stream version {} unknown (this driver reads version {})\n",
                    v,
                    uapi::RVGPU_MIG_VERSION
                ),
                Mismatch::Sizes(h, st) => dev_err!(
                    self.dev,
                    "migration: stream header/state sizes {}/{}, expected {}/{}\n",
                    h,
                    st,
                    HEADER,
                    STATE
                ),
                Mismatch::Type(t) => dev_err!(
                    self.dev,
                    "migration: stream of type nvidia-{}, this vGPU is nvidia-{}\n",
                    t,
                    self.id.type_id
                ),
                Mismatch::FbSize(f) => dev_err!(
                    self.dev,
                    "migration: stream framebuffer {} bytes, this vGPU has {}\n",
                    f,
                    self.id.fb_size
                ),
                Mismatch::Flags => dev_err!(
                    self.dev,
                    "migration: stream header flags or reserved fields set\n"
                ),
                Mismatch::Record { kind, len, offset } => dev_err!(
                    self.dev,
                    "migration: bad stream record (kind {}, {} bytes at {:#x})\n",
                    kind,
                    len,
                    offset
                ),
                Mismatch::StateTwice => {
                    dev_err!(self.dev, "migration: stream has two device states\n")
                }
                Mismatch::AfterEnd => {
                    dev_err!(self.dev, "migration: data after the end of the stream\n")
                }
                Mismatch::Truncated => dev_err!(self.dev, "migration: stream ends early\n"),
                Mismatch::NoState => dev_err!(self.dev, "migration: stream has no device state\n"),
            }
            s.refused = Some(why);
        }
        EINVAL
    }

    /// Checks a complete record header and moves on to its body.
    fn record(&self, s: &mut ResumerInner) -> Result {
        let r = rvgpu_mig_record::read_from_bytes(&s.buf).map_err(|_| EINVAL)?;
        let (kind, len, offset) = (
            u32::from_le(r.kind),
            u32::from_le(r.len),
            u64::from_le(r.offset),
        );
        let bad = Mismatch::Record { kind, len, offset };
        let vram_ok = |len: u32, offset: u64| {
            len > 0
                && u64::from(len) <= VRAM_MAX
                && offset
                    .checked_add(u64::from(len))
                    .is_some_and(|end| end <= u64::from(self.id.fb_size))
        };
        s.stage = match kind {
            uapi::RVGPU_MIG_REC_VRAM if vram_ok(len, offset) => Stage::Vram {
                offset,
                left: u64::from(len),
            },
            uapi::RVGPU_MIG_REC_STATE if len as usize == STATE && offset == 0 => {
                if s.state.is_some() {
                    return Err(self.refuse(s, Mismatch::StateTwice));
                }
                Stage::State
            }
            uapi::RVGPU_MIG_REC_END if len == 0 && offset == 0 => Stage::Ended,
            _ => return Err(self.refuse(s, bad)),
        };
        s.buf.clear();
        Ok(())
    }

    /// The device state of a complete, valid stream (RESUMING -> STOP).
    pub(crate) fn finish(&self) -> Result<KBox<rvgpu_mig_state>> {
        let mut s = self.inner.lock();
        if s.refused.is_some() {
            return Err(EINVAL);
        }
        if s.stage != Stage::Ended {
            return Err(self.refuse(&mut s, Mismatch::Truncated));
        }
        match s.state.take() {
            Some(st) => Ok(st),
            None => Err(self.refuse(&mut s, Mismatch::NoState)),
        }
    }
}

impl DataFile for Resumer {
    fn write(&self, data: &mut UserSliceReader) -> Result<usize> {
        let mut s = self.inner.lock();
        if s.disabled {
            return Err(ENODEV);
        }
        if s.refused.is_some() {
            return Err(EINVAL);
        }
        let total = data.len();
        let mut buf = [0u8; CHUNK];
        let mut done = 0;
        while done < total {
            let room = total - done;
            match s.stage {
                Stage::Header | Stage::Record | Stage::State => {
                    let need = match s.stage {
                        Stage::Header => HEADER,
                        Stage::Record => RECORD,
                        _ => STATE,
                    } - s.buf.len();
                    let n = need.min(room).min(CHUNK);
                    data.read_slice(&mut buf[..n])?;
                    s.buf.extend_from_slice(&buf[..n], GFP_KERNEL)?;
                    done += n;
                    if n < need {
                        continue;
                    }
                    match s.stage {
                        Stage::Header => {
                            let h =
                                rvgpu_mig_header::read_from_bytes(&s.buf).map_err(|_| EINVAL)?;
                            if let Some(why) = self.id.mismatch(&h) {
                                return Err(self.refuse(&mut s, why));
                            }
                            s.buf.clear();
                            s.stage = Stage::Record;
                        }
                        Stage::Record => self.record(&mut s)?,
                        _ => {
                            let st =
                                rvgpu_mig_state::read_from_bytes(&s.buf).map_err(|_| EINVAL)?;
                            s.state = Some(KBox::new(st, GFP_KERNEL)?);
                            s.buf.clear();
                            s.stage = Stage::Record;
                        }
                    }
                }
                Stage::Vram { offset, left } => {
                    let n = (left as usize).min(room).min(CHUNK);
                    data.read_slice(&mut buf[..n])?;
                    self.slice.write(offset, &buf[..n])?;
                    done += n;
                    let left = left - n as u64;
                    s.stage = if left > 0 {
                        Stage::Vram {
                            offset: offset + n as u64,
                            left,
                        }
                    } else {
                        Stage::Record
                    };
                }
                Stage::Ended => return Err(self.refuse(&mut s, Mismatch::AfterEnd)),
            }
        }
        s.received += done as u64;
        Ok(done)
    }
}
