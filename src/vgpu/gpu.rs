// SPDX-License-Identifier: GPL-2.0

//! The physical GPU as rvgpu shares it out: its board (the hardware, behind the
//! [`Board`] trait), its type table and its VRAM partition. One [`Gpu`] exists per bound PCI
//! device; it is the data of the device's mdev parent.

use kernel::{
    fmt,
    new_mutex,
    prelude::*,
    str::BStr,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        Mutex, //
    }, //
};

use super::{
    types::{
        TypeTable,
        VgpuType, //
    },
    vram::{
        AllocError,
        Slice,
        VramAllocator, //
    },
};
use crate::{
    board::Board,
    vfio::sysfs::{
        Attr,
        Group,
        SysfsBuf, //
    }, //
};

const MIB: u64 = 1 << 20;

/// The files of the `nvidia/` directory on the physical GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GpuAttr {
    VramTotalMib,
    VramFreeMib,
    VramLargestFreeMib,
    Placement,
    PinnedPages,
}

/// The `nvidia/` directory on the physical GPU.
pub(crate) const GPU_ATTRS: Group<GpuAttr> = Group {
    name: c"nvidia",
    attrs: &[
        Attr {
            name: c"vram_total_mib",
            writable: false,
            id: GpuAttr::VramTotalMib,
        },
        Attr {
            name: c"vram_free_mib",
            writable: false,
            id: GpuAttr::VramFreeMib,
        },
        Attr {
            name: c"vram_largest_free_mib",
            writable: false,
            id: GpuAttr::VramLargestFreeMib,
        },
        Attr {
            name: c"placement",
            writable: false,
            id: GpuAttr::Placement,
        },
        Attr {
            name: c"pinned_pages",
            writable: false,
            id: GpuAttr::PinnedPages,
        },
    ],
};

/// The state shared by a physical GPU and its vGPUs.
#[pin_data]
pub(crate) struct Gpu {
    board: Arc<dyn Board>,
    /// Guest pages pinned by all of this GPU's vGPU engines.
    pinned: Atomic<u64>,
    table: &'static TypeTable,
    #[pin]
    vram: Mutex<VramAllocator>,
}

impl Gpu {
    pub(crate) fn new(board: Arc<dyn Board>, table: &'static TypeTable) -> Result<Arc<Self>> {
        let total = u64::from(table.vram_mib) * MIB;
        Arc::pin_init(
            try_pin_init!(Self {
                board,
                pinned: Atomic::new(0),
                table,
                vram <- new_mutex!(VramAllocator::new(total)),
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn board(&self) -> &dyn Board {
        &*self.board
    }

    /// Guest pages pinned by all of this GPU's vGPU engines.
    pub(crate) fn pinned(&self) -> &Atomic<u64> {
        &self.pinned
    }

    pub(crate) fn table(&self) -> &'static TypeTable {
        self.table
    }

    pub(crate) fn vgpu_type(&self, index: usize) -> Option<&'static VgpuType> {
        self.table.types.get(index)
    }

    /// How many more instances of type `index` fit now.
    pub(crate) fn available(&self, index: usize) -> u32 {
        self.vgpu_type(index)
            .map_or(0, |t| self.vram.lock().available(t.profile_bytes()))
    }

    /// Places a slice for an instance of `t`.
    pub(crate) fn alloc(&self, t: &VgpuType, uuid: [u8; 16]) -> Result<Slice, AllocError> {
        self.vram.lock().alloc(t.profile_bytes(), t.id, uuid)
    }

    /// Scrubs a slice and gives it back. The scrub comes first, so that no other vGPU can get
    /// the slice while it still holds the old instance's data.
    pub(crate) fn free(&self, slice: &Slice) {
        // If the board is already unbound its VRAM is out of reach anyway (`ENODEV`).
        let _ = self.board.vram_clear(slice.offset, slice.size);
        let _ = self.vram.lock().release(slice.offset);
    }

    /// The files of the physical GPU's `nvidia/` directory.
    pub(crate) fn show_attr(&self, attr: GpuAttr, out: &mut SysfsBuf) -> Result {
        let vram = self.vram.lock();
        match attr {
            GpuAttr::VramTotalMib => out.emit(fmt!("{}\n", vram.total() / MIB)),
            GpuAttr::VramFreeMib => out.emit(fmt!("{}\n", vram.free() / MIB)),
            GpuAttr::VramLargestFreeMib => out.emit(fmt!("{}\n", vram.largest_free() / MIB)),
            GpuAttr::Placement => self.write_placement(&vram, out),
            GpuAttr::PinnedPages => out.emit(fmt!("{}\n", self.pinned.load(Relaxed))),
        }
    }

    /// One line per slice and per free range, in address order:
    /// `<offset>M <size>M nvidia-<id> <name> <uuid>` or `<offset>M <size>M free`.
    fn write_placement(&self, vram: &VramAllocator, out: &mut SysfsBuf) -> Result {
        let mut pos = 0;
        for s in vram.slices() {
            if s.offset > pos {
                out.emit(fmt!("{}M {}M free\n", pos / MIB, (s.offset - pos) / MIB))?;
            }
            let name = self
                .table
                .types
                .iter()
                .find(|t| t.id == s.type_id)
                .map_or(c"?", |t| t.name);
            out.emit(fmt!(
                "{}M {}M nvidia-{} {} {}\n",
                s.offset / MIB,
                s.size / MIB,
                s.type_id,
                BStr::from_bytes(name.to_bytes()),
                Uuid(&s.uuid)
            ))?;
            pos = s.offset + s.size;
        }
        if pos < vram.total() {
            out.emit(fmt!(
                "{}M {}M free\n",
                pos / MIB,
                (vram.total() - pos) / MIB
            ))?;
        }
        Ok(())
    }
}

/// Formats a UUID in its canonical text form.
pub(crate) struct Uuid<'a>(pub(crate) &'a [u8; 16]);

impl fmt::Display for Uuid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{:02x}", b)?;
        }
        Ok(())
    }
}
