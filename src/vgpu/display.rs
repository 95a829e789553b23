// SPDX-License-Identifier: GPL-2.0

//! The vGPU's register window (BAR2, 4 KiB), emulated per vGPU as QEMU's bochs-display has it:
//!
//! | offset | what |
//! |---|---|
//! | 0x000..0x400 | EDID (read-only) |
//! | 0x500..0x516 | VBE DISPI registers, 16 bits each, index * 2 |
//! | 0x600..0x620 | QEMU's extension registers, then rvgpu's (`uapi/rvgpu.h`) |
//!
//! Mode registers behave as QEMU's: values out of range are clamped when the display is enabled
//! (here to the vGPU type's maximum resolution and usable framebuffer, not QEMU's 16000x12000),
//! so a mode above the type's limits cannot be set. Accesses are 1, 2 or 4 bytes, naturally
//! aligned; anything else is refused with `EINVAL`. Nothing here sleeps or allocates.

use super::edid;
use kernel::prelude::*;

pub(crate) const SIZE: usize = 0x1000;

const EDID_END: usize = 0x400;
const DISPI: usize = 0x500;
const QEXT: usize = 0x600;

pub(crate) const INDEX_ID: usize = 0;
pub(crate) const INDEX_XRES: usize = 1;
pub(crate) const INDEX_YRES: usize = 2;
pub(crate) const INDEX_BPP: usize = 3;
pub(crate) const INDEX_ENABLE: usize = 4;
const INDEX_BANK: usize = 5;
pub(crate) const INDEX_VIRT_WIDTH: usize = 6;
const INDEX_VIRT_HEIGHT: usize = 7;
pub(crate) const INDEX_X_OFFSET: usize = 8;
pub(crate) const INDEX_Y_OFFSET: usize = 9;
const INDEX_VIDEO_MEMORY_64K: usize = 10;
const DISPI_COUNT: usize = 11;

const ID0: u16 = 0xb0c0;
const ID5: u16 = 0xb0c5;
pub(crate) const ENABLED: u16 = 0x01;
const GETCAPS: u16 = 0x02;
const NOCLEARMEM: u16 = 0x80;

/// QEMU extension: size of the extension register block.
const QEXT_SIZE: usize = 0x600;
/// QEMU extension: framebuffer byte order.
const QEXT_BYTEORDER: usize = 0x604;
const BYTEORDER_LE: u32 = 0xbebe_bebe;
const BYTEORDER_BE: u32 = 0x1e1e_1e1e;
/// rvgpu extension registers (read-only), documented in `uapi/rvgpu.h`.
const RVGPU_MAGIC: usize = 0x608;
const RVGPU_HEADS: usize = 0x60c;
const RVGPU_MAX_WIDTH: usize = 0x610;
const RVGPU_MAX_HEIGHT: usize = 0x614;
const RVGPU_FB_SIZE: usize = 0x618;
const RVGPU_FRL_FPS: usize = 0x61c;
const QEXT_END: usize = 0x620;
/// "RVGP", little-endian.
pub(crate) const MAGIC: u32 = 0x5047_5652;

/// What a vGPU's registers are bounded by: its type.
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

/// One vGPU's register file.
pub(crate) struct Regs {
    limits: Limits,
    dispi: [u16; DISPI_COUNT],
    byteorder: u32,
    edid: [u8; edid::BLOCK],
}

impl Regs {
    pub(crate) fn new(limits: Limits, edid: [u8; edid::BLOCK]) -> Self {
        let mut r = Self {
            limits,
            dispi: [0; DISPI_COUNT],
            byteorder: BYTEORDER_LE,
            edid,
        };
        r.reset();
        r
    }

    /// Back to power-on state.
    pub(crate) fn reset(&mut self) {
        self.dispi = [0; DISPI_COUNT];
        self.dispi[INDEX_ID] = ID5;
        self.dispi[INDEX_VIDEO_MEMORY_64K] = (self.limits.fb_size >> 16) as u16;
        self.byteorder = BYTEORDER_LE;
    }

    /// Whether `(off, size)` is an access this window answers.
    pub(crate) fn valid_access(off: usize, size: usize) -> bool {
        matches!(size, 1 | 2 | 4) && off % size == 0 && off + size <= SIZE
    }

    fn dispi_read(&self, index: usize) -> u16 {
        let caps = self.dispi[INDEX_ENABLE] & GETCAPS != 0;
        match index {
            INDEX_XRES if caps => self.limits.max_width as u16,
            INDEX_YRES if caps => self.limits.max_height as u16,
            INDEX_BPP if caps => 32,
            i if i < DISPI_COUNT => self.dispi[i],
            _ => 0,
        }
    }

    fn qext_read32(&self, off: usize) -> u32 {
        match off {
            QEXT_SIZE => (QEXT_END - QEXT) as u32,
            QEXT_BYTEORDER => self.byteorder,
            RVGPU_MAGIC => MAGIC,
            RVGPU_HEADS => self.limits.heads,
            RVGPU_MAX_WIDTH => self.limits.max_width,
            RVGPU_MAX_HEIGHT => self.limits.max_height,
            RVGPU_FB_SIZE => self.limits.fb_size,
            RVGPU_FRL_FPS => self.limits.frl_fps,
            _ => 0,
        }
    }

    fn byte(&self, off: usize) -> u8 {
        match off {
            0..EDID_END => self.edid.get(off).copied().unwrap_or(0),
            DISPI..QEXT => {
                let v = self.dispi_read((off - DISPI) / 2);
                v.to_le_bytes()[(off - DISPI) % 2]
            }
            QEXT..QEXT_END => self.qext_read32(off & !3).to_le_bytes()[off % 4],
            _ => 0,
        }
    }

    /// Reads `size` bytes at `off` (little-endian). The caller checked `valid_access`.
    pub(crate) fn read(&self, off: usize, size: usize) -> u32 {
        (0..size).fold(0u32, |v, i| v | u32::from(self.byte(off + i)) << (8 * i))
    }

    /// Writes `size` bytes of `val` at `off`. The caller checked `valid_access`.
    pub(crate) fn write(&mut self, off: usize, size: usize, val: u32) -> Effect {
        let mut effect = Effect::None;
        match off {
            DISPI..QEXT => {
                // Whole registers are written; a byte write merges into its register.
                let mut i = 0;
                while i < size {
                    let reg = (off + i - DISPI) / 2;
                    let lane = (off + i - DISPI) % 2;
                    let n = (2 - lane).min(size - i);
                    let mut bytes = self.dispi.get(reg).copied().unwrap_or(0).to_le_bytes();
                    for k in 0..n {
                        bytes[lane + k] = (val >> (8 * (i + k))) as u8;
                    }
                    if let Some(e) = self.dispi_write(reg, u16::from_le_bytes(bytes)) {
                        effect = e;
                    }
                    i += n;
                }
            }
            QEXT_BYTEORDER if size == 4 => {
                if val == BYTEORDER_LE || val == BYTEORDER_BE {
                    self.byteorder = val;
                }
            }
            _ => {}
        }
        effect
    }

    fn dispi_write(&mut self, index: usize, val: u16) -> Option<Effect> {
        match index {
            INDEX_ID => {
                if (ID0..=ID5).contains(&val) {
                    self.dispi[INDEX_ID] = val;
                }
                None
            }
            INDEX_VIDEO_MEMORY_64K => None,
            INDEX_ENABLE => {
                let was = self.dispi[INDEX_ENABLE] & ENABLED != 0;
                self.dispi[INDEX_ENABLE] = val;
                if val & ENABLED == 0 {
                    return None;
                }
                self.fixup();
                if !was && val & NOCLEARMEM == 0 {
                    let m = self.mode()?;
                    return Some(Effect::ClearFramebuffer(m.height * m.stride));
                }
                None
            }
            i if i < DISPI_COUNT => {
                self.dispi[i] = val;
                if i != INDEX_BANK && self.dispi[INDEX_ENABLE] & ENABLED != 0 {
                    self.fixup();
                }
                None
            }
            _ => None,
        }
    }

    /// QEMU's `vbe_fixup_regs()`, bounded by the vGPU type instead of the device maximum.
    fn fixup(&mut self) {
        let r = &mut self.dispi;
        let max_w = self.limits.max_width.min(0xfff8) as u16 & !7;
        let max_h = self.limits.max_height.min(0xffff) as u16;
        let bits: u32 = match r[INDEX_BPP] {
            4 | 8 | 16 | 24 | 32 => r[INDEX_BPP].into(),
            15 => 16,
            _ => {
                r[INDEX_BPP] = 8;
                8
            }
        };
        r[INDEX_XRES] &= !7;
        if r[INDEX_XRES] == 0 {
            r[INDEX_XRES] = 8;
        }
        r[INDEX_XRES] = r[INDEX_XRES].min(max_w);
        r[INDEX_VIRT_WIDTH] &= !7;
        r[INDEX_VIRT_WIDTH] = r[INDEX_VIRT_WIDTH].min(max_w).max(r[INDEX_XRES]);
        // Never zero: the virtual width is at least the width, at least 8.
        let line = (u32::from(r[INDEX_VIRT_WIDTH]) * bits / 8).max(1);
        let maxy = (self.limits.fb_size / line).min(0xffff) as u16;
        if r[INDEX_YRES] == 0 {
            r[INDEX_YRES] = 1;
        }
        r[INDEX_YRES] = r[INDEX_YRES].min(max_h).min(maxy);
        r[INDEX_X_OFFSET] = r[INDEX_X_OFFSET].min(max_w);
        r[INDEX_Y_OFFSET] = r[INDEX_Y_OFFSET].min(max_h);
        let yres = u64::from(r[INDEX_YRES]);
        let end = |x: u16, y: u16| {
            u64::from(x) * u64::from(bits) / 8 + (u64::from(y) + yres) * u64::from(line)
        };
        if end(r[INDEX_X_OFFSET], r[INDEX_Y_OFFSET]) > u64::from(self.limits.fb_size) {
            r[INDEX_Y_OFFSET] = 0;
            if end(r[INDEX_X_OFFSET], 0) > u64::from(self.limits.fb_size) {
                r[INDEX_X_OFFSET] = 0;
            }
        }
        r[INDEX_VIRT_HEIGHT] = maxy;
    }

    /// The scan-out mode, if the display is enabled.
    pub(crate) fn mode(&self) -> Option<Mode> {
        let r = &self.dispi;
        if r[INDEX_ENABLE] & ENABLED == 0 {
            return None;
        }
        let bpp = u32::from(r[INDEX_BPP]);
        let bits = if bpp == 15 { 16 } else { bpp };
        let stride = u32::from(r[INDEX_VIRT_WIDTH]) * bits / 8;
        Some(Mode {
            width: r[INDEX_XRES].into(),
            height: r[INDEX_YRES].into(),
            bpp,
            stride,
            offset: u32::from(r[INDEX_X_OFFSET]) * bits / 8 + u32::from(r[INDEX_Y_OFFSET]) * stride,
        })
    }
}

#[kunit_tests(rvgpu_vgpu_regs)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_width: 1920,
        max_height: 1200,
        fb_size: 13 << 20,
        heads: 4,
        frl_fps: 60,
    };

    fn regs() -> Regs {
        Regs::new(LIMITS, [0; edid::BLOCK])
    }

    fn set(r: &mut Regs, index: usize, v: u16) -> Effect {
        r.write(DISPI + 2 * index, 2, v.into())
    }

    #[test]
    fn identity_and_extensions() {
        let r = regs();
        assert_eq!(r.read(DISPI, 2), 0xb0c5);
        assert_eq!(r.read(DISPI + 2 * INDEX_VIDEO_MEMORY_64K, 2), 208);
        assert_eq!(r.read(QEXT_SIZE, 4), 0x20);
        assert_eq!(r.read(QEXT_BYTEORDER, 4), BYTEORDER_LE);
        assert_eq!(r.read(RVGPU_MAGIC, 4), MAGIC);
        assert_eq!(r.read(RVGPU_HEADS, 4), 4);
        assert_eq!(r.read(RVGPU_MAX_WIDTH, 4), 1920);
    }

    #[test]
    fn bochs_drm_mode_set() {
        // The sequence bochs-drm writes for 1024x768x32.
        let mut r = regs();
        set(&mut r, INDEX_ENABLE, 0);
        set(&mut r, INDEX_BPP, 32);
        set(&mut r, INDEX_XRES, 1024);
        set(&mut r, INDEX_YRES, 768);
        set(&mut r, INDEX_BANK, 0);
        set(&mut r, INDEX_VIRT_WIDTH, 1024);
        set(&mut r, INDEX_VIRT_HEIGHT, 3328);
        set(&mut r, INDEX_X_OFFSET, 0);
        set(&mut r, INDEX_Y_OFFSET, 0);
        let e = set(&mut r, INDEX_ENABLE, ENABLED | 0x40);
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
        assert_eq!(r.read(DISPI + 2 * INDEX_VIRT_HEIGHT, 2), 3328);
    }

    #[test]
    fn modes_beyond_the_type_are_clamped() {
        let mut r = regs();
        set(&mut r, INDEX_BPP, 32);
        set(&mut r, INDEX_XRES, 2560);
        set(&mut r, INDEX_YRES, 1600);
        set(&mut r, INDEX_ENABLE, ENABLED | NOCLEARMEM);
        let m = r.mode().unwrap_or(Mode {
            width: 0,
            height: 0,
            bpp: 0,
            stride: 0,
            offset: 0,
        });
        assert_eq!((m.width, m.height), (1920, 1200));
        // GETCAPS reports the type's maximum.
        set(&mut r, INDEX_ENABLE, GETCAPS);
        assert_eq!(r.read(DISPI + 2 * INDEX_XRES, 2), 1920);
        assert_eq!(r.read(DISPI + 2 * INDEX_YRES, 2), 1200);
    }

    #[test]
    fn framebuffer_bound() {
        // 1920 wide at 32 bpp: 7680 bytes a line; 13 MiB hold 1774 lines, offsets beyond reset.
        let mut r = regs();
        set(&mut r, INDEX_BPP, 32);
        set(&mut r, INDEX_XRES, 1920);
        set(&mut r, INDEX_YRES, 1200);
        set(&mut r, INDEX_Y_OFFSET, 1000);
        set(&mut r, INDEX_ENABLE, ENABLED | NOCLEARMEM);
        assert_eq!(r.read(DISPI + 2 * INDEX_VIRT_HEIGHT, 2), 1774);
        assert_eq!(r.read(DISPI + 2 * INDEX_Y_OFFSET, 2), 0);
    }

    #[test]
    fn access_rules() {
        assert!(Regs::valid_access(0x500, 2));
        assert!(Regs::valid_access(0x604, 4));
        assert!(!Regs::valid_access(0x501, 2));
        assert!(!Regs::valid_access(0x500, 8));
        assert!(!Regs::valid_access(0xffe, 4));
        let mut r = regs();
        // A byte write merges into its register.
        r.write(DISPI + 2 * INDEX_XRES, 1, 0x00);
        r.write(DISPI + 2 * INDEX_XRES + 1, 1, 0x04);
        assert_eq!(r.read(DISPI + 2 * INDEX_XRES, 2), 0x400);
        // Read-only registers stay.
        r.write(DISPI + 2 * INDEX_VIDEO_MEMORY_64K, 2, 1);
        assert_eq!(r.read(DISPI + 2 * INDEX_VIDEO_MEMORY_64K, 2), 208);
        r.write(DISPI, 2, 0x1234);
        assert_eq!(r.read(DISPI, 2), 0xb0c5);
        r.write(DISPI, 2, 0xb0c2);
        assert_eq!(r.read(DISPI, 2), 0xb0c2);
    }
}
