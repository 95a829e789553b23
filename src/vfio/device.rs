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
        to_result, //
    },
    prelude::*,
    str::as_char_ptr_in_const_context, //
};

use super::bindings;

/// The callbacks of a VFIO device, implemented by the driver's per-device data.
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
        ..pin_init::zeroed()
    };

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
