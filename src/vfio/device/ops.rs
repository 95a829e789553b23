// SPDX-License-Identifier: GPL-2.0

//! The C `struct vfio_device_ops` of a [`DeviceOps`] implementation: one `unsafe extern "C"`
//! trampoline per callback, which borrows the Rust device from the C one and turns `Result`s
//! into errnos. The standard device ioctls are decoded here.

use core::marker::PhantomData;
use kernel::{
    error::{
        from_result,
        to_result, //
    },
    mm::virt::VmaNew,
    prelude::*,
    str::as_char_ptr_in_const_context,
    uaccess::UserSlice, //
};

use super::{
    super::{
        bindings,
        uapi::{
            self,
            minsz,
            GfxPlaneInfo,
            IrqSetHeader,
            RegionTypeCap,
            SparseMmapCap, //
        },
    },
    Device,
    DeviceOps,
    IrqAction,
    IrqData,
    IrqSet,
    Mmap, //
    PlaneQuery,
};

/// The most vectors one `VFIO_DEVICE_SET_IRQS` may carry data for here.
const MAX_IRQ_DATA: usize = 64;

/// The header of a region-info capability `id` (version 1; the core links `next`).
fn cap_header(id: u32) -> bindings::vfio_info_cap_header {
    bindings::vfio_info_cap_header {
        id: id as u16,
        version: 1,
        next: 0,
    }
}

/// Copies `cap` into the capability chain `caps` of a `VFIO_DEVICE_GET_REGION_INFO` request.
///
/// # Safety
///
/// `caps` must be the VFIO core's capability list of the request being answered, and `C` a
/// `#[repr(C)]` capability whose first field is its `vfio_info_cap_header`.
unsafe fn add_capability<C>(caps: *mut bindings::vfio_info_cap, cap: &mut C) -> Result {
    // SAFETY: By the safety requirements `cap` starts with its header and is `size_of::<C>()`
    // bytes long; the core copies it, so `cap` only needs to live for the call.
    to_result(unsafe {
        bindings::vfio_info_add_capability(caps, core::ptr::from_mut(cap).cast(), size_of::<C>())
    })
}

/// The C ops table for a [`DeviceOps`] implementation.
pub(super) struct OpsTable<T: DeviceOps>(PhantomData<T>);

impl<T: DeviceOps> OpsTable<T> {
    pub(super) const OPS: bindings::vfio_device_ops = bindings::vfio_device_ops {
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
                    header: cap_header(bindings::VFIO_REGION_INFO_CAP_SPARSE_MMAP),
                    nr_areas: 1,
                    reserved: 0,
                    area: bindings::vfio_region_sparse_mmap_area { offset, size },
                };
                // SAFETY: `caps` is the VFIO core's capability list for this request, and
                // `SparseMmapCap` is `#[repr(C)]` with its header first.
                unsafe { add_capability(caps, &mut cap) }?;
            }
            if let Some((type_, subtype)) = r.region_type {
                let mut cap = RegionTypeCap {
                    header: cap_header(bindings::VFIO_REGION_INFO_CAP_TYPE),
                    type_,
                    subtype,
                };
                // SAFETY: As above; `RegionTypeCap` is `#[repr(C)]` with its header first.
                unsafe { add_capability(caps, &mut cap) }?;
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
            bindings::RVGPU_VFIO_DEVICE_QUERY_GFX_PLANE => Self::query_gfx_plane(this, user),
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
        let minsz = minsz!(bindings::vfio_device_info, num_irqs);
        uapi::read_user(user, &mut info, minsz)?;
        if (info.argsz as usize) < minsz {
            return Err(EINVAL);
        }
        let i = T::info(this);
        info.flags = i.flags;
        info.num_regions = i.num_regions;
        info.num_irqs = i.num_irqs;
        uapi::write_user(user, &mut info, minsz)
    }

    fn query_gfx_plane(this: &Device<T>, user: UserPtr) -> Result {
        let mut p = GfxPlaneInfo::default();
        // As the C samples: everything up to the region index (the union) is exchanged.
        let minsz = minsz!(GfxPlaneInfo, region_index);
        uapi::read_user(user, &mut p, minsz)?;
        if (p.argsz as usize) < minsz {
            return Err(EINVAL);
        }
        const PROBE: u32 = bindings::VFIO_GFX_PLANE_TYPE_PROBE;
        const DMABUF: u32 = bindings::VFIO_GFX_PLANE_TYPE_DMABUF;
        const REGION: u32 = bindings::VFIO_GFX_PLANE_TYPE_REGION;
        let q = match p.flags {
            f if f == PROBE | DMABUF => PlaneQuery::ProbeDmabuf,
            f if f == PROBE | REGION => PlaneQuery::ProbeRegion,
            DMABUF => PlaneQuery::Dmabuf(p.drm_plane_type),
            REGION => PlaneQuery::Region(p.drm_plane_type),
            _ => return Err(EINVAL),
        };
        let plane = T::query_gfx_plane(this, q)?;
        if matches!(q, PlaneQuery::ProbeDmabuf | PlaneQuery::ProbeRegion) {
            return Ok(());
        }
        p.drm_format = plane.drm_format;
        p.drm_format_mod = 0;
        p.width = plane.width;
        p.height = plane.height;
        p.stride = plane.stride;
        p.size = plane.size;
        p.x_pos = plane.x_pos;
        p.y_pos = plane.y_pos;
        p.x_hot = plane.x_hot;
        p.y_hot = plane.y_hot;
        p.region_index = plane.region_index;
        uapi::write_user(user, &mut p, minsz)
    }

    fn get_irq_info(this: &Device<T>, user: UserPtr) -> Result {
        let mut info: bindings::vfio_irq_info = pin_init::zeroed();
        let minsz = minsz!(bindings::vfio_irq_info, count);
        uapi::read_user(user, &mut info, minsz)?;
        if (info.argsz as usize) < minsz {
            return Err(EINVAL);
        }
        let i = T::irq_info(this, info.index)?;
        info.flags = i.flags;
        info.count = i.count;
        uapi::write_user(user, &mut info, minsz)
    }

    fn set_irqs(this: &Device<T>, user: UserPtr) -> Result {
        let mut hdr = IrqSetHeader::default();
        let minsz = size_of::<IrqSetHeader>();
        uapi::read_user(user, &mut hdr, minsz)?;
        let vectors = if (hdr.argsz as usize) < minsz {
            0
        } else {
            T::irq_info(this, hdr.index).map_or(0, |i| i.count)
        };
        let mut data_size = 0usize;
        // SAFETY: `hdr` has the layout of the header of a `vfio_irq_set` (checked in `uapi`); the
        // function only reads it and writes `data_size`.
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
