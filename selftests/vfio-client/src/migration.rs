// SPDX-License-Identifier: GPL-2.0
//! VFIO migration (v2) and DMA logging from user space, as QEMU drives them: the
//! `VFIO_DEVICE_FEATURE` ioctl (GET/SET/PROBE) and the features on top of it — the migration
//! flags, the device state ([`DeviceState`], with the data fd a saving or resuming arc returns,
//! [`DataFd`]), the STOP_COPY size estimate, DMA logging start/stop/report ([`DirtyBitmap`]) —
//! and `VFIO_MIG_GET_PRECOPY_INFO` on the data fd. [`stream`] is rvgpu's migration stream
//! (`uapi/rvgpu.h`): parsing, building, validating and corrupting it, all pure.
//!
//! As everywhere in this crate, every failure is an `io::Error` carrying the kernel's errno.

pub mod stream;

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::device::Device;
use crate::ioctl::{ioctl_buf, ioctl_pod};
use crate::uapi::*;

// ----- the device states --------------------------------------------------------------------

/// `enum vfio_device_mig_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceState {
    /// `VFIO_DEVICE_STATE_ERROR`: only a reset leaves it.
    Error,
    /// `VFIO_DEVICE_STATE_STOP`.
    Stop,
    /// `VFIO_DEVICE_STATE_RUNNING`.
    Running,
    /// `VFIO_DEVICE_STATE_STOP_COPY`.
    StopCopy,
    /// `VFIO_DEVICE_STATE_RESUMING`.
    Resuming,
    /// `VFIO_DEVICE_STATE_RUNNING_P2P`.
    RunningP2p,
    /// `VFIO_DEVICE_STATE_PRE_COPY`.
    PreCopy,
    /// `VFIO_DEVICE_STATE_PRE_COPY_P2P`.
    PreCopyP2p,
}

impl DeviceState {
    /// Every state, in the uapi's numeric order.
    pub const ALL: [DeviceState; 8] = [
        DeviceState::Error,
        DeviceState::Stop,
        DeviceState::Running,
        DeviceState::StopCopy,
        DeviceState::Resuming,
        DeviceState::RunningP2p,
        DeviceState::PreCopy,
        DeviceState::PreCopyP2p,
    ];

    /// The uapi value.
    pub fn raw(self) -> u32 {
        match self {
            DeviceState::Error => VFIO_DEVICE_STATE_ERROR,
            DeviceState::Stop => VFIO_DEVICE_STATE_STOP,
            DeviceState::Running => VFIO_DEVICE_STATE_RUNNING,
            DeviceState::StopCopy => VFIO_DEVICE_STATE_STOP_COPY,
            DeviceState::Resuming => VFIO_DEVICE_STATE_RESUMING,
            DeviceState::RunningP2p => VFIO_DEVICE_STATE_RUNNING_P2P,
            DeviceState::PreCopy => VFIO_DEVICE_STATE_PRE_COPY,
            DeviceState::PreCopyP2p => VFIO_DEVICE_STATE_PRE_COPY_P2P,
        }
    }

    /// The state of a uapi value, if it is one.
    pub fn from_raw(v: u32) -> Option<DeviceState> {
        DeviceState::ALL.into_iter().find(|s| s.raw() == v)
    }

    /// The uapi name without its `VFIO_DEVICE_STATE_` prefix (`"PRE_COPY_P2P"`).
    pub fn name(self) -> &'static str {
        match self {
            DeviceState::Error => "ERROR",
            DeviceState::Stop => "STOP",
            DeviceState::Running => "RUNNING",
            DeviceState::StopCopy => "STOP_COPY",
            DeviceState::Resuming => "RESUMING",
            DeviceState::RunningP2p => "RUNNING_P2P",
            DeviceState::PreCopy => "PRE_COPY",
            DeviceState::PreCopyP2p => "PRE_COPY_P2P",
        }
    }

    /// One of the saving group (PRE_COPY, PRE_COPY_P2P, STOP_COPY), which share one data fd.
    pub fn is_saving(self) -> bool {
        matches!(self, DeviceState::PreCopy | DeviceState::PreCopyP2p | DeviceState::StopCopy)
    }
}

impl std::fmt::Display for DeviceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

// ----- the data fd --------------------------------------------------------------------------

/// The migration data fd a saving (read) or resuming (write) arc returned; closed on drop.
#[derive(Debug)]
pub struct DataFd(OwnedFd);

/// How [`DataFd::read_into`] stopped.
#[derive(Debug)]
pub enum ReadEnd {
    /// `read()` returned 0: the end of the stream (or of what the fd gives).
    Eof,
    /// `read()` failed with `ENOMSG`: the temporary end of the PRE_COPY data.
    NoMsg,
    /// `read()` failed otherwise.
    Error(io::Error),
}

impl DataFd {
    /// One `read()`.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: the kernel writes at most buf.len() bytes into buf.
        let n = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        cvt_len(n)
    }

    /// One `write()`.
    pub fn write(&self, data: &[u8]) -> io::Result<usize> {
        // SAFETY: the kernel reads data.len() bytes from data.
        let n = unsafe { libc::write(self.0.as_raw_fd(), data.as_ptr().cast(), data.len()) };
        cvt_len(n)
    }

    /// Reads `chunk` bytes at a time, appending to `out`, until `read()` returns 0 or fails
    /// (`EINTR` is retried).
    pub fn read_into(&self, out: &mut Vec<u8>, chunk: usize) -> ReadEnd {
        let mut buf = vec![0u8; chunk.max(1)];
        loop {
            match self.read(&mut buf) {
                Ok(0) => return ReadEnd::Eof,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOMSG) => return ReadEnd::NoMsg,
                Err(e) => return ReadEnd::Error(e),
            }
        }
    }

    /// Writes all of `data`, at most `chunk` bytes per `write()`. On failure, the byte offset
    /// of the write that failed and its error.
    pub fn write_chunks(&self, data: &[u8], chunk: usize) -> Result<(), (usize, io::Error)> {
        let mut done = 0;
        while done < data.len() {
            let end = (done + chunk.max(1)).min(data.len());
            match self.write(&data[done..end]) {
                Ok(0) => return Err((done, io::Error::from(io::ErrorKind::WriteZero))),
                Ok(n) => done += n,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => return Err((done, e)),
            }
        }
        Ok(())
    }

    /// `VFIO_MIG_GET_PRECOPY_INFO`.
    pub fn precopy_info(&self) -> io::Result<vfio_precopy_info> {
        self.precopy_info_with_argsz(size_of::<vfio_precopy_info>() as u32)
    }

    /// `VFIO_MIG_GET_PRECOPY_INFO` with a caller-chosen `argsz` (a short one, to check the
    /// errno).
    pub fn precopy_info_with_argsz(&self, argsz: u32) -> io::Result<vfio_precopy_info> {
        let mut i = vfio_precopy_info { argsz, ..Default::default() };
        ioctl_pod(self.0.as_fd(), VFIO_MIG_GET_PRECOPY_INFO, &mut i)?;
        Ok(i)
    }

    /// `VFIO_MIG_GET_PRECOPY_INFO` with `flags` set on input (they are input-ignored and echoed
    /// without the PRECOPY_INFOv2 opt-in, output-only with it).
    pub fn precopy_info_with_flags(&self, flags: u32) -> io::Result<vfio_precopy_info> {
        let mut i = vfio_precopy_info { argsz: size_of::<vfio_precopy_info>() as u32, flags, ..Default::default() };
        ioctl_pod(self.0.as_fd(), VFIO_MIG_GET_PRECOPY_INFO, &mut i)?;
        Ok(i)
    }

    /// A second fd for the same open file (`dup`), e.g. for a reader thread.
    pub fn try_clone(&self) -> io::Result<DataFd> {
        self.0.try_clone().map(DataFd)
    }
}

impl AsFd for DataFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

fn cvt_len(n: isize) -> io::Result<usize> {
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

// ----- dirty bitmaps ------------------------------------------------------------------------

/// What `VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT` returned for `[iova, iova + length)`: bit `i`
/// (bit `i % 64` of word `i / 64`) is the page at `iova + i * page_size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirtyBitmap {
    /// Start of the range reported.
    pub iova: u64,
    /// Length of the range.
    pub length: u64,
    /// Bytes per bit.
    pub page_size: u64,
    /// The bitmap as the kernel left it.
    pub words: Vec<u64>,
}

impl DirtyBitmap {
    /// An all-clear bitmap for the range (what the kernel gets to set bits in).
    pub fn new(iova: u64, length: u64, page_size: u64) -> DirtyBitmap {
        let pages = length.div_ceil(page_size.max(1));
        DirtyBitmap { iova, length, page_size, words: vec![0; pages.div_ceil(64) as usize] }
    }

    /// Pages in the range.
    pub fn pages(&self) -> u64 {
        self.length.div_ceil(self.page_size.max(1))
    }

    /// Whether the page holding `iova` is set (false outside the range).
    pub fn is_dirty(&self, iova: u64) -> bool {
        if iova < self.iova || iova - self.iova >= self.length {
            return false;
        }
        let i = (iova - self.iova) / self.page_size;
        self.words.get((i / 64) as usize).is_some_and(|w| w >> (i % 64) & 1 != 0)
    }

    /// The start addresses of the set pages, ascending.
    pub fn dirty(&self) -> Vec<u64> {
        (0..self.pages())
            .filter(|i| self.words[(i / 64) as usize] >> (i % 64) & 1 != 0)
            .map(|i| self.iova + i * self.page_size)
            .collect()
    }
}

// ----- the feature ioctls -------------------------------------------------------------------

/// `VFIO_DEVICE_FEATURE` and the migration and DMA logging features.
impl Device {
    /// `VFIO_DEVICE_FEATURE` with `flags` (GET/SET/PROBE | feature index) and `data` as the
    /// feature's `data[]` (`argsz` = 8 + its length); `data` gets the kernel's output. Returns
    /// the ioctl's value.
    pub fn feature(&self, flags: u32, data: &mut [u8]) -> io::Result<i32> {
        let argsz = (size_of::<vfio_device_feature>() + data.len()) as u32;
        self.feature_with_argsz(flags, argsz, data)
    }

    /// [`Device::feature`] with a caller-chosen `argsz` (e.g. one shorter than the feature
    /// needs, to check the errno).
    pub fn feature_with_argsz(&self, flags: u32, argsz: u32, data: &mut [u8]) -> io::Result<i32> {
        let hdr = vfio_device_feature { argsz, flags };
        let mut buf = as_bytes(&hdr).to_vec();
        buf.extend_from_slice(data);
        let ret = ioctl_buf(self.as_fd(), VFIO_DEVICE_FEATURE, &mut buf)?;
        data.copy_from_slice(&buf[size_of::<vfio_device_feature>()..]);
        Ok(ret)
    }

    fn feature_pod<T: Pod>(&self, flags: u32, v: &mut T) -> io::Result<i32> {
        let mut b = as_bytes(v).to_vec();
        let ret = self.feature(flags, &mut b)?;
        *v = read_pod(&b, 0).ok_or_else(|| io::Error::from_raw_os_error(libc::EFAULT))?;
        Ok(ret)
    }

    /// `VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2` SET: the opt-in to output flags in
    /// `VFIO_MIG_GET_PRECOPY_INFO` (until the device is opened again).
    pub fn precopy_info_v2(&self) -> io::Result<()> {
        self.feature(VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2, &mut []).map(drop)
    }

    /// `VFIO_DEVICE_FEATURE_PROBE` of `feature` for the operations `ops` (GET and/or SET).
    pub fn feature_probe(&self, feature: u32, ops: u32) -> io::Result<()> {
        self.feature(VFIO_DEVICE_FEATURE_PROBE | ops | feature, &mut []).map(drop)
    }

    /// `VFIO_DEVICE_FEATURE_MIGRATION` GET: the `VFIO_MIGRATION_*` flags.
    pub fn migration_flags(&self) -> io::Result<u64> {
        let mut m = vfio_device_feature_migration::default();
        self.feature_pod(VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, &mut m)?;
        Ok(m.flags)
    }

    /// `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE` GET, as the raw uapi value.
    pub fn mig_state_raw(&self) -> io::Result<u32> {
        let mut m = vfio_device_feature_mig_state { device_state: u32::MAX, data_fd: -1 };
        self.feature_pod(VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &mut m)?;
        Ok(m.device_state)
    }

    /// `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE` GET; a value that is no state is `InvalidData`.
    pub fn mig_state(&self) -> io::Result<DeviceState> {
        let v = self.mig_state_raw()?;
        DeviceState::from_raw(v)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("device state {v} is no state")))
    }

    /// `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE` SET to `state`; the data fd when the arc returned
    /// one.
    pub fn set_mig_state(&self, state: DeviceState) -> io::Result<Option<DataFd>> {
        self.set_mig_state_raw(state.raw())
    }

    /// [`Device::set_mig_state`] with any value (invalid ones included).
    pub fn set_mig_state_raw(&self, state: u32) -> io::Result<Option<DataFd>> {
        let mut m = vfio_device_feature_mig_state { device_state: state, data_fd: -1 };
        self.feature_pod(VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &mut m)?;
        if m.data_fd < 0 {
            return Ok(None);
        }
        // SAFETY: on success a non-negative data_fd is a new descriptor the kernel installed for
        // this call; nothing else owns it.
        Ok(Some(DataFd(unsafe { OwnedFd::from_raw_fd(m.data_fd) })))
    }

    /// `VFIO_DEVICE_FEATURE_MIG_DATA_SIZE` GET: the estimated bytes STOP_COPY still sends.
    pub fn mig_data_size(&self) -> io::Result<u64> {
        let mut d = vfio_device_feature_mig_data_size::default();
        self.feature_pod(VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, &mut d)?;
        Ok(d.stop_copy_length)
    }

    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_START` SET for `ranges` (`(iova, length)`) with the
    /// hinted `page_size`; returns the page size the device chose.
    pub fn dma_logging_start(&self, page_size: u64, ranges: &[(u64, u64)]) -> io::Result<u64> {
        let r: Vec<vfio_device_feature_dma_logging_range> =
            ranges.iter().map(|&(iova, length)| vfio_device_feature_dma_logging_range { iova, length }).collect();
        let mut c = vfio_device_feature_dma_logging_control {
            page_size,
            num_ranges: r.len() as u32,
            __reserved: 0,
            // The kernel only reads the ranges, while `r` is alive.
            ranges: r.as_ptr() as u64,
        };
        self.feature_pod(VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, &mut c)?;
        Ok(c.page_size)
    }

    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP` SET.
    pub fn dma_logging_stop(&self) -> io::Result<()> {
        self.feature(VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, &mut []).map(drop)
    }

    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT` GET for `[iova, iova + length)` in units of
    /// `page_size` (a power of two, at least 4 KiB); the report clears what it returns.
    pub fn dma_logging_report(&self, iova: u64, length: u64, page_size: u64) -> io::Result<DirtyBitmap> {
        if length == 0 || page_size == 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let mut bm = DirtyBitmap::new(iova, length, page_size);
        let mut r = vfio_device_feature_dma_logging_report {
            iova,
            length,
            page_size,
            // The kernel sets bits of one bit per page_size of the range: exactly the words
            // allocated for it, which stay alive and untouched by us during the call.
            bitmap: bm.words.as_mut_ptr() as u64,
        };
        self.feature_pod(VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, &mut r)?;
        Ok(bm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for s in DeviceState::ALL {
            assert_eq!(DeviceState::from_raw(s.raw()), Some(s));
        }
        assert_eq!(DeviceState::from_raw(VFIO_DEVICE_STATE_NR), None);
        assert_eq!(DeviceState::PreCopyP2p.raw(), 7);
        assert_eq!(DeviceState::StopCopy.to_string(), "STOP_COPY");
        let saving: Vec<DeviceState> = DeviceState::ALL.into_iter().filter(|s| s.is_saving()).collect();
        assert_eq!(saving, [DeviceState::StopCopy, DeviceState::PreCopy, DeviceState::PreCopyP2p]);
    }

    #[test]
    fn dirty_bitmap_bits() {
        let mut b = DirtyBitmap::new(0x1_0000_0000, 130 * 4096, 4096);
        assert_eq!((b.pages(), b.words.len()), (130, 3));
        b.words[0] = 1 | 1 << 63;
        b.words[2] = 1 << 1;
        assert_eq!(b.dirty(), [0x1_0000_0000, 0x1_0000_0000 + 63 * 4096, 0x1_0000_0000 + 129 * 4096]);
        assert!(b.is_dirty(0x1_0000_0fff));
        assert!(!b.is_dirty(0x1_0000_1000));
        assert!(!b.is_dirty(0xffff_ffff));
        assert!(!b.is_dirty(0x1_0000_0000 + 130 * 4096));
        assert_eq!(DirtyBitmap::new(0, 4097, 4096).pages(), 2);
    }

    #[test]
    fn feature_ioctls_fail_with_the_errno() {
        // /dev/null has no ioctls: ENOTTY, from every helper.
        let f = std::fs::File::open("/dev/null").expect("/dev/null");
        let e = ioctl_pod(f.as_fd(), VFIO_MIG_GET_PRECOPY_INFO, &mut vfio_precopy_info::default());
        assert_eq!(e.expect_err("ENOTTY").raw_os_error(), Some(libc::ENOTTY));
        let d = DataFd(OwnedFd::from(f));
        assert_eq!(d.precopy_info().expect_err("ENOTTY").raw_os_error(), Some(libc::ENOTTY));
        let mut out = Vec::new();
        assert!(matches!(d.read_into(&mut out, 4096), ReadEnd::Eof));
        assert!(out.is_empty());
    }
}
