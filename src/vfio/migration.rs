// SPDX-License-Identifier: GPL-2.0

//! VFIO live migration (v2) and DMA dirty logging for a VFIO device.
//!
//! C header: [`include/linux/vfio.h`](srctree/include/linux/vfio.h) (`struct vfio_migration_ops`,
//! `struct vfio_log_ops`); uapi: [`include/uapi/linux/vfio.h`](srctree/include/uapi/linux/vfio.h).
//!
//! A driver that migrates sets [`DeviceOps::MIGRATION_FLAGS`](super::DeviceOps::MIGRATION_FLAGS)
//! and implements the `migration_*` methods; one that logs the guest pages it writes sets
//! `DMA_LOGGING` and implements the `log_*` methods. The C op tables are `const` items here;
//! [`super::Device::register`] installs them before registering the device, as the VFIO core
//! requires. [`walk`] splits a requested transition into the single arcs of the migration FSM
//! (`vfio_mig_get_next_state()`), and [`DataFile`] is the data stream handed to user space as a
//! file descriptor.

use core::marker::PhantomData;
use kernel::{
    error::{
        from_result,
        to_result, //
    },
    prelude::*,
    sync::Arc,
    types::ForeignOwnable,
    uaccess::{
        UserSlice,
        UserSliceReader,
        UserSliceWriter, //
    }, //
};

use super::{
    bindings,
    device::{
        Device,
        DeviceOps, //
        DeviceRef,
    },
};

/// A state of the migration FSM (`enum vfio_device_mig_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MigState {
    Error,
    Stop,
    Running,
    StopCopy,
    Resuming,
    RunningP2p,
    PreCopy,
    PreCopyP2p,
}

impl MigState {
    const ALL: [(MigState, u32); 8] = [
        (
            Self::Error,
            bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_ERROR,
        ),
        (
            Self::Stop,
            bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_STOP,
        ),
        (
            Self::Running,
            bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_RUNNING,
        ),
        (
            Self::StopCopy,
            bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_STOP_COPY,
        ),
        (
            Self::Resuming,
            bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_RESUMING,
        ),
        (
            Self::RunningP2p,
            bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_RUNNING_P2P,
        ),
        (
            Self::PreCopy,
            bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_PRE_COPY,
        ),
        (
            Self::PreCopyP2p,
            bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_PRE_COPY_P2P,
        ),
    ];

    /// The state with the uapi value `v`.
    pub(crate) fn from_raw(v: u32) -> Option<Self> {
        Self::ALL.iter().find(|(_, r)| *r == v).map(|(s, _)| *s)
    }

    /// The uapi value.
    pub(crate) fn as_raw(self) -> u32 {
        Self::ALL
            .iter()
            .find(|(s, _)| *s == self)
            .map_or(0, |(_, r)| *r)
    }

    /// The name the VFIO core's debugfs uses (`RUNNING`, `PRE_COPY_P2P`, ...).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Error => "ERROR",
            Self::Stop => "STOP",
            Self::Running => "RUNNING",
            Self::StopCopy => "STOP_COPY",
            Self::Resuming => "RESUMING",
            Self::RunningP2p => "RUNNING_P2P",
            Self::PreCopy => "PRE_COPY",
            Self::PreCopyP2p => "PRE_COPY_P2P",
        }
    }
}

/// `VFIO_MIG_GET_PRECOPY_INFO`: what a pre-copy data stream still has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PrecopyInfo {
    /// Bytes of the initial data not read yet.
    pub(crate) initial_bytes: u64,
    /// Bytes that changed since they were read and will be sent again.
    pub(crate) dirty_bytes: u64,
    /// New initial data is on the stream (`initial_bytes` counts it; `dirty_bytes` is relative to
    /// it). Reported as `VFIO_PRECOPY_INFO_REINIT` only to user space that opted in with
    /// `VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2`; without the opt-in the flags field is left as the
    /// caller passed it (the v1 behaviour the core keeps for compatibility).
    pub(crate) reinit: bool,
}

/// A migration data stream: what user space reads from (saving) or writes to (resuming) the file
/// descriptor a transition returns. The file holds an `Arc` of it until user space closes it.
pub(crate) trait DataFile: Send + Sync + 'static {
    /// `read(2)` of the saving stream, into `out` (its length is the request). `Ok(0)` at the end
    /// of the stream; `ENOMSG` at a temporary end in pre-copy.
    fn read(&self, _out: &mut UserSliceWriter) -> Result<usize> {
        Err(EINVAL)
    }

    /// `write(2)` of the resuming stream, from `data`.
    fn write(&self, _data: &mut UserSliceReader) -> Result<usize> {
        Err(EINVAL)
    }

    /// `VFIO_MIG_GET_PRECOPY_INFO` (only valid in the pre-copy states: `EINVAL` otherwise).
    fn precopy_info(&self) -> Result<PrecopyInfo> {
        Err(EINVAL)
    }
}

/// A data stream's file, not yet handed to user space.
///
/// # Invariants
///
/// `file` is a file made by `rvgpu_mig_file()` with the ops of `FileOps<F>` for some
/// `F: DataFile`, whose private data is an `Arc<FileData<F>>` it owns; we own the file
/// reference.
pub(crate) struct MigFile {
    file: core::ptr::NonNull<bindings::file>,
}

// SAFETY: A file reference may be moved to and dropped on any thread.
unsafe impl Send for MigFile {}

impl MigFile {
    /// A file for `data` of the device `dev`, readable (`writable == false`) or writable.
    pub(crate) fn new<F: DataFile, T: DeviceOps>(
        dev: &Device<T>,
        data: Arc<F>,
        writable: bool,
    ) -> Result<Self> {
        let flags = if writable {
            bindings::O_WRONLY
        } else {
            bindings::O_RDONLY
        };
        let private = Arc::new(
            FileData {
                data,
                vdev: dev.counted(),
            },
            GFP_KERNEL,
        )?
        .into_foreign();
        // SAFETY: The ops table is a `'static` constant for `F`, and `private` is an
        // `Arc<FileData<F>>` given away to the file (taken back by its `release`).
        let file = unsafe {
            bindings::rvgpu_mig_file(
                c"rvgpu_mig".as_char_ptr(),
                &FileOps::<F>::OPS,
                private,
                flags as c_int,
            )
        };
        match kernel::error::from_err_ptr(file) {
            Ok(file) => Ok(Self {
                // INVARIANT: A file made with those ops, owning `private`.
                file: core::ptr::NonNull::new(file).ok_or(ENOMEM)?,
            }),
            Err(e) => {
                // SAFETY: No file was made, so `private` is still ours.
                drop(unsafe { Arc::<FileData<F>>::from_foreign(private) });
                Err(e)
            }
        }
    }

    /// Gives the file (and its reference) to the VFIO core, which installs it as a descriptor.
    fn into_raw(self) -> *mut bindings::file {
        let f = self.file.as_ptr();
        core::mem::forget(self);
        f
    }
}

impl Drop for MigFile {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own a reference to the file.
        unsafe { bindings::fput(self.file.as_ptr()) };
    }
}

/// Walks the migration FSM from `cur` to `target`, one single arc at a time (as the VFIO core
/// defines them for the device's flags), calling `step(from, to)` for each. Returns the state
/// reached and the data file of the last arc, if it made one. On an error the state reached so
/// far is returned with it; a file made before the last arc is a driver bug (`EINVAL`).
pub(crate) fn walk<T: DeviceOps>(
    dev: &Device<T>,
    cur: MigState,
    target: MigState,
    mut step: impl FnMut(MigState, MigState) -> Result<Option<MigFile>>,
) -> (MigState, Result<Option<MigFile>>) {
    let mut at = cur;
    let mut file = None;
    while at != target {
        if at == MigState::Error {
            // Only a reset leaves ERROR (the VFIO uapi); the core's FSM has no arc out of it and
            // warns if asked for one.
            return (at, Err(EINVAL));
        }
        let mut next: bindings::vfio_device_mig_state = 0;
        // SAFETY: `dev` is a registered VFIO device with migration ops; `next` is writable.
        let r = to_result(unsafe {
            bindings::vfio_mig_get_next_state(dev.as_raw(), at.as_raw(), target.as_raw(), &mut next)
        });
        if let Err(e) = r {
            return (at, Err(e));
        }
        let Some(next) = MigState::from_raw(next) else {
            return (at, Err(EINVAL));
        };
        if file.is_some() {
            return (at, Err(EINVAL));
        }
        match step(at, next) {
            Ok(f) => file = f,
            Err(e) => return (at, Err(e)),
        }
        at = next;
    }
    (at, Ok(file))
}

/// A DMA logging range, `[start, last]` (inclusive, as the VFIO core passes them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LogRange {
    pub(crate) start: u64,
    pub(crate) last: u64,
}

/// How many ranges a DMA logging start may have (the VFIO core's `LOG_MAX_RANGES`).
pub(crate) const LOG_MAX_RANGES: usize = 256;

/// The bitmap a DMA logging report fills (`struct iova_bitmap`).
///
/// # Invariants
///
/// `bitmap` is the bitmap of the `log_read_and_clear` call this object was made for.
pub(crate) struct DirtyBitmap {
    bitmap: *mut bindings::iova_bitmap,
}

impl DirtyBitmap {
    /// Marks `[iova, iova + len)` dirty (the bitmap ignores what lies outside its window).
    pub(crate) fn set(&mut self, iova: u64, len: u64) {
        let (Ok(iova), Ok(len)) = (usize::try_from(iova), usize::try_from(len)) else {
            return;
        };
        // SAFETY: By the type invariant the bitmap is valid for the duration of the report.
        unsafe { bindings::iova_bitmap_set(self.bitmap, iova, len) };
    }
}

/// The C `struct vfio_migration_ops` and `struct vfio_log_ops` of a [`DeviceOps`].
pub(super) struct MigOps<T: DeviceOps>(PhantomData<T>);

impl<T: DeviceOps> MigOps<T> {
    pub(super) const MIG: bindings::vfio_migration_ops = bindings::vfio_migration_ops {
        migration_set_state: Some(Self::set_state),
        migration_get_state: Some(Self::get_state),
        migration_get_data_size: Some(Self::get_data_size),
    };

    pub(super) const LOG: bindings::vfio_log_ops = bindings::vfio_log_ops {
        log_start: Some(Self::log_start),
        log_stop: Some(Self::log_stop),
        log_read_and_clear: Some(Self::log_read_and_clear),
    };

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device of these ops.
    unsafe extern "C" fn set_state(
        vdev: *mut bindings::vfio_device,
        new: bindings::vfio_device_mig_state,
    ) -> *mut bindings::file {
        // SAFETY: A registered device of these ops is a live `Device<T>`.
        let this = unsafe { Device::<T>::from_raw(vdev) };
        let r = MigState::from_raw(new)
            .ok_or(EINVAL)
            .and_then(|s| T::migration_set_state(this, s));
        match r {
            Ok(Some(f)) => f.into_raw(),
            Ok(None) => core::ptr::null_mut(),
            Err(e) => e.to_ptr(),
        }
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device of these ops and a writable state.
    unsafe extern "C" fn get_state(
        vdev: *mut bindings::vfio_device,
        cur: *mut bindings::vfio_device_mig_state,
    ) -> c_int {
        // SAFETY: A registered device of these ops is a live `Device<T>`.
        let this = unsafe { Device::<T>::from_raw(vdev) };
        // SAFETY: The VFIO core passes a valid pointer.
        unsafe { *cur = T::migration_state(this).as_raw() };
        0
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device of these ops and a writable length.
    unsafe extern "C" fn get_data_size(
        vdev: *mut bindings::vfio_device,
        len: *mut c_ulong,
    ) -> c_int {
        // SAFETY: A registered device of these ops is a live `Device<T>`.
        let this = unsafe { Device::<T>::from_raw(vdev) };
        from_result(|| {
            let n = T::migration_data_size(this)?;
            // SAFETY: The VFIO core passes a valid pointer.
            unsafe { *len = n as c_ulong };
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device, its validated ranges and a writable
    /// page size.
    unsafe extern "C" fn log_start(
        vdev: *mut bindings::vfio_device,
        ranges: *mut bindings::rb_root_cached,
        nnodes: u32,
        page_size: *mut u64,
    ) -> c_int {
        // SAFETY: A registered device of these ops is a live `Device<T>`.
        let this = unsafe { Device::<T>::from_raw(vdev) };
        from_result(|| {
            let n = (nnodes as usize).min(LOG_MAX_RANGES);
            let mut starts = KVec::with_capacity(n, GFP_KERNEL)?;
            let mut lasts = KVec::with_capacity(n, GFP_KERNEL)?;
            starts.resize(n, 0u64, GFP_KERNEL)?;
            lasts.resize(n, 0u64, GFP_KERNEL)?;
            // SAFETY: `ranges` is the core's interval tree of the request; both arrays have
            // room for `n` entries.
            let got = unsafe {
                bindings::rvgpu_log_ranges(
                    ranges,
                    starts.as_mut_ptr(),
                    lasts.as_mut_ptr(),
                    n as u32,
                )
            } as usize;
            let mut list = KVec::with_capacity(got, GFP_KERNEL)?;
            for (&start, &last) in starts.iter().zip(lasts.iter()).take(got) {
                list.push(LogRange { start, last }, GFP_KERNEL)?;
            }
            // SAFETY: The VFIO core passes a valid pointer.
            let asked = unsafe { *page_size };
            let used = T::log_start(this, &list, asked)?;
            // SAFETY: As above.
            unsafe { *page_size = used };
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device of these ops.
    unsafe extern "C" fn log_stop(vdev: *mut bindings::vfio_device) -> c_int {
        // SAFETY: A registered device of these ops is a live `Device<T>`.
        let this = unsafe { Device::<T>::from_raw(vdev) };
        from_result(|| T::log_stop(this).map(|()| 0))
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device of these ops and the report's bitmap.
    unsafe extern "C" fn log_read_and_clear(
        vdev: *mut bindings::vfio_device,
        iova: c_ulong,
        length: c_ulong,
        dirty: *mut bindings::iova_bitmap,
    ) -> c_int {
        // SAFETY: A registered device of these ops is a live `Device<T>`.
        let this = unsafe { Device::<T>::from_raw(vdev) };
        // INVARIANT: The bitmap of this report.
        let mut bitmap = DirtyBitmap { bitmap: dirty };
        from_result(|| {
            T::log_read_and_clear(this, iova as u64, length as u64, &mut bitmap).map(|()| 0)
        })
    }
}

/// What a data stream's file owns: the stream, and a reference on its device (for the device's
/// `VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2` opt-in).
struct FileData<F> {
    data: Arc<F>,
    vdev: DeviceRef,
}

/// The C `struct file_operations` of a data stream `F`.
struct FileOps<F: DataFile>(PhantomData<F>);

impl<F: DataFile> FileOps<F> {
    const OPS: bindings::file_operations = bindings::file_operations {
        owner: core::ptr::null_mut(),
        read: Some(Self::read),
        write: Some(Self::write),
        unlocked_ioctl: Some(Self::ioctl),
        compat_ioctl: Some(Self::ioctl),
        release: Some(Self::release),
        ..pin_init::zeroed()
    };

    /// # Safety
    ///
    /// `file` must be a file made by [`MigFile::new`] for `F`, for the duration of `'a`.
    unsafe fn data<'a>(file: *mut bindings::file) -> ArcBorrowed<'a, FileData<F>> {
        // SAFETY: The private data is the `Arc<FileData<F>>` the file owns (type invariant of
        // `MigFile`), alive until `release`.
        unsafe { Arc::<FileData<F>>::borrow((*file).private_data) }
    }

    /// # Safety
    ///
    /// Called by the VFS on a file of these ops with a user buffer of `count` bytes.
    unsafe extern "C" fn read(
        file: *mut bindings::file,
        buf: *mut c_char,
        count: usize,
        pos: *mut bindings::loff_t,
    ) -> isize {
        if !pos.is_null() {
            return ESPIPE.to_errno() as isize;
        }
        // SAFETY: By the safety requirements.
        let data = unsafe { Self::data(file) };
        let mut out = UserSlice::new(UserPtr::from_ptr(buf.cast()), count).writer();
        match data.data.read(&mut out) {
            Ok(n) => n as isize,
            Err(e) => e.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// Called by the VFS on a file of these ops with a user buffer of `count` bytes.
    unsafe extern "C" fn write(
        file: *mut bindings::file,
        buf: *const c_char,
        count: usize,
        pos: *mut bindings::loff_t,
    ) -> isize {
        if !pos.is_null() {
            return ESPIPE.to_errno() as isize;
        }
        // SAFETY: By the safety requirements.
        let data = unsafe { Self::data(file) };
        let mut input = UserSlice::new(UserPtr::from_ptr(buf.cast_mut().cast()), count).reader();
        match data.data.write(&mut input) {
            Ok(n) => n as isize,
            Err(e) => e.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// Called by the VFS on a file of these ops; `arg` is an untrusted user value.
    unsafe extern "C" fn ioctl(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long {
        // SAFETY: By the safety requirements.
        let data = unsafe { Self::data(file) };
        let r = (|| -> Result {
            // The checks of the VFIO core's `vfio_check_precopy_ioctl()`, in its order.
            if cmd != bindings::RVGPU_VFIO_MIG_GET_PRECOPY_INFO {
                return Err(ENOTTY);
            }
            let user = UserPtr::from_addr(arg);
            let mut info: bindings::vfio_precopy_info = pin_init::zeroed();
            let minsz =
                core::mem::offset_of!(bindings::vfio_precopy_info, dirty_bytes) + size_of::<u64>();
            super::uapi::read_user(user, &mut info, minsz)?;
            if (info.argsz as usize) < minsz {
                return Err(EINVAL);
            }
            let p = data.data.precopy_info()?;
            // SAFETY: The file holds a reference on the device (`FileData`); the core sets the
            // opt-in under the device's ioctl and clears it on open, a byte read here.
            if unsafe { (*data.vdev.as_ptr()).precopy_info_v2 } != 0 {
                // With the opt-in the flags are output only.
                info.flags = if p.reinit {
                    bindings::VFIO_PRECOPY_INFO_REINIT
                } else {
                    0
                };
            }
            info.initial_bytes = p.initial_bytes;
            info.dirty_bytes = p.dirty_bytes;
            super::uapi::write_user(user, &mut info, minsz)
        })();
        match r {
            Ok(()) => 0,
            Err(e) => e.to_errno() as c_long,
        }
    }

    /// # Safety
    ///
    /// Called by the VFS once, when the last reference to a file of these ops goes.
    unsafe extern "C" fn release(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        // SAFETY: The private data is the `Arc<FileData<F>>` the file owns; this is the last use.
        drop(unsafe { Arc::<FileData<F>>::from_foreign((*file).private_data) });
        0
    }
}

type ArcBorrowed<'a, F> = <Arc<F> as ForeignOwnable>::Borrowed<'a>;
