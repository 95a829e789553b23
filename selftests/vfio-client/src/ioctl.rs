// SPDX-License-Identifier: GPL-2.0
//! Thin ioctl layer over `libc::ioctl`: every failure becomes an [`io::Error`] that carries the
//! errno (`raw_os_error()`).
//!
//! VFIO and iommufd ioctls share one convention: the argument is a struct whose first `u32` is its
//! size (`argsz` / `size`), and the kernel never writes past that size (it fails with `EINVAL` when
//! the size is below the minimum it knows). [`ioctl_buf`] relies on it to stay sound for arbitrary
//! caller-chosen command numbers and sizes.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::uapi::{as_bytes, read_pod, Pod};

/// Converts a libc return value (`-1` + errno) into an `io::Result`.
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `ioctl(fd, cmd, arg)` with an integer (or pointer-as-integer) argument.
///
/// # Safety
/// If the kernel interprets `arg` as a pointer for this `cmd`, it must point to memory that is
/// valid for the reads and writes the kernel will do.
pub unsafe fn ioctl_raw(fd: BorrowedFd<'_>, cmd: u64, arg: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: forwarded to the caller's contract. The request type of libc::ioctl differs between
    // libcs (c_ulong for glibc, c_int for musl); `as _` picks it.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), cmd as _, arg) })
}

/// `ioctl(fd, cmd, 0)`: for commands without an argument (`VFIO_DEVICE_RESET`,
/// `VFIO_GET_API_VERSION`...). A command that does expect a pointer sees NULL and fails with
/// `EFAULT`, so this is safe for any `cmd`.
pub fn ioctl_none(fd: BorrowedFd<'_>, cmd: u64) -> io::Result<libc::c_int> {
    // SAFETY: a NULL pointer argument makes the kernel's copy_{from,to}_user fail, it never
    // touches our memory.
    unsafe { ioctl_raw(fd, cmd, 0) }
}

/// `ioctl(fd, cmd, value)` for commands whose argument is a plain integer (`VFIO_SET_IOMMU`,
/// `VFIO_CHECK_EXTENSION`). Restricted to values below the first page so the kernel can never
/// mistake it for a valid pointer into our memory.
pub fn ioctl_int(fd: BorrowedFd<'_>, cmd: u64, value: u32) -> io::Result<libc::c_int> {
    if value >= 4096 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: addresses below 4096 are never mapped (mmap_min_addr), so no memory of ours can be
    // read or written through it.
    unsafe { ioctl_raw(fd, cmd, value.into()) }
}

/// Scratch space every [`ioctl_buf`] call gets at least, so that a command that writes a fixed
/// struct regardless of the size field (as an unknown command might) cannot overrun.
const MIN_SCRATCH: usize = 4096;

/// `ioctl(fd, cmd, buf)` for the `argsz`-first convention, with any `cmd` and any content of `buf`
/// (a caller-chosen, possibly wrong, size included). Returns the ioctl's return value; `buf` gets
/// the kernel's output back.
///
/// The kernel sees a zero-padded copy of `buf` that is at least 4 KiB and at least as large as the
/// size in its first `u32`, so a size larger than `buf` (or a command that ignores the size) can
/// not make the kernel write out of bounds.
pub fn ioctl_buf(fd: BorrowedFd<'_>, cmd: u64, buf: &mut [u8]) -> io::Result<libc::c_int> {
    let declared = read_pod::<u32>(buf, 0).unwrap_or(0) as usize;
    let len = buf.len().max(declared).max(MIN_SCRATCH);
    // u64 elements: 8-byte alignment, as the kernel's __aligned_u64 fields expect.
    let mut scratch = vec![0u64; len.div_ceil(8)];
    // SAFETY: `scratch` owns len.div_ceil(8) * 8 >= len initialised bytes.
    let bytes = unsafe { std::slice::from_raw_parts_mut(scratch.as_mut_ptr().cast::<u8>(), len) };
    bytes[..buf.len()].copy_from_slice(buf);
    // SAFETY: the pointer covers `len` bytes, which bounds every write the kernel does for an
    // argsz-first command (see the module docs) and any fixed struct of up to 4 KiB.
    let ret = unsafe { ioctl_raw(fd, cmd, bytes.as_mut_ptr() as libc::c_ulong) };
    buf.copy_from_slice(&bytes[..buf.len()]);
    ret
}

/// [`ioctl_buf`] on a uapi struct: `v` goes in and comes back updated.
pub fn ioctl_pod<T: Pod>(fd: BorrowedFd<'_>, cmd: u64, v: &mut T) -> io::Result<libc::c_int> {
    let mut buf = as_bytes(v).to_vec();
    let ret = ioctl_buf(fd, cmd, &mut buf)?;
    *v = read_pod(&buf, 0).ok_or_else(|| io::Error::from_raw_os_error(libc::EFAULT))?;
    Ok(ret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn errors_carry_errno() {
        let f = std::fs::File::open("/dev/null").expect("/dev/null");
        // /dev/null implements no ioctls at all.
        let e = ioctl_none(f.as_fd(), crate::uapi::VFIO_GET_API_VERSION).expect_err("ENOTTY");
        assert_eq!(e.raw_os_error(), Some(libc::ENOTTY));
        let mut buf = [0u8; 8];
        let e = ioctl_buf(f.as_fd(), crate::uapi::VFIO_DEVICE_GET_INFO, &mut buf).expect_err("ENOTTY");
        assert_eq!(e.raw_os_error(), Some(libc::ENOTTY));
        assert_eq!(ioctl_int(f.as_fd(), 0, 5000).expect_err("EINVAL").raw_os_error(), Some(libc::EINVAL));
    }
}
