// SPDX-License-Identifier: GPL-2.0
//! This test's part of the harness ([`vfio_client::harness`], where [`Gpu`] is): how it opens a
//! vGPU, display modes and pans through the DISPI registers, the primary plane query and what the
//! plane must be for a set of registers ([`model`]), framebuffer patterns and comparisons.

use std::fmt;
use std::sync::atomic::{fence, Ordering};

use vfio_client::harness::{Gpu, Unmapped};
use vfio_client::rvgpu::*;
use vfio_client::tap::{all, ensure};
use vfio_client::uapi::{
    vfio_device_gfx_plane_info, DRM_FORMAT_RGB888, DRM_FORMAT_XRGB8888, DRM_PLANE_TYPE_CURSOR, DRM_PLANE_TYPE_PRIMARY,
    VFIO_GFX_PLANE_TYPE_REGION,
};
use vfio_client::{Mmap, OpenPath, RegionInfo};

pub const PAGE: u64 = 4096;
pub const MIB: u64 = 1 << 20;
/// What B's framebuffer is filled with: a page-long run of it in anything A reads would be B's.
pub const MARKER: u8 = 0xb5;
/// The data buffer the harness maps for DMA (this test runs no commands).
const DATA_LEN: usize = 4096;

/// `struct vfio_device_gfx_plane_info`.
pub type Plane = vfio_device_gfx_plane_info;

/// The `ENABLE` value of every mode set here: on, linear framebuffer, and the framebuffer is not
/// cleared (the patterns written before a mode set survive it).
pub const ENABLE_ON: u16 = DISPI_ENABLED | DISPI_LFB_ENABLED | DISPI_NOCLEARMEM;

/// Opens `uuid` on `path` with the whole usable framebuffer mapped, memory decode on, and checks
/// that the registers answer (decode on) and `RVGPU_REG_FB_SIZE` is the sparse mmap area's size.
pub fn open(uuid: &str, path: OpenPath) -> Result<Gpu, String> {
    let u = Unmapped::open(uuid, path)?;
    let usable = u.usable();
    if usable == 0 {
        return Err(format!("{uuid}: BAR0 has no sparse mmap area"));
    }
    let g = u.map(usable, DATA_LEN)?;
    g.enable()?;
    let cmd = g.cfg_read16(4)?;
    let id = g.dispi(DISPI_INDEX_ID)?;
    let fb = g.reg(REG_FB_SIZE)? as usize;
    ensure(cmd & 0x2 != 0 && id == DISPI_ID && fb == usable, || {
        format!("{uuid}: command {cmd:#x}, DISPI id {id:#x}, FB_SIZE {fb:#x} (sparse mmap area {usable:#x})")
    })?;
    Ok(g)
}

// ----- checks ------------------------------------------------------------------------------------

/// The named checks of one result, all run, their failures joined ([`all`]).
#[derive(Default)]
pub struct Checks(Vec<(String, Result<(), String>)>);

impl Checks {
    pub fn add(&mut self, what: impl Into<String>, r: Result<(), String>) {
        self.0.push((what.into(), r));
    }

    pub fn done(self) -> Result<(), String> {
        all(self.0)
    }
}

// ----- the display registers ---------------------------------------------------------------------

/// The DISPI registers that make the scan-out, as read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Regs {
    pub xres: u16,
    pub yres: u16,
    pub bpp: u16,
    pub enable: u16,
    pub virt_width: u16,
    pub x_offset: u16,
    pub y_offset: u16,
}

impl Regs {
    pub fn read(g: &Gpu) -> Result<Regs, String> {
        Ok(Regs {
            xres: g.dispi(DISPI_INDEX_XRES)?,
            yres: g.dispi(DISPI_INDEX_YRES)?,
            bpp: g.dispi(DISPI_INDEX_BPP)?,
            enable: g.dispi(DISPI_INDEX_ENABLE)?,
            virt_width: g.dispi(DISPI_INDEX_VIRT_WIDTH)?,
            x_offset: g.dispi(DISPI_INDEX_X_OFFSET)?,
            y_offset: g.dispi(DISPI_INDEX_Y_OFFSET)?,
        })
    }

    pub fn enabled(&self) -> bool {
        self.enable & DISPI_ENABLED != 0
    }

    /// Bits a pixel takes in memory (15 bpp takes 16).
    fn bits(&self) -> u64 {
        if self.bpp == 15 {
            16
        } else {
            u64::from(self.bpp)
        }
    }

    /// `VIRT_WIDTH * bytes per pixel`.
    pub fn stride(&self) -> u64 {
        u64::from(self.virt_width) * self.bits() / 8
    }

    /// The scan-out start: `X_OFFSET * bytes per pixel + Y_OFFSET * stride`.
    pub fn start(&self) -> u64 {
        u64::from(self.x_offset) * self.bits() / 8 + u64::from(self.y_offset) * self.stride()
    }
}

impl fmt::Display for Regs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}x{}x{} enable {:#x} virt_width {} offset {},{} (stride {}, start {:#x})",
            self.xres,
            self.yres,
            self.bpp,
            self.enable,
            self.virt_width,
            self.x_offset,
            self.y_offset,
            self.stride(),
            self.start()
        )
    }
}

/// Sets `xres`x`yres`x`bpp` as bochs-drm does (display off, the mode, virtual width = width,
/// offsets 0, then on, here with `NOCLEARMEM`) and checks it reads back so.
pub fn set_mode(g: &Gpu, bpp: u16, xres: u16, yres: u16) -> Result<Regs, String> {
    let writes = [
        (DISPI_INDEX_ENABLE, 0),
        (DISPI_INDEX_BPP, bpp),
        (DISPI_INDEX_XRES, xres),
        (DISPI_INDEX_YRES, yres),
        (DISPI_INDEX_VIRT_WIDTH, xres),
        (DISPI_INDEX_X_OFFSET, 0),
        (DISPI_INDEX_Y_OFFSET, 0),
        (DISPI_INDEX_ENABLE, ENABLE_ON),
    ];
    for (i, v) in writes {
        g.set_dispi(i, v)?;
    }
    let r = Regs::read(g)?;
    ensure(
        r.xres == xres
            && r.yres == yres
            && r.bpp == bpp
            && r.virt_width == xres
            && r.x_offset == 0
            && r.y_offset == 0
            && r.enabled(),
        || format!("mode {xres}x{yres}x{bpp} reads back as {r}"),
    )?;
    Ok(r)
}

/// Writes `X_OFFSET` and `Y_OFFSET` (the device may clamp them); the registers as they read back.
pub fn pan(g: &Gpu, x: u16, y: u16) -> Result<Regs, String> {
    g.set_dispi(DISPI_INDEX_X_OFFSET, x)?;
    g.set_dispi(DISPI_INDEX_Y_OFFSET, y)?;
    let r = Regs::read(g)?;
    println!("# pan to {x},{y}: {r}");
    Ok(r)
}

/// [`pan`], checking the offsets read back as written.
pub fn pan_to(g: &Gpu, x: u16, y: u16) -> Result<Regs, String> {
    let r = pan(g, x, y)?;
    ensure(r.x_offset == x && r.y_offset == y, || format!("pan to {x},{y} reads back as {r}"))?;
    Ok(r)
}

// ----- the plane ---------------------------------------------------------------------------------

/// `VFIO_DEVICE_QUERY_GFX_PLANE(REGION, PRIMARY)`.
pub fn primary(g: &Gpu) -> Result<Plane, String> {
    g.dev
        .query_gfx_plane(VFIO_GFX_PLANE_TYPE_REGION, DRM_PLANE_TYPE_PRIMARY)
        .map_err(|e| format!("QUERY_GFX_PLANE(REGION, PRIMARY): {e}"))
}

/// `VFIO_DEVICE_QUERY_GFX_PLANE(REGION, CURSOR)`.
pub fn cursor(g: &Gpu) -> Result<Plane, String> {
    g.dev
        .query_gfx_plane(VFIO_GFX_PLANE_TYPE_REGION, DRM_PLANE_TYPE_CURSOR)
        .map_err(|e| format!("QUERY_GFX_PLANE(REGION, CURSOR): {e}"))
}

fn fourcc_name(f: u32) -> String {
    let b = f.to_le_bytes();
    if f != 0 && b.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
        format!("{f:#x} '{}'", String::from_utf8_lossy(&b))
    } else {
        format!("{f:#x}")
    }
}

/// A plane's values, for diagnostics.
pub fn show(p: &Plane) -> String {
    format!(
        "format {} mod {:#x} {}x{} stride {} size {:#x} pos {},{} hot {:#x},{:#x} region {}",
        fourcc_name(p.drm_format),
        p.drm_format_mod,
        p.width,
        p.height,
        p.stride,
        p.size,
        p.x_pos,
        p.y_pos,
        p.x_hot,
        p.y_hot,
        p.region_index
    )
}

/// The answer's fields (what the kernel fills in), without `argsz`.
pub fn answer(p: &Plane) -> Plane {
    Plane { argsz: 0, ..*p }
}

/// "No plane": format, size, width and height all 0.
pub fn is_no_plane(p: &Plane) -> bool {
    p.drm_format == 0 && p.size == 0 && p.width == 0 && p.height == 0
}

/// What a primary plane must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    pub drm_format: u32,
    pub width: u32,
    pub height: u32,
    pub stride: u32,
    pub size: u32,
}

/// The primary plane the registers `r` make with the little-endian byte order, by the driver's
/// rule: none when the display is off, at a depth other than 32 or 24 bpp, at a start that is not
/// a multiple of 4 KiB, or when `start + stride * height` is past the usable framebuffer.
pub fn model(r: &Regs, usable: u64) -> Option<Want> {
    let drm_format = match r.bpp {
        32 => DRM_FORMAT_XRGB8888,
        24 => DRM_FORMAT_RGB888,
        _ => return None,
    };
    let bytes = r.stride() * u64::from(r.yres);
    if !r.enabled() || r.xres == 0 || r.yres == 0 || r.start() % PAGE != 0 || r.start() + bytes > usable {
        return None;
    }
    Some(Want {
        drm_format,
        width: r.xres.into(),
        height: r.yres.into(),
        stride: u32::try_from(r.stride()).ok()?,
        size: u32::try_from(bytes.div_ceil(PAGE) * PAGE).ok()?,
    })
}

/// `p` is `want` shown in the display region, or "no plane" for `None`.
pub fn check_plane(p: &Plane, want: Option<Want>) -> Result<(), String> {
    match want {
        None => ensure(is_no_plane(p), || format!("expected no plane, got {}", show(p))),
        Some(w) => ensure(
            p.drm_format == w.drm_format
                && p.width == w.width
                && p.height == w.height
                && p.stride == w.stride
                && p.size == w.size
                && p.region_index == REGION_DISPLAY,
            || format!("expected {w:?} in region {REGION_DISPLAY}, got {}", show(p)),
        ),
    }
}

/// The 1024x768x32 plane at any start.
pub const XRGB_1024: Want =
    Want { drm_format: DRM_FORMAT_XRGB8888, width: 1024, height: 768, stride: 4096, size: 3 << 20 };

/// Sets 1024x768x32 and checks its plane; returns it.
pub fn mode_1024(g: &Gpu) -> Result<Plane, String> {
    set_mode(g, 32, 1024, 768)?;
    let p = primary(g)?;
    println!("# 1024x768x32: {}", show(&p));
    check_plane(&p, Some(XRGB_1024))?;
    Ok(p)
}

// ----- framebuffer contents ----------------------------------------------------------------------

/// splitmix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The bytes at framebuffer offsets `[off, off + len)` of the pattern `seed`: every 8-byte word
/// differs with its offset, so a view of another place never matches.
pub fn pattern(seed: u64, off: u64, len: usize) -> Vec<u8> {
    let end = off + len as u64;
    let mut v = Vec::with_capacity(len + 16);
    for w in off / 8..end.div_ceil(8) {
        v.extend_from_slice(&mix(seed.rotate_left(32) ^ w).to_le_bytes());
    }
    let skip = (off % 8) as usize;
    v.drain(..skip);
    v.truncate(len);
    v
}

/// Writes the pattern `seed` into `[off, off + len)` of the framebuffer through the BAR0 mapping.
pub fn fb_pattern(g: &mut Gpu, off: u64, len: u64, seed: u64) {
    let mut at = off;
    while at < off + len {
        let n = (off + len - at).min(MIB);
        let (s, e) = (at as usize, (at + n) as usize);
        g.fb.as_mut_slice()[s..e].copy_from_slice(&pattern(seed, at, n as usize));
        at += n;
    }
    fence(Ordering::SeqCst);
}

/// `Err` naming the first byte where `got` (seen at framebuffer offset `base`) is not `want`.
pub fn compare(what: &str, got: &[u8], want: &[u8], base: u64) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: {} bytes, expected {}", got.len(), want.len()));
    }
    match got.iter().zip(want).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => {
            let n = got.iter().zip(want).filter(|(a, b)| a != b).count();
            let to = (i + 8).min(got.len());
            Err(format!(
                "{what}: framebuffer byte {:#x} reads {:02x?}, expected {:02x?} ({n} of {:#x} bytes differ)",
                base + i as u64,
                &got[i..to],
                &want[i..to],
                got.len()
            ))
        }
    }
}

/// `Err` unless every byte of `got` is 0xff.
pub fn all_ones(what: &str, got: &[u8]) -> Result<(), String> {
    match got.iter().position(|&b| b != 0xff) {
        None => Ok(()),
        Some(i) => Err(format!("{what}: byte {i:#x} of {:#x} reads {:#04x}, not 0xff", got.len(), got[i])),
    }
}

/// Where a page-long run of [`MARKER`] starts in `b`, if there is one.
pub fn marker_run(b: &[u8]) -> Option<usize> {
    let mut run = 0;
    for (i, &x) in b.iter().enumerate() {
        run = if x == MARKER { run + 1 } else { 0 };
        if run == PAGE as usize {
            return Some(i + 1 - run);
        }
    }
    None
}

/// `Err` if `b` (read at region offset 0) holds a run of B's marker.
pub fn no_marker(what: &str, b: &[u8]) -> Result<(), String> {
    match marker_run(b) {
        None => Ok(()),
        Some(i) => Err(format!("{what}: a page of B's marker {MARKER:#04x} at region offset {i:#x}")),
    }
}

/// `len` bytes at `off` of `region` through the device file.
pub fn pread(g: &Gpu, region: &RegionInfo, off: u64, len: usize) -> Result<Vec<u8>, String> {
    let mut v = vec![0u8; len];
    g.dev
        .read_region_exact(region, off, &mut v)
        .map_err(|e| format!("pread region {} {off:#x}+{len:#x}: {e}", region.index))?;
    Ok(v)
}

/// `len` bytes at `off` of a mapping (volatile reads: it may be moved under us).
pub fn map_read(m: &Mmap, off: usize, len: usize) -> Result<Vec<u8>, String> {
    let mut v = vec![0u8; len];
    m.read_bytes(off, &mut v).map_err(|e| format!("mapping read {off:#x}+{len:#x}: {e}"))?;
    Ok(v)
}

/// Writes `data` at `off` of a mapping, then fences (out of the write-combining buffers).
pub fn map_write(m: &mut Mmap, off: usize, data: &[u8]) -> Result<(), String> {
    m.write_bytes(off, data).map_err(|e| format!("mapping write {off:#x}+{:#x}: {e}", data.len()))?;
    fence(Ordering::SeqCst);
    Ok(())
}

/// A 16-byte mark naming where it was written.
pub fn mark(tag: &str, off: u64) -> Vec<u8> {
    let mut m = format!("{tag}@{off:x}").into_bytes();
    m.resize(16, b'.');
    m.truncate(16);
    m
}

/// `Err` unless B's whole framebuffer still holds only [`MARKER`].
pub fn b_intact(b: &Gpu) -> Result<(), String> {
    match b.fb.as_slice().iter().position(|&x| x != MARKER) {
        None => Ok(()),
        Some(i) => {
            Err(format!("B's framebuffer byte {i:#x} is {:#04x}, not the marker {MARKER:#04x}", b.fb.as_slice()[i]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs(bpp: u16, xres: u16, yres: u16, virt_width: u16, x_offset: u16, y_offset: u16) -> Regs {
        Regs { xres, yres, bpp, enable: ENABLE_ON, virt_width, x_offset, y_offset }
    }

    #[test]
    fn the_model_is_the_drivers_rule() {
        let usable = 13 << 20;
        assert_eq!(model(&regs(32, 1024, 768, 1024, 0, 0), usable), Some(XRGB_1024));
        assert_eq!(model(&regs(32, 1024, 768, 1024, 0, 256), usable), Some(XRGB_1024));
        let rgb = Want { drm_format: DRM_FORMAT_RGB888, width: 800, height: 600, stride: 2400, size: 1_441_792 };
        assert_eq!(model(&regs(24, 800, 600, 800, 0, 0), usable), Some(rgb));
        for bpp in [8, 15, 16] {
            assert_eq!(model(&regs(bpp, 1024, 768, 1024, 0, 0), usable), None, "{bpp} bpp");
        }
        // Start 4, not page aligned.
        assert_eq!(regs(32, 1024, 768, 1024, 1, 0).start(), 4);
        assert_eq!(model(&regs(32, 1024, 768, 1024, 1, 0), usable), None);
        // 3328 lines of 4096 bytes: a plane of 768 lines fits from line 2560, not from 2561.
        assert!(model(&regs(32, 1024, 768, 1024, 0, 2560), usable).is_some());
        assert_eq!(model(&regs(32, 1024, 768, 1024, 0, 2561), usable), None);
        let off = Regs { enable: ENABLE_ON & !DISPI_ENABLED, ..regs(32, 1024, 768, 1024, 0, 0) };
        assert_eq!(model(&off, usable), None);
        assert_eq!(regs(15, 1024, 768, 1024, 0, 0).stride(), 2048);
    }

    #[test]
    fn patterns_are_by_place() {
        let whole = pattern(3, 0, 8192);
        assert_eq!(pattern(3, 5, 100), whole[5..105]);
        assert_eq!(pattern(3, 4096, 4096), whole[4096..]);
        assert_ne!(pattern(3, 0, 4096), pattern(3, MIB, 4096));
        assert_ne!(pattern(3, 0, 4096), pattern(4, 0, 4096));
        assert!(compare("x", &whole, &whole, 0).is_ok());
        let mut bad = whole.clone();
        bad[77] ^= 1;
        let e = compare("x", &bad, &whole, 0x1000).expect_err("differs");
        assert!(e.contains("0x104d") && e.contains("1 of 0x2000"), "{e}");
    }

    #[test]
    fn marker_runs_are_found() {
        let mut b = vec![0u8; 3 * PAGE as usize];
        assert_eq!(marker_run(&b), None);
        b[100..100 + PAGE as usize - 1].fill(MARKER);
        assert_eq!(marker_run(&b), None);
        b[100 + PAGE as usize - 1] = MARKER;
        assert_eq!(marker_run(&b), Some(100));
        assert!(no_marker("x", &b).is_err());
        assert!(all_ones("x", &[0xff; 16]).is_ok() && all_ones("x", &[0xff, 0]).is_err());
        assert_eq!(mark("pan6", 0x3000), b"pan6@3000.......");
    }
}
