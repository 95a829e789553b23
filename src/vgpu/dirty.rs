// SPDX-License-Identifier: GPL-2.0

//! Which pages of a vGPU's framebuffer changed since they were last sent: a bitmap of atomic
//! words, one bit per 4 KiB page, 64 pages a word.
//!
//! Every write reaches it: the guest's first write to a mapped page since its mappings were last
//! zapped (`pfn_mkwrite`, before the write lands), and the writes of the engine and of region
//! `pwrite()` (after the write, so a sender that clears the bit and then reads sees the write).
//! A sender takes a whole word at a time ([`DirtyPages::take`], an exchange with 0), zaps the
//! mappings of its 64 pages so the next guest write to any of them sets its bit again, and only
//! then reads the pages: nothing written after the exchange is lost, and nothing written before it
//! is missed.
//!
//! Marking is unconditional (one atomic OR per page written): there is no window between
//! "tracking on" and "everything pending" for a write to slip through.

use kernel::{
    prelude::*,
    sync::atomic::{
        Atomic,
        Full,
        Relaxed, //
    },
};

/// The page size of the bitmap.
pub(crate) const PAGE: u64 = 4096;
/// Pages per word.
pub(crate) const WORD_PAGES: u64 = 64;

pub(crate) struct DirtyPages {
    words: KVec<Atomic<u64>>,
    pages: u64,
}

impl DirtyPages {
    /// A bitmap for `bytes` of framebuffer, all clean.
    pub(crate) fn new(bytes: u64) -> Result<Self> {
        let pages = bytes.div_ceil(PAGE);
        let n = usize::try_from(pages.div_ceil(WORD_PAGES))?;
        let mut words = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            words.push(Atomic::new(0u64), GFP_KERNEL)?;
        }
        Ok(Self { words, pages })
    }

    /// The number of words.
    pub(crate) fn len(&self) -> usize {
        self.words.len()
    }

    /// The valid bits of word `w` (the last word may be partial).
    fn valid(&self, w: usize) -> u64 {
        let first = w as u64 * WORD_PAGES;
        let n = self.pages.saturating_sub(first).min(WORD_PAGES);
        if n == WORD_PAGES {
            u64::MAX
        } else {
            (1u64 << n) - 1
        }
    }

    fn or(&self, w: usize, bits: u64) {
        let Some(word) = self.words.get(w) else {
            return;
        };
        // Always a read-modify-write, even when the bits are set already: one that lands after a
        // sender's exchange sets them again, so the caller's write is never lost between them.
        let mut cur = word.load(Relaxed);
        loop {
            match word.cmpxchg(cur, cur | bits, Full) {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }

    /// Marks the pages of `[off, off + len)` (of the framebuffer) changed.
    pub(crate) fn mark(&self, off: u64, len: u64) {
        if len == 0 {
            return;
        }
        let first = off / PAGE;
        let last = ((off + len - 1) / PAGE).min(self.pages.saturating_sub(1));
        let mut p = first;
        while p <= last {
            let w = (p / WORD_PAGES) as usize;
            let lo = p % WORD_PAGES;
            let hi = (last - w as u64 * WORD_PAGES).min(WORD_PAGES - 1);
            let n = hi - lo + 1;
            let bits = if n == WORD_PAGES {
                u64::MAX
            } else {
                ((1u64 << n) - 1) << lo
            };
            self.or(w, bits);
            p += n;
        }
    }

    /// Marks every page changed (a sender starts from scratch).
    pub(crate) fn mark_all(&self) {
        for w in 0..self.words.len() {
            self.or(w, self.valid(w));
        }
    }

    /// The first word at or after `from` with a page marked.
    pub(crate) fn next(&self, from: usize) -> Option<usize> {
        (from..self.words.len()).find(|&w| self.words[w].load(Relaxed) != 0)
    }

    /// Takes word `w`: returns its marks and clears them.
    pub(crate) fn take(&self, w: usize) -> u64 {
        self.words.get(w).map_or(0, |word| word.xchg(0, Full))
    }

    /// Pages marked in the words `[from, to)`.
    pub(crate) fn count(&self, from: usize, to: usize) -> u64 {
        let to = to.min(self.words.len());
        (from.min(to)..to)
            .map(|w| u64::from(self.words[w].load(Relaxed).count_ones()))
            .sum()
    }
}

#[kunit_tests(rvgpu_vgpu_dirty)]
mod tests {
    use super::*;

    #[test]
    fn mark_take_count() -> Result {
        // 130 pages: two full words and two pages of a third.
        let d = DirtyPages::new(130 * PAGE - 100)?;
        assert_eq!(d.len(), 3);
        assert_eq!(d.next(0), None);
        d.mark(PAGE - 1, 2);
        assert_eq!(d.count(0, 3), 2);
        d.mark(63 * PAGE, PAGE + 1);
        assert_eq!(d.count(0, 1), 3);
        assert_eq!(d.count(1, 3), 1);
        assert_eq!(d.take(0), 0b11 | (1 << 63));
        assert_eq!(d.next(0), Some(1));
        assert_eq!(d.take(1), 1);
        assert_eq!(d.next(0), None);
        // Past the end: clamped to the last page.
        d.mark(129 * PAGE, 10 * PAGE);
        assert_eq!(d.take(2), 0b10);
        Ok(())
    }

    #[test]
    fn mark_all_sets_only_valid_pages() -> Result {
        let d = DirtyPages::new(130 * PAGE)?;
        d.mark_all();
        assert_eq!(d.count(0, 3), 130);
        assert_eq!(d.take(2), 0b11);
        d.mark(0, 200 * PAGE);
        assert_eq!(d.count(0, 3), 130);
        Ok(())
    }
}
