// SPDX-License-Identifier: GPL-2.0

//! VFIO devices with an emulated IOMMU (the kind an mdev vendor driver registers).
//!
//! C header: [`include/linux/vfio.h`](srctree/include/linux/vfio.h).
//!
//! A [`Device<T>`] is one allocation made by the VFIO core (`_vfio_alloc_device()`): the C
//! `struct vfio_device` first, the driver's `T` after it. The C `struct vfio_device_ops` for `T`
//! is a `const` item built from the [`DeviceOps`] implementation.

use core::{
    marker::PhantomData,
    mem::MaybeUninit,
    ops::Deref,
    ptr::NonNull, //
};
use kernel::{
    device,
    error::{
        from_result,
        to_result,
        VTABLE_DEFAULT_ERROR, //
    },
    mm::virt::VmaNew,
    prelude::*,
    str::as_char_ptr_in_const_context,
    uaccess::{
        UserSlice,
        UserSliceReader,
        UserSliceWriter, //
    }, //
};

use super::bindings;

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

/// The most vectors one `VFIO_DEVICE_SET_IRQS` may carry data for here.
const MAX_IRQ_DATA: usize = 64;

/// A new mapping of the device file being set up by `mmap(2)`.
pub(crate) struct Mmap<'a> {
    vma: &'a VmaNew,
}

impl Mmap<'_> {
    /// The offset into the device file, in bytes.
    pub(crate) fn offset(&self) -> u64 {
        // SAFETY: The VMA is valid for the duration of the mmap callback.
        let pgoff = unsafe { (*self.vma.as_ptr()).vm_pgoff };
        (pgoff as u64) << kernel::page::PAGE_SHIFT
    }

    /// The length of the mapping, in bytes.
    pub(crate) fn len(&self) -> u64 {
        (self.vma.end() - self.vma.start()) as u64
    }

    /// Whether the mapping is shared (`MAP_SHARED`), as a device mapping must be.
    pub(crate) fn is_shared(&self) -> bool {
        self.vma.flags() & kernel::mm::virt::flags::SHARED != 0
    }

    /// Maps the whole range onto the physical memory at `phys` (I/O memory, write-combining).
    pub(crate) fn remap_io_wc(&self, phys: u64) -> Result {
        if phys % kernel::page::PAGE_SIZE as u64 != 0 {
            return Err(EINVAL);
        }
        let pfn = usize::try_from(phys >> kernel::page::PAGE_SHIFT)?;
        let len = usize::try_from(self.len())?;
        // SAFETY: The VMA is being set up by mmap, so its flags and protection may be changed and
        // its range populated; the caller maps only memory its device owns.
        to_result(unsafe { bindings::rvgpu_remap_io_wc(self.vma.as_ptr(), pfn, len) })
    }
}

/// A VFIO device and the driver data that follows it in the same allocation.
///
/// # Invariants
///
/// - `vdev` was initialised by `_vfio_alloc_device()` with the ops of [`OpsTable<T>`].
/// - `data` is initialised whenever `live` is true; `live` never goes back to false before the
///   final `release`.
#[repr(C)]
pub(crate) struct Device<T: DeviceOps> {
    vdev: Opaque<bindings::vfio_device>,
    live: bool,
    data: MaybeUninit<T>,
}

use kernel::types::Opaque;

impl<T: DeviceOps> Device<T> {
    /// The device the VFIO device belongs to (for an mdev vendor driver, the mdev's device).
    pub(crate) fn dev(&self) -> &device::Device {
        // SAFETY: `vdev` is initialised (type invariant) and `dev` was set by
        // `_vfio_alloc_device()`; the VFIO device holds a reference on it.
        unsafe { device::Device::from_raw((*self.vdev.get()).dev) }
    }

    /// A counted handle for reaching the device's guest memory from outside its callbacks.
    pub(crate) fn dma_handle(&self) -> Result<super::dma::DmaHandle> {
        // SAFETY: `vdev` is a valid VFIO device (type invariant).
        unsafe { super::dma::DmaHandle::new(self.vdev.get()) }
    }

    /// Recovers the Rust device from the C one.
    ///
    /// # Safety
    ///
    /// `vdev` must be the `vfio_device` of a live `Device<T>` whose data is initialised, and the
    /// returned reference must not outlive it.
    unsafe fn from_raw<'a>(vdev: *mut bindings::vfio_device) -> &'a Self {
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
            bindings::_vfio_alloc_device(size_of::<Self>(), raw_dev, &OpsTable::<T>::OPS)
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

impl<T: DeviceOps> Registration<T> {
    /// Turns the registration into a raw pointer (for a C private-data field).
    pub(crate) fn into_raw(self) -> *mut c_void {
        let p = self.ptr.as_ptr().cast();
        core::mem::forget(self);
        p
    }

    /// Takes back a registration given away with [`Registration::into_raw`].
    ///
    /// # Safety
    ///
    /// `ptr` must come from [`Registration::into_raw`] of a `Registration<T>`, and must not be
    /// used again.
    pub(crate) unsafe fn from_raw(ptr: *mut c_void) -> Self {
        // INVARIANT: By the safety requirements, this is the registration given away.
        Self {
            // SAFETY: `into_raw` returned a non-NULL pointer.
            ptr: unsafe { NonNull::new_unchecked(ptr.cast()) },
            _t: PhantomData,
        }
    }

    /// Borrows the device behind a pointer from [`Registration::into_raw`].
    ///
    /// # Safety
    ///
    /// `ptr` must come from [`Registration::into_raw`] of a `Registration<T>` that has not been
    /// taken back yet, for all of `'a`.
    pub(crate) unsafe fn borrow<'a>(ptr: *mut c_void) -> &'a Device<T> {
        // SAFETY: By the safety requirements the registration, hence the device, is alive.
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

/// The C ops table for a [`DeviceOps`] implementation.
struct OpsTable<T: DeviceOps>(PhantomData<T>);

impl<T: DeviceOps> OpsTable<T> {
    const OPS: bindings::vfio_device_ops = bindings::vfio_device_ops {
        name: as_char_ptr_in_const_context(T::NAME).cast_mut(),
        release: Some(Self::release),
        bind_iommufd: Some(bindings::vfio_iommufd_emulated_bind),
        unbind_iommufd: Some(bindings::vfio_iommufd_emulated_unbind),
        attach_ioas: Some(bindings::vfio_iommufd_emulated_attach_ioas),
        detach_ioas: Some(bindings::vfio_iommufd_emulated_detach_ioas),
        open_device: Some(Self::open_device),
        close_device: Some(Self::close_device),
        read: if T::HAS_READ { Some(Self::read) } else { None },
        write: if T::HAS_WRITE {
            Some(Self::write)
        } else {
            None
        },
        mmap: if T::HAS_MMAP { Some(Self::mmap) } else { None },
        ioctl: Some(Self::ioctl),
        get_region_info_caps: Some(Self::get_region_info_caps),
        request: if T::HAS_REQUEST {
            Some(Self::request)
        } else {
            None
        },
        dma_unmap: if T::HAS_DMA_UNMAP {
            Some(Self::dma_unmap)
        } else {
            None
        },
        ..pin_init::zeroed()
    };

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device and a user buffer of `count` bytes.
    unsafe extern "C" fn read(
        vdev: *mut bindings::vfio_device,
        buf: *mut c_char,
        count: usize,
        ppos: *mut bindings::loff_t,
    ) -> isize {
        // SAFETY: A registered device of these ops is a live `Device<T>`.
        let this = unsafe { Device::<T>::from_raw(vdev) };
        // SAFETY: `ppos` is the file position the VFIO core passes.
        let pos = unsafe { *ppos };
        let mut out = UserSlice::new(UserPtr::from_ptr(buf.cast()), count).writer();
        let r = u64::try_from(pos)
            .map_err(|_| EINVAL)
            .and_then(|off| T::read(this, off, &mut out));
        match r {
            Ok(n) => {
                // SAFETY: See above; `n <= count`.
                unsafe { *ppos = pos + n as bindings::loff_t };
                n as isize
            }
            Err(e) => e.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device and a user buffer of `count` bytes.
    unsafe extern "C" fn write(
        vdev: *mut bindings::vfio_device,
        buf: *const c_char,
        count: usize,
        ppos: *mut bindings::loff_t,
    ) -> isize {
        // SAFETY: A registered device of these ops is a live `Device<T>`.
        let this = unsafe { Device::<T>::from_raw(vdev) };
        // SAFETY: `ppos` is the file position the VFIO core passes.
        let pos = unsafe { *ppos };
        let mut data = UserSlice::new(UserPtr::from_ptr(buf.cast_mut().cast()), count).reader();
        let r = u64::try_from(pos)
            .map_err(|_| EINVAL)
            .and_then(|off| T::write(this, off, &mut data));
        match r {
            Ok(n) => {
                // SAFETY: See above; `n <= count`.
                unsafe { *ppos = pos + n as bindings::loff_t };
                n as isize
            }
            Err(e) => e.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device and a VMA being set up.
    unsafe extern "C" fn mmap(
        vdev: *mut bindings::vfio_device,
        vma: *mut bindings::vm_area_struct,
    ) -> c_int {
        // SAFETY: A registered device of these ops is a live `Device<T>`.
        let this = unsafe { Device::<T>::from_raw(vdev) };
        // SAFETY: The VFIO core passes a VMA undergoing initial setup for this mapping.
        let vma = unsafe { VmaNew::from_raw(vma.cast()) };
        from_result(|| T::mmap(this, &Mmap { vma }).map(|()| 0))
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device; `info.index` comes from user space.
    unsafe extern "C" fn get_region_info_caps(
        vdev: *mut bindings::vfio_device,
        info: *mut bindings::vfio_region_info,
        caps: *mut bindings::vfio_info_cap,
    ) -> c_int {
        // SAFETY: A registered device of these ops is a live `Device<T>`.
        let this = unsafe { Device::<T>::from_raw(vdev) };
        from_result(|| {
            // SAFETY: The VFIO core passes its own kernel copy of the user's request.
            let info = unsafe { &mut *info };
            let r = T::region_info(this, info.index)?;
            info.offset = r.offset;
            info.size = r.size;
            info.flags = r.flags;
            if let Some((offset, size)) = r.sparse_mmap {
                let mut cap = SparseMmapCap {
                    header: bindings::vfio_info_cap_header {
                        id: bindings::VFIO_REGION_INFO_CAP_SPARSE_MMAP as u16,
                        version: 1,
                        next: 0,
                    },
                    nr_areas: 1,
                    reserved: 0,
                    area: bindings::vfio_region_sparse_mmap_area { offset, size },
                };
                // SAFETY: `caps` is the VFIO core's capability list for this request; the
                // capability is copied, `cap` only needs to live for the call.
                to_result(unsafe {
                    bindings::vfio_info_add_capability(
                        caps,
                        &raw mut cap.header,
                        size_of::<SparseMmapCap>(),
                    )
                })?;
            }
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device; `arg` is an untrusted user value.
    unsafe extern "C" fn ioctl(
        vdev: *mut bindings::vfio_device,
        cmd: c_uint,
        arg: c_ulong,
    ) -> c_long {
        // SAFETY: A registered device of these ops is a live `Device<T>`.
        let this = unsafe { Device::<T>::from_raw(vdev) };
        let user = UserPtr::from_addr(arg);
        let r = match cmd {
            bindings::RVGPU_VFIO_DEVICE_GET_INFO => Self::get_info(this, user),
            bindings::RVGPU_VFIO_DEVICE_GET_IRQ_INFO => Self::get_irq_info(this, user),
            bindings::RVGPU_VFIO_DEVICE_RESET => T::reset(this),
            bindings::RVGPU_VFIO_DEVICE_SET_IRQS => Self::set_irqs(this, user),
            _ => Err(ENOTTY),
        };
        match r {
            Ok(()) => 0,
            Err(e) => e.to_errno() as c_long,
        }
    }

    fn get_info(this: &Device<T>, user: UserPtr) -> Result {
        let mut info: bindings::vfio_device_info = pin_init::zeroed();
        let minsz = core::mem::offset_of!(bindings::vfio_device_info, num_irqs) + size_of::<u32>();
        read_user(user, &mut info, minsz)?;
        if (info.argsz as usize) < minsz {
            return Err(EINVAL);
        }
        let i = T::info(this);
        info.flags = i.flags;
        info.num_regions = i.num_regions;
        info.num_irqs = i.num_irqs;
        write_user(user, &info, minsz)
    }

    fn set_irqs(this: &Device<T>, user: UserPtr) -> Result {
        let mut hdr = IrqSetHeader::default();
        let minsz = size_of::<IrqSetHeader>();
        read_user(user, &mut hdr, minsz)?;
        let vectors = if (hdr.argsz as usize) < minsz {
            0
        } else {
            T::irq_info(this, hdr.index).map_or(0, |i| i.count)
        };
        let mut data_size = 0usize;
        // SAFETY: `hdr` is a valid header; the function only reads it and writes `data_size`.
        to_result(unsafe {
            bindings::vfio_set_irqs_validate_and_prepare(
                (&raw mut hdr).cast(),
                vectors as c_int,
                bindings::VFIO_PCI_NUM_IRQS as c_int,
                &mut data_size,
            )
        })?;
        if data_size > MAX_IRQ_DATA * size_of::<i32>() {
            return Err(EINVAL);
        }
        let mut data = [0u8; MAX_IRQ_DATA * size_of::<i32>()];
        let data = &mut data[..data_size];
        if data_size > 0 {
            let mut r = UserSlice::new(user, minsz + data_size).reader();
            r.skip(minsz)?;
            r.read_slice(data)?;
        }
        let action = match hdr.flags & bindings::VFIO_IRQ_SET_ACTION_TYPE_MASK {
            bindings::VFIO_IRQ_SET_ACTION_MASK => IrqAction::Mask,
            bindings::VFIO_IRQ_SET_ACTION_UNMASK => IrqAction::Unmask,
            bindings::VFIO_IRQ_SET_ACTION_TRIGGER => IrqAction::Trigger,
            _ => return Err(EINVAL),
        };
        let mut fds = [0i32; MAX_IRQ_DATA];
        let irq_data = match hdr.flags & bindings::VFIO_IRQ_SET_DATA_TYPE_MASK {
            bindings::VFIO_IRQ_SET_DATA_NONE => IrqData::None,
            bindings::VFIO_IRQ_SET_DATA_BOOL => IrqData::Bool(data),
            bindings::VFIO_IRQ_SET_DATA_EVENTFD => {
                let n = data.len() / size_of::<i32>();
                for (fd, b) in fds.iter_mut().zip(data.chunks_exact(size_of::<i32>())) {
                    *fd = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
                }
                IrqData::EventFd(&fds[..n])
            }
            _ => return Err(EINVAL),
        };
        T::set_irqs(
            this,
            IrqSet {
                index: hdr.index,
                start: hdr.start,
                count: hdr.count,
                action,
                data: irq_data,
            },
        )
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a device being unregistered (its data is still live).
    unsafe extern "C" fn request(vdev: *mut bindings::vfio_device, count: c_uint) {
        // SAFETY: The device is still allocated and its data initialised while the VFIO core
        // waits in `vfio_unregister_group_dev()`.
        let this = unsafe { Device::<T>::from_raw(vdev) };
        T::request(this, count);
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered, open device.
    unsafe extern "C" fn dma_unmap(vdev: *mut bindings::vfio_device, iova: u64, length: u64) {
        // SAFETY: A registered device of these ops is a live `Device<T>`.
        let this = unsafe { Device::<T>::from_raw(vdev) };
        T::dma_unmap(this, iova, length);
    }

    fn get_irq_info(this: &Device<T>, user: UserPtr) -> Result {
        let mut info: bindings::vfio_irq_info = pin_init::zeroed();
        let minsz = core::mem::offset_of!(bindings::vfio_irq_info, count) + size_of::<u32>();
        read_user(user, &mut info, minsz)?;
        if (info.argsz as usize) < minsz {
            return Err(EINVAL);
        }
        let i = T::irq_info(this, info.index)?;
        info.flags = i.flags;
        info.count = i.count;
        write_user(user, &info, minsz)
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a device allocated with these ops, on its final put.
    unsafe extern "C" fn release(vdev: *mut bindings::vfio_device) {
        let this = vdev.cast::<Device<T>>();
        // SAFETY: `vdev` is the first field of a `Device<T>`; this is the last reference, so we
        // may drop the data in place if it was initialised. The VFIO core frees the memory.
        unsafe {
            if (*this).live {
                (*this).live = false;
                (*this).data.assume_init_drop();
            }
        }
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device (hence with initialised data).
    unsafe extern "C" fn open_device(vdev: *mut bindings::vfio_device) -> c_int {
        // SAFETY: A registered device of these ops is a live `Device<T>`.
        let this = unsafe { Device::<T>::from_raw(vdev) };
        from_result(|| T::open(this).map(|()| 0))
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device (hence with initialised data).
    unsafe extern "C" fn close_device(vdev: *mut bindings::vfio_device) {
        // SAFETY: A registered device of these ops is a live `Device<T>`.
        let this = unsafe { Device::<T>::from_raw(vdev) };
        T::close(this);
    }
}

/// A sparse-mmap capability with one area: `struct vfio_region_info_cap_sparse_mmap` with its
/// flexible array of areas spelled out.
#[repr(C)]
struct SparseMmapCap {
    header: bindings::vfio_info_cap_header,
    nr_areas: u32,
    reserved: u32,
    area: bindings::vfio_region_sparse_mmap_area,
}

const _: () = assert!(
    core::mem::offset_of!(SparseMmapCap, area)
        == size_of::<bindings::vfio_region_info_cap_sparse_mmap>()
);

/// The VFIO uapi structures this file copies to and from user space.
///
/// # Safety
///
/// Implementors are plain C structures of integers, valid for every bit pattern.
unsafe trait UapiStruct: Sized {}

// SAFETY: A C structure of `__u32` fields.
unsafe impl UapiStruct for bindings::vfio_device_info {}
// SAFETY: A C structure of `__u32` fields.
unsafe impl UapiStruct for bindings::vfio_irq_info {}
// SAFETY: A C structure of `__u32` fields.
unsafe impl UapiStruct for IrqSetHeader {}

/// `struct vfio_irq_set` without its flexible array of data.
#[repr(C)]
#[derive(Default)]
struct IrqSetHeader {
    argsz: u32,
    flags: u32,
    index: u32,
    start: u32,
    count: u32,
}

const _: () = assert!(
    size_of::<IrqSetHeader>() == core::mem::offset_of!(bindings::vfio_irq_set, data)
        && core::mem::offset_of!(bindings::vfio_irq_set, count) == 16
);

/// Reads the first `len` bytes of a uapi structure from user space.
fn read_user<S: UapiStruct>(user: UserPtr, s: &mut S, len: usize) -> Result {
    if len > size_of::<S>() {
        return Err(EINVAL);
    }
    // SAFETY: `s` is a valid, exclusively borrowed `S` of at least `len` bytes; every bit pattern
    // is a valid `S` (`UapiStruct`), so its bytes may be overwritten.
    let bytes = unsafe { core::slice::from_raw_parts_mut(core::ptr::from_mut(s).cast(), len) };
    UserSlice::new(user, len).reader().read_slice(bytes)
}

/// Writes the first `len` bytes of a uapi structure to user space.
fn write_user<S: UapiStruct>(user: UserPtr, s: &S, len: usize) -> Result {
    if len > size_of::<S>() {
        return Err(EINVAL);
    }
    // SAFETY: `s` is a valid `S` of at least `len` bytes, made of integers (no padding reads
    // of uninitialised memory: the uapi structures have none in their first `len` bytes).
    let bytes = unsafe { core::slice::from_raw_parts(core::ptr::from_ref(s).cast::<u8>(), len) };
    UserSlice::new(user, len).writer().write_slice(bytes)
}
