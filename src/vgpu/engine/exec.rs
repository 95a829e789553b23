// SPDX-License-Identifier: GPL-2.0

//! Running FILL and the two COPYs, preemptibly.
//!
//! Every step is bounded: framebuffer lines (a rectangle whose lines follow each other is one
//! line) are moved a bounce buffer at a time, guest memory a pinned run at a time within that,
//! with the pin cache locked only for that piece (so `dma_unmap` never waits for a whole
//! command), and the CPU scheduler is let in after every chunk. After every chunk the
//! command may also stop because its time slice ended; it goes on from there in the next one.
//! A guest memory failure is `DMA_FAULT`; a VRAM failure (the board is gone) is `HOST`.

use kernel::prelude::*;

use super::{
    cmd::{
        iova_add,
        CmdError,
        Direction,
        Rect, //
    },
    Engine, Progress, Runner,
};
use crate::vfio::support::{
    cond_resched,
    monotonic_ns, //
};

impl Engine {
    /// FILL from `at` on, a bounce buffer of the pattern at a time; `Ok(false)` when `deadline`
    /// passed before the end (`at` says where it stopped).
    pub(super) fn fill(
        &self,
        buf: &mut [u8],
        rect: &Rect,
        value: u32,
        at: &mut Progress,
        deadline: u64,
        runner: Runner,
    ) -> Result<bool, CmdError> {
        let pattern = value.to_le_bytes();
        for word in buf.chunks_exact_mut(4) {
            word.copy_from_slice(&pattern);
        }
        self.chunks(rect, at, deadline, runner, buf.len(), |f, _, n| {
            self.slice.write(f, &buf[..n]).map_err(|_| CmdError::Host)
        })
    }

    /// COPY from `at` on, a bounce buffer at a time; `Ok(false)` when `deadline` passed before
    /// the end.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn copy(
        &self,
        buf: &mut [u8],
        dir: Direction,
        iova: u64,
        iova_stride: u32,
        rect: &Rect,
        at: &mut Progress,
        deadline: u64,
        runner: Runner,
    ) -> Result<bool, CmdError> {
        let len = buf.len();
        self.chunks(rect, at, deadline, runner, len, |f, p, n| {
            let g = iova_add(iova, u64::from(p.y) * u64::from(iova_stride))?;
            let g = iova_add(g, u64::from(p.x))?;
            match dir {
                Direction::ToFb => {
                    self.guest_read(g, &mut buf[..n], runner)?;
                    self.slice.write(f, &buf[..n]).map_err(|_| CmdError::Host)
                }
                Direction::FromFb => {
                    self.slice
                        .read(f, &mut buf[..n])
                        .map_err(|_| CmdError::Host)?;
                    self.guest_write(g, &buf[..n], runner)
                }
            }
        })
    }

    /// Walks `rect` from `at` in chunks of at most `chunk` bytes, calling `op(fb_offset, at, n)`
    /// for each; stops early (returning `Ok(false)`) when `deadline` has passed after a chunk.
    /// The worker lets the CPU scheduler in between chunks; a doorbell's slice never sleeps.
    fn chunks(
        &self,
        rect: &Rect,
        at: &mut Progress,
        deadline: u64,
        runner: Runner,
        chunk: usize,
        mut op: impl FnMut(u64, Progress, usize) -> Result<(), CmdError>,
    ) -> Result<bool, CmdError> {
        while at.y < rect.height {
            let n = ((rect.width - at.x) as usize).min(chunk);
            op(rect.line(at.y) + u64::from(at.x), *at, n)?;
            self.count(n as u64, |s| &s.bytes);
            at.x += n as u32;
            if at.x == rect.width {
                at.x = 0;
                at.y += 1;
            }
            if at.y == rect.height {
                break;
            }
            if runner == Runner::Worker {
                cond_resched();
            }
            if monotonic_ns() >= deadline {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Reads guest memory at `iova` into `buf`, a pinned run at a time.
    pub(super) fn guest_read(
        &self,
        mut iova: u64,
        mut buf: &mut [u8],
        runner: Runner,
    ) -> Result<(), CmdError> {
        while !buf.is_empty() {
            let n = self.span_read(iova, buf, runner)?;
            buf = &mut buf[n..];
            if !buf.is_empty() {
                iova = iova_add(iova, n as u64)?;
            }
        }
        Ok(())
    }

    /// Writes `data` into guest memory at `iova`, a pinned run at a time.
    pub(super) fn guest_write(
        &self,
        mut iova: u64,
        mut data: &[u8],
        runner: Runner,
    ) -> Result<(), CmdError> {
        while !data.is_empty() {
            let n = self.span_write(iova, data, runner)?;
            data = &data[n..];
            if !data.is_empty() {
                iova = iova_add(iova, n as u64)?;
            }
        }
        Ok(())
    }
}
