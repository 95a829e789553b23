// SPDX-License-Identifier: GPL-2.0

//! The VFIO uapi structures the device ioctls copy to and from user space, and the `argsz`
//! protocol of [`include/uapi/linux/vfio.h`](srctree/include/uapi/linux/vfio.h): user space says
//! how large its structure is, the kernel reads and writes only the part both know (`minsz`).

use kernel::{
    prelude::*,
    uaccess::UserSlice, //
};

use super::bindings;

/// `struct vfio_irq_set` without its flexible array of data.
#[repr(C)]
#[derive(Default, FromBytes, IntoBytes)]
pub(super) struct IrqSetHeader {
    pub(super) argsz: u32,
    pub(super) flags: u32,
    pub(super) index: u32,
    pub(super) start: u32,
    pub(super) count: u32,
}

const _: () = assert!(
    size_of::<IrqSetHeader>() == core::mem::offset_of!(bindings::vfio_irq_set, data)
        && core::mem::offset_of!(bindings::vfio_irq_set, count) == 16
);

/// `struct vfio_device_gfx_plane_info`, its union (`region_index` or `dmabuf_id`) as one field.
#[repr(C)]
#[derive(Default, FromBytes, IntoBytes)]
pub(super) struct GfxPlaneInfo {
    pub(super) argsz: u32,
    pub(super) flags: u32,
    pub(super) drm_plane_type: u32,
    pub(super) drm_format: u32,
    pub(super) drm_format_mod: u64,
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) stride: u32,
    pub(super) size: u32,
    pub(super) x_pos: u32,
    pub(super) y_pos: u32,
    pub(super) x_hot: u32,
    pub(super) y_hot: u32,
    pub(super) region_index: u32,
    pub(super) reserved: u32,
}

const _: () = assert!(
    size_of::<GfxPlaneInfo>() == size_of::<bindings::vfio_device_gfx_plane_info>()
        && core::mem::offset_of!(GfxPlaneInfo, region_index)
            == core::mem::offset_of!(bindings::vfio_device_gfx_plane_info, __bindgen_anon_1)
        && core::mem::offset_of!(GfxPlaneInfo, drm_format_mod)
            == core::mem::offset_of!(bindings::vfio_device_gfx_plane_info, drm_format_mod)
);

/// A region-type capability: `struct vfio_region_info_cap_type`.
#[repr(C)]
pub(super) struct RegionTypeCap {
    pub(super) header: bindings::vfio_info_cap_header,
    pub(super) type_: u32,
    pub(super) subtype: u32,
}

const _: () =
    assert!(size_of::<RegionTypeCap>() == size_of::<bindings::vfio_region_info_cap_type>());

/// A sparse-mmap capability with one area: `struct vfio_region_info_cap_sparse_mmap` with its
/// flexible array of areas spelled out.
#[repr(C)]
pub(super) struct SparseMmapCap {
    pub(super) header: bindings::vfio_info_cap_header,
    pub(super) nr_areas: u32,
    pub(super) reserved: u32,
    pub(super) area: bindings::vfio_region_sparse_mmap_area,
}

const _: () = assert!(
    core::mem::offset_of!(SparseMmapCap, area)
        == size_of::<bindings::vfio_region_info_cap_sparse_mmap>()
);

/// `minsz` of a structure: the end of its field `$field` (`offsetofend()` in C).
macro_rules! minsz {
    ($t:ty, $field:ident) => {
        core::mem::offset_of!($t, $field) + size_of::<u32>()
    };
}
pub(super) use minsz;

/// Reads the first `len` bytes of a uapi structure from user space (`EINVAL` if `len` exceeds
/// the structure, `EFAULT` if user memory cannot be read).
pub(super) fn read_user<S: FromBytes + IntoBytes>(user: UserPtr, s: &mut S, len: usize) -> Result {
    let bytes = s.as_mut_bytes().get_mut(..len).ok_or(EINVAL)?;
    UserSlice::new(user, len).reader().read_slice(bytes)
}

/// Writes the first `len` bytes of a uapi structure to user space.
pub(super) fn write_user<S: FromBytes + IntoBytes>(user: UserPtr, s: &mut S, len: usize) -> Result {
    let bytes = s.as_mut_bytes().get(..len).ok_or(EINVAL)?;
    UserSlice::new(user, len).writer().write_slice(bytes)
}
