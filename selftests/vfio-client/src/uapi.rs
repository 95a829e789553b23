// SPDX-License-Identifier: GPL-2.0
//! Hand-written mirror of the parts of `linux/vfio.h` and `linux/iommufd.h` (kernel 7.3 uapi) that
//! this crate uses: ioctl numbers, flag constants and `#[repr(C)]` structs with the kernel's names.
//!
//! Every struct's size (and the offsets that depend on alignment) is checked at compile time against
//! the values `gcc` reports for the 7.3 headers; the ioctl numbers are checked by unit tests.
//! Flexible array members (`data[]`, `areas[]`) are not part of the Rust structs: callers append
//! them to a byte buffer themselves.
#![allow(non_camel_case_types, non_upper_case_globals, missing_docs)]

use std::mem::size_of;

// ---------------------------------------------------------------------------------------------
// ioctl number encoding (asm-generic/ioctl.h, as used on x86, arm64, riscv...)
// ---------------------------------------------------------------------------------------------

const IOC_NRBITS: u32 = 8;
const IOC_TYPEBITS: u32 = 8;
const IOC_SIZEBITS: u32 = 14;
const IOC_NRSHIFT: u32 = 0;
const IOC_TYPESHIFT: u32 = IOC_NRSHIFT + IOC_NRBITS;
const IOC_SIZESHIFT: u32 = IOC_TYPESHIFT + IOC_TYPEBITS;
const IOC_DIRSHIFT: u32 = IOC_SIZESHIFT + IOC_SIZEBITS;

/// `_IOC_NONE`.
pub const IOC_NONE: u32 = 0;
/// `_IOC_WRITE` (user space writes, the kernel reads).
pub const IOC_WRITE: u32 = 1;
/// `_IOC_READ` (the kernel writes, user space reads).
pub const IOC_READ: u32 = 2;

/// `_IOC(dir, type, nr, size)`.
pub const fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> u64 {
    ((dir << IOC_DIRSHIFT)
        | ((ty as u32) << IOC_TYPESHIFT)
        | ((nr as u32) << IOC_NRSHIFT)
        | (((size as u32) & ((1 << IOC_SIZEBITS) - 1)) << IOC_SIZESHIFT)) as u64
}
/// `_IO(type, nr)`: no size encoded. All VFIO and iommufd ioctls use this form.
pub const fn io(ty: u8, nr: u8) -> u64 {
    ioc(IOC_NONE, ty, nr, 0)
}
/// `_IOR(type, nr, size)`.
pub const fn ior(ty: u8, nr: u8, size: usize) -> u64 {
    ioc(IOC_READ, ty, nr, size)
}
/// `_IOW(type, nr, size)`.
pub const fn iow(ty: u8, nr: u8, size: usize) -> u64 {
    ioc(IOC_WRITE, ty, nr, size)
}
/// `_IOWR(type, nr, size)`.
pub const fn iowr(ty: u8, nr: u8, size: usize) -> u64 {
    ioc(IOC_READ | IOC_WRITE, ty, nr, size)
}

// ---------------------------------------------------------------------------------------------
// linux/vfio.h
// ---------------------------------------------------------------------------------------------

pub const VFIO_API_VERSION: i32 = 0;
pub const VFIO_TYPE1_IOMMU: u64 = 1;
pub const VFIO_TYPE1v2_IOMMU: u64 = 3;
pub const VFIO_NOIOMMU_IOMMU: u64 = 8;

pub const VFIO_TYPE: u8 = b';';
pub const VFIO_BASE: u8 = 100;

pub const VFIO_GET_API_VERSION: u64 = io(VFIO_TYPE, VFIO_BASE);
pub const VFIO_CHECK_EXTENSION: u64 = io(VFIO_TYPE, VFIO_BASE + 1);
pub const VFIO_SET_IOMMU: u64 = io(VFIO_TYPE, VFIO_BASE + 2);
pub const VFIO_GROUP_GET_STATUS: u64 = io(VFIO_TYPE, VFIO_BASE + 3);
pub const VFIO_GROUP_SET_CONTAINER: u64 = io(VFIO_TYPE, VFIO_BASE + 4);
pub const VFIO_GROUP_UNSET_CONTAINER: u64 = io(VFIO_TYPE, VFIO_BASE + 5);
pub const VFIO_GROUP_GET_DEVICE_FD: u64 = io(VFIO_TYPE, VFIO_BASE + 6);
pub const VFIO_DEVICE_GET_INFO: u64 = io(VFIO_TYPE, VFIO_BASE + 7);
pub const VFIO_DEVICE_GET_REGION_INFO: u64 = io(VFIO_TYPE, VFIO_BASE + 8);
pub const VFIO_DEVICE_GET_IRQ_INFO: u64 = io(VFIO_TYPE, VFIO_BASE + 9);
pub const VFIO_DEVICE_SET_IRQS: u64 = io(VFIO_TYPE, VFIO_BASE + 10);
pub const VFIO_DEVICE_RESET: u64 = io(VFIO_TYPE, VFIO_BASE + 11);
pub const VFIO_IOMMU_GET_INFO: u64 = io(VFIO_TYPE, VFIO_BASE + 12);
pub const VFIO_IOMMU_MAP_DMA: u64 = io(VFIO_TYPE, VFIO_BASE + 13);
pub const VFIO_IOMMU_UNMAP_DMA: u64 = io(VFIO_TYPE, VFIO_BASE + 14);
pub const VFIO_DEVICE_QUERY_GFX_PLANE: u64 = io(VFIO_TYPE, VFIO_BASE + 14);
pub const VFIO_DEVICE_GET_GFX_DMABUF: u64 = io(VFIO_TYPE, VFIO_BASE + 15);
pub const VFIO_DEVICE_IOEVENTFD: u64 = io(VFIO_TYPE, VFIO_BASE + 16);
pub const VFIO_DEVICE_FEATURE: u64 = io(VFIO_TYPE, VFIO_BASE + 17);
pub const VFIO_DEVICE_BIND_IOMMUFD: u64 = io(VFIO_TYPE, VFIO_BASE + 18);
pub const VFIO_DEVICE_ATTACH_IOMMUFD_PT: u64 = io(VFIO_TYPE, VFIO_BASE + 19);
pub const VFIO_DEVICE_DETACH_IOMMUFD_PT: u64 = io(VFIO_TYPE, VFIO_BASE + 20);
/// On a migration data fd, not the device fd.
pub const VFIO_MIG_GET_PRECOPY_INFO: u64 = io(VFIO_TYPE, VFIO_BASE + 21);

pub const VFIO_GROUP_FLAGS_VIABLE: u32 = 1 << 0;
pub const VFIO_GROUP_FLAGS_CONTAINER_SET: u32 = 1 << 1;

pub const VFIO_DEVICE_FLAGS_RESET: u32 = 1 << 0;
pub const VFIO_DEVICE_FLAGS_PCI: u32 = 1 << 1;
pub const VFIO_DEVICE_FLAGS_PLATFORM: u32 = 1 << 2;
pub const VFIO_DEVICE_FLAGS_AMBA: u32 = 1 << 3;
pub const VFIO_DEVICE_FLAGS_CCW: u32 = 1 << 4;
pub const VFIO_DEVICE_FLAGS_AP: u32 = 1 << 5;
pub const VFIO_DEVICE_FLAGS_FSL_MC: u32 = 1 << 6;
pub const VFIO_DEVICE_FLAGS_CAPS: u32 = 1 << 7;
pub const VFIO_DEVICE_FLAGS_CDX: u32 = 1 << 8;

pub const VFIO_REGION_INFO_FLAG_READ: u32 = 1 << 0;
pub const VFIO_REGION_INFO_FLAG_WRITE: u32 = 1 << 1;
pub const VFIO_REGION_INFO_FLAG_MMAP: u32 = 1 << 2;
pub const VFIO_REGION_INFO_FLAG_CAPS: u32 = 1 << 3;

pub const VFIO_REGION_INFO_CAP_SPARSE_MMAP: u16 = 1;
pub const VFIO_REGION_INFO_CAP_TYPE: u16 = 2;
pub const VFIO_REGION_INFO_CAP_MSIX_MAPPABLE: u16 = 3;
pub const VFIO_REGION_INFO_CAP_NVLINK2_SSATGT: u16 = 4;
pub const VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD: u16 = 5;

pub const VFIO_REGION_TYPE_PCI_VENDOR_TYPE: u32 = 1 << 31;
pub const VFIO_REGION_TYPE_PCI_VENDOR_MASK: u32 = 0xffff;
pub const VFIO_REGION_TYPE_GFX: u32 = 1;
pub const VFIO_REGION_TYPE_CCW: u32 = 2;
pub const VFIO_REGION_TYPE_MIGRATION_DEPRECATED: u32 = 3;
pub const VFIO_REGION_SUBTYPE_GFX_EDID: u32 = 1;

// struct vfio_device_gfx_plane_info.flags (VFIO_DEVICE_QUERY_GFX_PLANE).
pub const VFIO_GFX_PLANE_TYPE_PROBE: u32 = 1 << 0;
pub const VFIO_GFX_PLANE_TYPE_DMABUF: u32 = 1 << 1;
pub const VFIO_GFX_PLANE_TYPE_REGION: u32 = 1 << 2;

pub const VFIO_IRQ_INFO_EVENTFD: u32 = 1 << 0;
pub const VFIO_IRQ_INFO_MASKABLE: u32 = 1 << 1;
pub const VFIO_IRQ_INFO_AUTOMASKED: u32 = 1 << 2;
pub const VFIO_IRQ_INFO_NORESIZE: u32 = 1 << 3;

pub const VFIO_IRQ_SET_DATA_NONE: u32 = 1 << 0;
pub const VFIO_IRQ_SET_DATA_BOOL: u32 = 1 << 1;
pub const VFIO_IRQ_SET_DATA_EVENTFD: u32 = 1 << 2;
pub const VFIO_IRQ_SET_ACTION_MASK: u32 = 1 << 3;
pub const VFIO_IRQ_SET_ACTION_UNMASK: u32 = 1 << 4;
pub const VFIO_IRQ_SET_ACTION_TRIGGER: u32 = 1 << 5;
pub const VFIO_IRQ_SET_DATA_TYPE_MASK: u32 =
    VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_DATA_EVENTFD;
pub const VFIO_IRQ_SET_ACTION_TYPE_MASK: u32 =
    VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_ACTION_TRIGGER;

// vfio-pci fixed region indexes.
pub const VFIO_PCI_BAR0_REGION_INDEX: u32 = 0;
pub const VFIO_PCI_BAR5_REGION_INDEX: u32 = 5;
pub const VFIO_PCI_ROM_REGION_INDEX: u32 = 6;
pub const VFIO_PCI_CONFIG_REGION_INDEX: u32 = 7;
pub const VFIO_PCI_VGA_REGION_INDEX: u32 = 8;
pub const VFIO_PCI_NUM_REGIONS: u32 = 9;

// vfio-pci fixed irq indexes.
pub const VFIO_PCI_INTX_IRQ_INDEX: u32 = 0;
pub const VFIO_PCI_MSI_IRQ_INDEX: u32 = 1;
pub const VFIO_PCI_MSIX_IRQ_INDEX: u32 = 2;
pub const VFIO_PCI_ERR_IRQ_INDEX: u32 = 3;
pub const VFIO_PCI_REQ_IRQ_INDEX: u32 = 4;
pub const VFIO_PCI_NUM_IRQS: u32 = 5;

pub const VFIO_DMA_MAP_FLAG_READ: u32 = 1 << 0;
pub const VFIO_DMA_MAP_FLAG_WRITE: u32 = 1 << 1;
pub const VFIO_DMA_MAP_FLAG_VADDR: u32 = 1 << 2;
pub const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP: u32 = 1 << 0;
pub const VFIO_DMA_UNMAP_FLAG_ALL: u32 = 1 << 1;
pub const VFIO_DMA_UNMAP_FLAG_VADDR: u32 = 1 << 2;

// VFIO_DEVICE_FEATURE: flags of `struct vfio_device_feature` and the feature indexes.
pub const VFIO_DEVICE_FEATURE_MASK: u32 = 0xffff;
pub const VFIO_DEVICE_FEATURE_GET: u32 = 1 << 16;
pub const VFIO_DEVICE_FEATURE_SET: u32 = 1 << 17;
pub const VFIO_DEVICE_FEATURE_PROBE: u32 = 1 << 18;
pub const VFIO_DEVICE_FEATURE_PCI_VF_TOKEN: u32 = 0;
pub const VFIO_DEVICE_FEATURE_MIGRATION: u32 = 1;
pub const VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE: u32 = 2;
pub const VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY: u32 = 3;
pub const VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP: u32 = 4;
pub const VFIO_DEVICE_FEATURE_LOW_POWER_EXIT: u32 = 5;
pub const VFIO_DEVICE_FEATURE_DMA_LOGGING_START: u32 = 6;
pub const VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP: u32 = 7;
pub const VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT: u32 = 8;
pub const VFIO_DEVICE_FEATURE_MIG_DATA_SIZE: u32 = 9;
pub const VFIO_DEVICE_FEATURE_BUS_MASTER: u32 = 10;
pub const VFIO_DEVICE_FEATURE_DMA_BUF: u32 = 11;
pub const VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2: u32 = 12;

// struct vfio_device_feature_migration.flags.
pub const VFIO_MIGRATION_STOP_COPY: u64 = 1 << 0;
pub const VFIO_MIGRATION_P2P: u64 = 1 << 1;
pub const VFIO_MIGRATION_PRE_COPY: u64 = 1 << 2;

// enum vfio_device_mig_state.
pub const VFIO_DEVICE_STATE_ERROR: u32 = 0;
pub const VFIO_DEVICE_STATE_STOP: u32 = 1;
pub const VFIO_DEVICE_STATE_RUNNING: u32 = 2;
pub const VFIO_DEVICE_STATE_STOP_COPY: u32 = 3;
pub const VFIO_DEVICE_STATE_RESUMING: u32 = 4;
pub const VFIO_DEVICE_STATE_RUNNING_P2P: u32 = 5;
pub const VFIO_DEVICE_STATE_PRE_COPY: u32 = 6;
pub const VFIO_DEVICE_STATE_PRE_COPY_P2P: u32 = 7;
pub const VFIO_DEVICE_STATE_NR: u32 = 8;

// struct vfio_precopy_info.flags (output, after VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2).
pub const VFIO_PRECOPY_INFO_REINIT: u32 = 1 << 0;

pub const VFIO_DEVICE_BIND_FLAG_TOKEN: u32 = 1 << 0;
pub const VFIO_DEVICE_ATTACH_PASID: u32 = 1 << 0;
pub const VFIO_DEVICE_DETACH_PASID: u32 = 1 << 0;

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct vfio_info_cap_header {
    pub id: u16,
    pub version: u16,
    pub next: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct vfio_group_status {
    pub argsz: u32,
    pub flags: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct vfio_device_info {
    pub argsz: u32,
    pub flags: u32,
    pub num_regions: u32,
    pub num_irqs: u32,
    pub cap_offset: u32,
    pub pad: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct vfio_region_info {
    pub argsz: u32,
    pub flags: u32,
    pub index: u32,
    pub cap_offset: u32,
    pub size: u64,
    pub offset: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct vfio_region_sparse_mmap_area {
    pub offset: u64,
    pub size: u64,
}

/// Header of the sparse-mmap capability; `nr_areas` [`vfio_region_sparse_mmap_area`]s follow.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct vfio_region_info_cap_sparse_mmap {
    pub header: vfio_info_cap_header,
    pub nr_areas: u32,
    pub reserved: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct vfio_region_info_cap_type {
    pub header: vfio_info_cap_header,
    pub type_: u32,
    pub subtype: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct vfio_irq_info {
    pub argsz: u32,
    pub flags: u32,
    pub index: u32,
    pub count: u32,
}

/// Header of `VFIO_DEVICE_SET_IRQS`' argument; the `data[]` bytes follow.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct vfio_irq_set {
    pub argsz: u32,
    pub flags: u32,
    pub index: u32,
    pub start: u32,
    pub count: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct vfio_iommu_type1_info {
    pub argsz: u32,
    pub flags: u32,
    pub iova_pgsizes: u64,
    pub cap_offset: u32,
    pub pad: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct vfio_iommu_type1_dma_map {
    pub argsz: u32,
    pub flags: u32,
    pub vaddr: u64,
    pub iova: u64,
    pub size: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct vfio_iommu_type1_dma_unmap {
    pub argsz: u32,
    pub flags: u32,
    pub iova: u64,
    pub size: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct vfio_device_bind_iommufd {
    pub argsz: u32,
    pub flags: u32,
    pub iommufd: i32,
    pub out_devid: u32,
    pub token_uuid_ptr: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct vfio_device_attach_iommufd_pt {
    pub argsz: u32,
    pub flags: u32,
    pub pt_id: u32,
    pub pasid: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct vfio_device_detach_iommufd_pt {
    pub argsz: u32,
    pub flags: u32,
    pub pasid: u32,
}

/// Header of `VFIO_DEVICE_FEATURE`'s argument; the feature's `data[]` follows.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct vfio_device_feature {
    pub argsz: u32,
    pub flags: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct vfio_device_feature_migration {
    pub flags: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct vfio_device_feature_mig_state {
    pub device_state: u32,
    pub data_fd: i32,
}

/// `VFIO_MIG_GET_PRECOPY_INFO`'s argument (on the data fd).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct vfio_precopy_info {
    pub argsz: u32,
    pub flags: u32,
    pub initial_bytes: u64,
    pub dirty_bytes: u64,
}

/// `DMA_LOGGING_START`'s argument; `ranges` points to `num_ranges`
/// [`vfio_device_feature_dma_logging_range`]s.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct vfio_device_feature_dma_logging_control {
    pub page_size: u64,
    pub num_ranges: u32,
    pub __reserved: u32,
    pub ranges: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct vfio_device_feature_dma_logging_range {
    pub iova: u64,
    pub length: u64,
}

/// `DMA_LOGGING_REPORT`'s argument; `bitmap` points to the `u64`s the kernel sets bits in.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct vfio_device_feature_dma_logging_report {
    pub iova: u64,
    pub length: u64,
    pub page_size: u64,
    pub bitmap: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct vfio_device_feature_mig_data_size {
    pub stop_copy_length: u64,
}

/// `VFIO_DEVICE_QUERY_GFX_PLANE`'s argument. The header's anonymous union (`region_index` or
/// `dmabuf_id`) is `region_index`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct vfio_device_gfx_plane_info {
    pub argsz: u32,
    pub flags: u32,
    pub drm_plane_type: u32,
    pub drm_format: u32,
    pub drm_format_mod: u64,
    pub width: u32,
    pub height: u32,
    pub stride: u32,
    pub size: u32,
    pub x_pos: u32,
    pub y_pos: u32,
    pub x_hot: u32,
    pub y_hot: u32,
    pub region_index: u32,
    pub reserved: u32,
}

// ---------------------------------------------------------------------------------------------
// DRM values VFIO_DEVICE_QUERY_GFX_PLANE uses: `enum drm_plane_type` (include/drm/drm_plane.h,
// the values QEMU passes in `drm_plane_type`) and fourccs of uapi/drm/drm_fourcc.h.
// ---------------------------------------------------------------------------------------------

pub const DRM_PLANE_TYPE_OVERLAY: u32 = 0;
pub const DRM_PLANE_TYPE_PRIMARY: u32 = 1;
pub const DRM_PLANE_TYPE_CURSOR: u32 = 2;

/// `fourcc_code(a, b, c, d)`.
pub const fn fourcc_code(code: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*code)
}
pub const DRM_FORMAT_RGB888: u32 = fourcc_code(b"RG24");
pub const DRM_FORMAT_XRGB8888: u32 = fourcc_code(b"XR24");
const _: () = assert!(DRM_FORMAT_RGB888 == 0x3432_4752 && DRM_FORMAT_XRGB8888 == 0x3432_5258);

// ---------------------------------------------------------------------------------------------
// linux/iommufd.h
// ---------------------------------------------------------------------------------------------

pub const IOMMUFD_TYPE: u8 = b';';
pub const IOMMUFD_CMD_DESTROY: u8 = 0x80;
pub const IOMMUFD_CMD_IOAS_ALLOC: u8 = 0x81;
pub const IOMMUFD_CMD_IOAS_IOVA_RANGES: u8 = 0x84;
pub const IOMMUFD_CMD_IOAS_MAP: u8 = 0x85;
pub const IOMMUFD_CMD_IOAS_UNMAP: u8 = 0x86;

pub const IOMMU_DESTROY: u64 = io(IOMMUFD_TYPE, IOMMUFD_CMD_DESTROY);
pub const IOMMU_IOAS_ALLOC: u64 = io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOC);
pub const IOMMU_IOAS_IOVA_RANGES: u64 = io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_IOVA_RANGES);
pub const IOMMU_IOAS_MAP: u64 = io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP);
pub const IOMMU_IOAS_UNMAP: u64 = io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_UNMAP);

pub const IOMMU_IOAS_MAP_FIXED_IOVA: u32 = 1 << 0;
pub const IOMMU_IOAS_MAP_WRITEABLE: u32 = 1 << 1;
pub const IOMMU_IOAS_MAP_READABLE: u32 = 1 << 2;

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct iommu_destroy {
    pub size: u32,
    pub id: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct iommu_ioas_alloc {
    pub size: u32,
    pub flags: u32,
    pub out_ioas_id: u32,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct iommu_ioas_map {
    pub size: u32,
    pub flags: u32,
    pub ioas_id: u32,
    pub __reserved: u32,
    pub user_va: u64,
    pub length: u64,
    pub iova: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct iommu_ioas_unmap {
    pub size: u32,
    pub ioas_id: u32,
    pub iova: u64,
    pub length: u64,
}

// ---------------------------------------------------------------------------------------------
// Layout checks: the numbers are gcc's sizeof/offsetof for the 7.3 uapi headers (x86_64).
// ---------------------------------------------------------------------------------------------

macro_rules! assert_size {
    ($($t:ty => $n:expr),* $(,)?) => { $(const _: () = assert!(size_of::<$t>() == $n);)* };
}
assert_size! {
    vfio_info_cap_header => 8,
    vfio_group_status => 8,
    vfio_device_info => 24,
    vfio_region_info => 32,
    vfio_region_sparse_mmap_area => 16,
    vfio_region_info_cap_sparse_mmap => 16,
    vfio_region_info_cap_type => 16,
    vfio_irq_info => 16,
    vfio_irq_set => 20,
    vfio_iommu_type1_info => 24,
    vfio_iommu_type1_dma_map => 32,
    vfio_iommu_type1_dma_unmap => 24,
    vfio_device_bind_iommufd => 24,
    vfio_device_attach_iommufd_pt => 16,
    vfio_device_detach_iommufd_pt => 12,
    vfio_device_feature => 8,
    vfio_device_feature_migration => 8,
    vfio_device_feature_mig_state => 8,
    vfio_precopy_info => 24,
    vfio_device_feature_dma_logging_control => 24,
    vfio_device_feature_dma_logging_range => 16,
    vfio_device_feature_dma_logging_report => 32,
    vfio_device_feature_mig_data_size => 8,
    iommu_destroy => 8,
    iommu_ioas_alloc => 12,
    iommu_ioas_map => 40,
    iommu_ioas_unmap => 24,
}
const _: () = assert!(std::mem::offset_of!(vfio_region_info, size) == 16);
const _: () = assert!(std::mem::offset_of!(vfio_region_info, offset) == 24);
const _: () = assert!(std::mem::offset_of!(vfio_device_bind_iommufd, token_uuid_ptr) == 16);
const _: () = assert!(std::mem::offset_of!(iommu_ioas_map, user_va) == 16);
const _: () = assert!(std::mem::offset_of!(iommu_ioas_unmap, iova) == 8);
const _: () = assert!(std::mem::offset_of!(vfio_precopy_info, initial_bytes) == 8);
const _: () = assert!(std::mem::offset_of!(vfio_device_feature_dma_logging_control, ranges) == 16);
assert_size! { vfio_device_gfx_plane_info => 64 }
const _: () = assert!(std::mem::offset_of!(vfio_device_gfx_plane_info, drm_format_mod) == 16);
const _: () = assert!(std::mem::offset_of!(vfio_device_gfx_plane_info, region_index) == 56);

/// Marker for the plain-old-data uapi structs above: `#[repr(C)]`, only integer fields, no
/// padding bytes, valid for every bit pattern. Lets the crate view them as byte slices.
///
/// # Safety
/// Implement only for types with exactly those properties.
pub unsafe trait Pod: Copy + Default + 'static {}

macro_rules! impl_pod {
    ($($t:ty),* $(,)?) => { $(unsafe impl Pod for $t {})* };
}
impl_pod! {
    vfio_info_cap_header, vfio_group_status, vfio_device_info, vfio_region_info,
    vfio_region_sparse_mmap_area, vfio_region_info_cap_sparse_mmap, vfio_region_info_cap_type,
    vfio_irq_info, vfio_irq_set, vfio_iommu_type1_info, vfio_iommu_type1_dma_map,
    vfio_iommu_type1_dma_unmap, vfio_device_bind_iommufd, vfio_device_attach_iommufd_pt,
    vfio_device_detach_iommufd_pt, vfio_device_feature, vfio_device_feature_migration,
    vfio_device_feature_mig_state, vfio_precopy_info, vfio_device_feature_dma_logging_control,
    vfio_device_feature_dma_logging_range, vfio_device_feature_dma_logging_report,
    vfio_device_feature_mig_data_size, iommu_destroy, iommu_ioas_alloc, iommu_ioas_map,
    iommu_ioas_unmap, u8, u16, u32, u64, i32,
}

impl_pod! { vfio_device_gfx_plane_info }

/// The bytes of a [`Pod`] value.
pub fn as_bytes<T: Pod>(v: &T) -> &[u8] {
    // SAFETY: T is Pod: no padding, so every byte is initialised; the slice borrows `v`.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
}

/// Reads a [`Pod`] value from `buf` at byte offset `off` (unaligned), or `None` when out of range.
pub fn read_pod<T: Pod>(buf: &[u8], off: usize) -> Option<T> {
    let end = off.checked_add(size_of::<T>())?;
    let src = buf.get(off..end)?;
    let mut v = T::default();
    // SAFETY: T is Pod (any bit pattern valid); `src` has exactly size_of::<T>() bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), (&mut v as *mut T).cast::<u8>(), src.len());
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by a C program compiled against the 7.3 uapi headers.
    #[test]
    fn vfio_ioctl_numbers_match_the_headers() {
        let expect: &[(&str, u64, u64)] = &[
            ("VFIO_GET_API_VERSION", VFIO_GET_API_VERSION, 0x3b64),
            ("VFIO_CHECK_EXTENSION", VFIO_CHECK_EXTENSION, 0x3b65),
            ("VFIO_SET_IOMMU", VFIO_SET_IOMMU, 0x3b66),
            ("VFIO_GROUP_GET_STATUS", VFIO_GROUP_GET_STATUS, 0x3b67),
            ("VFIO_GROUP_SET_CONTAINER", VFIO_GROUP_SET_CONTAINER, 0x3b68),
            ("VFIO_GROUP_UNSET_CONTAINER", VFIO_GROUP_UNSET_CONTAINER, 0x3b69),
            ("VFIO_GROUP_GET_DEVICE_FD", VFIO_GROUP_GET_DEVICE_FD, 0x3b6a),
            ("VFIO_DEVICE_GET_INFO", VFIO_DEVICE_GET_INFO, 0x3b6b),
            ("VFIO_DEVICE_GET_REGION_INFO", VFIO_DEVICE_GET_REGION_INFO, 0x3b6c),
            ("VFIO_DEVICE_GET_IRQ_INFO", VFIO_DEVICE_GET_IRQ_INFO, 0x3b6d),
            ("VFIO_DEVICE_SET_IRQS", VFIO_DEVICE_SET_IRQS, 0x3b6e),
            ("VFIO_DEVICE_RESET", VFIO_DEVICE_RESET, 0x3b6f),
            ("VFIO_IOMMU_GET_INFO", VFIO_IOMMU_GET_INFO, 0x3b70),
            ("VFIO_IOMMU_MAP_DMA", VFIO_IOMMU_MAP_DMA, 0x3b71),
            ("VFIO_IOMMU_UNMAP_DMA", VFIO_IOMMU_UNMAP_DMA, 0x3b72),
            ("VFIO_DEVICE_QUERY_GFX_PLANE", VFIO_DEVICE_QUERY_GFX_PLANE, 0x3b72),
            ("VFIO_DEVICE_GET_GFX_DMABUF", VFIO_DEVICE_GET_GFX_DMABUF, 0x3b73),
            ("VFIO_DEVICE_IOEVENTFD", VFIO_DEVICE_IOEVENTFD, 0x3b74),
            ("VFIO_DEVICE_FEATURE", VFIO_DEVICE_FEATURE, 0x3b75),
            ("VFIO_DEVICE_BIND_IOMMUFD", VFIO_DEVICE_BIND_IOMMUFD, 0x3b76),
            ("VFIO_DEVICE_ATTACH_IOMMUFD_PT", VFIO_DEVICE_ATTACH_IOMMUFD_PT, 0x3b77),
            ("VFIO_DEVICE_DETACH_IOMMUFD_PT", VFIO_DEVICE_DETACH_IOMMUFD_PT, 0x3b78),
            ("VFIO_MIG_GET_PRECOPY_INFO", VFIO_MIG_GET_PRECOPY_INFO, 0x3b79),
            ("IOMMU_DESTROY", IOMMU_DESTROY, 0x3b80),
            ("IOMMU_IOAS_ALLOC", IOMMU_IOAS_ALLOC, 0x3b81),
            ("IOMMU_IOAS_IOVA_RANGES", IOMMU_IOAS_IOVA_RANGES, 0x3b84),
            ("IOMMU_IOAS_MAP", IOMMU_IOAS_MAP, 0x3b85),
            ("IOMMU_IOAS_UNMAP", IOMMU_IOAS_UNMAP, 0x3b86),
        ];
        for &(name, got, want) in expect {
            assert_eq!(got, want, "{name}: {got:#x} != {want:#x}");
        }
    }

    /// The sized forms, against well-known ioctls.
    #[test]
    #[allow(clippy::unnecessary_cast)] // the libc constants' type differs between libcs
    fn sized_ioctl_encodings() {
        // FS_IOC_GETFLAGS = _IOR('f', 1, long), FS_IOC_SETFLAGS = _IOW('f', 2, long)
        assert_eq!(ior(b'f', 1, 8), 0x8008_6601);
        assert_eq!(iow(b'f', 2, 8), 0x4008_6602);
        // DRM_IOCTL_VERSION = _IOWR('d', 0x00, struct drm_version) with a 64-byte struct
        assert_eq!(iowr(b'd', 0, 64), 0xc040_6400);
        // TCGETS = _IO('T', 1)
        assert_eq!(io(b'T', 1), libc::TCGETS as u64);
        assert_eq!(io(b'T', 0x13), libc::TIOCGWINSZ as u64);
    }

    #[test]
    fn read_pod_bounds() {
        let buf = [1u8, 0, 2, 0, 8, 0, 0, 0, 0xff];
        let h: vfio_info_cap_header = read_pod(&buf, 0).expect("in range");
        assert_eq!(h, vfio_info_cap_header { id: 1, version: 2, next: 8 });
        let h1: Option<vfio_info_cap_header> = read_pod(&buf, 1);
        assert_eq!(h1, Some(vfio_info_cap_header { id: 0x200, version: 0x800, next: 0xff00_0000 }));
        assert!(read_pod::<vfio_info_cap_header>(&buf, 2).is_none());
        assert!(read_pod::<u32>(&buf, usize::MAX).is_none());
    }

    #[test]
    fn pod_round_trip() {
        let r = vfio_region_info { argsz: 32, flags: 7, index: 3, cap_offset: 0, size: 1 << 20, offset: 3 << 40 };
        let back: vfio_region_info = read_pod(as_bytes(&r), 0).expect("whole struct");
        assert_eq!(r, back);
    }
}
