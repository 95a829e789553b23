// SPDX-License-Identifier: GPL-2.0
//! rvgpu's display plane, checked through VFIO as QEMU's `display=on` uses it: the plane query
//! (`VFIO_DEVICE_QUERY_GFX_PLANE`, region planes only) and the display region (index 9), whose
//! offset 0 is the guest's scan-out start inside the framebuffer.
//!
//! `rvgpu-display-test GPU UUID_A UUID_B [--iommufd]`: `GPU` is the physical GPU's PCI address,
//! `UUID_A` and `UUID_B` two vGPUs on it (created by the caller, of the same type, closed). A is
//! the one under test, B's framebuffer holds a marker A must never see. Results are TAP lines
//! numbered through the in-VM runner's counters (`$TAP_STATE`, see `selftests/lib.sh`); the
//! caller's `plan` must match [`RESULTS`] (twice, once per path).
//!
//! Expectations beyond the contract, made explicit here (the kernel side should match them):
//!
//! * The kernel exchanges the plane struct up to the end of `region_index` (60 bytes, the
//!   struct is 64): a smaller `argsz` is `EINVAL`, a larger one is fine and nothing past those
//!   60 bytes is written.
//! * Modes are set here with `NOCLEARMEM` and with `VIRT_WIDTH` and the offsets written before
//!   `ENABLED` (as bochs-drm does), and read back; pans write `X_OFFSET` and `Y_OFFSET` with the
//!   display on. A pan that would put the plane past the usable framebuffer may be clamped by
//!   the device (QEMU's `vbe_fixup_regs`); the plane query then describes the registers as
//!   they read back, so no plane past the end is ever reported ([`display::model`]).
//! * Accesses of the display region are page-sized and page-aligned where they approach the
//!   usable end: one access either reaches the framebuffer or reads all-ones (writes dropped).
//! * A mapped page of the display region past the usable framebuffer (or any page while the
//!   start is not page aligned) raises `SIGBUS`: those are never touched, only read with `pread`.
//! * `VFIO_DEVICE_RESET` turns memory decode off, so the display region's `pread` reads
//!   all-ones until the test turns it on again, as a guest driver would.
//!
//! The checks live in modules: [`query`] (results 1-3: the query's flags and `argsz`, disabled
//! and cursor planes, the plane of each mode), [`region`] (4: the region's info, 5: its contents
//! at start 0, 7: its bounds, 9: reset), [`pan`] (6: a pan under an existing mapping),
//! [`isolation`] (8: never another vGPU's slice). They share [`display`].

mod display;
mod isolation;
mod pan;
mod query;
mod region;

use vfio_client::harness::Args;
use vfio_client::rvgpu::REGION_DISPLAY;
use vfio_client::tap::Tap;
use vfio_client::OpenPath;

use crate::display::MARKER;

/// How many results one run reports.
const RESULTS: usize = 9;

fn main() {
    let Args { mut tap, uuid_a: ua, uuid_b: ub, path, tag, .. } = Args::parse("rvgpu-display-test");
    if let Err(e) = run(&mut tap, &ua, &ub, path, tag) {
        println!("# aborted: {e}");
    }
    // Anything not reported counts as failed (the runner also checks the plan).
    tap.fill_to(RESULTS, &format!("[{tag}] (not reached)"));
}

fn run(tap: &mut Tap, ua: &str, ub: &str, path: OpenPath, tag: &str) -> Result<(), String> {
    let mut a = display::open(ua, path)?;
    let mut b = display::open(ub, path)?;
    let usable = a.fb_size as u64;
    println!("# usable framebuffer: A {usable:#x}, B {:#x}", b.fb_size);
    let size = b.fb_size;
    b.fb_fill(0, size, MARKER);
    let t = |s: &str| format!("[{tag}] {s}");

    tap.result(
        &t("QUERY_GFX_PLANE: PROBE|REGION supported; PROBE|DMABUF, DMABUF and every other flag combination EINVAL; argsz below offsetofend(region_index) EINVAL, exactly it, the whole struct and 4 KiB work"),
        query::flags(&a),
    );
    tap.result(
        &t("QUERY_GFX_PLANE: a disabled display is no plane; the cursor plane is empty with hotspot 0xffffffff; type 0 (QEMU's) is the primary plane; types 3 and up EINVAL"),
        query::disabled_and_cursor(&a),
    );
    tap.result(
        &t("QUERY_GFX_PLANE: 1024x768x32 is XRGB8888 stride 4096 size 3 MiB in region 9, 800x600x24 RGB888 stride 2400 size 1441792; 8, 15 and 16 bpp no plane"),
        query::modes(&a),
    );
    let r9 = a.dev.region_info(REGION_DISPLAY);
    tap.result(
        &t("display region: 10 regions; region 9 the usable framebuffer's size, READ|WRITE|MMAP, type 0x80001234 subtype 1; index 10 EINVAL"),
        region::info(&a, r9.as_ref(), usable),
    );
    let r9 = r9.map_err(|e| format!("GET_REGION_INFO(9): {e}"))?;
    let (r, mut m9) = region::content(&mut a, &r9);
    tap.result(
        &t("display region at start 0: BAR0's contents through its mmap and pread; writes through its mmap and pwrite land in BAR0"),
        r,
    );
    tap.result(
        &t("pan to Y_OFFSET 256 (start 1 MiB): the same plane; the same mapping, pread and writes follow to 1 MiB; Y_OFFSET 0 brings the mapping back"),
        pan::pan(&mut a, &r9, m9.as_mut()),
    );
    tap.result(
        &t("an unaligned start is no plane; never a plane past the usable end; past it all-ones, writes dropped; past the region pread, pwrite and mmap EINVAL"),
        region::bounds(&mut a, &r9, usable),
    );
    tap.result(
        &t("isolation: at A's largest start, A's display region (pread of all of it, its mapping) never shows B's framebuffer, writes past its end reach neither"),
        isolation::isolation(&mut a, &b, &r9, usable),
    );
    tap.result(
        &t("VFIO_DEVICE_RESET: no plane, and the display region (pread and the same mapping) starts at framebuffer offset 0 again"),
        region::reset(&mut a, &r9, m9.as_ref()),
    );
    Ok(())
}
