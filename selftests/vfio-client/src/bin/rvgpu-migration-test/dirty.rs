// SPDX-License-Identifier: GPL-2.0
//! Result 11: DMA logging. With logging started over the ring and data buffers, every guest page
//! the engine wrote (COPY_FROM_FB destinations, a FENCE target) is reported dirty, and a report
//! clears what it returned; pages it only read (COPY_TO_FB sources, the ring) may be reported
//! too by a conservative device, which is only printed. A second START is refused; STOP ends
//! logging.

use vfio_client::harness::{Gpu, DATA_IOVA, RING_BUF, RING_IOVA, SCRATCH};
use vfio_client::rvgpu::*;
use vfio_client::tap::{all, ensure, es};

use crate::mig::recover;
use crate::{DATA_LEN, PAGE};

const PS: u64 = PAGE as u64;
const RANGES: [(u64, u64); 2] = [(RING_IOVA, RING_BUF as u64), (DATA_IOVA, DATA_LEN as u64)];

fn name(iova: u64) -> String {
    if (RING_IOVA..RING_IOVA + RING_BUF as u64).contains(&iova) {
        format!("ring+{:#x}", iova - RING_IOVA)
    } else {
        format!("data+{:#x}", iova.wrapping_sub(DATA_IOVA))
    }
}

fn names(pages: &[u64]) -> String {
    if pages.is_empty() {
        return "none".into();
    }
    pages.iter().map(|&p| name(p)).collect::<Vec<_>>().join(" ")
}

/// `DMA_LOGGING_REPORT` of both buffers: the dirty pages.
fn report(g: &Gpu) -> Result<Vec<u64>, String> {
    let mut pages = Vec::new();
    for (iova, len) in RANGES {
        let bm = g.dev.dma_logging_report(iova, len, PS).map_err(|e| format!("REPORT {}: {e}", name(iova)))?;
        pages.extend(bm.dirty());
    }
    Ok(pages)
}

fn logged(g: &mut Gpu) -> Result<(), String> {
    let before = report(g)?;
    println!("# dirty before any command: {}", names(&before));
    // Sources of COPY_TO_FB: data pages 0-3, only read.
    g.data.write_bytes(0, &[0x5a; 4 * PAGE]).map_err(es)?;
    g.set_scratch(0x200, 0)?;
    let data = |page: usize| DATA_IOVA + (page * PAGE) as u64;
    let cmds = [
        Cmd::copy_to_fb(data(0), PAGE as u32, 0x50_0000, 4096, 4096, 4),
        // Three lines 8 KiB apart: pages 16, 18 and 20, not 17 and 19.
        Cmd::copy_from_fb(data(16), 2 * PAGE as u32, 0x50_0000, 4096, 256, 3),
        // One line across a page boundary: pages 39 and 40.
        Cmd::copy_from_fb(data(40) - 256, PAGE as u32, 0x50_0000, 4096, 512, 1),
        // The FENCE target: the ring buffer's page of scratch offset 0x200.
        Cmd::fence(Gpu::scratch_iova(0x200), 0xd1d1_0001),
    ];
    g.run(&cmds)?;
    let err = g.reg(REG_ERROR)?;
    ensure(err == ERR_NONE, || format!("ERROR {err} after the copies and the fence"))?;
    let fence_page = (Gpu::scratch_iova(0x200) / PS) * PS;
    let want = [data(16), data(18), data(20), data(39), data(40), fence_page];
    let got = report(g)?;
    let extra: Vec<u64> = got.iter().copied().filter(|p| !want.contains(p)).collect();
    println!("# dirty after the commands: {} (extra to the pages written: {})", names(&got), names(&extra));
    let missing: Vec<u64> = want.iter().copied().filter(|p| !got.contains(p)).collect();
    let mut checks = vec![(
        "pages written".to_string(),
        ensure(missing.is_empty(), || format!("not reported dirty: {}", names(&missing))),
    )];
    let again = report(g)?;
    println!("# dirty at a second report: {}", names(&again));
    let stale: Vec<u64> = want.iter().copied().filter(|p| again.contains(p)).collect();
    checks.push((
        "the report cleared them".into(),
        ensure(stale.is_empty(), || format!("still dirty at the next report: {}", names(&stale))),
    ));
    let second = g.dev.dma_logging_start(PS, &RANGES);
    checks.push((
        "a second START".into(),
        match second {
            Ok(ps) => Err(format!("succeeded (page size {ps}) while logging")),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EINVAL)) => {
                println!("# a second DMA_LOGGING_START: {e}");
                Ok(())
            }
            Err(e) => Err(format!("failed with {e}, not EBUSY or EINVAL")),
        },
    ));
    // Logging goes on after the refused START.
    let r = (|| {
        let off = 0x1000 + 0x40;
        g.set_scratch(off, 0)?;
        g.run(&[Cmd::fence(Gpu::scratch_iova(off), 0xd1d1_0002)])?;
        let page = (Gpu::scratch_iova(off) / PS) * PS;
        let got = report(g)?;
        ensure(got.contains(&page), || format!("the fence page {} is not reported: {}", name(page), names(&got)))
    })();
    checks.push(("logging after the refused START".into(), r));
    all(checks)
}

pub fn dma_logging(g: &mut Gpu) -> Result<(), String> {
    recover(g)?;
    g.setup_ring()?;
    g.clear()?;
    let ps = g.dev.dma_logging_start(PS, &RANGES).map_err(|e| format!("DMA_LOGGING_START: {e}"))?;
    println!("# DMA_LOGGING_START over {} and {}: page size {ps}", name(RING_IOVA), name(DATA_IOVA));
    let r = logged(g);
    let stop = g.dev.dma_logging_stop().map_err(|e| format!("DMA_LOGGING_STOP: {e}"));
    let after = (|| {
        match g.dev.dma_logging_report(RING_IOVA, RING_BUF as u64, PS) {
            Ok(bm) => return Err(format!("REPORT after STOP succeeded: {}", names(&bm.dirty()))),
            Err(e) => println!("# DMA_LOGGING_REPORT after STOP: {e}"),
        }
        g.dev.dma_logging_start(PS, &RANGES).map_err(|e| format!("START again: {e}"))?;
        g.dev.dma_logging_stop().map_err(|e| format!("STOP again: {e}"))
    })();
    all(vec![("logging".into(), r), ("STOP".into(), stop), ("after STOP".into(), after)])
}

/// The scratch area is where the fences of this result go: in the ring buffer, above the ring.
const _: () = assert!(SCRATCH + 0x1040 + 4 <= RING_BUF);
