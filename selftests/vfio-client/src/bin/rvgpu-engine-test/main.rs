// SPDX-License-Identifier: GPL-2.0
//! rvgpu's interrupts and command engine (uapi/rvgpu.h, registers 0x700 - 0x73f), checked through
//! VFIO as QEMU uses it.
//!
//! `rvgpu-engine-test GPU UUID_A UUID_B [--iommufd]`: `GPU` is the physical GPU's PCI address,
//! `UUID_A` and `UUID_B` two vGPUs on it (created by the caller, of the same type, closed). Results
//! are TAP lines numbered through the in-VM runner's counters (`$TAP_STATE`, see
//! `selftests/lib.sh`); the caller's `plan` must match [`RESULTS`].
//!
//! Expectations beyond the header, made explicit here:
//!
//! * `VFIO_DEVICE_SET_IRQS` follows vfio-pci: the core's validation (index, start/count, one data
//!   type, known flags, argsz) fails with `EINVAL`; a set of several actions or none fails with
//!   `EINVAL` (or `ENOTTY`, what vfio-pci answers); loopback triggers with `DATA_NONE` /
//!   `DATA_BOOL` signal the eventfd; a disabled index refuses triggers with `EINVAL`.
//! * MSI is enabled as QEMU does it: the guest's MSI control write reaches the device's config
//!   space, then `SET_IRQS` gives the eventfd (and the reverse to disable).
//! * A command that fails is skipped as a whole when its arguments are wrong (nothing of a
//!   rectangle outside the framebuffer is written).
//! * A bad `TAIL` runs nothing and leaves `HEAD` where it was, so the next valid doorbell goes on
//!   from there. Writing `RING_SIZE` resets `HEAD`/`TAIL` even while the engine is busy: at most
//!   the command under way completes.
//! * `ERROR` is cleared by writing 0 to it.
//!
//! When the engine is left running by a failed check, the ring is stopped (`RING_SIZE` 0, wait
//! for not busy) and programmed again, so later checks still mean something.
//!
//! Commands are built with [`vfio_client::rvgpu::Cmd`], the header's `struct rvgpu_cmd`. The
//! checks live in modules by feature: [`irq`] (interrupt info, `SET_IRQS`, INTx), [`commands`]
//! (the ring, FILL, COPY, FENCE with MSI), [`errors`] (every error code), [`lifecycle`] (unmap
//! race, two vGPUs, VBLANK, closing with work in flight or the vblank timer running) and
//! [`pins`] (the pin cache). They share [`vfio_client::harness`] (the ring's layout and [`Gpu`])
//! and this test's part of it, [`gpu`].

mod commands;
mod errors;
mod gpu;
mod irq;
mod lifecycle;
mod pins;

use vfio_client::harness::{Args, Gpu};
use vfio_client::rvgpu::*;
use vfio_client::tap::{ensure, es, Tap};
use vfio_client::{EventFd, OpenPath};

use crate::commands::{
    copy_from_fb_test, copy_to_fb_test, doorbell_runs_at_once, fence_msi_test, fill_test, ring_setup,
};
use crate::errors::{bad_args, bad_opcode, dma_fault, fb_range, ring_error};
use crate::gpu::{pinned_pages, EngineGpu};
use crate::irq::{intx_test, irq_info, set_irqs_validation};
use crate::lifecycle::{close_in_flight, two_vgpus, unmap_race, vblank, vblank_close};
use crate::pins::{pins, remap_storm};

/// How many results one run reports.
const RESULTS: usize = 22;

// ----- this test's guest memory layout (the ring's is the harness's) ---------------------------

/// The data buffer's length (source and destination of copies, at `DATA_IOVA`).
const DATA_LEN: usize = 4 << 20;
/// The buffer unmapped while commands use it.
const VICTIM_IOVA: u64 = 0x3000_0000;
const VICTIM_LEN: usize = 1 << 20;
/// A read-only mapping.
const RO_IOVA: u64 = 0x6000_0000;
/// Never mapped.
const HOLE_IOVA: u64 = 0x7000_0000;

// ----- helpers ----------------------------------------------------------------------------------

/// The result of a check that hands back the vGPU it left open, and that vGPU.
fn kept(r: Result<Gpu, String>) -> (Result<(), String>, Option<Gpu>) {
    match r {
        Ok(g) => (Ok(()), Some(g)),
        Err(e) => (Err(e), None),
    }
}

/// A deterministic byte pattern (xorshift), different for each seed.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn main() {
    let Args { mut tap, gpu, uuid_a: ua, uuid_b: ub, path, tag } = Args::parse("rvgpu-engine-test");
    if let Err(e) = run(&mut tap, &gpu, &ua, &ub, path, tag) {
        println!("# aborted: {e}");
    }
    // Anything not reported counts as failed (the runner also checks the plan).
    tap.fill_to(RESULTS, &format!("[{tag}] (not reached)"));
}

fn run(tap: &mut Tap, gpu: &str, ua: &str, ub: &str, path: OpenPath, tag: &str) -> Result<(), String> {
    let mut a = Gpu::open(ua, path)?;
    let mut b = Gpu::open(ub, path)?;
    let t = |s: &str| format!("[{tag}] {s}");
    let msi = EventFd::new().map_err(es)?;
    let intx = EventFd::new().map_err(es)?;

    tap.result(
        &t("interrupt info: INTx count 1 EVENTFD|MASKABLE|AUTOMASKED, MSI count 1 EVENTFD, no MSI-X; pin A"),
        irq_info(&a),
    );
    tap.result(
        &t("SET_IRQS: bad index/start/count/flags and fds refused; eventfd teardown with -1; DATA_NONE/DATA_BOOL loopback triggers"),
        set_irqs_validation(&a),
    );
    tap.result(
        &t("ring: base/size read back, HEAD/TAIL follow the doorbell and reset on a RING_SIZE write"),
        ring_setup(&mut a),
    );
    tap.result(&t("FILL writes exactly its rectangle of the framebuffer"), fill_test(&mut a));
    tap.result(&t("COPY_TO_FB copies guest memory into the framebuffer byte for byte"), copy_to_fb_test(&mut a));
    tap.result(&t("COPY_FROM_FB copies the framebuffer into guest memory byte for byte"), copy_from_fb_test(&mut a));
    tap.result(
        &t("FENCE: value in guest memory and RVGPU_REG_FENCE, COMPLETION status (W1C), MSI eventfd"),
        fence_msi_test(&mut a, &msi),
    );
    tap.result(
        &t("a doorbell on an idle GPU runs a small batch itself: the FENCE has landed when the write returns (20 of 20); a page not pinned yet is left to the work item"),
        doorbell_runs_at_once(&mut a, &msi),
    );
    tap.result(
        &t("INTx: completion signals, the line stays masked until VFIO unmask, unmask re-signals while pending"),
        intx_test(&mut a, &intx, &msi),
    );

    // Errors, with MSI on and only the error interrupt enabled.
    let e = a.set_reg(REG_IRQ_ENABLE, IRQ_ERROR);
    tap.result(
        &t("error BAD_OPCODE: ERROR, ERROR_HEAD, error interrupt; the next command runs"),
        e.clone().and_then(|()| bad_opcode(&mut a, &msi)),
    );
    tap.result(
        &t("error FB_RANGE (incl. u32 overflows): nothing written; the next command runs"),
        e.clone().and_then(|()| fb_range(&mut a, &msi)),
    );
    tap.result(
        &t("error DMA_FAULT: unmapped, partly mapped and read-only guest memory; the next command runs"),
        e.clone().and_then(|()| dma_fault(&mut a, &msi)),
    );
    tap.result(
        &t("error RING: TAIL unaligned or beyond RING_SIZE, unreadable ring; nothing runs; the next command runs"),
        e.clone().and_then(|()| ring_error(&mut a, &msi)),
    );
    tap.result(
        &t("error BAD_ARGS: zero/misaligned sizes, width > stride, height where there is none"),
        e.and_then(|()| bad_args(&mut a, &msi)),
    );

    tap.result(
        &t("unmapping a buffer under queued commands: no crash, DMA_FAULT + error interrupt, the engine goes on"),
        unmap_race(&mut a, &msi),
    );
    tap.result(
        &t("two vGPUs submitting at once: each framebuffer holds only its own fills"),
        two_vgpus(&mut a, &mut b),
    );
    tap.result(
        &t("VBLANK: interrupts and VBLANK_COUNT advance at a rate within the type's frame-rate limit"),
        vblank(&mut a, &msi),
    );

    // Close with work in flight; reopen.
    let (r, a) = kept(close_in_flight(a, ua, path));
    tap.result(&t("closing the device with a batch in flight, then reopening: power-on state, the engine works"), r);

    // A closed: the next two open it themselves (B stays open throughout).
    drop(a);
    tap.result(&t("closing while the vblank timer runs, 200 times"), vblank_close(ua, path));
    let (r, a) = kept(pins(gpu, ua, path));
    tap.result(&t("pins: more guest pages than the pin cache holds, then unmap and close release them all"), r);

    drop(a);
    tap.result(
        &t("unmapping and mapping again, over and over, the buffer a running ring copies from: the host survives, commands complete or DMA_FAULT, the engine works afterwards"),
        remap_storm(gpu, ua, path),
    );
    // Everything closed: nothing may stay pinned.
    if let Ok(n) = pinned_pages(gpu) {
        println!("# pinned_pages with B still open: {n}");
    }
    drop(b);
    let r = pinned_pages(gpu).and_then(|n| ensure(n == 0, || format!("{n} pages still pinned with every vGPU closed")));
    tap.result(&t("no guest pages pinned once every vGPU is closed (nvidia/pinned_pages)"), r);
    Ok(())
}
