//! The guest-visible interface of an rvgpu vGPU, for the test programs: every numeric
//! `#define RVGPU_*` of `uapi/rvgpu.h`, named as in the header without its `RVGPU_` prefix (the
//! header documents them), and `struct rvgpu_cmd` with its argument structs as [`Cmd`],
//! [`CmdFill`], [`CmdCopy`] and [`CmdFence`].
//!
//! The header is the single source of all of this: `tests/uapi_drift.rs` parses it and fails when
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
pub const BYTEORDER_LE: u32 = 0xbebebebe;
pub const BYTEORDER_BE: u32 = 0x1e1e1e1e;

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

impl<const N: usize> LeBytes for [u32; N] {
    fn le_bytes(&self) -> Vec<u8> {
        self.iter().flat_map(|w| w.to_le_bytes()).collect()
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

    /// The command as it goes into the ring: 32 bytes, little-endian.
    pub fn to_bytes(&self) -> [u8; CMD_SIZE as usize] {
        le_layout!(self, Cmd: opcode, height, args)
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
    fn to_bytes_is_little_endian() {
        let b = Cmd::fence(0x0102_0304_0506_0708, 0x1122_3344).to_bytes();
        assert_eq!(b[..4], CMD_FENCE.to_le_bytes());
        assert_eq!(b[8..16], [8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(b[16..20], [0x44, 0x33, 0x22, 0x11]);
        assert!(b[20..].iter().all(|&x| x == 0));
    }
}
