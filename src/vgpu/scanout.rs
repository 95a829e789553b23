// SPDX-License-Identifier: GPL-2.0

//! What a vGPU's display shows, for a viewer outside the guest: the display plane that
//! `VFIO_DEVICE_QUERY_GFX_PLANE` describes, and the display region that shows it.
//!
//! The display region (index [`REGION_DISPLAY`], the first after the PCI regions; type
//! `VFIO_REGION_TYPE_PCI_VENDOR_TYPE | 0x1234`, subtype `RVGPU_REGION_SUBTYPE_SCANOUT`) starts
//! at the scan-out start inside the vGPU's slice (`X_OFFSET * bytes per pixel + Y_OFFSET *
//! stride`, as QEMU's bochs-display scans out) and ends with the slice. It is mapped on fault, so
//! when the guest pans or flips, the vGPU moves the start and zaps the region's mappings: the next
//! access maps the new place, with the same region index. The plane has no offset field, so a
//! start that is not a whole number of pages cannot be shown through a mapping: the plane query
//! then answers "no plane", as for a disabled display or a format QEMU cannot show.

use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        Mutex, //
    },
};

use super::{
    display::Mode,
    slice::VramSlice,
    uapi, //
};
use crate::board::Scan;
use crate::vfio::{
    bindings as vb,
    device::{
        GfxPlane,
        Mmap, //
    },
    vma::FaultBacking,
};

/// The display region's index.
pub(crate) const REGION_DISPLAY: u32 = vb::VFIO_PCI_NUM_REGIONS;
/// Its type and subtype (`VFIO_REGION_INFO_CAP_TYPE`).
pub(crate) const REGION_TYPE: (u32, u32) = (
    vb::VFIO_REGION_TYPE_PCI_VENDOR_TYPE | uapi::RVGPU_PCI_VENDOR_ID,
    uapi::RVGPU_REGION_SUBTYPE_SCANOUT,
);

/// DRM fourccs (`include/uapi/drm/drm_fourcc.h`).
const fn fourcc(s: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*s)
}
pub(crate) const DRM_FORMAT_XRGB8888: u32 = fourcc(b"XR24");
pub(crate) const DRM_FORMAT_RGB888: u32 = fourcc(b"RG24");

const PAGE: u64 = 4096;

/// A vGPU's scan-out: the mode its guest set and where in its slice the display region starts.
/// The physical GPU keeps a reference to each of its vGPUs' scan-outs, for `nvidia/scanout`.
#[pin_data]
pub(crate) struct Scanout {
    slice: Arc<VramSlice>,
    uuid: [u8; 16],
    start: Atomic<u64>,
    #[pin]
    mode: Mutex<Option<Mode>>,
}

impl Scanout {
    pub(crate) fn new(slice: Arc<VramSlice>, uuid: [u8; 16]) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                slice,
                uuid,
                start: Atomic::new(0),
                mode <- new_mutex!(None),
            }),
            GFP_KERNEL,
        )
    }

    /// The vGPU's UUID.
    pub(crate) fn uuid(&self) -> &[u8; 16] {
        &self.uuid
    }

    /// What the physical board must show to display this scan-out: the mode, at the scan-out
    /// start's place in the physical VRAM; `None` with the display off.
    pub(crate) fn board_scan(&self) -> Option<Scan> {
        let m = (*self.mode.lock())?;
        Some(Scan {
            offset: self.slice.vram_offset() + u64::from(m.offset),
            width: m.width,
            height: m.height,
            bpp: m.bpp,
            stride: m.stride,
        })
    }

    /// The display region's offset 0, in the slice.
    pub(crate) fn start(&self) -> u64 {
        self.start.load(Relaxed)
    }

    /// The display region's size: the usable part of the slice.
    pub(crate) fn size(&self) -> u64 {
        self.slice.usable()
    }

    /// Follows the guest's mode (and so does the physical display if it shows this scan-out):
    /// whether the start moved (the display region's mappings must be zapped then).
    pub(crate) fn follow(&self, mode: Option<Mode>) -> bool {
        let changed = {
            let mut m = self.mode.lock();
            let changed = *m != mode;
            *m = mode;
            changed
        };
        if changed {
            self.slice.gpu().scanout_follow(self);
        }
        let start = mode.map_or(0, |m| u64::from(m.offset));
        self.start.xchg(start, Relaxed) != start
    }

    /// The plane `mode` shows through the display region: "no plane" (all zero) when the
    /// display is off, its format is not one QEMU shows (8, 15 and 16 bpp; big-endian 32 bpp),
    /// its start is not page aligned, or it does not fit in the slice.
    pub(crate) fn plane(&self, mode: Option<Mode>, little_endian: bool) -> GfxPlane {
        let Some(m) = mode else {
            return GfxPlane::default();
        };
        let drm_format = match m.bpp {
            32 if little_endian => DRM_FORMAT_XRGB8888,
            24 => DRM_FORMAT_RGB888,
            _ => return GfxPlane::default(),
        };
        let bytes = u64::from(m.stride) * u64::from(m.height);
        let size = bytes.next_multiple_of(PAGE);
        let start = u64::from(m.offset);
        if m.width == 0 || m.height == 0 || start % PAGE != 0 || start + bytes > self.size() {
            return GfxPlane::default();
        }
        GfxPlane {
            drm_format,
            width: m.width,
            height: m.height,
            stride: m.stride,
            size: u32::try_from(size).unwrap_or(0),
            region_index: REGION_DISPLAY,
            ..GfxPlane::default()
        }
    }

    /// Maps `[off, off + vma.len())` of the display region, filled in on fault.
    pub(crate) fn mmap(self: &Arc<Self>, off: u64, vma: &Mmap<'_>) -> Result {
        let end = off.checked_add(vma.len()).ok_or(EINVAL)?;
        if end > self.size() {
            return Err(EINVAL);
        }
        vma.map_on_fault(self.clone())
    }
}

impl FaultBacking for Scanout {
    fn page(&self, index: u32, offset: u64) -> Result<u64> {
        if index != REGION_DISPLAY {
            return Err(EINVAL);
        }
        self.slice.page_phys(self.start() + offset)
    }

    fn first_write(&self, index: u32, offset: u64) {
        if index == REGION_DISPLAY {
            self.slice.dirty().mark(self.start() + offset, 1);
        }
    }
}

#[kunit_tests(rvgpu_vgpu_scanout)]
mod tests {
    use super::*;

    #[test]
    fn fourccs() {
        assert_eq!(DRM_FORMAT_XRGB8888, 0x3432_5258);
        assert_eq!(DRM_FORMAT_RGB888, 0x3432_4752);
    }
}
