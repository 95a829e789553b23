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
    slice::VramSlice,
    uapi::{
        self,
        rvgpu_mig_header,
        rvgpu_mig_record,
        rvgpu_mig_state, //
    },
};
use crate::vfio::migration::{
    DataFile,
    PrecopyInfo, //
};

const HEADER: usize = size_of::<rvgpu_mig_header>();
const RECORD: usize = size_of::<rvgpu_mig_record>();
const STATE: usize = size_of::<rvgpu_mig_state>();
const VRAM_MAX: u64 = uapi::RVGPU_MIG_VRAM_MAX as u64;
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
    /// Pre-copy: the framebuffer from `next` on.
    Initial,
    /// Pre-copy, all initial data read: a temporary end of stream.
    Idle,
    /// Stop-copy: the framebuffer (again) from `next` on.
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
    /// The next framebuffer offset of the current pass.
    next: u64,
    /// The device state, from the switch to stop-copy.
    state: Option<KBox<rvgpu_mig_state>>,
    /// The device left the saving states (reset, close, the end of the transfer).
    disabled: bool,
    /// Bytes read so far, and pre-copy passes drained.
    sent: u64,
    rounds: u64,
}

/// The saving stream of one transfer (PRE_COPY, PRE_COPY_P2P and STOP_COPY share it).
#[pin_data]
pub(crate) struct Saver {
    slice: Arc<VramSlice>,
    fb_size: u64,
    #[pin]
    inner: Mutex<SaverInner>,
}

impl Saver {
    /// A stream for `id`; `precopy`: the framebuffer goes in the pre-copy phase (else only the
    /// header, and everything in stop-copy).
    pub(crate) fn new(slice: Arc<VramSlice>, id: StreamId, precopy: bool) -> Result<Arc<Self>> {
        let mut pending = KVec::with_capacity(HEADER, GFP_KERNEL)?;
        pending.extend_from_slice(id.header().as_bytes(), GFP_KERNEL)?;
        let fb_size = u64::from(id.fb_size);
        Arc::pin_init(
            pin_init!(Self {
                slice,
                fb_size,
                inner <- new_mutex!(SaverInner {
                    phase: if precopy { Phase::Initial } else { Phase::Idle },
                    pending,
                    pending_pos: 0,
                    body: None,
                    next: 0,
                    state: None,
                    disabled: false,
                    sent: 0,
                    rounds: 0,
                }),
            }),
            GFP_KERNEL,
        )
    }

    /// The switch to stop-copy: the framebuffer is sent (again, whole: what the guest wrote
    /// during pre-copy is not tracked yet), then `state`, then the end.
    pub(crate) fn stop_copy(&self, state: KBox<rvgpu_mig_state>) {
        let mut s = self.inner.lock();
        s.state = Some(state);
        s.next = 0;
        s.phase = Phase::Final;
    }

    /// The device left the saving states: the stream ends (reads fail with `ENODEV`).
    pub(crate) fn disable(&self) {
        self.inner.lock().disabled = true;
    }

    /// Bytes read so far and pre-copy passes drained.
    pub(crate) fn progress(&self) -> (u64, u64) {
        let s = self.inner.lock();
        (s.sent, s.rounds)
    }

    /// Framebuffer bytes from `next` on, with their record headers.
    fn vram_bytes(&self, next: u64) -> u64 {
        let left = self.fb_size.saturating_sub(next);
        left + left.div_ceil(VRAM_MAX) * RECORD as u64
    }

    /// What stop-copy still has to send from here (an estimate while in pre-copy).
    pub(crate) fn stop_copy_bytes(&self) -> u64 {
        let s = self.inner.lock();
        let tail = (RECORD + STATE + RECORD) as u64;
        let pending = (s.pending.len() - s.pending_pos) as u64 + s.body.map_or(0, |(_, l)| l);
        match s.phase {
            Phase::Initial | Phase::Idle | Phase::Final => {
                let from = if s.phase == Phase::Final { s.next } else { 0 };
                pending + self.vram_bytes(from) + tail
            }
            Phase::State => pending + tail,
            Phase::End => pending + RECORD as u64,
            Phase::Done => pending,
        }
    }

    /// Moves on to the next record; false at a (temporary or final) end.
    fn advance(&self, s: &mut SaverInner) -> Result<bool> {
        s.pending.clear();
        s.pending_pos = 0;
        match s.phase {
            Phase::Initial | Phase::Final => {
                if s.next >= self.fb_size {
                    s.phase = if s.phase == Phase::Initial {
                        s.rounds += 1;
                        Phase::Idle
                    } else {
                        Phase::State
                    };
                    return Ok(true);
                }
                let len = VRAM_MAX.min(self.fb_size - s.next);
                let r = record(uapi::RVGPU_MIG_REC_VRAM, len as u32, s.next);
                s.pending.extend_from_slice(r.as_bytes(), GFP_KERNEL)?;
                s.body = Some((s.next, len));
                s.next += len;
                Ok(true)
            }
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
        if done == 0 && s.phase == Phase::Idle {
            // A temporary end of stream: more may come (stop-copy).
            return Err(ENOMSG);
        }
        Ok(done)
    }

    fn precopy_info(&self) -> Result<PrecopyInfo> {
        let s = self.inner.lock();
        let initial = match s.phase {
            Phase::Initial | Phase::Idle => {
                let pending = (s.pending.len() - s.pending_pos) as u64;
                let body = s.body.map_or(0, |(_, l)| l);
                let rest = if s.phase == Phase::Initial {
                    self.vram_bytes(s.next)
                } else {
                    0
                };
                pending + body + rest
            }
            // Only valid in the pre-copy states.
            _ => return Err(EINVAL),
        };
        Ok(PrecopyInfo {
            initial_bytes: initial,
            dirty_bytes: 0,
            v2_flags: None,
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
