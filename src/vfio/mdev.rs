// SPDX-License-Identifier: GPL-2.0

//! Mediated devices: the mdev driver, mdev parents with their types, and mdev instances.
//!
//! C header: [`include/linux/mdev.h`](srctree/include/linux/mdev.h).
//!
//! A vendor driver implements [`Driver`]. It registers one [`DriverStatic`] for the module and
//! one [`Parent`] per physical device. The mdev core then shows the parent's types in sysfs and
//! calls [`Driver::probe`] when a user writes a UUID to a type's `create` file; each instance is a
//! VFIO device ([`super::Device`]) holding the driver's [`Driver::Device`] data.

use core::{
    cell::UnsafeCell,
    marker::PhantomData, //
};
use kernel::{
    device,
    error::{
        from_result,
        to_result, //
    },
    prelude::*,
    str::CString,
    sync::{
        aref::ARef,
        atomic::{
            Acquire,
            Atomic,
            Full,
            Relaxed, //
        },
    },
    types::{
        ForeignOwnable,
        Opaque, //
    }, //
};

use super::{
    bindings,
    device::{
        Device as VfioDevice,
        DeviceOps,
        Registration as VfioRegistration, //
    },
    sysfs::{
        self,
        GroupStorage,
        SysfsBuf, //
    },
};

/// An mdev instance as its probe sees it.
///
/// # Invariants
///
/// Wraps a valid `struct mdev_device`.
#[repr(transparent)]
pub(crate) struct Device(Opaque<bindings::mdev_device>);

impl Device {
    /// # Safety
    ///
    /// `ptr` must point to a valid `struct mdev_device` for the lifetime `'a`.
    unsafe fn from_raw<'a>(ptr: *mut bindings::mdev_device) -> &'a Self {
        // SAFETY: `Device` is a transparent wrapper; validity is guaranteed by the caller.
        unsafe { &*ptr.cast() }
    }

    /// The instance's UUID, as bytes in the order of its text form.
    pub(crate) fn uuid(&self) -> [u8; 16] {
        // SAFETY: By the type invariant the `mdev_device` is valid; the UUID is set before probe.
        let g = unsafe { (*self.0.get()).uuid.b };
        // The mdev core keeps a `guid_t` (parsed with `guid_parse()`, printed with `%pUl`): its
        // first three fields are little-endian.
        [
            g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12], g[13],
            g[14], g[15],
        ]
    }

    /// The instance's `struct device`.
    pub(crate) fn as_dev(&self) -> &device::Device {
        // SAFETY: By the type invariant the `mdev_device` is valid; its embedded device lives as
        // long as it does.
        unsafe { device::Device::from_raw(&raw mut (*self.0.get()).dev) }
    }
}

/// A type a parent offers: its directory `<parent driver>-<sysfs_name>` and its `name` file.
pub(crate) struct TypeInfo {
    pub(crate) sysfs_name: CString,
    pub(crate) pretty_name: &'static CStr,
}

/// The vendor driver's side of the mdev framework.
///
/// # Examples
///
/// A driver whose parents offer one type of which four instances fit, with one read-only file
/// per instance:
///
/// ```ignore
/// use crate::vfio::{mdev, sysfs::{Attr, Group, SysfsBuf}, Device};
///
/// #[derive(Clone, Copy)]
/// enum InstanceAttr { Serial }
///
/// const INSTANCE_ATTRS: Group<InstanceAttr> = Group {
///     name: c"vendor",
///     attrs: &[Attr { name: c"serial", writable: false, id: InstanceAttr::Serial }],
/// };
///
/// struct MyDriver;
/// struct Board { used: Atomic<u32> }
///
/// impl mdev::Driver for MyDriver {
///     type Parent = Board;
///     type Device = MyInstance; // implements `DeviceOps`
///     type DeviceAttr = InstanceAttr;
///     type ParentAttr = ();
///     const NAME: &'static CStr = c"my-mdev";
///     const DEVICE_API: &'static CStr = c"vfio-pci";
///     const DEVICE_ATTRS: Option<&'static Group<InstanceAttr>> = Some(&INSTANCE_ATTRS);
///
///     fn probe(board: &Board, _type: usize, mdev: &mdev::Device)
///         -> Result<impl PinInit<MyInstance, Error>> {
///         Ok(MyInstance::new(board, mdev.uuid()))
///     }
///     fn available(board: &Board, _type: usize) -> u32 { 4 - board.used.load(Relaxed) }
///     fn describe(_: &Board, _: usize, out: &mut SysfsBuf) -> Result { out.emit(fmt!("one\n")) }
///     fn device_attr_show(dev: &Device<MyInstance>, a: InstanceAttr, out: &mut SysfsBuf) -> Result {
///         match a { InstanceAttr::Serial => out.emit(fmt!("{}\n", dev.serial)) }
///     }
/// }
///
/// static DRIVER: mdev::DriverStatic<MyDriver> = mdev::DriverStatic::new();
/// // Module init: `let reg = DRIVER.register(module)?;` (kept in the module struct).
/// // PCI probe: `mdev::Parent::new(pdev.as_ref(), &DRIVER, types, Board { .. })`.
/// ```
pub(crate) trait Driver: Sized + 'static {
    /// Per-parent (per physical device) data.
    type Parent: Send + Sync;
    /// Per-instance data: the private part of the instance's VFIO device.
    type Device: DeviceOps + 'static;
    /// What the files of [`Driver::DEVICE_ATTRS`] are told apart by.
    type DeviceAttr: Copy + 'static;
    /// What the files of [`Driver::PARENT_ATTRS`] are told apart by.
    type ParentAttr: Copy + 'static;

    /// The mdev driver's name.
    const NAME: &'static CStr;
    /// The `device_api` every type shows, e.g. `vfio-pci`.
    const DEVICE_API: &'static CStr;
    /// An attribute group every instance gets (its files end in [`Driver::device_attr_show`] and
    /// [`Driver::device_attr_store`]).
    const DEVICE_ATTRS: Option<&'static sysfs::Group<Self::DeviceAttr>> = None;
    /// An attribute group on each parent device (its files end in [`Driver::parent_attr_show`]
    /// and [`Driver::parent_attr_store`]).
    const PARENT_ATTRS: Option<&'static sysfs::Group<Self::ParentAttr>> = None;

    /// A user asked for a new instance of type `type_index` of `parent`.
    fn probe(
        parent: &Self::Parent,
        type_index: usize,
        mdev: &Device,
    ) -> Result<impl PinInit<Self::Device, Error>>;

    /// The instance made by [`Driver::probe`] is registered and can be opened: nothing can fail
    /// any more (the place to log that it exists).
    fn created(_dev: &VfioDevice<Self::Device>) {}

    /// The instance is being removed; its VFIO device is unregistered right after this returns.
    fn remove(_dev: &VfioDevice<Self::Device>) {}

    /// The parent's registration is gone and with it every instance (dropping the parent
    /// unregisters it, which removes them): the place to wait for work the driver still has in
    /// flight for them, before the parent's data is dropped.
    fn parent_removed(_parent: &Self::Parent) {}

    /// How many more instances of type `type_index` fit on `parent` now.
    fn available(parent: &Self::Parent, type_index: usize) -> u32;

    /// Writes the `description` of type `type_index`.
    fn describe(parent: &Self::Parent, type_index: usize, out: &mut SysfsBuf) -> Result;

    /// Shows attribute `attr` of [`Driver::DEVICE_ATTRS`].
    fn device_attr_show(
        _dev: &VfioDevice<Self::Device>,
        _attr: Self::DeviceAttr,
        _out: &mut SysfsBuf,
    ) -> Result {
        Err(EIO)
    }

    /// Stores into attribute `attr` of [`Driver::DEVICE_ATTRS`].
    fn device_attr_store(
        _dev: &VfioDevice<Self::Device>,
        _attr: Self::DeviceAttr,
        _data: &[u8],
    ) -> Result {
        Err(EPERM)
    }

    /// Shows attribute `attr` of [`Driver::PARENT_ATTRS`].
    fn parent_attr_show(
        _parent: &Self::Parent,
        _attr: Self::ParentAttr,
        _out: &mut SysfsBuf,
    ) -> Result {
        Err(EIO)
    }

    /// Stores into attribute `attr` of [`Driver::PARENT_ATTRS`].
    fn parent_attr_store(_parent: &Self::Parent, _attr: Self::ParentAttr, _data: &[u8]) -> Result {
        Err(EPERM)
    }
}

/// The module's mdev driver: a `static` so that every parent can refer to it.
///
/// The driver stays registered while anything uses it: the [`DriverRegistration`] that
/// [`DriverStatic::register`] returns, and every [`Parent`] made with it. Whichever of them goes
/// last unregisters it, so a parent can never outlive the driver its instances are bound to,
/// whatever order they are dropped in. A second `register` while the driver is in use fails with
/// `EBUSY` and changes nothing.
///
/// # Invariants
///
/// - `users` counts the live [`DriverRegistration`] and [`Parent`]s of this driver; `drv` is
///   registered with the mdev core exactly while `users > 0` and `registered` is true.
/// - `drv` and `attrs` are written only by the `register` call that moved `users` from 0 to 1
///   (before `mdev_register_driver()`), and by the release that moved it from 1 to 0 (after
///   `mdev_unregister_driver()`); those exclude each other and every other access.
pub(crate) struct DriverStatic<T: Driver> {
    drv: Opaque<bindings::mdev_driver>,
    attrs: UnsafeCell<Option<KBox<GroupStorage>>>,
    users: Atomic<usize>,
    /// Whether `drv` is registered (parents can only be made then).
    registered: Atomic<bool>,
    _t: PhantomData<T>,
}

// SAFETY: The C driver and `attrs` are only mutated by the one thread that owns the transition
// of `users` to or from 0 (see the type invariants); callbacks only read.
unsafe impl<T: Driver> Sync for DriverStatic<T> {}

impl<T: Driver> DriverStatic<T> {
    /// An unregistered driver, for a `static`.
    pub(crate) const fn new() -> Self {
        Self {
            drv: Opaque::zeroed(),
            attrs: UnsafeCell::new(None),
            users: Atomic::new(0),
            registered: Atomic::new(false),
            _t: PhantomData,
        }
    }

    fn as_raw(&self) -> *mut bindings::mdev_driver {
        self.drv.get()
    }

    /// Registers the driver with the mdev core (from module init). `EBUSY` if it is registered
    /// already (or still in use by parents of an earlier registration).
    pub(crate) fn register(
        &'static self,
        module: &'static ThisModule,
    ) -> Result<DriverRegistration<T>> {
        if self.users.cmpxchg(0, 1, Full).is_err() {
            pr_err!(
                "mdev driver {} is registered already: second registration refused\n",
                T::NAME
            );
            return Err(EBUSY);
        }
        let r = self.register_first(module);
        if r.is_err() {
            // Nothing was registered; the next `register` may try again.
            self.users.store(0, Relaxed);
        }
        r?;
        self.registered.store(true, Relaxed);
        // INVARIANT: The driver is registered and this registration is its user.
        Ok(DriverRegistration { drv: self })
    }

    /// The part of `register` that runs while `users` went from 0 to 1 here.
    fn register_first(&'static self, module: &'static ThisModule) -> Result {
        let attrs = match T::DEVICE_ATTRS {
            Some(g) => Some(GroupStorage::new(
                g,
                core::ptr::null(),
                Self::device_attr_show,
                Self::device_attr_store,
            )?),
            None => None,
        };
        let drv = self.as_raw();
        // SAFETY: This thread moved `users` from 0 to 1, so the driver is not registered and
        // nothing else accesses `drv` or `attrs` (type invariants).
        unsafe {
            let groups = attrs.as_ref().map_or(core::ptr::null_mut(), |a| a.groups());
            *self.attrs.get() = attrs;
            (*drv).device_api = T::DEVICE_API.as_char_ptr();
            (*drv).probe = Some(Self::probe_callback);
            (*drv).remove = Some(Self::remove_callback);
            (*drv).get_available = Some(Self::get_available_callback);
            (*drv).show_description = Some(Self::show_description_callback);
            (*drv).driver.name = T::NAME.as_char_ptr();
            (*drv).driver.owner = module.as_ptr();
            (*drv).driver.dev_groups = groups.cast();
        }
        // SAFETY: `drv` is fully initialised and lives forever (`'static`).
        let r = to_result(unsafe { bindings::mdev_register_driver(drv) });
        if r.is_err() {
            // SAFETY: Registration failed, so nothing else refers to `attrs`.
            unsafe { *self.attrs.get() = None };
        }
        r
    }

    /// Takes a use of the registered driver (for a parent); `ENODEV` if it is not registered.
    fn acquire(&self) -> Result {
        let mut n = self.users.load(Acquire);
        loop {
            if n == 0 || !self.registered.load(Acquire) {
                return Err(ENODEV);
            }
            match self.users.cmpxchg(n, n + 1, Full) {
                Ok(_) => return Ok(()),
                Err(now) => n = now,
            }
        }
    }

    /// Gives back a use; the last one unregisters the driver.
    fn release(&self) {
        if self.users.fetch_sub(1, Full) != 1 {
            return;
        }
        self.registered.store(false, Relaxed);
        // SAFETY: `users` went from 1 to 0 here: the driver is registered (type invariant) and
        // nothing else uses it or `attrs`. After unregistering, no callback reads `attrs`.
        unsafe {
            bindings::mdev_unregister_driver(self.as_raw());
            *self.attrs.get() = None;
        }
    }

    /// # Safety
    ///
    /// Called by the mdev core with a valid mdev of one of our parents' types.
    unsafe extern "C" fn probe_callback(mdev: *mut bindings::mdev_device) -> c_int {
        from_result(|| {
            // SAFETY: The mdev core passes a valid mdev whose type belongs to a registered
            // parent of this driver, i.e. to a `Parent<T>`.
            let (parent, index) = unsafe { Parent::<T>::from_type((*mdev).type_)? };
            // SAFETY: `mdev` is valid for the duration of the probe.
            let m = unsafe { Device::from_raw(mdev) };
            let init = T::probe(&parent.data, index, m)?;
            let reg = VfioDevice::<T::Device>::register(m.as_dev(), init)?;
            T::created(&reg);
            // SAFETY: `mdev` is valid; its driver data is ours while it is bound to us.
            unsafe { bindings::dev_set_drvdata(&raw mut (*mdev).dev, reg.into_foreign()) };
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the mdev core with an mdev our probe succeeded for.
    unsafe extern "C" fn remove_callback(mdev: *mut bindings::mdev_device) {
        // SAFETY: Probe stored a registration in the driver data with `into_foreign`; this is
        // the only place that takes it back.
        let reg = unsafe {
            let dev = &raw mut (*mdev).dev;
            let p = bindings::dev_get_drvdata(dev);
            bindings::dev_set_drvdata(dev, core::ptr::null_mut());
            VfioRegistration::<T::Device>::from_foreign(p)
        };
        T::remove(&reg);
        drop(reg);
    }

    /// # Safety
    ///
    /// Called by the mdev core with a type of one of our registered parents.
    unsafe extern "C" fn get_available_callback(mtype: *mut bindings::mdev_type) -> c_uint {
        // SAFETY: Guaranteed by the mdev core (see above).
        match unsafe { Parent::<T>::from_type(mtype) } {
            Ok((parent, index)) => T::available(&parent.data, index),
            Err(_) => 0,
        }
    }

    /// # Safety
    ///
    /// Called by the mdev core with a type of one of our registered parents and a sysfs page.
    unsafe extern "C" fn show_description_callback(
        mtype: *mut bindings::mdev_type,
        buf: *mut c_char,
    ) -> isize {
        // SAFETY: `buf` is the sysfs page of this `show`.
        let Some(mut out) = (unsafe { SysfsBuf::from_raw(buf) }) else {
            return EINVAL.to_errno() as isize;
        };
        // SAFETY: Guaranteed by the mdev core (see above).
        let r = unsafe { Parent::<T>::from_type(mtype) }
            .and_then(|(parent, index)| T::describe(&parent.data, index, &mut out));
        sysfs::show_result(&out, r)
    }

    /// # Safety
    ///
    /// Called by the driver core for an attribute of `DEVICE_ATTRS` on a bound instance.
    unsafe extern "C" fn device_attr_show(
        dev: *mut bindings::device,
        attr: *mut bindings::device_attribute,
        buf: *mut c_char,
    ) -> isize {
        // SAFETY: `attr` belongs to our `GroupStorage`.
        let (_, index) = unsafe { sysfs::Entry::from_attr(attr) };
        let Some(id) = T::DEVICE_ATTRS.and_then(|g| g.id(index)) else {
            return EINVAL.to_errno() as isize;
        };
        // SAFETY: `buf` is the sysfs page of this `show`.
        let Some(mut out) = (unsafe { SysfsBuf::from_raw(buf) }) else {
            return EINVAL.to_errno() as isize;
        };
        // SAFETY: The driver core removes a driver's `dev_groups` before calling its remove, so
        // the registration probe stored in the driver data is alive.
        let this = unsafe { VfioRegistration::<T::Device>::borrow(bindings::dev_get_drvdata(dev)) };
        let r = T::device_attr_show(this, id, &mut out);
        sysfs::show_result(&out, r)
    }

    /// # Safety
    ///
    /// Called by the driver core for an attribute of `DEVICE_ATTRS` on a bound instance.
    unsafe extern "C" fn device_attr_store(
        dev: *mut bindings::device,
        attr: *mut bindings::device_attribute,
        buf: *const c_char,
        count: usize,
    ) -> isize {
        // SAFETY: `attr` belongs to our `GroupStorage`.
        let (_, index) = unsafe { sysfs::Entry::from_attr(attr) };
        let Some(id) = T::DEVICE_ATTRS.and_then(|g| g.id(index)) else {
            return EINVAL.to_errno() as isize;
        };
        // SAFETY: The driver core passes `count` valid bytes.
        let data = unsafe { sysfs::store_bytes(buf, count) };
        // SAFETY: As in `device_attr_show`.
        let this = unsafe { VfioRegistration::<T::Device>::borrow(bindings::dev_get_drvdata(dev)) };
        sysfs::store_result(count, T::device_attr_store(this, id, data))
    }
}

/// The registration of a [`DriverStatic`]; dropping it gives back its use of the driver (which
/// is unregistered once no parent uses it either).
///
/// # Invariants
///
/// `drv` is registered and this object holds one of its uses.
pub(crate) struct DriverRegistration<T: Driver> {
    drv: &'static DriverStatic<T>,
}

impl<T: Driver> Drop for DriverRegistration<T> {
    fn drop(&mut self) {
        self.drv.release();
    }
}

/// A physical device registered as an mdev parent, with its types and the driver's data. It
/// holds a use of its [`DriverStatic`], which stays registered as long as the parent lives.
///
/// # Invariants
///
/// - When `registered` is true, `parent` is registered with the mdev core with the types in
///   `types` and `dev` is a valid device we hold a reference on.
/// - When `holds_driver` is true, this parent holds one use of `drv`.
/// - `types`, `type_ptrs` and `names` are never resized after construction (stable addresses).
#[pin_data(PinnedDrop)]
pub(crate) struct Parent<T: Driver> {
    data: T::Parent,
    names: KVec<TypeInfo>,
    types: KVec<Opaque<bindings::mdev_type>>,
    type_ptrs: KVec<*mut bindings::mdev_type>,
    attrs: Option<KBox<GroupStorage>>,
    dev: Option<ARef<device::Device>>,
    drv: &'static DriverStatic<T>,
    holds_driver: bool,
    registered: bool,
    #[pin]
    parent: Opaque<bindings::mdev_parent>,
}

// SAFETY: The raw pointers point into `self`'s own vectors; `T::Parent` is `Send + Sync`; the C
// parent is only touched by the mdev core, which does its own locking.
unsafe impl<T: Driver> Send for Parent<T> {}
// SAFETY: See `Send`.
unsafe impl<T: Driver> Sync for Parent<T> {}

impl<T: Driver> Parent<T> {
    /// Registers `dev` as an mdev parent offering `types`, with driver data `data`. The driver
    /// must be registered (`ENODEV` otherwise); the parent keeps it registered.
    pub(crate) fn new(
        dev: &device::Device<device::Bound>,
        drv: &'static DriverStatic<T>,
        types: KVec<TypeInfo>,
        data: T::Parent,
    ) -> impl PinInit<Self, Error> {
        let dev: ARef<device::Device> = dev.into();
        pin_init::pin_init_scope(move || {
            let mut mtypes = KVec::with_capacity(types.len(), GFP_KERNEL)?;
            let mut ptrs = KVec::with_capacity(types.len(), GFP_KERNEL)?;
            for t in types.iter() {
                let mut raw: bindings::mdev_type = pin_init::zeroed();
                raw.sysfs_name = t.sysfs_name.as_char_ptr();
                raw.pretty_name = t.pretty_name.as_char_ptr();
                mtypes.push(Opaque::new(raw), GFP_KERNEL)?;
            }
            for t in mtypes.iter() {
                ptrs.push(t.get(), GFP_KERNEL)?;
            }
            let nr = u32::try_from(types.len())?;
            drv.acquire()?;
            // INVARIANT: The use just taken is given back by `drop` (also if the rest of the
            // initialisation fails: the partly initialised parent is dropped then).
            Ok(try_pin_init!(Self {
                data,
                names: types,
                types: mtypes,
                type_ptrs: ptrs,
                attrs: None,
                dev: Some(dev),
                drv,
                holds_driver: true,
                registered: false,
                parent <- Opaque::uninit(),
            })
            .pin_chain(move |this| {
                // SAFETY: We do not move out of `this`.
                let this = unsafe { this.get_unchecked_mut() };
                let Some(dev) = this.dev.as_ref() else {
                    return Err(EINVAL);
                };
                let raw_dev = super::raw_device(dev);
                // SAFETY: `parent` is pinned; `raw_dev` is a device we hold a reference on; the
                // driver is registered (we hold a use) and `'static`; the type array and the types
                // it points to live in `this` and never move or resize.
                to_result(unsafe {
                    bindings::mdev_register_parent(
                        this.parent.get(),
                        raw_dev,
                        this.drv.as_raw(),
                        this.type_ptrs.as_mut_ptr(),
                        nr,
                    )
                })?;
                // INVARIANT: The parent is registered.
                this.registered = true;
                if let Some(g) = T::PARENT_ATTRS {
                    let owner: *const Self = this;
                    let storage = GroupStorage::new(
                        g,
                        owner.cast(),
                        Self::parent_attr_show,
                        Self::parent_attr_store,
                    )?;
                    // SAFETY: `raw_dev` is valid; the group lives in `this`, which removes it
                    // before dropping it.
                    to_result(unsafe { bindings::device_add_groups(raw_dev, storage.groups()) })?;
                    this.attrs = Some(storage);
                }
                Ok(())
            }))
        })
    }

    /// The driver's data.
    pub(crate) fn data(&self) -> &T::Parent {
        &self.data
    }

    /// Finds the parent and the type index of a type.
    ///
    /// # Safety
    ///
    /// `mtype` must be a type registered by a live `Parent<T>`.
    unsafe fn from_type<'a>(mtype: *mut bindings::mdev_type) -> Result<(&'a Self, usize)> {
        // SAFETY: `mtype` is a registered type (by the safety requirements), so its `parent` is
        // the `mdev_parent` embedded in a `Parent<T>`.
        let this = unsafe {
            let raw = (*mtype).parent.cast::<Opaque<bindings::mdev_parent>>();
            &*kernel::container_of!(raw, Self, parent)
        };
        let base = this.types.as_ptr() as usize;
        let off = (mtype as usize).checked_sub(base).ok_or(EINVAL)?;
        let index = off / size_of::<Opaque<bindings::mdev_type>>();
        if index >= this.types.len() {
            return Err(EINVAL);
        }
        Ok((this, index))
    }

    /// The parent and the attribute id behind a parent attribute.
    ///
    /// # Safety
    ///
    /// `attr` must belong to the `GroupStorage` of a live `Parent<T>`, valid for `'a`.
    unsafe fn from_attr<'a>(
        attr: *mut bindings::device_attribute,
    ) -> Option<(&'a Self, T::ParentAttr)> {
        // SAFETY: By the safety requirements `attr` belongs to a `GroupStorage` of a live
        // `Parent<T>` (the group is removed before the parent is dropped), whose address is the
        // owner pointer.
        let (owner, index) = unsafe { sysfs::Entry::from_attr(attr) };
        // SAFETY: See above.
        let this = unsafe { &*owner.cast::<Self>() };
        Some((this, T::PARENT_ATTRS?.id(index)?))
    }

    /// # Safety
    ///
    /// Called by the driver core for an attribute of our parent group.
    unsafe extern "C" fn parent_attr_show(
        _dev: *mut bindings::device,
        attr: *mut bindings::device_attribute,
        buf: *mut c_char,
    ) -> isize {
        // SAFETY: The driver core calls this only for attributes of the group we added.
        let Some((this, id)) = (unsafe { Self::from_attr(attr) }) else {
            return EINVAL.to_errno() as isize;
        };
        // SAFETY: `buf` is the sysfs page of this `show`.
        let Some(mut out) = (unsafe { SysfsBuf::from_raw(buf) }) else {
            return EINVAL.to_errno() as isize;
        };
        let r = T::parent_attr_show(&this.data, id, &mut out);
        sysfs::show_result(&out, r)
    }

    /// # Safety
    ///
    /// Called by the driver core for a writable attribute of our parent group.
    unsafe extern "C" fn parent_attr_store(
        _dev: *mut bindings::device,
        attr: *mut bindings::device_attribute,
        buf: *const c_char,
        count: usize,
    ) -> isize {
        // SAFETY: The driver core calls this only for attributes of the group we added.
        let Some((this, id)) = (unsafe { Self::from_attr(attr) }) else {
            return EINVAL.to_errno() as isize;
        };
        // SAFETY: The driver core passes `count` valid bytes.
        let data = unsafe { sysfs::store_bytes(buf, count) };
        sysfs::store_result(count, T::parent_attr_store(&this.data, id, data))
    }
}

#[pinned_drop]
impl<T: Driver> PinnedDrop for Parent<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: We do not move out of `self`.
        let this = unsafe { self.get_unchecked_mut() };
        if let Some(dev) = this.dev.as_ref() {
            let raw_dev = super::raw_device(dev);
            if let Some(storage) = this.attrs.take() {
                // SAFETY: The group was added to `raw_dev`; removing it waits for running
                // callbacks.
                unsafe { bindings::device_remove_groups(raw_dev, storage.groups()) };
            }
            if this.registered {
                // SAFETY: By the type invariant the parent is registered. This removes every
                // instance (each removal waits for the instance's users to close it).
                unsafe { bindings::mdev_unregister_parent(this.parent.get()) };
                this.registered = false;
                T::parent_removed(&this.data);
            }
        }
        if this.holds_driver {
            // INVARIANT: The use is given back once.
            this.holds_driver = false;
            this.drv.release();
        }
    }
}
