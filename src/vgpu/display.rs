// SPDX-License-Identifier: GPL-2.0

//! The display half of a vGPU's register window, emulated as QEMU's bochs-display has it: the
//! EDID blob, the VBE DISPI registers (declared in `board/dispi.rs`), QEMU's extension
//! registers and rvgpu's read-only type registers. [`super::bar2`] decodes offsets into the
//! [`Reg`]s handled here.
//!
//! Mode registers behave as QEMU's: values out of range are clamped when the display is enabled
//! (here to the vGPU type's maximum resolution and usable framebuffer, not QEMU's 16000x12000),
//! so a mode above the type's limits cannot be set. Nothing here sleeps or allocates.

use kernel::prelude::*;

use super::{
    bar2::{
        self,
        Reg, //
    },
    edid, uapi,
};
use crate::board::dispi::{
    self,
    DispiIndex,
    DISPI_ENABLE, //
};

const BYTEORDER_LE: u32 = uapi::RVGPU_BYTEORDER_LE;
const BYTEORDER_BE: u32 = uapi::RVGPU_BYTEORDER_BE;

/// What a vGPU's display registers are bounded by: its type.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) max_width: u32,
    pub(crate) max_height: u32,
    /// The usable framebuffer, in bytes.
    pub(crate) fb_size: u32,
    pub(crate) heads: u32,
    pub(crate) frl_fps: u32,
}

/// What the caller must do after a register write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    None,
    /// The display was enabled without `NOCLEARMEM`: clear this many bytes at the start of the
    /// framebuffer (what QEMU does).
    ClearFramebuffer(u32),
}

/// The current scan-out mode, when the display is enabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mode {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) bpp: u32,
    pub(crate) stride: u32,
    pub(crate) offset: u32,
}

/// One vGPU's display registers.
pub(crate) struct DisplayRegs {
    limits: Limits,
    dispi: [u16; dispi::COUNT],
    byteorder: u32,
    edid: [u8; edid::BLOCK],
}

impl DisplayRegs {
    pub(crate) fn new(limits: Limits, edid: [u8; edid::BLOCK]) -> Self {
        let mut r = Self {
            limits,
            dispi: [0; dispi::COUNT],
            byteorder: BYTEORDER_LE,
            edid,
        };
        r.reset();
        r
    }

    /// Back to power-on state.
    pub(crate) fn reset(&mut self) {
        self.dispi = [0; dispi::COUNT];
        self.dispi[DispiIndex::Id as usize] = dispi::ID_MAX;
        self.dispi[DispiIndex::VideoMemory64k as usize] = (self.limits.fb_size >> 16) as u16;
        self.byteorder = BYTEORDER_LE;
    }

    /// The registers, for the migration state.
    pub(crate) fn save(&self) -> ([u16; dispi::COUNT], u32) {
        (self.dispi, self.byteorder)
    }

    /// Takes resumed registers; `EINVAL` for values this vGPU cannot have (another interface
    /// version, framebuffer size or byte order). Modes are clamped to the type as on a write.
    pub(crate) fn restore(&mut self, regs: [u16; dispi::COUNT], byteorder: u32) -> Result {
        let id = regs[DispiIndex::Id as usize];
        let mem = regs[DispiIndex::VideoMemory64k as usize];
        if !(dispi::ID_MIN..=dispi::ID_MAX).contains(&id)
            || mem != (self.limits.fb_size >> 16) as u16
            || !(byteorder == BYTEORDER_LE || byteorder == BYTEORDER_BE)
        {
            return Err(EINVAL);
        }
        self.dispi = regs;
        self.byteorder = byteorder;
        if self.enable().enabled() {
            self.fixup();
        }
        Ok(())
    }

    fn get(&self, i: DispiIndex) -> u16 {
        self.dispi[i as usize]
    }

    fn enable(&self) -> DISPI_ENABLE {
        DISPI_ENABLE::from_raw(self.get(DispiIndex::Enable))
    }

    /// What register `reg` reads (the engine's registers are not here: they read 0).
    pub(crate) fn read(&self, reg: Reg) -> u32 {
        let caps = self.enable().getcaps();
        match reg {
            Reg::Edid(off) => {
                let mut w = [0u8; 4];
                for (i, b) in w.iter_mut().enumerate() {
                    *b = self.edid.get(off + i).copied().unwrap_or(0);
                }
                u32::from_le_bytes(w)
            }
            Reg::Dispi(DispiIndex::Xres) if caps => self.limits.max_width.min(0xffff),
            Reg::Dispi(DispiIndex::Yres) if caps => self.limits.max_height.min(0xffff),
            Reg::Dispi(DispiIndex::Bpp) if caps => 32,
            Reg::Dispi(i) => self.get(i).into(),
            Reg::QextSize => bar2::QEXT_BLOCK,
            Reg::QextByteorder => self.byteorder,
            Reg::Magic => uapi::RVGPU_MAGIC,
            Reg::Heads => self.limits.heads,
            Reg::MaxWidth => self.limits.max_width,
            Reg::MaxHeight => self.limits.max_height,
            Reg::FbSize => self.limits.fb_size,
            Reg::FrlFps => self.limits.frl_fps,
            Reg::Engine(_) | Reg::Unassigned => 0,
        }
    }

    /// What register `reg` holds, for merging a partial write (no GETCAPS substitution).
    pub(crate) fn stored(&self, reg: Reg) -> u32 {
        match reg {
            Reg::Dispi(i) => self.get(i).into(),
            r => self.read(r),
        }
    }

    /// Writes register `reg` (a whole register value; read-only registers ignore it).
    pub(crate) fn write(&mut self, reg: Reg, val: u32) -> Effect {
        match reg {
            Reg::Dispi(i) => self.write_dispi(i, val as u16),
            Reg::QextByteorder => {
                if val == BYTEORDER_LE || val == BYTEORDER_BE {
                    self.byteorder = val;
                }
                Effect::None
            }
            _ => Effect::None,
        }
    }

    fn write_dispi(&mut self, index: DispiIndex, val: u16) -> Effect {
        match index {
            DispiIndex::Id => {
                if (dispi::ID_MIN..=dispi::ID_MAX).contains(&val) {
                    self.dispi[index as usize] = val;
                }
                Effect::None
            }
            DispiIndex::VideoMemory64k => Effect::None,
            DispiIndex::Enable => {
                let was = self.enable().enabled();
                self.dispi[index as usize] = val;
                let now = self.enable();
                if !now.enabled() {
                    return Effect::None;
                }
                self.fixup();
                match self.mode() {
                    Some(m) if !was && !now.noclearmem() => {
                        Effect::ClearFramebuffer(m.height * m.stride)
                    }
                    _ => Effect::None,
                }
            }
            i => {
                self.dispi[i as usize] = val;
                if i != DispiIndex::Bank && self.enable().enabled() {
                    self.fixup();
                }
                Effect::None
            }
        }
    }

    /// QEMU's `vbe_fixup_regs()`, bounded by the vGPU type instead of the device maximum.
    fn fixup(&mut self) {
        use DispiIndex::*;
        let fb_size = self.limits.fb_size;
        let max_w = self.limits.max_width.min(0xfff8) as u16 & !7;
        let max_h = self.limits.max_height.min(0xffff) as u16;
        let r = &mut self.dispi;
        let bits: u32 = match r[Bpp as usize] {
            4 | 8 | 16 | 24 | 32 => r[Bpp as usize].into(),
            15 => 16,
            _ => {
                r[Bpp as usize] = 8;
                8
            }
        };
        r[Xres as usize] &= !7;
        if r[Xres as usize] == 0 {
            r[Xres as usize] = 8;
        }
        r[Xres as usize] = r[Xres as usize].min(max_w);
        r[VirtWidth as usize] &= !7;
        r[VirtWidth as usize] = r[VirtWidth as usize].min(max_w).max(r[Xres as usize]);
        // Never zero: the virtual width is at least the width, at least 8.
        let line = (u32::from(r[VirtWidth as usize]) * bits / 8).max(1);
        let maxy = (fb_size / line).min(0xffff) as u16;
        if r[Yres as usize] == 0 {
            r[Yres as usize] = 1;
        }
        r[Yres as usize] = r[Yres as usize].min(max_h).min(maxy);
        r[XOffset as usize] = r[XOffset as usize].min(max_w);
        r[YOffset as usize] = r[YOffset as usize].min(max_h);
        let yres = u64::from(r[Yres as usize]);
        let end = |x: u16, y: u16| {
            u64::from(x) * u64::from(bits) / 8 + (u64::from(y) + yres) * u64::from(line)
        };
        if end(r[XOffset as usize], r[YOffset as usize]) > u64::from(fb_size) {
            r[YOffset as usize] = 0;
            if end(r[XOffset as usize], 0) > u64::from(fb_size) {
                r[XOffset as usize] = 0;
            }
        }
        r[VirtHeight as usize] = maxy;
    }

    /// The scan-out mode, if the display is enabled.
    pub(crate) fn mode(&self) -> Option<Mode> {
        use DispiIndex::*;
        if !self.enable().enabled() {
            return None;
        }
        let bpp = u32::from(self.get(Bpp));
        let bits = if bpp == 15 { 16 } else { bpp };
        let stride = u32::from(self.get(VirtWidth)) * bits / 8;
        Some(Mode {
            width: self.get(Xres).into(),
            height: self.get(Yres).into(),
            bpp,
            stride,
            offset: u32::from(self.get(XOffset)) * bits / 8 + u32::from(self.get(YOffset)) * stride,
        })
    }
}

#[kunit_tests(rvgpu_vgpu_display)]
mod tests {
    use super::*;
    use DispiIndex::*;

    const LIMITS: Limits = Limits {
        max_width: 1920,
        max_height: 1200,
        fb_size: 13 << 20,
        heads: 4,
        frl_fps: 60,
    };
    const ENABLED: u16 = uapi::RVGPU_DISPI_ENABLED as u16;
    const GETCAPS: u16 = uapi::RVGPU_DISPI_GETCAPS as u16;
    const NOCLEARMEM: u16 = uapi::RVGPU_DISPI_NOCLEARMEM as u16;

    fn regs() -> DisplayRegs {
        DisplayRegs::new(LIMITS, [0; edid::BLOCK])
    }

    fn set(r: &mut DisplayRegs, i: DispiIndex, v: u16) -> Effect {
        r.write(Reg::Dispi(i), v.into())
    }

    fn get(r: &DisplayRegs, i: DispiIndex) -> u32 {
        r.read(Reg::Dispi(i))
    }

    #[test]
    fn identity_and_extensions() {
        let r = regs();
        assert_eq!(get(&r, Id), 0xb0c5);
        assert_eq!(get(&r, VideoMemory64k), 208);
        assert_eq!(r.read(Reg::QextSize), 0x20);
        assert_eq!(r.read(Reg::QextByteorder), BYTEORDER_LE);
        assert_eq!(r.read(Reg::Magic), uapi::RVGPU_MAGIC);
        assert_eq!(r.read(Reg::Heads), 4);
        assert_eq!(r.read(Reg::MaxWidth), 1920);
    }

    #[test]
    fn bochs_drm_mode_set() {
        // The sequence bochs-drm writes for 1024x768x32.
        let mut r = regs();
        set(&mut r, Enable, 0);
        set(&mut r, Bpp, 32);
        set(&mut r, Xres, 1024);
        set(&mut r, Yres, 768);
        set(&mut r, Bank, 0);
        set(&mut r, VirtWidth, 1024);
        set(&mut r, VirtHeight, 3328);
        set(&mut r, XOffset, 0);
        set(&mut r, YOffset, 0);
        let e = set(&mut r, Enable, ENABLED | 0x40);
        assert_eq!(e, Effect::ClearFramebuffer(768 * 4096));
        assert_eq!(
            r.mode(),
            Some(Mode {
                width: 1024,
                height: 768,
                bpp: 32,
                stride: 4096,
                offset: 0
            })
        );
        assert_eq!(get(&r, VirtHeight), 3328);
    }

    #[test]
    fn modes_beyond_the_type_are_clamped() {
        let mut r = regs();
        set(&mut r, Bpp, 32);
        set(&mut r, Xres, 2560);
        set(&mut r, Yres, 1600);
        set(&mut r, Enable, ENABLED | NOCLEARMEM);
        let m = r.mode().map(|m| (m.width, m.height));
        assert_eq!(m, Some((1920, 1200)));
        // GETCAPS reports the type's maximum.
        set(&mut r, Enable, GETCAPS);
        assert_eq!(get(&r, Xres), 1920);
        assert_eq!(get(&r, Yres), 1200);
        assert_eq!(r.stored(Reg::Dispi(Xres)), 1920);
    }

    #[test]
    fn framebuffer_bound() {
        // 1920 wide at 32 bpp: 7680 bytes a line; 13 MiB hold 1774 lines, offsets beyond reset.
        let mut r = regs();
        set(&mut r, Bpp, 32);
        set(&mut r, Xres, 1920);
        set(&mut r, Yres, 1200);
        set(&mut r, YOffset, 1000);
        set(&mut r, Enable, ENABLED | NOCLEARMEM);
        assert_eq!(get(&r, VirtHeight), 1774);
        assert_eq!(get(&r, YOffset), 0);
    }

    #[test]
    fn read_only_registers() {
        let mut r = regs();
        set(&mut r, VideoMemory64k, 1);
        assert_eq!(get(&r, VideoMemory64k), 208);
        set(&mut r, Id, 0x1234);
        assert_eq!(get(&r, Id), 0xb0c5);
        set(&mut r, Id, 0xb0c2);
        assert_eq!(get(&r, Id), 0xb0c2);
        r.write(Reg::QextByteorder, 0x1234_5678);
        assert_eq!(r.read(Reg::QextByteorder), BYTEORDER_LE);
        r.write(Reg::QextByteorder, BYTEORDER_BE);
        assert_eq!(r.read(Reg::QextByteorder), BYTEORDER_BE);
    }
}
