// SPDX-License-Identifier: GPL-2.0

//! Running a decoded command: FILL, the two COPYs and FENCE.
//!
//! Every step is bounded: framebuffer lines are moved a bounce buffer at a time, guest memory a
//! page at a time with the pin cache locked only for that page (so `dma_unmap` never waits for a
//! whole command), and the scheduler is let in after every line. A guest memory failure is
//! `DMA_FAULT`; a VRAM failure (the board is gone) is `HOST`.

use kernel::{
    page::PAGE_SIZE,
    prelude::*, //
};

use super::{
    cmd::{
        iova_add,
        CmdError,
        Command,
        Direction,
        Rect, //
    },
    Engine,
};
use crate::vfio::support::cond_resched;

impl Engine {
    /// Runs `cmd`; returns whether it was a fence (which interrupts on completion).
    pub(super) fn execute(&self, bounce: &mut [u8], cmd: &Command) -> Result<bool, CmdError> {
        match *cmd {
            Command::Nop => Ok(false),
            Command::Fill { rect, value } => self.fill(&rect, value).map(|()| false),
            Command::Copy {
                dir,
                iova,
                iova_stride,
                rect,
            } => self
                .copy(bounce, dir, iova, iova_stride, &rect)
                .map(|()| false),
            Command::Fence { iova, value } => {
                self.guest_write(iova, &value.to_le_bytes())?;
                self.regs.lock().fence = value;
                Ok(true)
            }
        }
    }

    fn fill(&self, rect: &Rect, value: u32) -> Result<(), CmdError> {
        let line = [value.to_le_bytes(); 64];
        let line = line.as_flattened();
        for y in 0..rect.height {
            let mut at = rect.line(y);
            let mut left = rect.width as usize;
            while left > 0 {
                let n = left.min(line.len());
                self.slice
                    .write(at, &line[..n])
                    .map_err(|_| CmdError::Host)?;
                at += n as u64;
                left -= n;
            }
            cond_resched();
        }
        Ok(())
    }

    fn copy(
        &self,
        buf: &mut [u8],
        dir: Direction,
        iova: u64,
        iova_stride: u32,
        rect: &Rect,
    ) -> Result<(), CmdError> {
        for y in 0..rect.height {
            let mut g = iova_add(iova, u64::from(y) * u64::from(iova_stride))?;
            let mut f = rect.line(y);
            let mut left = rect.width as usize;
            while left > 0 {
                let n = left.min(buf.len());
                match dir {
                    Direction::ToFb => {
                        self.guest_read(g, &mut buf[..n])?;
                        self.slice.write(f, &buf[..n]).map_err(|_| CmdError::Host)?;
                    }
                    Direction::FromFb => {
                        self.slice
                            .read(f, &mut buf[..n])
                            .map_err(|_| CmdError::Host)?;
                        self.guest_write(g, &buf[..n])?;
                    }
                }
                left -= n;
                if left > 0 {
                    g = iova_add(g, n as u64)?;
                    f += n as u64;
                }
            }
            cond_resched();
        }
        Ok(())
    }

    /// Reads guest memory at `iova` into `buf`, a page at a time.
    pub(super) fn guest_read(&self, mut iova: u64, mut buf: &mut [u8]) -> Result<(), CmdError> {
        while !buf.is_empty() {
            let off = (iova % PAGE_SIZE as u64) as usize;
            let n = buf.len().min(PAGE_SIZE - off);
            let (now, rest) = buf.split_at_mut(n);
            self.page_read(iova, now)?;
            buf = rest;
            if !buf.is_empty() {
                iova = iova_add(iova, n as u64)?;
            }
        }
        Ok(())
    }

    /// Writes `data` into guest memory at `iova`, a page at a time.
    fn guest_write(&self, mut iova: u64, mut data: &[u8]) -> Result<(), CmdError> {
        while !data.is_empty() {
            let off = (iova % PAGE_SIZE as u64) as usize;
            let n = data.len().min(PAGE_SIZE - off);
            self.page_write(iova, &data[..n])?;
            data = &data[n..];
            if !data.is_empty() {
                iova = iova_add(iova, n as u64)?;
            }
        }
        Ok(())
    }
}
