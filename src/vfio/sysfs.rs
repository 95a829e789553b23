// SPDX-License-Identifier: GPL-2.0

//! Named sysfs attribute groups whose `show`/`store` callbacks end in Rust.
//!
//! C header: [`include/linux/sysfs.h`](srctree/include/linux/sysfs.h).
//!
//! A [`Group`] is a static description (names and modes). [`GroupStorage`] turns it into the C
//! `struct attribute_group` the driver core wants, at a stable heap address, and remembers an
//! opaque owner pointer that the callbacks use to find the Rust object behind the attribute.

use core::{
    fmt,
    ptr::NonNull, //
};
use kernel::{
    bindings,
    prelude::*, //
};

/// One attribute of a [`Group`], selected in the callbacks by its `id` (a constant of the
/// driver's own attribute type, typically a fieldless `enum`).
pub(crate) struct Attr<A: 'static> {
    /// The file name.
    pub(crate) name: &'static CStr,
    /// Read-write (`0644`) or read-only (`0444`).
    pub(crate) writable: bool,
    /// What the callbacks are told the file is.
    pub(crate) id: A,
}

/// A named attribute group: a directory of attribute files.
pub(crate) struct Group<A: 'static> {
    /// The directory name.
    pub(crate) name: &'static CStr,
    /// The files.
    pub(crate) attrs: &'static [Attr<A>],
}

impl<A: Copy + 'static> Group<A> {
    /// The id of the attribute at `index` (as stored in an [`Entry`]).
    pub(crate) fn id(&self, index: usize) -> Option<A> {
        self.attrs.get(index).map(|a| a.id)
    }
}

/// The C signature of a `show` callback.
pub(crate) type ShowFn = unsafe extern "C" fn(
    *mut bindings::device,
    *mut bindings::device_attribute,
    *mut c_char,
) -> isize;
/// The C signature of a `store` callback.
pub(crate) type StoreFn = unsafe extern "C" fn(
    *mut bindings::device,
    *mut bindings::device_attribute,
    *const c_char,
    usize,
) -> isize;

/// An attribute as registered: the C attribute first, so that a `*mut device_attribute` the
/// driver core hands to a callback is also a pointer to its [`Entry`].
#[repr(C)]
pub(crate) struct Entry {
    attr: bindings::device_attribute,
    owner: *const c_void,
    index: usize,
}

impl Entry {
    /// Recovers the owner pointer and the attribute's index in its [`Group`].
    ///
    /// # Safety
    ///
    /// `attr` must be the `device_attribute` of an [`Entry`] of a live [`GroupStorage`].
    pub(crate) unsafe fn from_attr(
        attr: *mut bindings::device_attribute,
    ) -> (*const c_void, usize) {
        let entry = attr.cast::<Entry>();
        // SAFETY: By the safety requirements `attr` is the first field of a live `Entry`
        // (`#[repr(C)]`), so `entry` points to that `Entry`.
        unsafe { ((*entry).owner, (*entry).index) }
    }
}

/// The C structures of a registered attribute group.
///
/// # Invariants
///
/// `group.attrs` points into `ptrs`, a NULL-terminated array of pointers into `entries`; none of
/// the vectors is resized after construction, so all these pointers stay valid as long as `self`.
pub(crate) struct GroupStorage {
    entries: KVec<Entry>,
    ptrs: KVec<*mut bindings::attribute>,
    group: bindings::attribute_group,
    /// A NULL-terminated list holding `group`, for `struct device_driver::dev_groups`.
    groups: [*const bindings::attribute_group; 2],
}

// SAFETY: The raw pointers only point into the storage itself or to static strings; the storage is
// not mutated after construction.
unsafe impl Send for GroupStorage {}
// SAFETY: See `Send`: nothing is mutated through a shared reference.
unsafe impl Sync for GroupStorage {}

impl GroupStorage {
    /// Builds the C structures of `group`, with `owner` stored for the callbacks.
    pub(crate) fn new<A>(
        group: &'static Group<A>,
        owner: *const c_void,
        show: ShowFn,
        store: StoreFn,
    ) -> Result<KBox<Self>> {
        let mut entries = KVec::with_capacity(group.attrs.len(), GFP_KERNEL)?;
        for (index, a) in group.attrs.iter().enumerate() {
            let mut attr: bindings::device_attribute = pin_init::zeroed();
            attr.attr.name = a.name.as_char_ptr();
            attr.attr.mode = if a.writable { 0o644 } else { 0o444 };
            attr.__bindgen_anon_1.show = Some(show);
            attr.__bindgen_anon_2.store = if a.writable { Some(store) } else { None };
            // SAFETY: `attr.attr` is a valid attribute; this only gives it lockdep's key, as
            // every attribute outside static memory needs (a pointer to a static, so the
            // attribute may move afterwards).
            unsafe { super::bindings::rvgpu_sysfs_attr_init(&raw mut attr.attr) };
            entries.push(Entry { attr, owner, index }, GFP_KERNEL)?;
        }
        let mut this = KBox::new(
            Self {
                entries,
                ptrs: KVec::with_capacity(group.attrs.len() + 1, GFP_KERNEL)?,
                group: pin_init::zeroed(),
                groups: [core::ptr::null(); 2],
            },
            GFP_KERNEL,
        )?;
        let s = &mut *this;
        for e in s.entries.iter_mut() {
            s.ptrs.push(&raw mut e.attr.attr, GFP_KERNEL)?;
        }
        s.ptrs.push(core::ptr::null_mut(), GFP_KERNEL)?;
        s.group.name = group.name.as_char_ptr();
        s.group.__bindgen_anon_2.attrs = s.ptrs.as_mut_ptr();
        // INVARIANT: `entries` and `ptrs` are complete and are never resized again; the box gives
        // `group` a stable address.
        s.groups[0] = &raw const s.group;
        Ok(this)
    }

    /// The NULL-terminated list holding the group, for `device_driver::dev_groups`.
    pub(crate) fn groups(&self) -> *mut *const bindings::attribute_group {
        self.groups.as_ptr().cast_mut()
    }
}

/// The page a sysfs `show` callback fills.
///
/// # Invariants
///
/// `buf` is valid for writes of [`SYSFS_BUF_SIZE`] bytes for as long as `self` lives, and
/// `len <= SYSFS_BUF_SIZE`.
pub(crate) struct SysfsBuf {
    buf: NonNull<u8>,
    len: usize,
}

/// What a sysfs buffer holds at most.
const SYSFS_BUF_SIZE: usize = kernel::page::PAGE_SIZE;

impl SysfsBuf {
    /// # Safety
    ///
    /// `buf` must be the `PAGE_SIZE` buffer of a sysfs `show` callback, valid for writes for the
    /// lifetime of the returned object.
    pub(crate) unsafe fn from_raw(buf: *mut c_char) -> Option<Self> {
        // INVARIANT: By the safety requirements; nothing is written yet.
        Some(Self {
            buf: NonNull::new(buf.cast())?,
            len: 0,
        })
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends formatted text (`out.emit(fmt!(...))`); `EFBIG` if the page is full.
    pub(crate) fn emit(&mut self, args: fmt::Arguments<'_>) -> Result {
        fmt::Write::write_fmt(self, args).map_err(|_| EFBIG)
    }
}

impl fmt::Write for SysfsBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        if bytes.len() > SYSFS_BUF_SIZE - self.len {
            return Err(fmt::Error);
        }
        // SAFETY: By the type invariant `buf` is valid for `SYSFS_BUF_SIZE` bytes and the check
        // above keeps the copy inside it; `bytes` cannot overlap a sysfs page.
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.buf.as_ptr().add(self.len),
                bytes.len(),
            )
        };
        // INVARIANT: The check above keeps `len` within the page.
        self.len += bytes.len();
        Ok(())
    }
}

/// Turns a `show` result into what the driver core expects.
pub(crate) fn show_result(buf: &SysfsBuf, r: Result) -> isize {
    match r {
        Ok(()) => buf.len() as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// Turns a `store` result into what the driver core expects.
pub(crate) fn store_result(count: usize, r: Result) -> isize {
    match r {
        Ok(()) => count as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// The bytes a `store` callback was given.
///
/// # Safety
///
/// `buf` must be valid for reads of `count` bytes for the lifetime `'a`.
pub(crate) unsafe fn store_bytes<'a>(buf: *const c_char, count: usize) -> &'a [u8] {
    if count == 0 || buf.is_null() {
        return &[];
    }
    // SAFETY: By the safety requirements `buf` is valid for `count` bytes.
    unsafe { core::slice::from_raw_parts(buf.cast(), count) }
}
