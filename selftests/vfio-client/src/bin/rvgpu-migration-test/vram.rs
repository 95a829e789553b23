// SPDX-License-Identifier: GPL-2.0
//! Result 12: the framebuffer's dirty tracking. Once PRE_COPY's initial data is read (and the
//! device is idle, so nothing is dirty), pages changed through the mmap (one byte, and a span of
//! three pages), by `pwrite()` on the region and by a FILL are counted in `dirty_bytes`, and the
//! next reads send exactly those pages, as they are now. A page written again after it was sent
//! is sent again, and so is a page written through the display region's mapping: in STOP_COPY,
//! which (and `MIG_DATA_SIZE` before it) then holds those two pages,
//! the STATE and the END instead of the framebuffer. The destination gets the source's whole
//! framebuffer, and `nvidia/migration` counts the pages sent again.

use std::collections::BTreeSet;

use vfio_client::harness::Gpu;
use vfio_client::migration::stream::{self, Record, RECORD_SIZE, STATE_SIZE};
use vfio_client::rvgpu::*;
use vfio_client::tap::{all, ensure};
use vfio_client::{DeviceState, Prot};

use crate::gpu::{first_difference, sysfs_counter};
use crate::mig::{read_initial, read_to_end, recover, resume, set, set_fd, set_nofd, WRITE_CHUNK};
use crate::PAGE;

/// The pages (framebuffer offsets) of the VRAM records of `bytes` from byte `from` on, checked
/// against `g`'s framebuffer now.
fn sent_pages(g: &Gpu, bytes: &[u8], from: usize) -> Result<BTreeSet<usize>, String> {
    let p = stream::parse(bytes);
    let later: Vec<&Record<'_>> = p.records.iter().filter(|r| r.at >= from).collect();
    let mut pages = BTreeSet::new();
    for r in later.iter().filter(|r| r.head.kind == MIG_REC_VRAM) {
        let off = r.head.offset as usize;
        ensure(off % PAGE == 0 && r.data.len() % PAGE == 0, || {
            format!("VRAM record {off:#x}+{:#x} is not whole pages", r.data.len())
        })?;
        let want = g.fb.as_slice().get(off..off + r.data.len()).ok_or("a VRAM record beyond the framebuffer")?;
        if let Some(i) = first_difference(r.data, want) {
            return Err(format!("VRAM record at {off:#x}: byte {:#x} is not the framebuffer's", off + i));
        }
        pages.extend((off..off + r.data.len()).step_by(PAGE));
    }
    Ok(pages)
}

fn show(pages: &BTreeSet<usize>) -> String {
    pages.iter().map(|p| format!("{p:#x}")).collect::<Vec<_>>().join(" ")
}

type Checks = Vec<(String, Result<(), String>)>;

fn tracked(a: &mut Gpu, b: &mut Gpu) -> Result<Checks, String> {
    let mut checks = Vec::new();
    recover(a)?;
    recover(b)?;
    a.sync_tail()?;
    a.clear()?;
    // Display off: the display region starts at framebuffer offset 0.
    a.set_dispi(DISPI_INDEX_ENABLE, 0)?;
    let fb = a.fb_size;
    let resent0 = sysfs_counter(&a.uuid, "vram_resent_pages")?;
    let fd = set_fd(a, DeviceState::PreCopy)?;
    let mut bytes = Vec::new();
    read_initial(&fd, &mut bytes)?;
    let i0 = fd.precopy_info().map_err(|e| format!("PRECOPY_INFO: {e}"))?;
    println!("# after the initial data: initial_bytes {} dirty_bytes {}", i0.initial_bytes, i0.dirty_bytes);
    checks.push((
        "nothing dirty after the initial data, the device idle".into(),
        ensure(i0.initial_bytes == 0 && i0.dirty_bytes == 0, || {
            format!("initial_bytes {} dirty_bytes {}", i0.initial_bytes, i0.dirty_bytes)
        }),
    ));

    // Four ways to change the framebuffer, 7 pages in all.
    let (p1, p2, p3, p4) = (fb / 4, fb / 2, fb / 8, fb / 4 * 3);
    let byte = a.fb.as_slice()[p1 + 0x123] ^ 0x5a;
    a.fb_set(p1 + 0x123, &[byte])?;
    let span: Vec<u8> = (0..3 * PAGE).map(|i| (i * 7 + 3) as u8).collect();
    a.fb_set(p2, &span)?;
    let bar0 = a.dev.region_info(REGION_BAR0).map_err(|e| format!("BAR0 REGION_INFO: {e}"))?;
    a.dev.write_region_all(&bar0, (p3 + 100) as u64, &[0xa5; 64]).map_err(|e| format!("pwrite BAR0: {e}"))?;
    a.run(&[Cmd::fill(p4 as u32, 4096, 4096, 2, 0x6b6b_0001)])?;
    let want: BTreeSet<usize> = [p1, p2, p2 + PAGE, p2 + 2 * PAGE, p3, p4, p4 + PAGE].into();
    // The display region (index 9) shows the framebuffer from the scan-out start (0: the display
    // is off here): a mapping of it is a fifth way to write, checked below.
    let r9 = a.dev.region_info(REGION_DISPLAY).map_err(|e| format!("region 9 REGION_INFO: {e}"))?;
    let mut disp = a.dev.mmap_region(&r9, 0, 2 * PAGE, Prot::RW).map_err(|e| format!("mmap region 9: {e}"))?;

    let i1 = fd.precopy_info().map_err(|e| format!("PRECOPY_INFO: {e}"))?;
    println!("# after changing 7 pages: initial_bytes {} dirty_bytes {}", i1.initial_bytes, i1.dirty_bytes);
    let (lo, hi) = (7 * PAGE as u64, 7 * (PAGE + RECORD_SIZE) as u64);
    checks.push((
        "dirty_bytes counts the 7 changed pages".into(),
        ensure(i1.initial_bytes == 0 && (lo..=hi).contains(&i1.dirty_bytes), || {
            format!("initial_bytes {} dirty_bytes {} (want 0 and {lo}..={hi})", i1.initial_bytes, i1.dirty_bytes)
        }),
    ));
    let pre = bytes.len();
    read_initial(&fd, &mut bytes)?;
    let got = sent_pages(a, &bytes, pre)?;
    println!("# PRE_COPY sent again: {}", show(&got));
    checks.push((
        "the next PRE_COPY reads send exactly the changed pages, as they are now".into(),
        ensure(got == want, || format!("sent {}, changed {}", show(&got), show(&want))),
    ));
    let i2 = fd.precopy_info().map_err(|e| format!("PRECOPY_INFO: {e}"))?;
    checks.push((
        "nothing dirty once they are sent".into(),
        ensure(i2.dirty_bytes == 0, || format!("dirty_bytes {}", i2.dirty_bytes)),
    ));

    // The first page again: its mapping was write-protected when it was sent; and page 1
    // through the display region's mapping, which was zapped as well.
    a.fb_set(p1 + 0x124, &[byte ^ 0xff])?;
    let old = disp.as_slice()[PAGE + 8];
    disp.write_bytes(PAGE + 8, &[old ^ 0x33]).map_err(|e| format!("write through region 9: {e}"))?;
    drop(disp);
    set_nofd(a, DeviceState::PreCopyP2p)?;
    set_nofd(a, DeviceState::StopCopy)?;
    let size = a.dev.mig_data_size().map_err(|e| format!("MIG_DATA_SIZE: {e}"))?;
    let most = (2 * PAGE + 4 * RECORD_SIZE + STATE_SIZE) as u64;
    println!("# MIG_DATA_SIZE in STOP_COPY with two pages changed: {size} (the framebuffer is {fb})");
    checks.push((
        "MIG_DATA_SIZE in STOP_COPY: two pages, STATE, END".into(),
        ensure(size >= (2 * PAGE + STATE_SIZE) as u64 && size <= most, || {
            format!("{size}, not in {}..={most}", 2 * PAGE + STATE_SIZE)
        }),
    ));
    let pre = bytes.len();
    read_to_end(&fd, &mut bytes)?;
    let got = sent_pages(a, &bytes, pre)?;
    println!("# STOP_COPY: {} bytes, pages {}", bytes.len() - pre, show(&got));
    checks.push((
        "STOP_COPY sends the two pages written since (BAR0 and display-region mappings), then STATE and END".into(),
        ensure(got == BTreeSet::from([PAGE, p1]) && bytes.len() - pre <= most as usize, || {
            format!("{} bytes with pages {}", bytes.len() - pre, show(&got))
        }),
    ));
    set_nofd(a, DeviceState::Stop)?;
    drop(fd);
    let resent = sysfs_counter(&a.uuid, "vram_resent_pages")? - resent0;
    checks.push((
        "nvidia/migration counts the 9 pages sent again".into(),
        ensure(resent == 9, || format!("vram_resent_pages went up by {resent}")),
    ));

    b.fb_fill(0, b.fb_size, 0xee);
    resume(b, &bytes, WRITE_CHUNK)?;
    checks.push((
        "the destination's framebuffer is the source's".into(),
        first_difference(b.fb.as_slice(), a.fb.as_slice()).map_or(Ok(()), |i| Err(format!("it differs at {i:#x}"))),
    ));
    set(b, DeviceState::Running)?;
    set(a, DeviceState::Running)?;
    Ok(checks)
}

/// Result 12.
pub fn dirty_tracking(a: &mut Gpu, b: &mut Gpu) -> Result<(), String> {
    match tracked(a, b) {
        Ok(checks) => all(checks),
        Err(e) => {
            let _ = recover(a);
            let _ = recover(b);
            Err(e)
        }
    }
}
