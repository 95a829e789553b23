// SPDX-License-Identifier: GPL-2.0

//! The vGPU's register window (BAR2, 4 KiB), decoded in one place: every offset of the map in
//! `uapi/rvgpu.h` turns into the [`Reg`] it is here, and each register is emulated in exactly
//! one `match` arm, named in the table:
//!
//! | offset | registers | emulated in |
//! |---|---|---|
//! | 0x000..0x400 | EDID (read-only), as 32-bit words | `display.rs`, [`super::display::DisplayRegs::read`] |
//! | 0x500..0x516 | VBE DISPI, 16 bits each (declared in `board/dispi.rs`) | `display.rs`, `DisplayRegs::read` / `write_dispi` |
//! | 0x600..0x608 | QEMU's extension: size, byte order | `display.rs`, `DisplayRegs::read` / `write` |
//! | 0x608..0x620 | rvgpu's read-only type registers | `display.rs`, `DisplayRegs::read` |
//! | 0x700..0x740 | interrupts and the command engine (4-byte accesses only) | `engine.rs`, `Engine::read` / `write` |
//! | elsewhere | nothing: reads 0, writes are dropped | — |
//!
//! Accesses are 1, 2 or 4 bytes, naturally aligned; anything else is refused with `EINVAL`. An
//! access covers part of one register or whole registers (a 4-byte access at a DISPI offset
//! covers two): [`pieces`] splits it, and reads and writes go through the same split.

use kernel::prelude::*;

use super::uapi;
use crate::board::dispi::{
    self,
    DispiIndex, //
};

/// The size of the window.
pub(crate) const SIZE: usize = uapi::RVGPU_MMIO_SIZE as usize;

const EDID_START: usize = uapi::RVGPU_MMIO_EDID as usize;
const EDID_END: usize = EDID_START + uapi::RVGPU_MMIO_EDID_SIZE as usize;
const QEXT_START: usize = uapi::RVGPU_MMIO_QEXT as usize;
const QEXT_END: usize = uapi::RVGPU_MMIO_QEXT_END as usize;
const ENGINE_START: usize = uapi::RVGPU_MMIO_ENGINE as usize;
const ENGINE_END: usize = ENGINE_START + uapi::RVGPU_MMIO_ENGINE_SIZE as usize;

/// The size of QEMU's and rvgpu's extension block (what `QEXT_SIZE` reads).
pub(crate) const QEXT_BLOCK: u32 = (QEXT_END - QEXT_START) as u32;

/// A register of the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reg {
    /// The 32-bit word of the EDID blob at this byte offset.
    Edid(usize),
    Dispi(DispiIndex),
    QextSize,
    QextByteorder,
    Magic,
    Heads,
    MaxWidth,
    MaxHeight,
    FbSize,
    FrlFps,
    Engine(EngineReg),
    /// Inside the window, but no register: reads 0, writes are dropped.
    Unassigned,
}

/// The interrupt and engine registers (`RVGPU_REG_IRQ_STATUS` .. `RVGPU_REG_ENGINE_STATUS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EngineReg {
    IrqStatus,
    IrqEnable,
    RingBaseLo,
    RingBaseHi,
    RingSize,
    RingHead,
    RingTail,
    Error,
    ErrorHead,
    Fence,
    Completed,
    VblankCount,
    EngineStatus,
    /// Inside the engine block, but no register.
    Reserved,
}

impl Reg {
    /// The register at byte `off` of the window, where it starts and how wide it is.
    fn at(off: usize) -> (Reg, usize, usize) {
        match off {
            EDID_START..EDID_END => (Reg::Edid(off & !3), off & !3, 4),
            dispi::START..dispi::END => {
                let index = (off - dispi::START) / 2;
                match DispiIndex::from_index(index) {
                    Some(r) => (Reg::Dispi(r), r.offset(), 2),
                    None => (Reg::Unassigned, off & !1, 2),
                }
            }
            QEXT_START..QEXT_END => (Self::qext(off & !3), off & !3, 4),
            ENGINE_START..ENGINE_END => (Reg::Engine(EngineReg::at(off & !3)), off & !3, 4),
            _ => (Reg::Unassigned, off & !3, 4),
        }
    }

    fn qext(off: usize) -> Reg {
        match off as u32 {
            uapi::RVGPU_MMIO_QEXT_SIZE => Reg::QextSize,
            uapi::RVGPU_MMIO_QEXT_BYTEORDER => Reg::QextByteorder,
            uapi::RVGPU_REG_MAGIC => Reg::Magic,
            uapi::RVGPU_REG_HEADS => Reg::Heads,
            uapi::RVGPU_REG_MAX_WIDTH => Reg::MaxWidth,
            uapi::RVGPU_REG_MAX_HEIGHT => Reg::MaxHeight,
            uapi::RVGPU_REG_FB_SIZE => Reg::FbSize,
            uapi::RVGPU_REG_FRL_FPS => Reg::FrlFps,
            _ => Reg::Unassigned,
        }
    }
}

impl EngineReg {
    fn at(off: usize) -> EngineReg {
        match off as u32 {
            uapi::RVGPU_REG_IRQ_STATUS => Self::IrqStatus,
            uapi::RVGPU_REG_IRQ_ENABLE => Self::IrqEnable,
            uapi::RVGPU_REG_RING_BASE_LO => Self::RingBaseLo,
            uapi::RVGPU_REG_RING_BASE_HI => Self::RingBaseHi,
            uapi::RVGPU_REG_RING_SIZE => Self::RingSize,
            uapi::RVGPU_REG_RING_HEAD => Self::RingHead,
            uapi::RVGPU_REG_RING_TAIL => Self::RingTail,
            uapi::RVGPU_REG_ERROR => Self::Error,
            uapi::RVGPU_REG_ERROR_HEAD => Self::ErrorHead,
            uapi::RVGPU_REG_FENCE => Self::Fence,
            uapi::RVGPU_REG_COMPLETED => Self::Completed,
            uapi::RVGPU_REG_VBLANK_COUNT => Self::VblankCount,
            uapi::RVGPU_REG_ENGINE_STATUS => Self::EngineStatus,
            _ => Self::Reserved,
        }
    }
}

/// The part of one register an access covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) reg: Reg,
    /// The register's width in bytes (2 or 4).
    pub(crate) width: usize,
    /// The first byte of the register covered.
    pub(crate) byte: usize,
    /// How many bytes of it are covered.
    pub(crate) len: usize,
    /// Where those bytes sit in the access's value (bits).
    pub(crate) shift: u32,
}

impl Piece {
    /// The bits of the register that the access covers.
    pub(crate) fn mask(&self) -> u32 {
        let bits = (8 * self.len) as u32;
        let m = if bits >= 32 {
            u32::MAX
        } else {
            (1 << bits) - 1
        };
        m << (8 * self.byte)
    }

    /// The register's new value when `access` (the access's whole value) is written over `old`.
    pub(crate) fn merge(&self, old: u32, access: u32) -> u32 {
        let part = ((access >> self.shift) << (8 * self.byte)) & self.mask();
        (old & !self.mask()) | part
    }

    /// This piece's bytes of register value `v`, placed in the access's value.
    pub(crate) fn extract(&self, v: u32) -> u32 {
        ((v & self.mask()) >> (8 * self.byte)) << self.shift
    }
}

/// The registers an access covers (at most two), or `EINVAL` for an access the window refuses.
pub(crate) fn pieces(off: usize, size: usize) -> Result<([Piece; 2], usize)> {
    if !matches!(size, 1 | 2 | 4) || off % size != 0 || off + size > SIZE {
        return Err(EINVAL);
    }
    let first = Reg::at(off);
    if matches!(first.0, Reg::Engine(_)) && size != 4 {
        // The engine's registers are 32 bits wide and take whole accesses only.
        return Err(EINVAL);
    }
    let mut out = [Piece {
        reg: Reg::Unassigned,
        width: 4,
        byte: 0,
        len: 0,
        shift: 0,
    }; 2];
    let mut n = 0;
    let mut pos = off;
    while pos < off + size {
        let (reg, start, width) = if pos == off { first } else { Reg::at(pos) };
        let byte = pos - start;
        let len = (width - byte).min(off + size - pos);
        out[n] = Piece {
            reg,
            width,
            byte,
            len,
            shift: (8 * (pos - off)) as u32,
        };
        n += 1;
        pos += len;
    }
    Ok((out, n))
}

#[kunit_tests(rvgpu_vgpu_bar2)]
mod tests {
    use super::*;

    fn regs(off: usize, size: usize) -> KVec<Reg> {
        let mut v = KVec::new();
        if let Ok((p, n)) = pieces(off, size) {
            for piece in &p[..n] {
                let _ = v.push(piece.reg, GFP_KERNEL);
            }
        }
        v
    }

    #[test]
    fn decode_map() {
        assert_eq!(
            &regs(uapi::RVGPU_REG_RING_TAIL as usize, 4)[..],
            &[Reg::Engine(EngineReg::RingTail)]
        );
        assert_eq!(&regs(0x502, 2)[..], &[Reg::Dispi(DispiIndex::Xres)]);
        // A 4-byte access at a DISPI offset covers two registers.
        assert_eq!(
            &regs(0x500, 4)[..],
            &[Reg::Dispi(DispiIndex::Id), Reg::Dispi(DispiIndex::Xres)]
        );
        assert_eq!(&regs(0x516, 2)[..], &[Reg::Unassigned]);
        assert_eq!(&regs(0x608, 4)[..], &[Reg::Magic]);
        assert_eq!(&regs(0x3fd, 1)[..], &[Reg::Edid(0x3fc)]);
        assert_eq!(&regs(0x73c, 4)[..], &[Reg::Engine(EngineReg::Reserved)]);
        assert_eq!(&regs(0xffc, 4)[..], &[Reg::Unassigned]);
    }

    #[test]
    fn refused_accesses() {
        assert_eq!(pieces(0x501, 2).map(|_| ()), Err(EINVAL));
        assert_eq!(pieces(0x500, 8).map(|_| ()), Err(EINVAL));
        assert_eq!(pieces(0xffe, 4).map(|_| ()), Err(EINVAL));
        assert_eq!(pieces(0x718, 2).map(|_| ()), Err(EINVAL));
        assert_eq!(pieces(0x718, 1).map(|_| ()), Err(EINVAL));
        assert!(pieces(0x502, 1).is_ok());
    }

    #[test]
    fn merge_and_extract() -> Result {
        // A byte write to the high half of XRES.
        let (p, n) = pieces(0x503, 1)?;
        assert_eq!(n, 1);
        assert_eq!(p[0].merge(0x0020, 0x04), 0x0420);
        assert_eq!(p[0].extract(0x0420), 0x04);
        // A 4-byte read at 0x500: ID in the low half, XRES in the high half.
        let (p, n) = pieces(0x500, 4)?;
        assert_eq!(n, 2);
        assert_eq!(p[0].extract(0xb0c5) | p[1].extract(1024), 0x0400_b0c5);
        Ok(())
    }
}
