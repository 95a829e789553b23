// SPDX-License-Identifier: GPL-2.0
//! Results 4, 5, 7 and 9: the display region's info, its contents at start 0 (read and written
//! through its mapping and the device file), its bounds (an unaligned start, planes that would
//! not fit, past the usable framebuffer, past the region), and `VFIO_DEVICE_RESET`.
//!
//! A mapped page of the display region whose framebuffer offset is past the usable part raises
//! `SIGBUS` (as does every page while the start is not page aligned): those are only read with
//! `pread`.

use std::io;

use vfio_client::harness::Gpu;
use vfio_client::rvgpu::*;
use vfio_client::tap::{ensure, es, expect_errno};
use vfio_client::uapi::{
    VFIO_REGION_INFO_FLAG_CAPS, VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
};
use vfio_client::{Mmap, Prot, RegionInfo};

use crate::display::*;

const SEED_CONTENT: u64 = 5;
const SEED_BOUNDS: u64 = 7;
const SEED_RESET: u64 = 9;

/// Result 4: the region's info, the device's region count, index 10.
pub fn info(g: &Gpu, r9: Result<&RegionInfo, &io::Error>, usable: u64) -> Result<(), String> {
    let mut c = Checks::default();
    let want_regions = REGION_DISPLAY + 1;
    let info = g.dev.info().map_err(|e| format!("GET_INFO: {e}"))?;
    let opened = g.dev.open_info();
    c.add(
        "num_regions",
        ensure(info.num_regions == want_regions && opened.num_regions == want_regions, || {
            format!("GET_INFO {info:?}, at open {opened:?}")
        }),
    );
    let rw_mmap = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP;
    let want_type = Some((REGION_TYPE_DISPLAY, REGION_SUBTYPE_SCANOUT));
    c.add(
        "region 9",
        match r9 {
            Ok(r) => {
                println!("# region 9: size {:#x} flags {:?} offset {:#x} caps {:?}", r.size, r.flag_names(), r.offset, r.caps);
                ensure(
                    r.size == usable
                        && r.flags & !VFIO_REGION_INFO_FLAG_CAPS == rw_mmap
                        && r.region_type() == want_type,
                    || format!("{r:#?}\nexpected size {usable:#x} (BAR0's sparse mmap area), READ|WRITE|MMAP, type {want_type:x?}"),
                )
            }
            Err(e) => Err(format!("GET_REGION_INFO(9): {e}")),
        },
    );
    c.add("region 10", expect_errno("GET_REGION_INFO(10)", g.dev.region_info(10), libc::EINVAL));
    c.add(
        "region 10, 32-byte argsz",
        expect_errno("GET_REGION_INFO(10), argsz 32", g.dev.region_info_with_argsz(10, 32), libc::EINVAL),
    );
    c.done()
}

/// Result 5: at start 0, the region shows the framebuffer from 0, through a mapping of the
/// plane's size and through the device file, and writes through either land in BAR0. The
/// mapping is returned for the pan and the reset.
pub fn content(g: &mut Gpu, r9: &RegionInfo) -> (Result<(), String>, Option<Mmap>) {
    let plane = match mode_1024(g) {
        Ok(p) => p,
        Err(e) => return (Err(e), None),
    };
    let len = plane.size as usize;
    match g.dev.mmap_region(r9, 0, len, Prot::RW) {
        Ok(mut m) => (content_checks(g, r9, &mut m), Some(m)),
        Err(e) => (Err(format!("mmap region 9 0+{len:#x}: {e}")), None),
    }
}

fn content_checks(g: &mut Gpu, r9: &RegionInfo, m: &mut Mmap) -> Result<(), String> {
    let len = m.len();
    let mut c = Checks::default();
    fb_pattern(g, 0, len as u64, SEED_CONTENT);
    let want = pattern(SEED_CONTENT, 0, len);
    c.add("the mapping shows BAR0 from 0", compare("region 9 mapping", &map_read(m, 0, len)?, &want, 0));
    c.add("pread shows BAR0 from 0", compare("region 9 pread", &pread(g, r9, 0, len)?, &want, 0));

    let bar0 = g.dev.region_info(REGION_BAR0).map_err(|e| format!("GET_REGION_INFO(BAR0): {e}"))?;
    for off in [0, 0x12345, len as u64 - 16] {
        let what = format!("a write through the mapping at {off:#x}");
        let m16 = mark("map5", off);
        let r = map_write(m, off as usize, &m16).and_then(|()| {
            let (via_map, via_file) = (g.fb_bytes(off as usize, 16)?, pread(g, &bar0, off, 16)?);
            ensure(via_map == m16 && via_file == m16, || {
                format!("BAR0 at {off:#x}: mapping {via_map:02x?}, pread {via_file:02x?}, expected {m16:02x?}")
            })
        });
        c.add(what, r);
    }
    let off = 0x2000;
    let m16 = mark("pwrite5", off);
    let r =
        g.dev.write_region_all(r9, off, &m16).map_err(|e| format!("pwrite region 9 at {off:#x}: {e}")).and_then(|()| {
            let got = g.fb_bytes(off as usize, 16)?;
            ensure(got == m16, || format!("BAR0 at {off:#x} reads {got:02x?}, expected {m16:02x?}"))
        });
    c.add("a pwrite of region 9 lands in BAR0", r);
    c.done()
}

/// Result 7: an unaligned start, planes that would not fit, the usable end, the region's end.
pub fn bounds(g: &mut Gpu, r9: &RegionInfo, usable: u64) -> Result<(), String> {
    let mut c = Checks::default();
    mode_1024(g)?;
    fb_pattern(g, 0, 2 * MIB, SEED_BOUNDS);
    fb_pattern(g, usable - PAGE, PAGE, SEED_BOUNDS);

    // X_OFFSET 1 at 32 bpp: start 4. The mapping is not touched (it cannot show it).
    let r = pan(g, 1, 0)?;
    c.add("X_OFFSET 1 reads back, start 4", ensure(r.x_offset == 1 && r.start() == 4, || r.to_string()));
    let p = primary(g)?;
    println!("# start 4: {}", show(&p));
    c.add("an unaligned start: no plane", check_plane(&p, None));
    c.add(
        "pread follows an unaligned start",
        pread(g, r9, 0, 256).and_then(|got| compare("region 9 at start 4", &got, &pattern(SEED_BOUNDS, 4, 256), 4)),
    );
    pan_to(g, 0, 0)?;

    // Planes that would end past the usable framebuffer: the device either clamps the offsets
    // (QEMU's vbe_fixup_regs) or says no plane; never a plane past the end.
    let max_w = (g.reg(REG_MAX_WIDTH)?.min(0xfff8) & !7) as u16;
    let lines = |stride: u64| (usable / stride).saturating_sub(768) + 1;
    let attempts = [
        ("Y_OFFSET (usable - 1 MiB) / 4096", 1024, (usable - MIB) / PAGE),
        ("the first Y_OFFSET that does not fit", 1024, lines(4096)),
        ("VIRT_WIDTH at the maximum, the first Y_OFFSET that does not fit", max_w, lines(u64::from(max_w) * 4)),
    ];
    for (what, virt_width, y) in attempts {
        let r = mode_1024(g).and_then(|_| {
            g.set_dispi(DISPI_INDEX_VIRT_WIDTH, virt_width)?;
            let y = u16::try_from(y).unwrap_or(u16::MAX);
            let r = pan(g, 0, y)?;
            let p = primary(g)?;
            let end = r.start() + r.stride() * u64::from(r.yres);
            println!(
                "# asked VIRT_WIDTH {virt_width} Y_OFFSET {y}: {r}, plane end {end:#x} of {usable:#x}: {}",
                show(&p)
            );
            check_plane(&p, model(&r, usable))
        });
        c.add(what, r);
    }

    // Start 1 MiB: the region's last MiB is past the usable framebuffer.
    mode_1024(g)?;
    let r = pan_to(g, 0, 256)?;
    let live = usable - r.start();
    c.add(
        "pread at the usable end: all-ones",
        pread(g, r9, live, PAGE as usize).and_then(|b| all_ones("region 9 at the usable end", &b)),
    );
    c.add(
        "pread of the region's last page: all-ones",
        pread(g, r9, r9.size - PAGE, PAGE as usize).and_then(|b| all_ones("region 9's last page", &b)),
    );
    let last = pattern(SEED_BOUNDS, usable - PAGE, PAGE as usize);
    c.add(
        "pread of the last usable page",
        pread(g, r9, live - PAGE, PAGE as usize)
            .and_then(|b| compare("region 9's last usable page", &b, &last, usable - PAGE)),
    );
    let r = g
        .dev
        .write_region_all(r9, live, &[0u8; PAGE as usize])
        .map_err(|e| format!("pwrite past the usable end: {e}"))
        .and_then(|()| pread(g, r9, live, PAGE as usize))
        .and_then(|b| all_ones("region 9 at the usable end, after a pwrite", &b))
        .and_then(|()| {
            compare(
                "BAR0's last usable page",
                &g.fb_bytes((usable - PAGE) as usize, PAGE as usize)?,
                &last,
                usable - PAGE,
            )
        });
    c.add("a pwrite past the usable end is dropped", r);

    // Past the region.
    let size = r9.size;
    let (mut one, mut four) = ([0u8; 1], [0u8; 4]);
    c.add(
        "pread at the region size",
        expect_errno("pread at the region size", g.dev.read_region(r9, size, &mut one), libc::EINVAL),
    );
    c.add(
        "pread across the region's end",
        expect_errno("pread of 4 bytes at size - 2", g.dev.read_region(r9, size - 2, &mut four), libc::EINVAL),
    );
    c.add(
        "pwrite at the region size",
        expect_errno("pwrite at the region size", g.dev.write_region(r9, size, &[0]), libc::EINVAL),
    );
    let maps = [
        ("mmap of size + 4 KiB", 0, size + PAGE),
        ("mmap of a page at the region size", size, PAGE),
        ("mmap of two pages across the end", size - PAGE, 2 * PAGE),
    ];
    for (what, off, len) in maps {
        c.add(what, expect_errno(what, g.dev.mmap_region(r9, off, len as usize, Prot::RW), libc::EINVAL));
    }
    // The whole region maps (nothing of it is touched).
    c.add("mmap of the whole region", g.dev.mmap_region(r9, 0, size as usize, Prot::RW).map(drop).map_err(es));
    pan_to(g, 0, 0)?;
    c.done()
}

/// Result 9: after `VFIO_DEVICE_RESET` the display is off (no plane) and the region starts at
/// framebuffer offset 0 again, through the device file and the mapping of result 5.
pub fn reset(g: &mut Gpu, r9: &RegionInfo, m: Option<&Mmap>) -> Result<(), String> {
    let mut c = Checks::default();
    mode_1024(g)?;
    let before = pan_to(g, 0, 256)?;
    g.dev.reset().map_err(|e| format!("VFIO_DEVICE_RESET: {e}"))?;
    let cmd = g.cfg_read16(4)?;
    println!("# after the reset: command {cmd:#x}; memory decode on again");
    // A reset turns memory decode off: on again, as a guest would.
    g.enable()?;
    let r = Regs::read(g)?;
    println!("# registers before the reset: {before}; after: {r}");
    c.add("the display is off, offsets 0", ensure(!r.enabled() && r.start() == 0, || r.to_string()));
    c.add(
        "no plane",
        primary(g).and_then(|p| {
            println!("# after the reset: {}", show(&p));
            check_plane(&p, None)
        }),
    );
    fb_pattern(g, 0, 2 * MIB, SEED_RESET);
    let len = 4 * PAGE as usize;
    let at0 = pattern(SEED_RESET, 0, len);
    c.add(
        "pread of region 9 reads offset 0",
        pread(g, r9, 0, len).and_then(|b| compare("region 9 pread", &b, &at0, 0)),
    );
    c.add(
        "the mapping of result 5 shows offset 0",
        match m {
            Some(m) => map_read(m, 0, len).and_then(|b| compare("region 9 mapping", &b, &at0, 0)),
            None => Err("no mapping of region 9 from result 5".into()),
        },
    );
    c.add(
        "region 9 keeps its size",
        g.dev
            .region_info(REGION_DISPLAY)
            .map_err(es)
            .and_then(|i| ensure(i.size == r9.size, || format!("size {:#x}, was {:#x}", i.size, r9.size))),
    );
    c.done()
}
