// SPDX-License-Identifier: GPL-2.0

//! VFIO devices with an emulated IOMMU (the kind an mdev vendor driver registers).
//!
//! C header: [`include/linux/vfio.h`](srctree/include/linux/vfio.h).
//!
//! A [`Device<T>`] is one allocation made by the VFIO core (`_vfio_alloc_device()`): the C
//! `struct vfio_device` first, the driver's `T` after it. The C `struct vfio_device_ops` for `T`
//! is a `const` item built from the [`DeviceOps`] implementation (`device/ops.rs`).

use core::{
    marker::PhantomData,
    mem::MaybeUninit,
    ops::Deref,
    ptr::NonNull, //
};
use kernel::{
    device,
    error::{
        to_result,
        VTABLE_DEFAULT_ERROR, //
    },
    mm::virt::VmaNew,
    page::PAGE_SHIFT,
    prelude::*,
    sync::Arc,
    types::{
        ForeignOwnable,
        Opaque, //
    },
    uaccess::{
        UserSliceReader,
        UserSliceWriter, //
    }, //
};

use super::{
    bindings,
    dma::DmaHandle,
    migration::{
        DirtyBitmap,
        LogRange,
        MigFile,
        MigOps,
        MigState, //
    },
    vma::Mappings,
};

mod ops;

/// Where region `index` starts in the device file, as vfio-pci lays regions out
/// (`VFIO_PCI_OFFSET_SHIFT`): the index in the bits from 40 up, the offset inside below.
pub(crate) const REGION_SHIFT: u32 = 40;

/// The device-file offset of byte `pos` of region `index`.
pub(crate) const fn region_offset(index: u32, pos: u64) -> u64 {
    ((index as u64) << REGION_SHIFT) | pos
}

/// Splits a device-file offset into region index and offset inside the region.
pub(crate) const fn split_offset(offset: u64) -> (u64, u64) {
    (offset >> REGION_SHIFT, offset & ((1 << REGION_SHIFT) - 1))
}

/// What `VFIO_DEVICE_GET_INFO` reports.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DeviceInfo {
    /// `VFIO_DEVICE_FLAGS_*`.
    pub(crate) flags: u32,
    pub(crate) num_regions: u32,
    pub(crate) num_irqs: u32,
}

/// What `VFIO_DEVICE_GET_REGION_INFO` reports for one region.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RegionInfo {
    /// Where the region starts in the device file.
    pub(crate) offset: u64,
    pub(crate) size: u64,
    /// `VFIO_REGION_INFO_FLAG_*` (`READ`, `WRITE`, `MMAP`).
    pub(crate) flags: u32,
    /// The part of the region that can be mmapped (offset and size inside the region), reported
    /// as a sparse-mmap capability; `None` when the whole region can be (or none of it).
    pub(crate) sparse_mmap: Option<(u64, u64)>,
    /// A device-specific region's type and subtype (`VFIO_REGION_INFO_CAP_TYPE`).
    pub(crate) region_type: Option<(u32, u32)>,
}

/// What a `VFIO_DEVICE_QUERY_GFX_PLANE` asks, decoded from its flags (any other combination is
/// refused with `EINVAL` before the driver sees it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PlaneQuery {
    /// `PROBE | DMABUF`: are planes exported as dma-bufs?
    ProbeDmabuf,
    /// `PROBE | REGION`: are planes shown in a region?
    ProbeRegion,
    /// `DMABUF`: the plane of `drm_plane_type` as a dma-buf.
    Dmabuf(u32),
    /// `REGION`: the plane of `drm_plane_type` (`DRM_PLANE_TYPE_*`) in a region.
    Region(u32),
}

/// The `DRM_PLANE_TYPE_*` values of a plane query.
pub(crate) const DRM_PLANE_TYPE_OVERLAY: u32 = 0;
pub(crate) const DRM_PLANE_TYPE_PRIMARY: u32 = 1;
pub(crate) const DRM_PLANE_TYPE_CURSOR: u32 = 2;

/// A plane shown in a region, as `VFIO_DEVICE_QUERY_GFX_PLANE` reports it. The default is the
/// uapi's "no plane": a disabled plane answers success with zeroed format, size, width and
/// height.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct GfxPlane {
    /// The DRM fourcc (`DRM_FORMAT_*`).
    pub(crate) drm_format: u32,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) stride: u32,
    /// Bytes, a whole number of pages.
    pub(crate) size: u32,
    /// The region that shows the plane from its offset 0.
    pub(crate) region_index: u32,
    /// Cursor position and hotspot (`u32::MAX`: no hotspot).
    pub(crate) x_pos: u32,
    pub(crate) y_pos: u32,
    pub(crate) x_hot: u32,
    pub(crate) y_hot: u32,
}

/// What `VFIO_DEVICE_GET_IRQ_INFO` reports for one interrupt index.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IrqInfo {
    /// `VFIO_IRQ_INFO_*`.
    pub(crate) flags: u32,
    pub(crate) count: u32,
}

/// The callbacks of a VFIO device, implemented by the driver's per-device data.
///
/// The standard `VFIO_DEVICE_*` ioctls are decoded here (with the `argsz` checks the VFIO uapi
/// prescribes) and end in the typed methods; any other ioctl fails with `ENOTTY`.
///
/// # Examples
///
/// A device with one read-only config region of 256 bytes:
///
/// ```ignore
/// use kernel::{prelude::*, uaccess::UserSliceWriter};
/// use crate::vfio::{bindings as vb, device::{DeviceInfo, RegionInfo}, Device, DeviceOps};
///
/// struct Tiny {
///     config: [u8; 256],
/// }
///
/// #[vtable]
/// impl DeviceOps for Tiny {
///     const NAME: &'static CStr = c"tiny";
///
///     fn info(_this: &Device<Self>) -> DeviceInfo {
///         DeviceInfo { flags: vb::VFIO_DEVICE_FLAGS_PCI, num_regions: 8, num_irqs: 0 }
///     }
///
///     fn region_info(_this: &Device<Self>, index: u32) -> Result<RegionInfo> {
///         let mut info = RegionInfo::default();
///         if index == vb::VFIO_PCI_CONFIG_REGION_INFO {
///             info.size = 256;
///             info.flags = vb::VFIO_REGION_INFO_FLAG_READ;
///         }
///         Ok(RegionInfo { offset: region_offset(index, 0), ..info })
///     }
///
///     fn read(this: &Device<Self>, offset: u64, out: &mut UserSliceWriter) -> Result<usize> {
///         let (_, pos) = split_offset(offset);
///         let bytes = this.config.get(pos as usize..pos as usize + out.len()).ok_or(EINVAL)?;
///         out.write_slice(bytes)?;
///         Ok(bytes.len())
///     }
/// }
///
/// // In an mdev probe: `Device::register(mdev.as_dev(), Tiny { config: [0; 256] })`.
/// ```
#[vtable]
pub(crate) trait DeviceOps: Sized + Send + Sync {
    /// The driver name the VFIO core shows.
    const NAME: &'static CStr;

    /// The first file descriptor for the device is being opened (a VM starts using it).
    fn open(_this: &Device<Self>) -> Result {
        Ok(())
    }

    /// The last file descriptor for the device was closed.
    fn close(_this: &Device<Self>) {}

    /// `VFIO_DEVICE_GET_INFO`.
    fn info(this: &Device<Self>) -> DeviceInfo;

    /// `VFIO_DEVICE_GET_REGION_INFO` for region `index`.
    fn region_info(this: &Device<Self>, index: u32) -> Result<RegionInfo>;

    /// `VFIO_DEVICE_GET_IRQ_INFO` for interrupt index `index`.
    fn irq_info(_this: &Device<Self>, _index: u32) -> Result<IrqInfo> {
        Ok(IrqInfo::default())
    }

    /// `VFIO_DEVICE_RESET`.
    fn reset(_this: &Device<Self>) -> Result {
        Err(ENOTTY)
    }

    /// `VFIO_DEVICE_QUERY_GFX_PLANE` (its `argsz` and flags checked): a probe answers `Ok` when
    /// supported (the plane is ignored), `EINVAL` when not; a query answers the plane.
    fn query_gfx_plane(_this: &Device<Self>, _q: PlaneQuery) -> Result<GfxPlane> {
        Err(ENOTTY)
    }

    /// `read(2)` at device-file `offset`, into `out` (its length is the request).
    fn read(_this: &Device<Self>, _offset: u64, _out: &mut UserSliceWriter) -> Result<usize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `write(2)` at device-file `offset`, from `data` (its length is the request).
    fn write(_this: &Device<Self>, _offset: u64, _data: &mut UserSliceReader) -> Result<usize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `mmap(2)` of the device file.
    fn mmap(_this: &Device<Self>, _vma: &Mmap<'_>) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `VFIO_DEVICE_SET_IRQS`, validated by the VFIO core against [`DeviceOps::irq_info`].
    fn set_irqs(_this: &Device<Self>, _set: IrqSet<'_>) -> Result {
        Err(EINVAL)
    }

    /// The device is being removed while user space still has it open: ask it to let go (the
    /// VFIO core calls this every 10 s until the device is closed; `count` says how often).
    fn request(_this: &Device<Self>, _count: u32) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// User space unmapped `[iova, iova + len)`: every page pinned in it must be unpinned
    /// before this returns. Providing this is what allows pinning pages at all.
    fn dma_unmap(_this: &Device<Self>, _iova: u64, _len: u64) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The `VFIO_MIGRATION_*` flags of the device (`STOP_COPY` at least); 0: it does not
    /// migrate, and the `migration_*` methods are never called.
    const MIGRATION_FLAGS: u32 = 0;

    /// Whether the device logs the guest pages it writes (`vfio_log_ops`): the `log_*`
    /// methods are called only then.
    const DMA_LOGGING: bool = false;

    /// `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE` SET: move to `target` (walking the single arcs
    /// with [`super::migration::walk`]); the data file of a transfer the move starts.
    fn migration_set_state(_this: &Device<Self>, _target: MigState) -> Result<Option<MigFile>> {
        Err(ENOTTY)
    }

    /// The current migration state.
    fn migration_state(_this: &Device<Self>) -> MigState {
        MigState::Running
    }

    /// `VFIO_DEVICE_FEATURE_MIG_DATA_SIZE`: what STOP_COPY would still send, in bytes.
    fn migration_data_size(_this: &Device<Self>) -> Result<u64> {
        Err(ENOTTY)
    }

    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_START` for `ranges` (validated by the VFIO core) with
    /// the page size user space asked for; returns the page size used. A second start without
    /// a stop must be refused.
    fn log_start(_this: &Device<Self>, _ranges: &[LogRange], _page_size: u64) -> Result<u64> {
        Err(ENOTTY)
    }

    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP` (also when not started).
    fn log_stop(_this: &Device<Self>) -> Result {
        Ok(())
    }

    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT`: set the pages of `[iova, iova + len)` written
    /// since the last report in `dirty`, and forget them.
    fn log_read_and_clear(
        _this: &Device<Self>,
        _iova: u64,
        _len: u64,
        _dirty: &mut DirtyBitmap,
    ) -> Result {
        Err(ENOTTY)
    }
}

/// What `VFIO_DEVICE_SET_IRQS` asks for.
pub(crate) enum IrqAction {
    Mask,
    Unmask,
    Trigger,
}

/// The data of a `VFIO_DEVICE_SET_IRQS` request: one element per vector from `start`.
pub(crate) enum IrqData<'a> {
    /// No data: the action applies to every vector in the range.
    None,
    /// Per vector: apply the action or not.
    Bool(&'a [u8]),
    /// Per vector (trigger only): an eventfd, or -1 to tear it down.
    EventFd(&'a [i32]),
}

/// A decoded, validated `VFIO_DEVICE_SET_IRQS` request.
pub(crate) struct IrqSet<'a> {
    pub(crate) index: u32,
    pub(crate) start: u32,
    pub(crate) count: u32,
    pub(crate) action: IrqAction,
    pub(crate) data: IrqData<'a>,
}

/// A new mapping of the device file being set up by `mmap(2)`.
pub(crate) struct Mmap<'a> {
    vma: &'a VmaNew,
}

impl Mmap<'_> {
    /// The region the mapping starts in and the byte offset inside it, decoded from the page
    /// offset as vfio-pci does (`vm_pgoff >> (VFIO_PCI_OFFSET_SHIFT - PAGE_SHIFT)`), so no shift
    /// can overflow.
    pub(crate) fn region(&self) -> (u64, u64) {
        // SAFETY: The VMA is valid for the duration of the mmap callback, and its page offset is
        // not changed while it is being set up.
        let pgoff = unsafe { (*self.vma.as_ptr()).vm_pgoff } as u64;
        let shift = REGION_SHIFT - PAGE_SHIFT as u32;
        (pgoff >> shift, (pgoff & ((1 << shift) - 1)) << PAGE_SHIFT)
    }

    /// The VMA being set up.
    pub(super) fn as_ptr(&self) -> *mut bindings::vm_area_struct {
        self.vma.as_ptr()
    }

    /// The length of the mapping, in bytes.
    pub(crate) fn len(&self) -> u64 {
        (self.vma.end() - self.vma.start()) as u64
    }

    /// Whether the mapping is shared (`MAP_SHARED`), as a device mapping must be.
    pub(crate) fn is_shared(&self) -> bool {
        self.vma.flags() & kernel::mm::virt::flags::SHARED != 0
    }
}

/// A counted reference to a VFIO device: the `struct vfio_device` (and the inode of its file)
/// stays allocated until the reference is dropped, whether or not the device is still open or
/// registered.
///
/// # Invariants
///
/// `vdev` is a VFIO device whose embedded `struct device` we hold a reference on.
pub(crate) struct DeviceRef {
    vdev: NonNull<bindings::vfio_device>,
}

// SAFETY: The reference keeps the VFIO device allocated; the C functions used are thread-safe.
unsafe impl Send for DeviceRef {}
// SAFETY: See `Send`.
unsafe impl Sync for DeviceRef {}

impl DeviceRef {
    /// Takes a reference on `vdev`.
    ///
    /// # Safety
    ///
    /// `vdev` must be a valid VFIO device (allocated by `_vfio_alloc_device()`).
    unsafe fn new(vdev: *mut bindings::vfio_device) -> Self {
        // SAFETY: `vdev` is valid by the safety requirements; its `device` is initialised by
        // `_vfio_alloc_device()` and reference counted.
        unsafe { bindings::get_device(bindings::rvgpu_vfio_device_dev(vdev)) };
        // INVARIANT: We took a reference. `vdev` is not null (it is valid).
        Self {
            // SAFETY: A valid pointer is not null.
            vdev: unsafe { NonNull::new_unchecked(vdev) },
        }
    }

    /// The C device; valid for as long as `self` lives.
    pub(crate) fn as_ptr(&self) -> *mut bindings::vfio_device {
        self.vdev.as_ptr()
    }
}

impl Drop for DeviceRef {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we hold a reference on the device; this may free it.
        unsafe { bindings::put_device(bindings::rvgpu_vfio_device_dev(self.vdev.as_ptr())) };
    }
}

/// A VFIO device and the driver data that follows it in the same allocation.
///
/// # Invariants
///
/// - `vdev` was initialised by `_vfio_alloc_device()` with the ops of `OpsTable<T>`.
/// - `data` is initialised whenever `live` is true; `live` never goes back to false before the
///   final `release`.
#[repr(C)]
pub(crate) struct Device<T: DeviceOps> {
    vdev: Opaque<bindings::vfio_device>,
    live: bool,
    data: MaybeUninit<T>,
}

impl<T: DeviceOps> Device<T> {
    /// The device the VFIO device belongs to (for an mdev vendor driver, the mdev's device).
    pub(crate) fn dev(&self) -> &device::Device {
        // SAFETY: `vdev` is initialised (type invariant) and `dev` was set by
        // `_vfio_alloc_device()`; the VFIO device holds a reference on it.
        unsafe { device::Device::from_raw((*self.vdev.get()).dev) }
    }

    /// A counted handle for reaching the device's guest memory from outside its callbacks.
    pub(crate) fn dma_handle(&self) -> Result<Arc<DmaHandle>> {
        DmaHandle::new(self.counted())
    }

    /// A counted handle on the user-space mappings of the device file.
    pub(crate) fn mappings(&self) -> Mappings {
        Mappings::new(self.counted())
    }

    pub(super) fn counted(&self) -> DeviceRef {
        // SAFETY: `vdev` is a valid VFIO device (type invariant).
        unsafe { DeviceRef::new(self.vdev.get()) }
    }

    /// The C device.
    pub(super) fn as_raw(&self) -> *mut bindings::vfio_device {
        self.vdev.get()
    }

    /// Recovers the Rust device from the C one.
    ///
    /// # Safety
    ///
    /// `vdev` must be the `vfio_device` of a live `Device<T>` whose data is initialised, and the
    /// returned reference must not outlive it.
    pub(super) unsafe fn from_raw<'a>(vdev: *mut bindings::vfio_device) -> &'a Self {
        // SAFETY: `vdev` is the first field of a `#[repr(C)]` `Device<T>` (by the safety
        // requirements), so the pointers are the same.
        unsafe { &*vdev.cast::<Self>() }
    }

    /// Allocates a VFIO device for `dev`, initialises the driver data with `init` and registers
    /// the device with the VFIO core as an emulated-IOMMU device.
    pub(crate) fn register(
        dev: &device::Device,
        init: impl PinInit<T, Error>,
    ) -> Result<Registration<T>> {
        // The VFIO core's allocation is `kvzalloc()`ed: only 8-byte alignment is guaranteed.
        const { assert!(align_of::<Self>() <= 8) };

        let raw_dev = super::raw_device(dev);
        // SAFETY: `raw_dev` is a valid device, the size covers `Self` whose first field is the
        // `vfio_device`, and the ops table is a `'static` constant.
        let vdev = unsafe {
            bindings::_vfio_alloc_device(size_of::<Self>(), raw_dev, &ops::OpsTable::<T>::OPS)
        };
        let vdev = kernel::error::from_err_ptr(vdev)?;
        let this = vdev.cast::<Self>();
        // INVARIANT: The allocation is zeroed, so `live` is false until `data` is written.
        // SAFETY: `this` points to a `Self`-sized, suitably aligned allocation we own; `data` is
        // not initialised yet and is written exactly once here.
        let r = unsafe { pin_init::raw_try_init((&raw mut (*this).data).cast::<T>(), init) };
        if let Err(e) = r {
            // SAFETY: `vdev` came from `_vfio_alloc_device()`; with `live` false the release
            // callback frees the allocation without touching `data`.
            unsafe { bindings::rvgpu_vfio_put_device(vdev) };
            return Err(e);
        }
        // SAFETY: `this` is valid and not yet shared with any other thread.
        unsafe { (*this).live = true };
        // The migration and logging ops are static properties, set before registering.
        // SAFETY: `vdev` is initialised and not registered yet; the tables are `'static`.
        unsafe {
            if T::MIGRATION_FLAGS != 0 {
                (*vdev).mig_ops = &MigOps::<T>::MIG;
                (*vdev).migration_flags = T::MIGRATION_FLAGS;
            }
            if T::DMA_LOGGING {
                (*vdev).log_ops = &MigOps::<T>::LOG;
            }
        }

        // SAFETY: `vdev` is an initialised VFIO device whose ops provide the emulated iommufd
        // callbacks.
        if let Err(e) = to_result(unsafe { bindings::vfio_register_emulated_iommu_dev(vdev) }) {
            // SAFETY: `vdev` came from `_vfio_alloc_device()` and is not registered.
            unsafe { bindings::rvgpu_vfio_put_device(vdev) };
            return Err(e);
        }
        // INVARIANT: `this` is registered and holds initialised data.
        Ok(Registration {
            ptr: NonNull::new(this).ok_or(EINVAL)?,
            _t: PhantomData,
        })
    }
}

impl<T: DeviceOps> Deref for Device<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: A `&Device<T>` is only handed out while `live` is true (type invariant of the
        // callbacks and of `Registration`), so `data` is initialised.
        unsafe { self.data.assume_init_ref() }
    }
}

/// A registered VFIO device. Dropping it unregisters the device (waiting for its users to close
/// it) and drops the reference taken at allocation.
///
/// It can be handed to C as a private pointer through [`ForeignOwnable`] (an mdev's driver
/// data), and borrowed back from there as a `&Device<T>`.
///
/// # Invariants
///
/// `ptr` points to a registered `Device<T>` with initialised data, and this object owns the
/// allocation reference.
pub(crate) struct Registration<T: DeviceOps> {
    ptr: NonNull<Device<T>>,
    _t: PhantomData<T>,
}

// SAFETY: `Device<T>` is only accessed through shared references and `T: Send + Sync`; the
// registration can be dropped from any thread.
unsafe impl<T: DeviceOps> Send for Registration<T> {}
// SAFETY: See `Send`.
unsafe impl<T: DeviceOps> Sync for Registration<T> {}

// SAFETY: `into_foreign` returns the pointer of a `Device<T>`, which is aligned to
// `align_of::<Device<T>>()`; `from_foreign` and the borrows reconstruct exactly what
// `into_foreign` gave away.
unsafe impl<T: DeviceOps + 'static> ForeignOwnable for Registration<T> {
    const FOREIGN_ALIGN: usize = align_of::<Device<T>>();
    type Borrowed<'a> = &'a Device<T>;
    type BorrowedMut<'a> = &'a Device<T>;

    fn into_foreign(self) -> *mut c_void {
        let p = self.ptr.as_ptr().cast();
        core::mem::forget(self);
        p
    }

    unsafe fn from_foreign(ptr: *mut c_void) -> Self {
        // INVARIANT: By the safety requirements, this is the registration `into_foreign` gave
        // away, and it is taken back once.
        Self {
            // SAFETY: `into_foreign` returned a non-NULL pointer.
            ptr: unsafe { NonNull::new_unchecked(ptr.cast()) },
            _t: PhantomData,
        }
    }

    unsafe fn borrow<'a>(ptr: *mut c_void) -> &'a Device<T> {
        // SAFETY: By the safety requirements the registration, hence the device, is alive for
        // `'a`.
        unsafe { &*ptr.cast::<Device<T>>() }
    }

    unsafe fn borrow_mut<'a>(ptr: *mut c_void) -> &'a Device<T> {
        // SAFETY: As in `borrow`; a `Device<T>` is only ever shared.
        unsafe { &*ptr.cast::<Device<T>>() }
    }
}

impl<T: DeviceOps> Deref for Registration<T> {
    type Target = Device<T>;

    fn deref(&self) -> &Device<T> {
        // SAFETY: By the type invariant the device is alive while `self` is.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: DeviceOps> Drop for Registration<T> {
    fn drop(&mut self) {
        let vdev = self.ptr.as_ptr().cast::<bindings::vfio_device>();
        // SAFETY: By the type invariant `vdev` is registered; unregistering waits for every user
        // to close it. Then the allocation reference we own is dropped, which may free it.
        unsafe {
            bindings::vfio_unregister_group_dev(vdev);
            bindings::rvgpu_vfio_put_device(vdev);
        }
    }
}
