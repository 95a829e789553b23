// SPDX-License-Identifier: GPL-2.0

//! A vGPU's slice of the physical VRAM.
//!
//! [`VramSlice`] owns one slice: all offsets are relative to the slice and checked against its
//! usable part, so the host's reservation at the end of the profile (and every other vGPU's
//! slice) is out of reach by construction. Dropping it scrubs the whole slice and gives it back
//! to the GPU.
//!
//! The slice also knows which of its pages changed ([`DirtyPages`]): every write through it
//! marks its pages, and so does the guest's first write to a page of its BAR0 mapping, which is
//! filled in on fault ([`FaultBacking`]) rather than mapped up front.

use kernel::{
    prelude::*,
    sync::Arc, //
};

use super::{
    dirty::{
        self,
        DirtyPages, //
    },
    gpu::Gpu,
    types::VgpuType,
    vram::{
        AllocError,
        Slice, //
    },
};
use crate::vfio::{
    device::Mmap,
    vma::FaultBacking, //
};

/// The VFIO region the slice is mapped as (BAR0).
const FB_REGION: u32 = crate::vfio::bindings::VFIO_PCI_BAR0_REGION_INDEX;

/// A vGPU's slice of VRAM.
pub(crate) struct VramSlice {
    gpu: Arc<Gpu>,
    slice: Slice,
    /// The usable part, from the start of the slice.
    usable: u64,
    dirty: DirtyPages,
}

impl VramSlice {
    /// Places a slice for an instance of `vtype` named `uuid` on `gpu`.
    pub(crate) fn new(
        gpu: &Arc<Gpu>,
        vtype: &VgpuType,
        uuid: [u8; 16],
    ) -> Result<Self, AllocError> {
        let dirty = DirtyPages::new(vtype.usable_bytes()).map_err(|_| AllocError::NoMemory)?;
        let slice = gpu.alloc(vtype, uuid)?;
        Ok(Self {
            gpu: gpu.clone(),
            slice,
            usable: vtype.usable_bytes(),
            dirty,
        })
    }

    /// The GPU the slice belongs to.
    pub(crate) fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// Where the slice starts in the physical VRAM.
    pub(crate) fn vram_offset(&self) -> u64 {
        self.slice.offset
    }

    /// The usable size: what the vGPU's guest may reach.
    pub(crate) fn usable(&self) -> u64 {
        self.usable
    }

    /// Which pages changed since a sender last took them.
    pub(crate) fn dirty(&self) -> &DirtyPages {
        &self.dirty
    }

    /// The VRAM offset of `[off, off + len)` of the slice; `EINVAL` beyond its usable part,
    /// `ENODEV` once the board is being removed.
    fn at(&self, off: u64, len: u64) -> Result<u64> {
        if self.gpu.is_gone() {
            return Err(ENODEV);
        }
        let end = off.checked_add(len).ok_or(EINVAL)?;
        if end > self.usable {
            return Err(EINVAL);
        }
        Ok(self.slice.offset + off)
    }

    /// Reads `buf.len()` bytes at `off` (a few KiB at a time). `ENODEV` once the board is gone.
    pub(crate) fn read(&self, off: u64, buf: &mut [u8]) -> Result {
        let at = self.at(off, buf.len() as u64)?;
        self.gpu.board().vram_read(at, buf)
    }

    /// Writes `data` at `off` (a few KiB at a time). `ENODEV` once the board is gone.
    pub(crate) fn write(&self, off: u64, data: &[u8]) -> Result {
        let at = self.at(off, data.len() as u64)?;
        let r = self.gpu.board().vram_write(at, data);
        self.dirty.mark(off, data.len() as u64);
        r
    }

    /// Zeroes `[off, off + len)` (rounded up to 8 bytes, within the usable part), a bounded step
    /// at a time. Process context only: it lets the scheduler in between steps.
    pub(crate) fn clear(&self, off: u64, len: u64) -> Result {
        let len = len.next_multiple_of(8).min(self.usable.saturating_sub(off));
        let at = self.at(off, len)?;
        let r = self.gpu.board().vram_clear(at, len);
        self.dirty.mark(off, len);
        r
    }

    /// The physical address of the page at `off` of the slice (page aligned, usable part only).
    pub(crate) fn page_phys(&self, off: u64) -> Result<u64> {
        if off % dirty::PAGE != 0 {
            return Err(EINVAL);
        }
        Ok(self.gpu.board().vram_phys() + self.at(off, dirty::PAGE)?)
    }

    /// Maps `[off, off + vma.len())` of the slice into user space (write-combining), filled in
    /// on fault.
    pub(crate) fn mmap(self: &Arc<Self>, off: u64, vma: &Mmap<'_>) -> Result {
        self.at(off, vma.len())?;
        vma.map_on_fault(self.clone())
    }
}

impl FaultBacking for VramSlice {
    fn page(&self, index: u32, offset: u64) -> Result<u64> {
        if index != FB_REGION {
            return Err(EINVAL);
        }
        self.page_phys(offset)
    }

    fn first_write(&self, index: u32, offset: u64) {
        if index == FB_REGION {
            self.dirty.mark(offset, 1);
        }
    }
}

impl Drop for VramSlice {
    fn drop(&mut self) {
        self.gpu.free(&self.slice);
    }
}
