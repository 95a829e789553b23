// SPDX-License-Identifier: GPL-2.0

//! The EDID a vGPU shows its guest (QEMU's bochs-display EDID window, BAR2 0x000..0x400): one
//! EDID 1.4 base block describing a monitor whose preferred mode is the type's maximum
//! resolution (or, when that does not fit a detailed timing descriptor, the largest common mode
//! that does), with the type's name and head count in text descriptors.

use kernel::prelude::*;

/// Length of an EDID block.
pub(crate) const BLOCK: usize = 128;

/// Detailed timing descriptors hold 12-bit sizes.
const DTD_MAX: u32 = 4095;

/// Common modes, largest first, for when the maximum does not fit a descriptor.
const FALLBACK_MODES: [(u32, u32); 6] = [
    (3840, 2160),
    (2560, 1600),
    (1920, 1200),
    (1920, 1080),
    (1280, 1024),
    (1024, 768),
];

/// The mode the EDID prefers for a maximum resolution.
pub(crate) fn preferred_mode(max_w: u32, max_h: u32) -> (u32, u32) {
    if max_w <= DTD_MAX && max_h <= DTD_MAX {
        return (max_w, max_h);
    }
    FALLBACK_MODES
        .iter()
        .copied()
        .find(|&(w, h)| w <= max_w && h <= max_h)
        .unwrap_or((1024, 768))
}

/// Writes an 18-byte text descriptor of `tag` holding `text` (at most 13 bytes).
fn text_descriptor(d: &mut [u8], tag: u8, text: &[u8]) {
    d[..5].copy_from_slice(&[0, 0, 0, tag, 0]);
    let n = text.len().min(13);
    d[5..5 + n].copy_from_slice(&text[..n]);
    if n < 13 {
        d[5 + n] = b'\n';
        for b in &mut d[6 + n..18] {
            *b = b' ';
        }
    }
}

/// Writes a detailed timing descriptor for `w`x`h` at 60 Hz with reduced blanking.
fn detailed_timing(d: &mut [u8], w: u32, h: u32) {
    let (hblank, hfront, hsync) = (160u32, 48u32, 32u32);
    let (vblank, vfront, vsync) = (35u32, 3u32, 5u32);
    let clock_10khz = (w + hblank) * (h + vblank) * 60 / 10_000;
    d[0..2].copy_from_slice(&(clock_10khz as u16).to_le_bytes());
    d[2] = w as u8;
    d[3] = hblank as u8;
    d[4] = (((w >> 8) & 0xf) << 4 | ((hblank >> 8) & 0xf)) as u8;
    d[5] = h as u8;
    d[6] = vblank as u8;
    d[7] = (((h >> 8) & 0xf) << 4 | ((vblank >> 8) & 0xf)) as u8;
    d[8] = hfront as u8;
    d[9] = hsync as u8;
    d[10] = (((vfront & 0xf) << 4) | (vsync & 0xf)) as u8;
    d[11] = 0;
    // Image size in mm (96 dpi).
    let (wmm, hmm) = (w * 254 / 960, h * 254 / 960);
    d[12] = wmm as u8;
    d[13] = hmm as u8;
    d[14] = (((wmm >> 8) & 0xf) << 4 | ((hmm >> 8) & 0xf)) as u8;
    d[15] = 0;
    d[16] = 0;
    d[17] = 0x1e; // Digital separate sync, positive polarities.
}

/// Fills `out` (one block) with the EDID for a type.
pub(crate) fn generate(
    out: &mut [u8; BLOCK],
    type_id: u32,
    name: &[u8],
    heads: u32,
    max_w: u32,
    max_h: u32,
) {
    *out = [0; BLOCK];
    out[0..8].copy_from_slice(&[0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
    // Manufacturer "RVG" (5-bit letters, big-endian).
    let letter = |c: u8| u16::from(c - b'@');
    let id: u16 = letter(b'R') << 10 | letter(b'V') << 5 | letter(b'G');
    out[8..10].copy_from_slice(&id.to_be_bytes());
    out[10..12].copy_from_slice(&(type_id as u16).to_le_bytes());
    out[16] = 1; // Week.
    out[17] = (2026 - 1990) as u8;
    out[18] = 1;
    out[19] = 4; // EDID 1.4.
    out[20] = 0xa5; // Digital, 8 bits per colour, DisplayPort.
    let (w, h) = preferred_mode(max_w, max_h);
    out[21] = (w * 254 / 96_000).clamp(1, 255) as u8; // Screen size in cm.
    out[22] = (h * 254 / 96_000).clamp(1, 255) as u8;
    out[23] = 120; // Gamma 2.2.
    out[24] = 0x06; // sRGB, preferred timing is native.
    out[25..35].copy_from_slice(&[0xee, 0x91, 0xa3, 0x54, 0x4c, 0x99, 0x26, 0x0f, 0x50, 0x54]);
    out[35..38].copy_from_slice(&[0x21, 0x08, 0x00]); // 640x480, 800x600, 1024x768 at 60 Hz.
    for i in 0..8 {
        out[38 + 2 * i] = 1;
        out[39 + 2 * i] = 1;
    }
    detailed_timing(&mut out[54..72], w, h);
    // Range limits: 50-70 Hz vertical, 30-255 kHz horizontal, pixel clock up to 2550 MHz.
    out[72..90].copy_from_slice(&[
        0, 0, 0, 0xfd, 0, 50, 70, 30, 255, 255, 0x01, 0x0a, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    ]);
    // The product name: "RVGPU-64Q" out of "GRID RVGPU-64Q".
    let short = name.strip_prefix(b"GRID ").unwrap_or(name);
    text_descriptor(&mut out[90..108], 0xfc, short);
    let mut heads_text = *b"heads=0      ";
    heads_text[6] = b'0' + (heads % 10) as u8;
    text_descriptor(&mut out[108..126], 0xfe, &heads_text[..7]);
    out[126] = 0; // No extension blocks.
    let sum = out[..127].iter().fold(0u8, |a, &b| a.wrapping_add(b));
    out[127] = 0u8.wrapping_sub(sum);
}

#[kunit_tests(rvgpu_vgpu_edid)]
mod tests {
    use super::*;

    #[test]
    fn valid_block() {
        let mut e = [0u8; BLOCK];
        generate(&mut e, 9106, b"GRID RVGPU-64Q", 4, 5120, 2880);
        assert_eq!(&e[0..8], &[0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]);
        assert_eq!(e.iter().fold(0u8, |a, &b| a.wrapping_add(b)), 0);
        // 5120 does not fit a descriptor: 3840x2160 is preferred.
        assert_eq!(u32::from(e[56]) | (u32::from(e[58]) >> 4) << 8, 3840);
        assert_eq!(u32::from(e[59]) | (u32::from(e[61]) >> 4) << 8, 2160);
        assert_eq!(&e[95..104], b"RVGPU-64Q");
        assert_eq!(&e[113..120], b"heads=4");
    }

    #[test]
    fn preferred_modes() {
        assert_eq!(preferred_mode(1920, 1200), (1920, 1200));
        assert_eq!(preferred_mode(1280, 1024), (1280, 1024));
        assert_eq!(preferred_mode(7680, 4320), (3840, 2160));
    }
}
