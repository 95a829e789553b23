// SPDX-License-Identifier: GPL-2.0
//! rvgpu's live migration (VFIO migration v2 with STOP_COPY, P2P and PRE_COPY, DMA logging, and
//! the stream of `uapi/rvgpu.h`), checked through VFIO as QEMU uses it.
//!
//! `rvgpu-migration-test GPU UUID_A UUID_B [--iommufd]`: `GPU` is the physical GPU's PCI address,
//! `UUID_A` and `UUID_B` two vGPUs on it (created by the caller, of the same type, closed). Both
//! are opened by this process, A as the usual source and B as the destination: a migration here
//! is a stream read from one device's data fd and written into the other's, with the "guest
//! memory" (the ring buffer) copied from one process mapping to the other, as QEMU would. Results
//! are TAP lines numbered through the in-VM runner's counters (`$TAP_STATE`, see
//! `selftests/lib.sh`); the caller's `plan` must match [`RESULTS`] (twice, once per path).
//!
//! Expectations beyond the contract, made explicit here (the kernel side should match them):
//!
//! * The PRE_COPY data ends at a record boundary when `initial_bytes` reaches 0, and reading the
//!   saving fd in PRE_COPY never blocks (it returns `ENOMSG` or 0 at the temporary end).
//! * `initial_bytes` counts what is left of the header and the framebuffer; whether record heads
//!   are counted is left open: the first value must lie between `64 + fb_size` and that plus
//!   16 bytes per VRAM record, and it never grows while reading.
//! * Changes to the framebuffer made while in PRE_COPY, through the mmap as well as by the
//!   engine, reach the destination: later PRE_COPY reads or STOP_COPY send the changed pages.
//! * Restoring a state never clears the framebuffer, whatever `NOCLEARMEM` says: the source here
//!   enables its display as bochs-drm does (`ENABLED | LFB_ENABLED`).
//! * Register reads (BAR2), configuration space reads and framebuffer reads through the mmap
//!   work in STOP and give the state that is (or was) saved; in STOP_COPY only registers are
//!   read (VBLANK_COUNT, COMPLETED: to see them stand still), nothing is written but through the
//!   data fd.
//! * A `TAIL` written in STOP reads back at once and is what the STATE record carries; the
//!   commands run when the device is RUNNING again (here or on the destination).
//! * After a refused stream the device is in ERROR once `RESUMING -> STOP` was tried (it fails
//!   with `EINVAL` whether `write()` refused first or not); `VFIO_DEVICE_RESET` gives RUNNING at
//!   power-on state (memory decode off, so the test turns it back on).
//! * The data fd is kept open across `RESUMING -> STOP` and across leaving the saving group, and
//!   closed after; a session's fd that outlives a reset or a close of the device fails or reads
//!   0, and neither blocks.
//!
//! The checks live in modules by feature: [`fsm`] (results 1-2: the feature, the state machine),
//! [`quiesce`] (3), [`precopy`] (4-5: the saving fd), [`migrate`] (6-8: A to B and back),
//! [`corrupt`] (9: bad streams), [`reset`] (10: reset and close mid-session), [`dirty`] (11: DMA
//! logging), [`vram`] (12: the framebuffer's dirty tracking). They share [`vfio_client::harness`] (the ring's layout and [`Gpu`]), this test's
//! part of it, [`gpu`], and the migration steps, [`mig`].

mod corrupt;
mod dirty;
mod fsm;
mod gpu;
mod mig;
mod migrate;
mod precopy;
mod quiesce;
mod reset;
mod vram;

use std::time::Duration;

use vfio_client::harness::{Args, Gpu};
use vfio_client::tap::{es, Tap};
use vfio_client::{EventFd, OpenPath};

use crate::gpu::{write_params, MigrationGpu};

/// How many results one run reports.
const RESULTS: usize = 12;

// ----- this test's guest memory layout (the ring's is the harness's) ---------------------------

/// The data buffer's length (source and destination of copies, at `DATA_IOVA`).
const DATA_LEN: usize = 1 << 20;
const PAGE: usize = 4096;

/// A's `vgpu_params` (B starts with none), so that a migration visibly carries them.
const PARAMS_A: &str = "frame_rate_limiter=0";

/// How long a read or close that must not block is given.
const HANG_TIMEOUT: Duration = Duration::from_secs(10);

fn main() {
    let Args { mut tap, uuid_a: ua, uuid_b: ub, path, tag, .. } = Args::parse("rvgpu-migration-test");
    // Both closed: the parameters can be set (a migration into B earlier may have changed B's).
    let params = write_params(&ua, PARAMS_A).and_then(|()| write_params(&ub, ""));
    match params {
        Err(e) => println!("# aborted: setting vgpu_params: {e}"),
        Ok(()) => {
            if let Err(e) = run(&mut tap, &ua, &ub, path, tag) {
                println!("# aborted: {e}");
            }
        }
    }
    // Anything not reported counts as failed (the runner also checks the plan).
    tap.fill_to(RESULTS, &format!("[{tag}] (not reached)"));
    for u in [&ua, &ub] {
        if let Err(e) = write_params(u, "") {
            println!("# resetting the vgpu_params of {u}: {e}");
        }
    }
}

fn run(tap: &mut Tap, ua: &str, ub: &str, path: OpenPath, tag: &str) -> Result<(), String> {
    let mut a = Gpu::open(ua, path)?;
    let mut b = Gpu::open(ub, path)?;
    let t = |s: &str| format!("[{tag}] {s}");
    let msi = EventFd::new().map_err(es)?;

    tap.result(
        &t("migration feature: flags STOP_COPY|P2P|PRE_COPY, RUNNING after open, DMA logging PROBE"),
        fsm::feature(&a),
    );
    tap.result(
        &t("device state FSM: every single arc from RUNNING and back, combination arcs, illegal targets EINVAL"),
        fsm::arcs(&mut a),
    );
    tap.result(
        &t("STOP and STOP_COPY quiesce: a doorbell does not run, no MSI, VBLANK_COUNT frozen; RUNNING runs it"),
        quiesce::stop_quiesces(&mut a, &msi),
    );
    let (r, session) = precopy::precopy(&mut a);
    tap.result(
        &t("PRE_COPY: header, the framebuffer in VRAM records, initial_bytes drains to 0, ENOMSG/0; PRECOPY_INFO argsz/state EINVAL, v2 opt-in flags"),
        r,
    );
    tap.result(
        &t("STOP_COPY: the same fd goes on to STATE and END, then 0; STOP -> STOP_COPY streams it all; MIG_DATA_SIZE"),
        precopy::stop_copy(&mut a, session),
    );
    tap.result(
        &t("A -> B, idle: B's config space, BAR2 registers, framebuffer and vgpu_params are A's"),
        migrate::idle(&mut a, &mut b),
    );
    tap.result(
        &t("A -> B with commands queued: B runs the rest, COMPLETED goes on from A's, the FILLs land in B"),
        migrate::ring_midway(&mut a, &mut b),
    );
    tap.result(
        &t("A -> B -> A -> B -> A: the framebuffer (incl. PRE_COPY changes), registers and params each hop"),
        migrate::round_trips(&mut a, &mut b),
    );
    let (r, good) = corrupt::corrupted_streams(&mut a, &mut b);
    tap.result(&t("corrupted streams refused with EINVAL, then ERROR, reset to RUNNING, a good stream works"), r);

    let (r, a) = reset::reset_mid_session(a, &mut b, ua, path, good);
    tap.result(
        &t("reset in RESUMING, STOP_COPY and PRE_COPY, close in STOP_COPY: RUNNING again, the data fd does not hang"),
        r,
    );
    let Some(mut a) = a else { return Err("A did not open again".into()) };
    tap.result(
        &t("DMA logging: COPY_FROM_FB and FENCE pages reported, the report clears, a second START refused, STOP"),
        dirty::dma_logging(&mut a),
    );
    tap.result(
        &t("VRAM dirty tracking: pages changed in PRE_COPY (mmap, pwrite, FILL) sent again, exactly; STOP_COPY only what changed since"),
        vram::dirty_tracking(&mut a, &mut b),
    );
    Ok(())
}
