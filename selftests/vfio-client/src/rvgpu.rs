//! The guest-visible interface of an rvgpu vGPU, for the test programs: every numeric
//! `#define RVGPU_*` of `uapi/rvgpu.h`, named as in the header without its `RVGPU_` prefix (the
//! header documents them), `struct rvgpu_cmd` with its argument structs as [`Cmd`],
//! [`CmdFill`], [`CmdCopy`] and [`CmdFence`], and the migration stream's structs as
//! [`MigHeader`], [`MigRecord`] and [`MigState`] (with their little-endian wire encoding; the
//! stream itself is [`crate::migration::stream`]'s).
//!
//! The header is the single source of all of this: `tests/uapi_drift/` parses it and fails when
//! a constant here is missing or differs, or a field offset or struct size does not match. After
//! those, a few things the test programs need that are not in the header (VFIO indexes, aliases).

#![allow(missing_docs)]

use std::mem::{offset_of, size_of};

use crate::uapi;

// ----- uapi/rvgpu.h, in its order ---------------------------------------------------------------

// PCI identity.
pub const PCI_VENDOR_ID: u16 = 0x1234;
pub const PCI_DEVICE_ID: u16 = 0x1111;
pub const PCI_CLASS: u32 = 0x038000;
pub const PCI_REVISION: u8 = 0x02;
pub const PCI_SUBSYSTEM_VENDOR_ID: u16 = 0x1af4;
pub const PCI_SUBSYSTEM_ID: u16 = 0x1100;

// BAR2, the register window (offsets are u64, as region offsets are).
pub const MMIO_SIZE: u64 = 0x1000;

/// The display region (index `VFIO_PCI_NUM_REGIONS`): its `VFIO_REGION_INFO_CAP_TYPE` subtype,
/// under the type `VFIO_REGION_TYPE_PCI_VENDOR_TYPE | PCI_VENDOR_ID`.
pub const REGION_SUBTYPE_SCANOUT: u32 = 1;
pub const MMIO_EDID: u64 = 0x000;
pub const MMIO_EDID_SIZE: u64 = 0x400;

// VBE DISPI registers (16 bits each) at MMIO_DISPI + index * 2.
pub const MMIO_DISPI: u64 = 0x500;
pub const DISPI_INDEX_ID: u64 = 0x0;
pub const DISPI_INDEX_XRES: u64 = 0x1;
pub const DISPI_INDEX_YRES: u64 = 0x2;
pub const DISPI_INDEX_BPP: u64 = 0x3;
pub const DISPI_INDEX_ENABLE: u64 = 0x4;
pub const DISPI_INDEX_BANK: u64 = 0x5;
pub const DISPI_INDEX_VIRT_WIDTH: u64 = 0x6;
pub const DISPI_INDEX_VIRT_HEIGHT: u64 = 0x7;
pub const DISPI_INDEX_X_OFFSET: u64 = 0x8;
pub const DISPI_INDEX_Y_OFFSET: u64 = 0x9;
pub const DISPI_INDEX_VIDEO_MEMORY_64K: u64 = 0xa;
pub const DISPI_COUNT: u64 = 0xb;

// DISPI register values.
pub const DISPI_ID: u16 = 0xb0c5;
pub const DISPI_ENABLED: u16 = 0x01;
pub const DISPI_GETCAPS: u16 = 0x02;
pub const DISPI_8BIT_DAC: u16 = 0x20;
pub const DISPI_LFB_ENABLED: u16 = 0x40;
pub const DISPI_NOCLEARMEM: u16 = 0x80;

// QEMU's extension registers.
pub const MMIO_QEXT: u64 = 0x600;
pub const MMIO_QEXT_END: u64 = 0x620;
pub const MMIO_QEXT_SIZE: u64 = 0x600;
pub const MMIO_QEXT_BYTEORDER: u64 = 0x604;
pub const BYTEORDER_LE: u32 = 0x1e1e1e1e;
pub const BYTEORDER_BE: u32 = 0xbebebebe;

// rvgpu's read-only registers.
pub const REG_MAGIC: u64 = 0x608;
pub const REG_HEADS: u64 = 0x60c;
pub const REG_MAX_WIDTH: u64 = 0x610;
pub const REG_MAX_HEIGHT: u64 = 0x614;
pub const REG_FB_SIZE: u64 = 0x618;
pub const REG_FRL_FPS: u64 = 0x61c;

pub const MAGIC: u32 = 0x50475652;

// Interrupts and the command engine.
pub const MMIO_ENGINE: u64 = 0x700;
pub const MMIO_ENGINE_SIZE: u64 = 0x40;

pub const REG_IRQ_STATUS: u64 = 0x700;
pub const REG_IRQ_ENABLE: u64 = 0x704;
pub const IRQ_COMPLETION: u32 = 1 << 0;
pub const IRQ_ERROR: u32 = 1 << 1;
pub const IRQ_VBLANK: u32 = 1 << 2;

pub const REG_RING_BASE_LO: u64 = 0x708;
pub const REG_RING_BASE_HI: u64 = 0x70c;
pub const REG_RING_SIZE: u64 = 0x710;
pub const REG_RING_HEAD: u64 = 0x714;
pub const REG_RING_TAIL: u64 = 0x718;
pub const REG_ERROR: u64 = 0x71c;
pub const REG_ERROR_HEAD: u64 = 0x720;
pub const REG_FENCE: u64 = 0x724;
pub const REG_COMPLETED: u64 = 0x728;
pub const REG_VBLANK_COUNT: u64 = 0x72c;
pub const REG_ENGINE_STATUS: u64 = 0x730;

// Error codes.
pub const ERR_NONE: u32 = 0;
pub const ERR_BAD_OPCODE: u32 = 1;
pub const ERR_FB_RANGE: u32 = 2;
pub const ERR_DMA_FAULT: u32 = 3;
pub const ERR_RING: u32 = 4;
pub const ERR_BAD_ARGS: u32 = 5;
pub const ERR_HOST: u32 = 6;

// Commands.
pub const CMD_NOP: u32 = 0;
pub const CMD_FILL: u32 = 1;
pub const CMD_COPY_TO_FB: u32 = 2;
pub const CMD_COPY_FROM_FB: u32 = 3;
pub const CMD_FENCE: u32 = 4;
pub const CMD_WAIT_VBLANK: u32 = 5;

pub const CMD_SIZE: u32 = 32;
pub const RING_MIN_SIZE: u32 = 0x1000;
pub const RING_MAX_SIZE: u32 = 0x100000;

/// `struct rvgpu_cmd_fill`: the arguments of [`CMD_FILL`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CmdFill {
    pub fb_offset: u32,
    pub fb_stride: u32,
    pub width: u32,
    pub value: u32,
    pub pad: [u32; 2],
}

/// `struct rvgpu_cmd_copy`: the arguments of [`CMD_COPY_TO_FB`] and [`CMD_COPY_FROM_FB`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CmdCopy {
    pub iova: u64,
    pub iova_stride: u32,
    pub fb_offset: u32,
    pub fb_stride: u32,
    pub width: u32,
}

/// `struct rvgpu_cmd_fence`: the arguments of [`CMD_FENCE`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CmdFence {
    pub iova: u64,
    pub value: u32,
    pub pad: [u32; 3],
}

/// `struct rvgpu_cmd`, one command in the ring. The header's anonymous union of the argument
/// structs is `args`, its `__u32 args[6]` member as a little-endian guest sees it: `args[i]` is
/// the little-endian word at byte `8 + 4 * i` of the command. [`CmdFill::args`] and friends lay
/// an argument struct out into it; the `#[repr(C, align(8))]` matches the union's `__u64`s.
///
/// The fields are public, so odd commands are plain struct literals:
/// `Cmd { height: 1, ..Cmd::fence(iova, 1) }`.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cmd {
    pub opcode: u32,
    pub height: u32,
    pub args: [u32; 6],
}

const _: () = assert!(size_of::<Cmd>() == CMD_SIZE as usize);
const ARGS_SIZE: usize = size_of::<[u32; 6]>();
const _: () = assert!(size_of::<CmdFill>() == ARGS_SIZE);
const _: () = assert!(size_of::<CmdCopy>() == ARGS_SIZE);
const _: () = assert!(size_of::<CmdFence>() == ARGS_SIZE);

/// A field's bytes in the little-endian wire format.
trait LeBytes {
    fn le_bytes(&self) -> Vec<u8>;
}

impl LeBytes for u32 {
    fn le_bytes(&self) -> Vec<u8> {
        self.to_le_bytes().to_vec()
    }
}

impl LeBytes for u64 {
    fn le_bytes(&self) -> Vec<u8> {
        self.to_le_bytes().to_vec()
    }
}

impl LeBytes for u8 {
    fn le_bytes(&self) -> Vec<u8> {
        vec![*self]
    }
}

impl LeBytes for u16 {
    fn le_bytes(&self) -> Vec<u8> {
        self.to_le_bytes().to_vec()
    }
}

impl<T: LeBytes, const N: usize> LeBytes for [T; N] {
    fn le_bytes(&self) -> Vec<u8> {
        self.iter().flat_map(LeBytes::le_bytes).collect()
    }
}

/// A field read back from the little-endian wire format; `b` holds at least [`FromLe::SIZE`]
/// bytes (the callers check the struct's size first).
trait FromLe: Sized {
    const SIZE: usize;
    fn from_le(b: &[u8]) -> Self;
}

macro_rules! from_le_int {
    ($($t:ty),*) => {$(
        impl FromLe for $t {
            const SIZE: usize = size_of::<$t>();
            fn from_le(b: &[u8]) -> Self {
                let mut a = [0u8; size_of::<$t>()];
                a.copy_from_slice(&b[..size_of::<$t>()]);
                <$t>::from_le_bytes(a)
            }
        }
    )*};
}
from_le_int!(u8, u16, u32, u64);

impl<T: FromLe, const N: usize> FromLe for [T; N] {
    const SIZE: usize = T::SIZE * N;
    fn from_le(b: &[u8]) -> Self {
        std::array::from_fn(|i| T::from_le(&b[i * T::SIZE..]))
    }
}

/// The little-endian bytes of `$v`, a `#[repr(C)]` struct `$t`: each listed field at its
/// `offset_of!`, so the wire layout follows the struct definition (which the drift test checks
/// against the header); bytes of no listed field stay 0.
macro_rules! le_layout {
    ($v:expr, $t:ty: $($f:ident),+) => {{
        let mut b = [0u8; size_of::<$t>()];
        $(
            let f = LeBytes::le_bytes(&$v.$f);
            b[offset_of!($t, $f)..][..f.len()].copy_from_slice(&f);
        )+
        b
    }};
}

/// The `#[repr(C)]` struct `$t` read from the little-endian bytes `$b` (each listed field at its
/// `offset_of!`), or `None` when `$b` is shorter than the struct.
macro_rules! le_parse {
    ($b:expr, $t:ty: $($f:ident),+) => {{
        let b: &[u8] = $b;
        if b.len() < size_of::<$t>() {
            None
        } else {
            let mut v = <$t>::default();
            $( v.$f = FromLe::from_le(&b[offset_of!($t, $f)..]); )+
            Some(v)
        }
    }};
}

/// 24 argument bytes as the little-endian words of [`Cmd::args`].
fn words(b: [u8; ARGS_SIZE]) -> [u32; 6] {
    let mut out = [0u32; 6];
    for (w, c) in out.iter_mut().zip(b.chunks_exact(4)) {
        *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    out
}

impl CmdFill {
    /// The arguments laid out as [`Cmd::args`].
    pub fn args(&self) -> [u32; 6] {
        words(le_layout!(self, CmdFill: fb_offset, fb_stride, width, value, pad))
    }
}

impl CmdCopy {
    /// The arguments laid out as [`Cmd::args`].
    pub fn args(&self) -> [u32; 6] {
        words(le_layout!(self, CmdCopy: iova, iova_stride, fb_offset, fb_stride, width))
    }
}

impl CmdFence {
    /// The arguments laid out as [`Cmd::args`].
    pub fn args(&self) -> [u32; 6] {
        words(le_layout!(self, CmdFence: iova, value, pad))
    }
}

impl Cmd {
    /// `NOP`: no arguments.
    pub const fn nop() -> Cmd {
        Cmd { opcode: CMD_NOP, height: 0, args: [0; 6] }
    }

    /// `FILL`: `height` lines of `width` bytes, `fb_stride` apart from `fb_offset`, with `value`.
    pub fn fill(fb_offset: u32, fb_stride: u32, width: u32, height: u32, value: u32) -> Cmd {
        let a = CmdFill { fb_offset, fb_stride, width, value, pad: [0; 2] };
        Cmd { opcode: CMD_FILL, height, args: a.args() }
    }

    fn copy(opcode: u32, height: u32, a: CmdCopy) -> Cmd {
        Cmd { opcode, height, args: a.args() }
    }

    /// `COPY_TO_FB`: guest memory at `iova` (lines `iova_stride` apart) into the framebuffer
    /// rectangle at `fb_offset`.
    pub fn copy_to_fb(iova: u64, iova_stride: u32, fb_offset: u32, fb_stride: u32, width: u32, height: u32) -> Cmd {
        Cmd::copy(CMD_COPY_TO_FB, height, CmdCopy { iova, iova_stride, fb_offset, fb_stride, width })
    }

    /// `COPY_FROM_FB`: the framebuffer rectangle at `fb_offset` into guest memory at `iova`.
    pub fn copy_from_fb(iova: u64, iova_stride: u32, fb_offset: u32, fb_stride: u32, width: u32, height: u32) -> Cmd {
        Cmd::copy(CMD_COPY_FROM_FB, height, CmdCopy { iova, iova_stride, fb_offset, fb_stride, width })
    }

    /// `FENCE`: writes `value` to guest memory at `iova`, then interrupts.
    pub fn fence(iova: u64, value: u32) -> Cmd {
        let a = CmdFence { iova, value, pad: [0; 3] };
        Cmd { opcode: CMD_FENCE, height: 0, args: a.args() }
    }

    /// `WAIT_VBLANK`: waits for the frame-rate limiter's next vertical blank.
    pub fn wait_vblank() -> Cmd {
        Cmd { opcode: CMD_WAIT_VBLANK, ..Cmd::nop() }
    }

    /// The command as it goes into the ring: 32 bytes, little-endian.
    pub fn to_bytes(&self) -> [u8; CMD_SIZE as usize] {
        le_layout!(self, Cmd: opcode, height, args)
    }
}

// Live migration.
pub const MIG_MAGIC: u64 = 0x3147494d55504752;
pub const MIG_VERSION: u32 = 1;
pub const MIG_REC_VRAM: u32 = 1;
pub const MIG_REC_STATE: u32 = 2;
pub const MIG_REC_END: u32 = 3;
pub const MIG_VRAM_MAX: u32 = 0x100000;
pub const MIG_PARAMS_MAX: u32 = 1024;

/// `struct rvgpu_mig_header`: the start of a migration stream.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MigHeader {
    pub magic: u64,
    pub version: u32,
    pub header_size: u32,
    pub type_id: u32,
    pub fb_size: u32,
    pub state_size: u32,
    pub flags: u32,
    pub reserved: [u32; 8],
}

/// `struct rvgpu_mig_record`: the head of one record; `len` bytes follow.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MigRecord {
    pub kind: u32,
    pub len: u32,
    pub offset: u64,
}

/// `struct rvgpu_mig_state`: everything of a vGPU but its framebuffer.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigState {
    pub config: [u8; 256],
    pub ring_base: u64,
    pub byteorder: u32,
    pub irq_status: u32,
    pub irq_enable: u32,
    pub ring_size: u32,
    pub ring_head: u32,
    pub ring_tail: u32,
    pub error: u32,
    pub error_head: u32,
    pub fence: u32,
    pub completed: u32,
    pub vblank_count: u32,
    pub intx_masked: u32,
    pub params_len: u32,
    pub dispi: [u16; DISPI_COUNT as usize],
    pub pad: u16,
    pub params: [u8; MIG_PARAMS_MAX as usize],
    pub reserved: u32,
}

// (Arrays over 32 elements have no derived Default.)
impl Default for MigState {
    fn default() -> MigState {
        MigState {
            config: [0; 256],
            ring_base: 0,
            byteorder: 0,
            irq_status: 0,
            irq_enable: 0,
            ring_size: 0,
            ring_head: 0,
            ring_tail: 0,
            error: 0,
            error_head: 0,
            fence: 0,
            completed: 0,
            vblank_count: 0,
            intx_masked: 0,
            params_len: 0,
            dispi: [0; DISPI_COUNT as usize],
            pad: 0,
            params: [0; MIG_PARAMS_MAX as usize],
            reserved: 0,
        }
    }
}

const _: () = assert!(size_of::<MigHeader>() == 64);
const _: () = assert!(size_of::<MigRecord>() == 16);
const _: () = assert!(size_of::<MigState>() == 1368);

impl MigHeader {
    /// The header a vGPU of type `nvidia-<type_id>` with `fb_size` usable framebuffer bytes
    /// sends.
    pub fn new(type_id: u32, fb_size: u32) -> MigHeader {
        MigHeader {
            magic: MIG_MAGIC,
            version: MIG_VERSION,
            header_size: size_of::<MigHeader>() as u32,
            type_id,
            fb_size,
            state_size: size_of::<MigState>() as u32,
            flags: 0,
            reserved: [0; 8],
        }
    }

    /// The header as it goes into the stream.
    pub fn to_bytes(&self) -> [u8; size_of::<MigHeader>()] {
        le_layout!(self, MigHeader: magic, version, header_size, type_id, fb_size, state_size, flags, reserved)
    }

    /// The header at the start of `b`, `None` if `b` is shorter.
    pub fn from_bytes(b: &[u8]) -> Option<MigHeader> {
        le_parse!(b, MigHeader: magic, version, header_size, type_id, fb_size, state_size, flags, reserved)
    }
}

impl MigRecord {
    /// The record head as it goes into the stream.
    pub fn to_bytes(&self) -> [u8; size_of::<MigRecord>()] {
        le_layout!(self, MigRecord: kind, len, offset)
    }

    /// The record head at the start of `b`, `None` if `b` is shorter.
    pub fn from_bytes(b: &[u8]) -> Option<MigRecord> {
        le_parse!(b, MigRecord: kind, len, offset)
    }
}

impl MigState {
    /// The state as it goes into a `MIG_REC_STATE` record.
    pub fn to_bytes(&self) -> Vec<u8> {
        le_layout!(self, MigState: config, ring_base, byteorder, irq_status, irq_enable, ring_size, ring_head,
            ring_tail, error, error_head, fence, completed, vblank_count, intx_masked, params_len, dispi, pad,
            params, reserved)
        .to_vec()
    }

    /// The state at the start of `b`, `None` if `b` is shorter.
    pub fn from_bytes(b: &[u8]) -> Option<MigState> {
        le_parse!(b, MigState: config, ring_base, byteorder, irq_status, irq_enable, ring_size, ring_head,
            ring_tail, error, error_head, fence, completed, vblank_count, intx_masked, params_len, dispi, pad,
            params, reserved)
    }

    /// The `vgpu_params` text it carries (`params_len` bytes, at most [`MIG_PARAMS_MAX`]).
    pub fn params_text(&self) -> &[u8] {
        &self.params[..(self.params_len as usize).min(self.params.len())]
    }

    /// Vendor and device ID from the saved configuration space.
    pub fn ids(&self) -> (u16, u16) {
        let c = &self.config;
        (u16::from_le_bytes([c[0], c[1]]), u16::from_le_bytes([c[2], c[3]]))
    }
}

// ----- not in the header ----------------------------------------------------------------------

/// Every interrupt source.
pub const IRQ_ALL: u32 = IRQ_COMPLETION | IRQ_ERROR | IRQ_VBLANK;
/// [`CMD_SIZE`], the name the test programs used first.
pub const CMD_BYTES: u32 = CMD_SIZE;
/// [`MMIO_DISPI`], the name the test programs used first.
pub const DISPI: u64 = MMIO_DISPI;

/// VFIO region indexes of a vGPU (vfio-pci's).
pub const REGION_BAR0: u32 = uapi::VFIO_PCI_BAR0_REGION_INDEX;
pub const REGION_BAR2: u32 = uapi::VFIO_PCI_BAR0_REGION_INDEX + 2;
pub const REGION_CONFIG: u32 = uapi::VFIO_PCI_CONFIG_REGION_INDEX;
/// The display region's VFIO index: the first after vfio-pci's (see [`REGION_SUBTYPE_SCANOUT`]).
pub const REGION_DISPLAY: u32 = uapi::VFIO_PCI_NUM_REGIONS;
/// The display region's `VFIO_REGION_INFO_CAP_TYPE` type (its subtype is
/// [`REGION_SUBTYPE_SCANOUT`]).
pub const REGION_TYPE_DISPLAY: u32 = uapi::VFIO_REGION_TYPE_PCI_VENDOR_TYPE | PCI_VENDOR_ID as u32;
/// VFIO interrupt indexes of a vGPU (vfio-pci's).
pub const INTX: u32 = uapi::VFIO_PCI_INTX_IRQ_INDEX;
pub const MSI: u32 = uapi::VFIO_PCI_MSI_IRQ_INDEX;
pub const MSIX: u32 = uapi::VFIO_PCI_MSIX_IRQ_INDEX;
/// The MSI capability (uapi/README.md): control at +2, address at +4/+8, data at +12.
pub const MSI_CAP: u64 = 0x48;

#[cfg(test)]
mod tests {
    use super::*;

    fn word(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
    }

    #[test]
    fn commands_are_the_words_the_engine_expects() {
        // The layouts the test programs built by hand before the header had the structs.
        let words = |c: Cmd| -> Vec<u32> {
            let b = c.to_bytes();
            (0..8).map(|i| word(&b, 4 * i)).collect()
        };
        assert_eq!(words(Cmd::nop()), [CMD_NOP, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            words(Cmd::fill(0x10, 0x20, 0x30, 0x40, 0xdead_beef)),
            [CMD_FILL, 0x40, 0x10, 0x20, 0x30, 0xdead_beef, 0, 0]
        );
        let iova = 0x1_2345_6780;
        assert_eq!(words(Cmd::copy_to_fb(iova, 1, 2, 3, 4, 5)), [CMD_COPY_TO_FB, 5, 0x2345_6780, 1, 1, 2, 3, 4]);
        assert_eq!(words(Cmd::copy_from_fb(iova, 1, 2, 3, 4, 5)), [CMD_COPY_FROM_FB, 5, 0x2345_6780, 1, 1, 2, 3, 4]);
        assert_eq!(words(Cmd::fence(iova, 0x77)), [CMD_FENCE, 0, 0x2345_6780, 1, 0x77, 0, 0, 0]);
        let odd = Cmd { opcode: u32::MAX, height: 1, args: [2, 3, 4, 5, 6, 7] };
        assert_eq!(words(odd), [u32::MAX, 1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn migration_structs_round_trip_little_endian() {
        let h = MigHeader { reserved: [0, 1, 2, 3, 4, 5, 6, 7], ..MigHeader::new(9106, 58 << 20) };
        let b = h.to_bytes();
        assert_eq!(b[..8], MIG_MAGIC.to_le_bytes());
        assert_eq!(b[..8], *b"RGPUMIG1");
        assert_eq!(word(&b, 8), MIG_VERSION);
        assert_eq!(word(&b, 12), 64);
        assert_eq!(word(&b, 16), 9106);
        assert_eq!(word(&b, 20), 58 << 20);
        assert_eq!(word(&b, 24), 1368);
        assert_eq!(word(&b, 32 + 4 * 7), 7);
        assert_eq!(MigHeader::from_bytes(&b), Some(h));
        assert_eq!(MigHeader::from_bytes(&b[..63]), None);

        let r = MigRecord { kind: MIG_REC_VRAM, len: 0x1000, offset: 0x0102_0304_0506_0708 };
        let b = r.to_bytes();
        assert_eq!(b[8..], [8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(MigRecord::from_bytes(&b), Some(r));

        let mut s =
            MigState { ring_base: 0x1_2340_0000, completed: 77, params_len: 3, pad: 0xabcd, ..MigState::default() };
        s.config[..4].copy_from_slice(&[0x34, 0x12, 0x11, 0x11]);
        s.dispi[DISPI_INDEX_XRES as usize] = 1024;
        s.params[..3].copy_from_slice(b"a=1");
        let b = s.to_bytes();
        assert_eq!(b.len(), 1368);
        assert_eq!(b[256..264], 0x1_2340_0000u64.to_le_bytes());
        assert_eq!(word(&b, offset_of!(MigState, completed)), 77);
        let x = offset_of!(MigState, dispi) + 2 * DISPI_INDEX_XRES as usize;
        assert_eq!(b[x..x + 2], 1024u16.to_le_bytes());
        assert_eq!(b[338..340], 0xabcdu16.to_le_bytes());
        let back = MigState::from_bytes(&b).expect("whole state");
        assert_eq!(back, s);
        assert_eq!(back.ids(), (PCI_VENDOR_ID, PCI_DEVICE_ID));
        assert_eq!(back.params_text(), b"a=1");
        assert!(MigState::from_bytes(&b[..1367]).is_none());
    }

    #[test]
    fn to_bytes_is_little_endian() {
        let b = Cmd::fence(0x0102_0304_0506_0708, 0x1122_3344).to_bytes();
        assert_eq!(b[..4], CMD_FENCE.to_le_bytes());
        assert_eq!(b[8..16], [8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(b[16..20], [0x44, 0x33, 0x22, 0x11]);
        assert!(b[20..].iter().all(|&x| x == 0));
    }
}
