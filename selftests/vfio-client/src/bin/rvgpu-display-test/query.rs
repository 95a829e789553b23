// SPDX-License-Identifier: GPL-2.0
//! Results 1-3: `VFIO_DEVICE_QUERY_GFX_PLANE` itself: which flag combinations it takes, its
//! `argsz`, a disabled display, the cursor plane and bad plane types, the plane of each mode.

use std::mem::{offset_of, size_of};

use vfio_client::harness::Gpu;
use vfio_client::rvgpu::*;
use vfio_client::tap::{ensure, es, expect_errno};
use vfio_client::uapi::{
    as_bytes, read_pod, DRM_FORMAT_RGB888, DRM_PLANE_TYPE_OVERLAY, DRM_PLANE_TYPE_PRIMARY, VFIO_DEVICE_QUERY_GFX_PLANE,
    VFIO_GFX_PLANE_TYPE_DMABUF as DMABUF, VFIO_GFX_PLANE_TYPE_PROBE as PROBE, VFIO_GFX_PLANE_TYPE_REGION as REGION,
};

use crate::display::{answer, check_plane, cursor, primary, set_mode, show, Checks, Plane, Want, ENABLE_ON, XRGB_1024};

/// What the kernel copies in and out: the struct up to the end of `region_index` (the union),
/// as the VFIO samples do; a smaller `argsz` is refused.
const MINSZ: usize = offset_of!(Plane, region_index) + size_of::<u32>();

/// Result 1: the flag combinations and `argsz`.
pub fn flags(g: &Gpu) -> Result<(), String> {
    let d = &g.dev;
    let mut c = Checks::default();
    // QEMU probes with drm_plane_type 0.
    c.add("PROBE|REGION (plane type 0)", d.query_gfx_plane(PROBE | REGION, 0).map(drop).map_err(es));
    c.add("PROBE|REGION (primary)", d.query_gfx_plane(PROBE | REGION, DRM_PLANE_TYPE_PRIMARY).map(drop).map_err(es));
    let refused = [
        ("PROBE|DMABUF (plane type 0)", PROBE | DMABUF, 0),
        ("PROBE|DMABUF (primary)", PROBE | DMABUF, DRM_PLANE_TYPE_PRIMARY),
        ("DMABUF (primary)", DMABUF, DRM_PLANE_TYPE_PRIMARY),
        ("flags 0", 0, DRM_PLANE_TYPE_PRIMARY),
        ("PROBE alone", PROBE, DRM_PLANE_TYPE_PRIMARY),
        ("REGION|DMABUF", REGION | DMABUF, DRM_PLANE_TYPE_PRIMARY),
        ("PROBE|REGION|DMABUF", PROBE | REGION | DMABUF, DRM_PLANE_TYPE_PRIMARY),
        ("1 << 3", 1 << 3, DRM_PLANE_TYPE_PRIMARY),
        ("REGION|1 << 3", REGION | 1 << 3, DRM_PLANE_TYPE_PRIMARY),
        ("PROBE|REGION|1 << 3", PROBE | REGION | 1 << 3, 0),
    ];
    for (what, flags, ty) in refused {
        c.add(what, expect_errno(what, d.query_gfx_plane(flags, ty), libc::EINVAL));
    }

    // argsz: the reference answer with the whole struct, then shorter and longer.
    let full = d.query_gfx_plane(REGION, DRM_PLANE_TYPE_PRIMARY);
    if let Ok(p) = &full {
        println!("# REGION|PRIMARY, argsz {}: {}", size_of::<Plane>(), show(p));
    }
    c.add("REGION|PRIMARY with the whole struct", full.as_ref().map(drop).map_err(es));
    let min = MINSZ as u32;
    for (what, argsz, flags) in [
        ("argsz 0", 0, REGION),
        ("argsz offsetofend(region_index) - 1", min - 1, REGION),
        ("PROBE|REGION with argsz offsetofend(region_index) - 1", min - 1, PROBE | REGION),
    ] {
        c.add(
            what,
            expect_errno(what, d.query_gfx_plane_with_argsz(argsz, flags, DRM_PLANE_TYPE_PRIMARY), libc::EINVAL),
        );
    }
    let exact = d.query_gfx_plane_with_argsz(min, REGION, DRM_PLANE_TYPE_PRIMARY);
    c.add(
        format!("argsz {min} (offsetofend(region_index))"),
        match (&exact, &full) {
            (Ok(e), Ok(f)) => ensure(answer(e) == answer(f), || format!("{} vs {}", show(e), show(f))),
            (Err(e), _) => Err(e.to_string()),
            (_, Err(_)) => Err("no reference answer".into()),
        },
    );
    c.add("PROBE|REGION with argsz offsetofend(region_index)", {
        d.query_gfx_plane_with_argsz(min, PROBE | REGION, 0).map(drop).map_err(es)
    });
    c.add("argsz 4096: the same answer, nothing written past offsetofend(region_index)", {
        match &full {
            Ok(f) => large_argsz(g, f),
            Err(_) => Err("no reference answer".into()),
        }
    });
    c.done()
}

/// A 4 KiB argument, everything past `drm_plane_type` filled with 0x5a: the output fields are
/// the reference answer's, every byte past [`MINSZ`] is left as it was.
fn large_argsz(g: &Gpu, reference: &Plane) -> Result<(), String> {
    let mut buf = vec![0x5au8; 4096];
    let mut hdr: Plane = read_pod(&buf, 0).unwrap_or_default();
    hdr.argsz = buf.len() as u32;
    hdr.flags = REGION;
    hdr.drm_plane_type = DRM_PLANE_TYPE_PRIMARY;
    buf[..size_of::<Plane>()].copy_from_slice(as_bytes(&hdr));
    g.dev.ioctl(VFIO_DEVICE_QUERY_GFX_PLANE, &mut buf).map_err(|e| format!("argsz 4096: {e}"))?;
    let got: Plane = read_pod(&buf, 0).unwrap_or_default();
    println!("# REGION|PRIMARY, argsz 4096: {}", show(&got));
    let want = as_bytes(reference);
    ensure(buf[4..MINSZ] == want[4..MINSZ], || format!("argsz 4096: {} vs {}", show(&got), show(reference)))?;
    match buf[MINSZ..].iter().position(|&b| b != 0x5a) {
        None => Ok(()),
        Some(i) => Err(format!("argsz 4096: byte {:#x} was written ({:#04x})", MINSZ + i, buf[MINSZ + i])),
    }
}

/// Result 2: a disabled display, the cursor plane, bad plane types.
pub fn disabled_and_cursor(g: &Gpu) -> Result<(), String> {
    let mut c = Checks::default();
    g.set_dispi(DISPI_INDEX_ENABLE, 0)?;
    let p = primary(g)?;
    println!("# display off (ENABLE 0): {}", show(&p));
    c.add("ENABLE 0: no plane", check_plane(&p, None));
    // A whole mode programmed, the display not on.
    let writes = [
        (DISPI_INDEX_BPP, 32),
        (DISPI_INDEX_XRES, 1024),
        (DISPI_INDEX_YRES, 768),
        (DISPI_INDEX_VIRT_WIDTH, 1024),
        (DISPI_INDEX_X_OFFSET, 0),
        (DISPI_INDEX_Y_OFFSET, 0),
        (DISPI_INDEX_ENABLE, ENABLE_ON & !DISPI_ENABLED),
    ];
    for (i, v) in writes {
        g.set_dispi(i, v)?;
    }
    let p = primary(g)?;
    println!("# 1024x768x32 with ENABLE {:#x}: {}", ENABLE_ON & !DISPI_ENABLED, show(&p));
    c.add("LFB_ENABLED|NOCLEARMEM without ENABLED: no plane", check_plane(&p, None));

    let cursor_empty = |what: &str| -> Result<(), String> {
        let p = cursor(g)?;
        println!("# cursor plane, {what}: {}", show(&p));
        ensure(
            p.drm_format == 0
                && p.size == 0
                && p.width == 0
                && p.height == 0
                && p.x_hot == u32::MAX
                && p.y_hot == u32::MAX,
            || format!("cursor plane, {what}: {}", show(&p)),
        )
    };
    c.add("cursor, display off", cursor_empty("display off"));
    c.add("cursor, display on", set_mode(g, 32, 1024, 768).and_then(|_| cursor_empty("display on")));
    // QEMU's region display queries with the plane type left 0 (OVERLAY): that is the primary
    // plane, as in the kernel's mdpy sample, which ignores the type.
    let r = g.dev.query_gfx_plane(REGION, DRM_PLANE_TYPE_OVERLAY).map_err(|e| format!("REGION, type 0: {e}"));
    c.add(
        "REGION, plane type 0 (as QEMU asks) is the primary plane",
        r.and_then(|p0| primary(g).map(|p1| (p0, p1))).and_then(|(p0, p1)| {
            ensure(show(&p0) == show(&p1) && p0.drm_format != 0, || {
                format!("type 0: {}, primary: {}", show(&p0), show(&p1))
            })
        }),
    );
    for ty in [3, 4, u32::MAX] {
        let what = format!("REGION, plane type {ty}");
        c.add(&what, expect_errno(&what, g.dev.query_gfx_plane(REGION, ty), libc::EINVAL));
    }
    g.set_dispi(DISPI_INDEX_ENABLE, 0)?;
    c.done()
}

/// Sets a mode and checks its plane.
fn mode_plane(g: &Gpu, bpp: u16, xres: u16, yres: u16, want: Option<Want>) -> Result<(), String> {
    set_mode(g, bpp, xres, yres)?;
    let p = primary(g)?;
    println!("# {xres}x{yres}x{bpp}: {}", show(&p));
    check_plane(&p, want)
}

/// Result 3: the plane of each mode.
pub fn modes(g: &Gpu) -> Result<(), String> {
    let mut c = Checks::default();
    c.add("1024x768x32", mode_plane(g, 32, 1024, 768, Some(XRGB_1024)));
    let rgb = Want { drm_format: DRM_FORMAT_RGB888, width: 800, height: 600, stride: 2400, size: 1_441_792 };
    c.add("800x600x24", mode_plane(g, 24, 800, 600, Some(rgb)));
    for bpp in [8, 15, 16] {
        c.add(format!("1024x768x{bpp}"), mode_plane(g, bpp, 1024, 768, None));
    }
    g.set_dispi(DISPI_INDEX_ENABLE, 0)?;
    c.done()
}
