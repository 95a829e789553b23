// SPDX-License-Identifier: GPL-2.0
//! Result 6: a pan moves the display region under an existing mapping. With the mapping of
//! result 5 (the plane's size, from region offset 0) still in place, `Y_OFFSET` 256 at
//! 1024x768x32 puts the start at 1 MiB: the plane query names the same plane, and the same
//! mapping, `pread` and writes through the mapping reach the framebuffer from 1 MiB on; back at
//! `Y_OFFSET` 0 the mapping shows offset 0 again.

use vfio_client::harness::Gpu;
use vfio_client::tap::ensure;
use vfio_client::{Mmap, RegionInfo};

use crate::display::*;

const SEED_PAN: u64 = 6;

pub fn pan(g: &mut Gpu, r9: &RegionInfo, m: Option<&mut Mmap>) -> Result<(), String> {
    let m = m.ok_or("no mapping of region 9 from result 5")?;
    let len = m.len();
    let mut c = Checks::default();
    let p0 = mode_1024(g)?;
    // One pattern over both places: what is at 0 and at 1 MiB differs everywhere.
    fb_pattern(g, 0, MIB + len as u64, SEED_PAN);
    let at0 = pattern(SEED_PAN, 0, len);
    let at1 = pattern(SEED_PAN, MIB, len);
    compare("before the pan, the mapping", &map_read(m, 0, len)?, &at0, 0)?;

    let r = pan_to(g, 0, 256)?;
    c.add("Y_OFFSET 256: start 1 MiB", ensure(r.start() == MIB, || r.to_string()));
    let p1 = primary(g)?;
    println!("# panned to 1 MiB: {}", show(&p1));
    c.add(
        "the same plane, in region 9",
        ensure(answer(&p1) == answer(&p0), || format!("{} (at start 0: {})", show(&p1), show(&p0))),
    );
    c.add("the same mapping shows 1 MiB", compare("the mapping after the pan", &map_read(m, 0, len)?, &at1, MIB));
    c.add("pread shows 1 MiB", compare("pread after the pan", &pread(g, r9, 0, len)?, &at1, MIB));
    let off = 0x3000u64;
    let m16 = mark("pan6", off);
    let r = map_write(m, off as usize, &m16).and_then(|()| {
        let (moved, stayed) = (g.fb_bytes((MIB + off) as usize, 16)?, g.fb_bytes(off as usize, 16)?);
        ensure(moved == m16 && stayed[..] == at0[off as usize..off as usize + 16], || {
            format!(
                "BAR0 at 1 MiB + {off:#x}: {moved:02x?} (expected {m16:02x?}); at {off:#x}: {stayed:02x?} (unchanged?)"
            )
        })
    });
    c.add("a write through the mapping lands at 1 MiB + its offset", r);
    // The write is part of what offset 0 shows now (1 MiB + 0x3000 lies within the plane).
    let mut at0 = at0;
    let w = (MIB + off) as usize;
    if w + m16.len() <= at0.len() {
        at0[w..w + m16.len()].copy_from_slice(&m16);
    }

    let r = pan_to(g, 0, 0)?;
    c.add("Y_OFFSET 0: start 0", ensure(r.start() == 0, || r.to_string()));
    c.add("the mapping shows offset 0 again", compare("the mapping back at 0", &map_read(m, 0, len)?, &at0, 0));
    c.done()
}
