// SPDX-License-Identifier: GPL-2.0

//! Partitioning a board's VRAM into vGPU slices.
//!
//! Every profile size is a power of two and every slice sits at an offset that is a multiple of
//! its size (a buddy system). This gives two guarantees:
//!
//! - `available(size)` is exact: it is the number of free, aligned `size` blocks, and that many
//!   instances of `size` can be created one after the other whatever their order, because
//!   aligned blocks of one size never overlap.
//! - Placement avoids fragmentation: a new slice goes into the smallest free aligned block that
//!   holds it (best fit; the lowest address among equals), so large free blocks are split only
//!   when no smaller block fits. Filling a board with any mix of sizes, without removals in
//!   between, always uses the whole VRAM. After removals a free region can still be split into
//!   blocks too small for a large type; `available()` then says so exactly, and the parent's
//!   `nvidia/placement` file shows where the slices are.
//!
//! A slice given back is *retired*: it still holds its last tenant's data until it is scrubbed,
//! which happens after the removal (the GPU's scrub work, [`super::gpu`]), not in it. A retired
//! slice counts as free for `available()` and `free()` (a create they promise succeeds), but it
//! is not handed out again until it is clean: `alloc()` says [`AllocError::Scrubbing`] when the
//! block it picks still overlaps one, and the caller waits for the scrub.

use kernel::prelude::*;

/// One slice handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slice {
    pub(crate) offset: u64,
    pub(crate) size: u64,
    /// Who holds it (the instance's type id and UUID), for the placement report.
    pub(crate) type_id: u32,
    pub(crate) uuid: [u8; 16],
}

/// Why an allocation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AllocError {
    /// The size is not a power of two or is larger than the VRAM.
    BadSize,
    /// No free aligned block of that size; the fields say what is free.
    NoSpace { free: u64, largest_free: u64 },
    /// Out of kernel memory for the bookkeeping.
    NoMemory,
    /// The scheduler's fixed share allows one framebuffer size per GPU; a vGPU of `type_id`
    /// with `size` bytes is there.
    Mixed { size: u64, type_id: u32 },
    /// The block to use still overlaps a retired slice being scrubbed: try again after the
    /// scrub.
    Scrubbing,
    /// A signal came while waiting for a scrub.
    Interrupted,
}

/// The VRAM of one board: `total` bytes, a power of two.
pub(crate) struct VramAllocator {
    total: u64,
    /// Slices in use, sorted by offset.
    used: KVec<Slice>,
    /// Retired slices not scrubbed yet, oldest first. Its capacity always holds every slice in
    /// use too, so that retiring one never allocates.
    dirty: KVec<Slice>,
}

impl VramAllocator {
    pub(crate) fn new(total: u64) -> Self {
        Self {
            total,
            used: KVec::new(),
            dirty: KVec::new(),
        }
    }

    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Bytes not in use (retired slices count as free).
    pub(crate) fn free(&self) -> u64 {
        self.total - self.used.iter().map(|s| s.size).sum::<u64>()
    }

    /// The slices in use, by offset.
    pub(crate) fn slices(&self) -> &[Slice] {
        &self.used
    }

    /// The retired slices waiting for their scrub, oldest first.
    pub(crate) fn scrubbing(&self) -> &[Slice] {
        &self.dirty
    }

    /// Whether `[offset, offset + size)` overlaps no slice in use.
    fn is_free(&self, offset: u64, size: u64) -> bool {
        self.used.iter().all(|s| !overlaps(s, offset, size))
    }

    /// Whether `[offset, offset + size)` overlaps no retired slice.
    fn is_clean(&self, offset: u64, size: u64) -> bool {
        self.dirty.iter().all(|s| !overlaps(s, offset, size))
    }

    /// The size of the largest free aligned block that contains the aligned block at `offset`.
    fn enclosing_free(&self, offset: u64, size: u64) -> u64 {
        let mut block = size;
        while block < self.total {
            let up = block * 2;
            if !self.is_free(offset & !(up - 1), up) {
                break;
            }
            block = up;
        }
        block
    }

    fn valid_size(&self, size: u64) -> bool {
        size.is_power_of_two() && size <= self.total
    }

    /// How many more slices of `size` fit now.
    pub(crate) fn available(&self, size: u64) -> u32 {
        if !self.valid_size(size) {
            return 0;
        }
        let n = (0..self.total / size)
            .filter(|i| self.is_free(i * size, size))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// The largest free aligned block (0 if the VRAM is full).
    pub(crate) fn largest_free(&self) -> u64 {
        let mut size = self.total;
        while size > 0 {
            if self.available(size) > 0 {
                return size;
            }
            size /= 2;
            if size < (1 << 20) {
                break;
            }
        }
        0
    }

    /// Places a slice of `size` bytes (best fit, see the module documentation).
    pub(crate) fn alloc(
        &mut self,
        size: u64,
        type_id: u32,
        uuid: [u8; 16],
    ) -> Result<Slice, AllocError> {
        if !self.valid_size(size) {
            return Err(AllocError::BadSize);
        }
        let best = (0..self.total / size)
            .map(|i| i * size)
            .filter(|&o| self.is_free(o, size))
            .min_by_key(|&o| (self.enclosing_free(o, size), o));
        let Some(offset) = best else {
            return Err(AllocError::NoSpace {
                free: self.free(),
                largest_free: self.largest_free(),
            });
        };
        if !self.is_clean(offset, size) {
            return Err(AllocError::Scrubbing);
        }
        // Room to retire every slice in use without allocating.
        let want = self.used.len() + 1 + self.dirty.len();
        if self.dirty.capacity() < want {
            self.dirty
                .reserve(want - self.dirty.len(), GFP_KERNEL)
                .map_err(|_| AllocError::NoMemory)?;
        }
        let slice = Slice {
            offset,
            size,
            type_id,
            uuid,
        };
        let at = self
            .used
            .iter()
            .position(|s| s.offset > offset)
            .unwrap_or(self.used.len());
        self.used.insert_within_capacity(at, slice).or_else(|_| {
            self.used
                .reserve(1, GFP_KERNEL)
                .map_err(|_| AllocError::NoMemory)?;
            self.used
                .insert_within_capacity(at, slice)
                .map_err(|_| AllocError::NoMemory)
        })?;
        Ok(slice)
    }

    /// Takes the slice in use at `offset` out of the list.
    fn take(&mut self, offset: u64) -> Result<Slice> {
        let i = self
            .used
            .iter()
            .position(|s| s.offset == offset)
            .ok_or(ENOENT)?;
        self.used.remove(i).map_err(|_| ENOENT)
    }

    /// Returns the slice at `offset` (clean: nothing to scrub).
    pub(crate) fn release(&mut self, offset: u64) -> Result {
        self.take(offset).map(|_| ())
    }

    /// Retires the slice at `offset`: it is free from now on, but not handed out again until
    /// [`VramAllocator::scrubbed`]. Never allocates.
    pub(crate) fn retire(&mut self, offset: u64) -> Result {
        let slice = self.take(offset)?;
        // `alloc` kept room for it.
        self.dirty.push_within_capacity(slice).map_err(|_| ENOMEM)
    }

    /// The oldest retired slice, to scrub.
    pub(crate) fn next_dirty(&self) -> Option<Slice> {
        self.dirty.first().copied()
    }

    /// The retired slice at `offset` is clean now.
    pub(crate) fn scrubbed(&mut self, offset: u64) {
        if let Some(i) = self.dirty.iter().position(|s| s.offset == offset) {
            let _ = self.dirty.remove(i);
        }
    }
}

/// Whether `s` overlaps `[offset, offset + size)`.
fn overlaps(s: &Slice, offset: u64, size: u64) -> bool {
    s.offset < offset + size && offset < s.offset + s.size
}

#[kunit_tests(rvgpu_vgpu_vram)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;

    #[test]
    fn fill_with_one_size() -> Result {
        let mut a = VramAllocator::new(256 * M);
        assert_eq!(a.available(64 * M), 4);
        for i in 0..4u64 {
            let s = a.alloc(64 * M, 9106, [0; 16]).map_err(|_| ENOSPC)?;
            assert_eq!(s.offset, i * 64 * M);
        }
        assert_eq!(a.available(64 * M), 0);
        assert_eq!(a.available(16 * M), 0);
        assert_eq!(a.free(), 0);
        assert_eq!(
            a.alloc(16 * M, 9104, [0; 16]),
            Err(AllocError::NoSpace {
                free: 0,
                largest_free: 0
            })
        );
        Ok(())
    }

    #[test]
    fn best_fit_keeps_large_blocks() -> Result {
        let mut a = VramAllocator::new(256 * M);
        // A 16M slice, then another 16M: the second goes next to the first, not into the
        // untouched upper half.
        let s1 = a.alloc(16 * M, 9104, [1; 16]).map_err(|_| ENOSPC)?;
        let s2 = a.alloc(16 * M, 9104, [2; 16]).map_err(|_| ENOSPC)?;
        assert_eq!((s1.offset, s2.offset), (0, 16 * M));
        assert_eq!(a.available(128 * M), 1);
        // Free the first, then a 32M slice must not take the hole's 16M neighbourhood...
        a.release(0)?;
        let s3 = a.alloc(32 * M, 9105, [3; 16]).map_err(|_| ENOSPC)?;
        assert_eq!(s3.offset, 32 * M);
        // ...and a 16M slice fills the hole.
        let s4 = a.alloc(16 * M, 9104, [4; 16]).map_err(|_| ENOSPC)?;
        assert_eq!(s4.offset, 0);
        assert_eq!(a.available(128 * M), 1);
        assert_eq!(a.available(64 * M), 3);
        Ok(())
    }

    #[test]
    fn mixed_fill_uses_everything() -> Result {
        let mut a = VramAllocator::new(128 * M);
        for size in [16, 64, 16, 32] {
            a.alloc(size * M, 0, [0; 16]).map_err(|_| ENOSPC)?;
        }
        assert_eq!(a.free(), 0);
        Ok(())
    }

    #[test]
    fn fragmentation_is_reported_exactly() -> Result {
        let mut a = VramAllocator::new(128 * M);
        for _ in 0..4 {
            a.alloc(32 * M, 0, [0; 16]).map_err(|_| ENOSPC)?;
        }
        a.release(0)?;
        a.release(64 * M)?;
        assert_eq!(a.free(), 64 * M);
        assert_eq!(a.available(64 * M), 0);
        assert_eq!(a.available(32 * M), 2);
        assert_eq!(a.largest_free(), 32 * M);
        assert_eq!(
            a.alloc(64 * M, 0, [0; 16]),
            Err(AllocError::NoSpace {
                free: 64 * M,
                largest_free: 32 * M
            })
        );
        Ok(())
    }

    #[test]
    fn retired_slices_are_free_but_not_handed_out_dirty() -> Result {
        let mut a = VramAllocator::new(64 * M);
        for _ in 0..4 {
            a.alloc(16 * M, 9104, [0; 16]).map_err(|_| ENOSPC)?;
        }
        a.retire(16 * M)?;
        // Counted as free: one more 16M fits, and 64M of free space shows it...
        assert_eq!(a.available(16 * M), 1);
        assert_eq!(a.free(), 16 * M);
        assert_eq!(a.scrubbing().len(), 1);
        // ...but the only block for it is still dirty.
        assert_eq!(a.alloc(16 * M, 9104, [0; 16]), Err(AllocError::Scrubbing));
        assert_eq!(a.next_dirty().map(|s| s.offset), Some(16 * M));
        a.scrubbed(16 * M);
        assert_eq!(a.next_dirty(), None);
        let s = a.alloc(16 * M, 9104, [0; 16]).map_err(|_| ENOSPC)?;
        assert_eq!(s.offset, 16 * M);
        // The placement stays best fit (the lowest of equals): a clean block it picks is
        // handed out while another waits for its scrub, a dirty one it picks is waited for.
        a.retire(48 * M)?;
        a.release(0)?;
        let s = a.alloc(16 * M, 9104, [0; 16]).map_err(|_| ENOSPC)?;
        assert_eq!(s.offset, 0);
        assert_eq!(a.alloc(16 * M, 9104, [0; 16]), Err(AllocError::Scrubbing));
        Ok(())
    }

    #[test]
    fn bad_sizes() {
        let mut a = VramAllocator::new(64 * M);
        assert_eq!(a.alloc(48 * M, 0, [0; 16]), Err(AllocError::BadSize));
        assert_eq!(a.alloc(128 * M, 0, [0; 16]), Err(AllocError::BadSize));
        assert_eq!(a.available(128 * M), 0);
        assert_eq!(a.release(0), Err(ENOENT));
    }
}
