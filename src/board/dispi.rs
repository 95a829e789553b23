// SPDX-License-Identifier: GPL-2.0

//! The VBE DISPI register interface of QEMU's Bochs display adapter, declared once: the
//! physical board (`bochs.rs`) accesses these registers through its MMIO BAR, and every vGPU
//! presents the same interface (`vgpu/display.rs` emulates it, `vgpu/bar2.rs` decodes its
//! offsets), so a guest's stock bochs-drm drives a vGPU like the board.
//!
//! The registers sit in BAR2 at `RVGPU_MMIO_DISPI + index * 2`, 16 bits each; `uapi/rvgpu.h` is
//! the source of every offset and bit, and the checks below fail the build on any drift.

use kernel::io::register::Register;

use crate::vgpu::uapi;

kernel::io::register! {
    /// Interface version; the board and the vGPUs answer 0xB0C0..=0xB0C5.
    pub(crate) DISPI_ID(u16) @ 0x500 {
        15:0 id;
    }

    /// Horizontal resolution, pixels.
    pub(crate) DISPI_XRES(u16) @ 0x502 {
        15:0 value;
    }

    /// Vertical resolution, lines.
    pub(crate) DISPI_YRES(u16) @ 0x504 {
        15:0 value;
    }

    /// Bits per pixel: 8, 15, 16, 24 or 32.
    pub(crate) DISPI_BPP(u16) @ 0x506 {
        15:0 value;
    }

    /// Display enable and mode flags.
    pub(crate) DISPI_ENABLE(u16) @ 0x508 {
        /// Without it, enabling the display clears its visible area.
        7:7 noclearmem => bool;
        6:6 lfb_enabled => bool;
        5:5 dac_8bit => bool;
        /// While set, XRES, YRES and BPP read the maximums.
        1:1 getcaps => bool;
        0:0 enabled => bool;
    }

    /// Bank (for the legacy VGA window; stored, no effect).
    pub(crate) DISPI_BANK(u16) @ 0x50a {
        15:0 value;
    }

    /// Line length in pixels (the stride).
    pub(crate) DISPI_VIRT_WIDTH(u16) @ 0x50c {
        15:0 value;
    }

    /// Lines that fit in the framebuffer at the current stride (set by the device).
    pub(crate) DISPI_VIRT_HEIGHT(u16) @ 0x50e {
        15:0 value;
    }

    /// Scan-out start, pixels into a line.
    pub(crate) DISPI_X_OFFSET(u16) @ 0x510 {
        15:0 value;
    }

    /// Scan-out start, lines.
    pub(crate) DISPI_Y_OFFSET(u16) @ 0x512 {
        15:0 value;
    }

    /// The VRAM (for a vGPU: its usable framebuffer) in 64 KiB units.
    pub(crate) DISPI_VIDEO_MEMORY_64K(u16) @ 0x514 {
        15:0 units;
    }
}

/// The DISPI registers by index (`RVGPU_DISPI_INDEX_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum DispiIndex {
    Id = uapi::RVGPU_DISPI_INDEX_ID as usize,
    Xres = uapi::RVGPU_DISPI_INDEX_XRES as usize,
    Yres = uapi::RVGPU_DISPI_INDEX_YRES as usize,
    Bpp = uapi::RVGPU_DISPI_INDEX_BPP as usize,
    Enable = uapi::RVGPU_DISPI_INDEX_ENABLE as usize,
    Bank = uapi::RVGPU_DISPI_INDEX_BANK as usize,
    VirtWidth = uapi::RVGPU_DISPI_INDEX_VIRT_WIDTH as usize,
    VirtHeight = uapi::RVGPU_DISPI_INDEX_VIRT_HEIGHT as usize,
    XOffset = uapi::RVGPU_DISPI_INDEX_X_OFFSET as usize,
    YOffset = uapi::RVGPU_DISPI_INDEX_Y_OFFSET as usize,
    VideoMemory64k = uapi::RVGPU_DISPI_INDEX_VIDEO_MEMORY_64K as usize,
}

/// How many DISPI registers there are.
pub(crate) const COUNT: usize = uapi::RVGPU_DISPI_COUNT as usize;

impl DispiIndex {
    const ALL: [DispiIndex; COUNT] = [
        Self::Id,
        Self::Xres,
        Self::Yres,
        Self::Bpp,
        Self::Enable,
        Self::Bank,
        Self::VirtWidth,
        Self::VirtHeight,
        Self::XOffset,
        Self::YOffset,
        Self::VideoMemory64k,
    ];

    /// The register at `index`, if there is one.
    pub(crate) fn from_index(index: usize) -> Option<Self> {
        Self::ALL.get(index).copied()
    }

    /// Its offset in BAR2.
    pub(crate) const fn offset(self) -> usize {
        uapi::RVGPU_MMIO_DISPI as usize + 2 * self as usize
    }
}

/// Where the DISPI registers start and end in BAR2.
pub(crate) const START: usize = uapi::RVGPU_MMIO_DISPI as usize;
pub(crate) const END: usize = START + 2 * COUNT;

/// The version the vGPUs report (and the oldest and newest the board may report).
pub(crate) const ID_MIN: u16 = 0xb0c0;
pub(crate) const ID_MAX: u16 = uapi::RVGPU_DISPI_ID as u16;

// The declarations above are the header's map, or the build fails.
macro_rules! check_offset {
    ($($reg:ident = $index:ident),* $(,)?) => {
        $(const _: () = assert!(
            <$reg as Register>::OFFSET == DispiIndex::$index.offset()
        );)*
    };
}
check_offset!(
    DISPI_ID = Id,
    DISPI_XRES = Xres,
    DISPI_YRES = Yres,
    DISPI_BPP = Bpp,
    DISPI_ENABLE = Enable,
    DISPI_BANK = Bank,
    DISPI_VIRT_WIDTH = VirtWidth,
    DISPI_VIRT_HEIGHT = VirtHeight,
    DISPI_X_OFFSET = XOffset,
    DISPI_Y_OFFSET = YOffset,
    DISPI_VIDEO_MEMORY_64K = VideoMemory64k,
);
const _: () = assert!(DispiIndex::VideoMemory64k as usize + 1 == COUNT);
const _: () = assert!(
    DISPI_ENABLE::ENABLED_MASK == uapi::RVGPU_DISPI_ENABLED as u16
        && DISPI_ENABLE::GETCAPS_MASK == uapi::RVGPU_DISPI_GETCAPS as u16
        && DISPI_ENABLE::DAC_8BIT_MASK == uapi::RVGPU_DISPI_8BIT_DAC as u16
        && DISPI_ENABLE::LFB_ENABLED_MASK == uapi::RVGPU_DISPI_LFB_ENABLED as u16
        && DISPI_ENABLE::NOCLEARMEM_MASK == uapi::RVGPU_DISPI_NOCLEARMEM as u16
);
