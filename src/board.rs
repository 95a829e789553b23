// SPDX-License-Identifier: GPL-2.0

//! The boards rvgpu drives: the hardware side of a physical GPU. Everything board-specific sits
//! behind [`Board`]; the rest of the driver sees only this trait (and [`dispi`], the register
//! interface the Bochs board has and every vGPU presents).

use kernel::{
    device::Core,
    fmt,
    pci,
    prelude::*,
    sync::Arc, //
};

mod bochs;
pub(crate) mod dispi;

/// Which board implementation a PCI ID table entry selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BoardKind {
    /// QEMU's Bochs display interface (`bochs-display`, `secondary-vga`, stdvga).
    Bochs,
}

/// A physical GPU as the rest of the driver sees it.
pub(crate) trait Board: Send + Sync {
    /// The board model, which also names its vGPU type table (`mdev_types/<model>.types`).
    fn model(&self) -> &'static str;

    /// Usable VRAM in bytes.
    fn vram_size(&self) -> u64;

    /// A human-readable identification of the hardware (interface version and the like).
    fn identity(&self) -> BoardIdentity;

    /// Fills `len` bytes of VRAM at `offset` with zeros (scrubbing a slice before reuse), in
    /// bounded steps with the scheduler let in between (process context only). Fails with
    /// `ENODEV` once the board is unbound, `EINVAL` outside the VRAM.
    fn vram_clear(&self, offset: u64, len: u64) -> Result;

    /// Reads VRAM at `offset` into `buf` (at most a few KiB at a time). Errors as `vram_clear`.
    fn vram_read(&self, offset: u64, buf: &mut [u8]) -> Result;

    /// Writes `data` into VRAM at `offset` (at most a few KiB at a time). Errors as `vram_clear`.
    fn vram_write(&self, offset: u64, data: &[u8]) -> Result;

    /// The physical (bus) address of the VRAM, for mapping slices of it into user space.
    fn vram_phys(&self) -> u64;

    /// Makes the board's own display output show `scan` (`None`: nothing, the display off).
    /// `EINVAL` if the board cannot scan that out (the board's display is then off).
    fn show(&self, scan: Option<Scan>) -> Result;
}

/// A picture in VRAM for a board's display output to scan out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Where the first line starts, in the board's VRAM.
    pub(crate) offset: u64,
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// Bits per pixel.
    pub(crate) bpp: u32,
    /// Bytes per line.
    pub(crate) stride: u32,
}

/// The identification line a board logs when it binds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BoardIdentity {
    pub(crate) interface: &'static str,
    pub(crate) version: u32,
}

impl fmt::Display for BoardIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} interface {:#x}", self.interface, self.version)
    }
}

/// Probes the board behind `pdev` and returns it, ready for use. The board's mappings are
/// device-managed: they are revoked when the PCI device is unbound, even if a reference to the
/// board outlives the binding.
pub(crate) fn probe(kind: BoardKind, pdev: &pci::Device<Core<'_>>) -> Result<Arc<dyn Board>> {
    match kind {
        BoardKind::Bochs => Ok(Arc::new(bochs::Bochs::probe(pdev)?, GFP_KERNEL)?),
    }
}
