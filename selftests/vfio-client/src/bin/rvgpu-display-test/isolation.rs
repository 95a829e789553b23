// SPDX-License-Identifier: GPL-2.0
//! Result 8: the display region never reaches another vGPU's slice. B's framebuffer holds only
//! [`MARKER`] (since the start of the run); A, panned to the largest start that still makes a
//! 1024x768x32 plane (with the widest page-multiple stride its type allows), reads all of its
//! display region with `pread` (a page at a time, so no read straddles the usable end) and the
//! part of a whole-region mapping that is inside its usable framebuffer: A's framebuffer from
//! the start, then all-ones, never a page of B's marker. `pwrite`s past A's usable end are
//! dropped: neither A's framebuffer nor B's changes.

use vfio_client::harness::Gpu;
use vfio_client::rvgpu::*;
use vfio_client::tap::ensure;
use vfio_client::{Prot, RegionInfo};

use crate::display::*;

const SEED_ISOLATION: u64 = 8;

/// The `(VIRT_WIDTH, Y_OFFSET)` with the largest start at 1024x768x32 that still makes a plane:
/// `VIRT_WIDTH` a multiple of 1024 (the stride a multiple of 4 KiB, so every start is page
/// aligned) up to the type's maximum width, `Y_OFFSET` up to its maximum height, the plane
/// ending inside the usable framebuffer.
fn largest_start(g: &Gpu, usable: u64) -> Result<(u16, u16), String> {
    let max_w = u64::from(g.reg(REG_MAX_WIDTH)?.min(0xfff8));
    let max_h = u64::from(g.reg(REG_MAX_HEIGHT)?.min(0xffff));
    let best = (1..=max_w / 1024)
        .filter_map(|k| {
            let stride = 4096 * k;
            let y = (usable / stride).checked_sub(768)?.min(max_h);
            Some((y * stride, 1024 * k, y))
        })
        .max()
        .ok_or_else(|| format!("no 1024x768x32 plane fits in {usable:#x} bytes"))?;
    Ok((best.1 as u16, best.2 as u16))
}

pub fn isolation(a: &mut Gpu, b: &Gpu, r9: &RegionInfo, usable: u64) -> Result<(), String> {
    let mut c = Checks::default();
    c.add("B's framebuffer holds its marker", b_intact(b));
    fb_pattern(a, 0, usable, SEED_ISOLATION);
    let (virt_width, y) = largest_start(a, usable)?;
    mode_1024(a)?;
    a.set_dispi(DISPI_INDEX_VIRT_WIDTH, virt_width)?;
    let r = pan_to(a, 0, y)?;
    let start = r.start();
    let p = primary(a)?;
    println!(
        "# A at its largest start {start:#x} (VIRT_WIDTH {virt_width}, Y_OFFSET {y}) of {usable:#x}: {}",
        show(&p)
    );
    let want_plane = model(&r, usable);
    c.add(
        "a plane at the largest start",
        ensure(r.virt_width == virt_width && want_plane.is_some(), || format!("{r}: no plane by the rule"))
            .and_then(|()| check_plane(&p, want_plane)),
    );

    let size = r9.size;
    let live = (usable - start) as usize;
    let want = pattern(SEED_ISOLATION, start, live);
    let mut seen = Vec::with_capacity(size as usize);
    for off in (0..size).step_by(PAGE as usize) {
        seen.extend(pread(a, r9, off, PAGE as usize)?);
    }
    c.add("pread: A's framebuffer from the start", compare("pread", &seen[..live], &want, start));
    c.add("pread: all-ones past the usable end", all_ones("pread past the usable end", &seen[live..]));
    c.add("pread: no page of B's marker", no_marker("pread of region 9", &seen));

    let m = a.dev.mmap_region(r9, 0, size as usize, Prot::READ).map_err(|e| format!("mmap region 9: {e}"))?;
    let mapped = map_read(&m, 0, live)?;
    drop(m);
    c.add("the mapping: A's framebuffer from the start", compare("mapping", &mapped, &want, start));
    c.add("the mapping: no page of B's marker", no_marker("mapping of region 9", &mapped));

    let zeros = vec![0u8; 64 << 10];
    let mut r = Ok(());
    let mut off = live as u64;
    while off < size && r.is_ok() {
        let n = (size - off).min(zeros.len() as u64) as usize;
        r = a.dev.write_region_all(r9, off, &zeros[..n]).map_err(|e| format!("pwrite region 9 at {off:#x}: {e}"));
        off += n as u64;
    }
    c.add("pwrite past the usable end", r);
    let whole = pattern(SEED_ISOLATION, 0, usable as usize);
    c.add("A's framebuffer is unchanged", compare("A's framebuffer", a.fb.as_slice(), &whole, 0));
    c.add("B's framebuffer still holds its marker", b_intact(b));
    c.add("back to start 0", pan_to(a, 0, 0).map(drop));
    c.done()
}
