// SPDX-License-Identifier: GPL-2.0
//! Region access: pread/pwrite of every region index (the invalid 10 and huge indexes encoded
//! in the offset included) at offsets in range, near and across the end and across region
//! boundaries, of 0 to 64 KiB; and mmap of every region at page-aligned (and unaligned) offsets
//! and lengths, valid and not, touching what the kernel maps: one byte read per page, some
//! pages written for the framebuffer regions.
//!
//! A mapping the kernel accepted must be usable: a SIGSEGV or SIGBUS while touching it kills the
//! worker, which the parent reports with the operation's name.

use std::os::fd::{AsFd, AsRawFd, RawFd};

use vfio_client::rvgpu::*;

use crate::shared::{Fam, Rng, Slot};
use crate::worker::{Dev, Worker, BAR_DMA_IOVA, INDEX_SHIFT, LAST_INDEX, PAGE};

/// A region index, mostly a real one: `(index, size known at open, device-file offset)`.
fn pick_region(rng: &Rng, d: &Dev) -> (u64, u64, u64) {
    let index = rng.weighted(&[
        (5, u64::from(REGION_BAR0)),
        (5, u64::from(REGION_BAR2)),
        (4, u64::from(REGION_CONFIG)),
        (4, u64::from(REGION_DISPLAY)),
        (1, 1),
        (1, 3),
        (1, 4),
        (1, 5),
        (1, 6),
        (1, 8),
        (2, u64::from(LAST_INDEX)),
        (1, u64::MAX),
    ]);
    if index == u64::MAX {
        // A huge index: still a valid file offset.
        let i = rng.range(u64::from(LAST_INDEX) + 1, (1 << 22) - 1);
        return (i, 0, i << INDEX_SHIFT);
    }
    (index, d.size(index as u32), d.base(index as u32))
}

/// An offset into a region of `size` bytes for an access of `len`.
fn pick_offset(rng: &Rng, index: u64, size: u64, len: u64) -> u64 {
    let align = rng.pick(&[1, 2, 4, 4, 8, 4096]);
    match rng.below(12) {
        0..=3 if size > 0 => rng.below(size) / align * align,
        4 => size.saturating_sub(rng.below(65)),
        5 => size.saturating_sub(len / 2),
        6 => size + rng.below(1 << 20),
        // Across the boundary into the next index.
        7 => (1u64 << INDEX_SHIFT) - rng.below(len + 1).max(1),
        8 => rng.below(1 << INDEX_SHIFT),
        // The register window's interesting parts.
        9 if index == u64::from(REGION_BAR2) => {
            rng.pick(&[MMIO_ENGINE, MMIO_DISPI, MMIO_QEXT, MMIO_EDID]) + rng.below(0x40) / align * align
        }
        _ => rng.below(0x800) / align * align,
    }
}

/// One pread or pwrite.
pub fn rw_op(w: &mut Worker) {
    let Worker { dev, rng, sh, iobuf, .. } = w;
    let Some(d) = dev.as_ref() else { return };
    let (index, size, base) = pick_region(rng, d);
    let len = rng.size(iobuf.len() as u64) as usize;
    let off = pick_offset(rng, index, size, len as u64);
    let write = rng.percent(45);
    let Some(at) = base.checked_add(off).filter(|&a| a < 1 << 62) else { return };
    if write {
        sh.set_op("pwrite");
        let data = &mut iobuf[..len];
        match rng.below(5) {
            0 => data.fill(0),
            1 => data.fill(0xff),
            2 => {
                // Values a driver might write: small numbers in each 32-bit word.
                for c in data.chunks_mut(4) {
                    let v = (rng.below(64) as u32).to_le_bytes();
                    c.copy_from_slice(&v[..c.len()]);
                }
            }
            _ => rng.fill(data),
        }
        let r = d.dev.pwrite(at, data);
        sh.rec(Fam::Region, &r);
    } else {
        sh.set_op("pread");
        let r = d.dev.pread(at, &mut iobuf[..len]);
        sh.rec(Fam::Region, &r);
    }
}

/// How a mapping is touched.
#[derive(Clone, Copy)]
enum How {
    /// Loads and stores: a fault the kernel refuses kills the worker.
    Direct,
    /// Through a pipe, `write()` from the page and `read()` into it (read end, write end): the
    /// kernel touches the page, and a fault it refuses is `EFAULT` (counted), not a signal. For
    /// the display region, whose pages past the usable framebuffer (all of them while the
    /// scan-out start is not page-aligned) raise SIGBUS by its contract.
    Pipe(RawFd, RawFd),
}

/// One byte read at `at` of the mapping at `p`.
fn touch_read(sh: &Slot, how: How, p: *mut u8, at: u64) {
    // SAFETY: `at` lies inside the mapping, which the kernel mapped readable.
    let q = unsafe { p.add(at as usize) };
    match how {
        // SAFETY: as above.
        How::Direct => drop(std::hint::black_box(unsafe { std::ptr::read_volatile(q) })),
        How::Pipe(r, w) => {
            // SAFETY: the kernel reads one byte at `q` (inside the mapping) into the pipe.
            let n = unsafe { libc::write(w, q.cast(), 1) };
            sh.rec(Fam::Mmap, &cvt_len(n));
            if n == 1 {
                let mut b = [0u8; 1];
                // SAFETY: one byte into `b`.
                unsafe { libc::read(r, b.as_mut_ptr().cast(), 1) };
            }
        }
    }
}

/// One byte written at `at` of the mapping at `p`.
fn touch_write(sh: &Slot, how: How, p: *mut u8, at: u64, v: u8) {
    // SAFETY: `at` lies inside the mapping, which the kernel mapped writable; it is device
    // memory, no Rust object lives there.
    let q = unsafe { p.add(at as usize) };
    match how {
        // SAFETY: as above.
        How::Direct => unsafe { std::ptr::write_volatile(q, v) },
        How::Pipe(r, w) => {
            // SAFETY: one byte from `v` into the pipe.
            if unsafe { libc::write(w, (&v as *const u8).cast(), 1) } != 1 {
                return;
            }
            // SAFETY: the kernel writes one byte at `q` (inside the mapping, as above).
            let n = unsafe { libc::read(r, q.cast(), 1) };
            sh.rec(Fam::Mmap, &cvt_len(n));
            if n != 1 {
                let mut b = [0u8; 1];
                // SAFETY: the byte left in the pipe, into `b`.
                unsafe { libc::read(r, b.as_mut_ptr().cast(), 1) };
            }
        }
    }
}

/// Touches pages `[first, end)` of the mapping at `p`: reads one byte of some (up to 256) of
/// them if `read`, writes one byte of a few if `write`.
#[allow(clippy::too_many_arguments)]
fn touch(rng: &Rng, sh: &Slot, how: How, p: *mut u8, first: u64, end: u64, read: bool, write: bool) {
    if end <= first {
        return;
    }
    let pages = end - first;
    let mut chosen: Vec<u64> = vec![first, end - 1];
    if pages <= 256 {
        chosen.extend(first..end);
    } else {
        chosen.extend((0..256).map(|_| first + rng.below(pages)));
    }
    if read {
        for &pg in &chosen {
            touch_read(sh, how, p, pg * PAGE + rng.below(PAGE));
        }
    }
    if write {
        for _ in 0..rng.range(1, 32) {
            let pg = first + rng.below(pages);
            touch_write(sh, how, p, pg * PAGE + rng.below(PAGE), rng.u32() as u8);
        }
    }
}

/// One mmap of a region, touched and unmapped (sometimes split, zapped, shrunk or mapped for
/// DMA in between).
pub fn mmap_op(w: &mut Worker) {
    let Worker { dev, rng, sh, pipe, .. } = w;
    let Some(d) = dev.as_ref() else { return };
    let sh: &Slot = sh;
    let (index, mut size, mut base) = pick_region(rng, d);
    // The display region follows the scan-out: its size now, not at open time.
    if index <= u64::from(LAST_INDEX) {
        sh.set_op("mmap: region info");
        let r = d.dev.region_info(index as u32);
        if let Ok(info) = &r {
            size = info.size;
            base = info.offset;
        }
    }
    let pages_in = size / PAGE;
    let off = match rng.below(10) {
        0..=2 => 0,
        3..=4 if pages_in > 0 => rng.below(pages_in) * PAGE,
        5 => pages_in.saturating_sub(rng.range(1, 4)) * PAGE,
        6 => size.next_multiple_of(PAGE) + rng.below(4) * PAGE,
        7 => (1u64 << INDEX_SHIFT) - rng.range(1, 4) * PAGE,
        8 => rng.below(pages_in.max(1)) * PAGE + rng.range(1, PAGE - 1),
        _ => rng.below(1 << 28) * PAGE,
    };
    let left = size.saturating_sub(off);
    let len = match rng.below(10) {
        0..=2 => PAGE * rng.range(1, 64),
        3 if left > 0 => left,
        4 => left + PAGE,
        5 => 0,
        6 => size,
        7 => PAGE * rng.range(1, 64) + rng.range(1, PAGE - 1),
        8 => (rng.below(16 << 20) + 1).next_multiple_of(PAGE),
        _ => PAGE,
    }
    .min(1 << 32);
    let prot = rng.weighted(&[
        (6, libc::PROT_READ | libc::PROT_WRITE),
        (3, libc::PROT_READ),
        (1, libc::PROT_WRITE),
        (1, libc::PROT_NONE),
        (1, libc::PROT_READ | libc::PROT_EXEC),
    ]);
    let flags = rng.weighted(&[
        (10, libc::MAP_SHARED),
        (1, libc::MAP_PRIVATE),
        (1, libc::MAP_SHARED | libc::MAP_POPULATE),
        (1, libc::MAP_SHARED | libc::MAP_NORESERVE),
    ]);
    let Some(at) = base.checked_add(off).filter(|&a| a < 1 << 62) else { return };
    sh.set_op("mmap");
    // SAFETY: a new mapping chosen by the kernel (no MAP_FIXED) overlaps nothing of ours.
    let p = unsafe {
        libc::mmap(std::ptr::null_mut(), len as usize, prot, flags, d.dev.as_fd().as_raw_fd(), at as libc::off_t)
    };
    if p == libc::MAP_FAILED {
        sh.rec_err(Fam::Mmap, std::io::Error::last_os_error().raw_os_error());
        return;
    }
    sh.rec_ok(Fam::Mmap);
    let p = p.cast::<u8>();
    let pages = len.div_ceil(PAGE);
    let read = prot & libc::PROT_READ != 0;
    let write = prot & libc::PROT_WRITE != 0 && (index == u64::from(REGION_BAR0) || index == u64::from(REGION_DISPLAY));
    let via_pipe = pipe.as_ref().map(|(r, w)| How::Pipe(r.as_raw_fd(), w.as_raw_fd()));
    let how = match via_pipe {
        Some(h) if index == u64::from(REGION_DISPLAY) || rng.percent(20) => h,
        _ => How::Direct,
    };
    // The display region by its contract raises SIGBUS past the framebuffer: never touched
    // directly.
    let (read, write) =
        if index == u64::from(REGION_DISPLAY) && via_pipe.is_none() { (false, false) } else { (read, write) };
    sh.set_op("mmap: touch");
    touch(rng, sh, how, p, 0, pages, read, write);
    // The pages still mapped, `[first, end)` ranges: only they are unmapped at the end (the
    // address space of a part already unmapped may hold something else by then).
    let mut live = vec![(0, pages)];
    match rng.below(8) {
        0 if pages >= 3 => {
            // Split it: unmap a middle part, touch the rest.
            let a = rng.range(1, pages - 2);
            let b = rng.range(a + 1, pages - 1);
            sh.set_op("mmap: split");
            // SAFETY: pages [a, b) of our own mapping, no Rust object in them.
            let r = unsafe { libc::munmap(p.add((a * PAGE) as usize).cast(), ((b - a) * PAGE) as usize) };
            if sh.rec(Fam::Mmap, &cvt(r)) {
                live = vec![(0, a), (b, pages)];
            }
            sh.set_op("mmap: touch after split");
            for &(x, y) in &live {
                touch(rng, sh, how, p, x, y, read, write);
            }
        }
        1 => {
            sh.set_op("mmap: zap");
            // SAFETY: our own mapping; dropping its pages makes the next access fault them in.
            let r = unsafe { libc::madvise(p.cast(), len as usize, libc::MADV_DONTNEED) };
            sh.rec(Fam::Mmap, &cvt(r));
            sh.set_op("mmap: touch after zap");
            touch(rng, sh, how, p, 0, pages, read, write);
        }
        2 if pages >= 2 => {
            let keep = rng.range(1, pages - 1);
            sh.set_op("mmap: shrink");
            // SAFETY: shrinking our own mapping in place (no MREMAP_MAYMOVE): it stays at `p`.
            let q = unsafe { libc::mremap(p.cast(), len as usize, (keep * PAGE) as usize, 0) };
            if q == libc::MAP_FAILED {
                sh.rec_err(Fam::Mmap, std::io::Error::last_os_error().raw_os_error());
            } else {
                sh.rec_ok(Fam::Mmap);
                live = vec![(0, keep)];
                sh.set_op("mmap: touch after shrink");
                touch(rng, sh, how, p, 0, keep, read, write);
            }
        }
        3 => {
            // The mapping as DMA memory (as a VMM maps BARs for peer-to-peer), for a moment.
            sh.set_op("mmap: map for DMA");
            let r = d.dev.map_dma_raw(p as u64, BAR_DMA_IOVA, len, read, prot & libc::PROT_WRITE != 0);
            if sh.rec(Fam::Dma, &r) {
                let r = d.dev.unmap_dma(BAR_DMA_IOVA, len);
                sh.rec(Fam::Dma, &r);
            }
        }
        _ => {}
    }
    sh.set_op("munmap");
    for (x, y) in live {
        // SAFETY: pages of our own mapping that are still mapped.
        let r = unsafe { libc::munmap(p.add((x * PAGE) as usize).cast(), ((y - x) * PAGE) as usize) };
        sh.rec(Fam::Mmap, &cvt(r));
    }
}

fn cvt_len(n: isize) -> std::io::Result<usize> {
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn cvt(r: libc::c_int) -> std::io::Result<()> {
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}
