// SPDX-License-Identifier: GPL-2.0

//! DMA dirty logging (`vfio_log_ops`): the guest pages the engine writes (COPY_FROM_FB, FENCE)
//! while user space logs, reported and cleared by `DMA_LOGGING_REPORT`.
//!
//! The log is bounded: it remembers at most [`MAX_PAGES`] pages; beyond that it overflows and
//! reports every page of a requested range as dirty until logging stops (never a written page
//! missed, at worst some sent again). Its lock is a leaf.

use kernel::{
    page::PAGE_SIZE,
    prelude::*,
    sync::atomic::Relaxed, //
};

use super::Engine;
use crate::vfio::migration::{
    DirtyBitmap,
    LogRange, //
};

/// The most pages the log remembers (512 KiB of bookkeeping).
pub(crate) const MAX_PAGES: usize = 65536;

/// An active DMA log (under `Engine::log`).
pub(crate) struct DmaLog {
    ranges: KVec<LogRange>,
    /// Dirty page addresses, sorted, each once.
    pages: KVec<u64>,
    overflow: bool,
}

impl Engine {
    /// `DMA_LOGGING_START`; `EBUSY` if the log already runs.
    pub(crate) fn log_start(&self, ranges: &[LogRange], page_size: u64) -> Result<u64> {
        let mut copy = KVec::with_capacity(ranges.len(), GFP_KERNEL)?;
        copy.extend_from_slice(ranges, GFP_KERNEL)?;
        let mut log = self.log.lock();
        if log.is_some() {
            return Err(EBUSY);
        }
        *log = Some(DmaLog {
            ranges: copy,
            pages: KVec::new(),
            overflow: false,
        });
        Ok(page_size)
    }

    /// `DMA_LOGGING_STOP` (also when it does not run).
    pub(crate) fn log_stop(&self) {
        *self.log.lock() = None;
    }

    /// The engine wrote `[iova, iova + len)` of guest memory.
    pub(super) fn log_write(&self, iova: u64, len: u64) {
        let mut guard = self.log.lock();
        let Some(log) = &mut *guard else {
            return;
        };
        let mut page = iova & !(PAGE_SIZE as u64 - 1);
        while page < iova.saturating_add(len) {
            let logged = log
                .ranges
                .iter()
                .any(|r| (r.start..=r.last).contains(&page));
            if logged && !log.overflow {
                if let Err(at) = log.pages.binary_search(&page) {
                    let room =
                        log.pages.len() < MAX_PAGES && log.pages.reserve(1, GFP_KERNEL).is_ok();
                    if room && log.pages.insert_within_capacity(at, page).is_ok() {
                        self.dirty_pages.fetch_add(1, Relaxed);
                    } else {
                        log.overflow = true;
                        log.pages.clear();
                    }
                }
            }
            page += PAGE_SIZE as u64;
        }
    }

    /// `DMA_LOGGING_REPORT` of `[iova, iova + len)`: sets and forgets the pages written there.
    pub(crate) fn log_report(&self, iova: u64, len: u64, dirty: &mut DirtyBitmap) -> Result {
        let mut guard = self.log.lock();
        let Some(log) = &mut *guard else {
            return Err(EINVAL);
        };
        let end = iova.saturating_add(len);
        if log.overflow {
            dirty.set(iova, len);
            return Ok(());
        }
        let from = log.pages.partition_point(|&p| p < iova);
        let to = log.pages.partition_point(|&p| p < end);
        for &p in &log.pages[from..to] {
            dirty.set(p, PAGE_SIZE as u64);
        }
        // Forget them: shift the rest down.
        let n = to - from;
        if n > 0 {
            let total = log.pages.len();
            log.pages.copy_within(to..total, from);
            log.pages.truncate(total - n);
        }
        Ok(())
    }
}
