// SPDX-License-Identifier: GPL-2.0
//! Owned memory mappings: a mapped device region ([`Mmap::map_fd`]) or an anonymous buffer for
//! DMA ([`Mmap::anonymous`]). Unmapped on drop.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

use crate::uapi::Pod;

/// Page protection for [`Mmap::map_fd`]: `PROT_*` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prot(pub i32);

impl Prot {
    /// `PROT_NONE`.
    pub const NONE: Prot = Prot(libc::PROT_NONE);
    /// `PROT_READ`.
    pub const READ: Prot = Prot(libc::PROT_READ);
    /// `PROT_WRITE`.
    pub const WRITE: Prot = Prot(libc::PROT_WRITE);
    /// `PROT_READ | PROT_WRITE`.
    pub const RW: Prot = Prot(libc::PROT_READ | libc::PROT_WRITE);
}

impl std::ops::BitOr for Prot {
    type Output = Prot;
    fn bitor(self, rhs: Prot) -> Prot {
        Prot(self.0 | rhs.0)
    }
}

/// A mapping owned by this process; `munmap`ed on drop.
///
/// The memory may change under us (a device's DMA, another mapping of the same region), so the
/// accessors copy with volatile reads and writes; [`Mmap::as_slice`] gives a plain view for
/// memory the caller knows is quiescent.
#[derive(Debug)]
pub struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; access goes through &self/&mut self.
unsafe impl Send for Mmap {}
// SAFETY: shared access only reads (volatile or through &[u8]).
unsafe impl Sync for Mmap {}

fn einval() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

impl Mmap {
    /// `mmap(NULL, len, prot, MAP_SHARED, fd, offset)`: maps part of a file, e.g. a VFIO region at
    /// `region.offset + off`. Errors carry mmap's errno.
    pub fn map_fd(fd: BorrowedFd<'_>, offset: u64, len: usize, prot: Prot) -> io::Result<Mmap> {
        let off = libc::off_t::try_from(offset).map_err(|_| einval())?;
        // SAFETY: a fresh mapping chosen by the kernel (addr NULL) overlaps no Rust object.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot.0, libc::MAP_SHARED, fd.as_raw_fd(), off) };
        Self::from_mmap_result(p, len)
    }

    /// An anonymous, private, zero-filled read/write buffer of `len` bytes (rounded up to pages by
    /// the kernel), page-aligned: what a VMM maps for DMA.
    pub fn anonymous(len: usize) -> io::Result<Mmap> {
        // SAFETY: as above; no fd involved.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        Self::from_mmap_result(p, len)
    }

    fn from_mmap_result(p: *mut libc::c_void, len: usize) -> io::Result<Mmap> {
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(einval)?;
        Ok(Mmap { ptr, len })
    }

    /// Start address (for DMA map calls: the `vaddr` / `user_va`).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Start address as an integer.
    pub fn addr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    /// Length in bytes as requested.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is zero bytes long (never true for a successful mmap).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, off: usize, n: usize) -> io::Result<()> {
        match off.checked_add(n) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(einval()),
        }
    }

    /// Volatile read of a `T` at byte offset `off` (must be in bounds and aligned for `T`).
    pub fn read<T: Pod>(&self, off: usize) -> io::Result<T> {
        self.check(off, std::mem::size_of::<T>())?;
        if off % std::mem::align_of::<T>() != 0 {
            return Err(einval());
        }
        // SAFETY: in bounds and aligned (the mapping is page-aligned), T is Pod.
        Ok(unsafe { std::ptr::read_volatile(self.ptr.as_ptr().add(off).cast::<T>()) })
    }

    /// Volatile write of a `T` at byte offset `off` (in bounds, aligned). Needs a writable mapping;
    /// a read-only one faults (SIGSEGV), as it would for any program.
    pub fn write<T: Pod>(&mut self, off: usize, v: T) -> io::Result<()> {
        self.check(off, std::mem::size_of::<T>())?;
        if off % std::mem::align_of::<T>() != 0 {
            return Err(einval());
        }
        // SAFETY: in bounds and aligned; we own the mapping mutably.
        unsafe { std::ptr::write_volatile(self.ptr.as_ptr().add(off).cast::<T>(), v) };
        Ok(())
    }

    /// Volatile byte-wise copy out of the mapping.
    pub fn read_bytes(&self, off: usize, out: &mut [u8]) -> io::Result<()> {
        self.check(off, out.len())?;
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: off + i < len, checked above.
            *b = unsafe { std::ptr::read_volatile(self.ptr.as_ptr().add(off + i)) };
        }
        Ok(())
    }

    /// Volatile byte-wise copy into the mapping.
    pub fn write_bytes(&mut self, off: usize, data: &[u8]) -> io::Result<()> {
        self.check(off, data.len())?;
        for (i, b) in data.iter().enumerate() {
            // SAFETY: off + i < len, checked above.
            unsafe { std::ptr::write_volatile(self.ptr.as_ptr().add(off + i), *b) };
        }
        Ok(())
    }

    /// Plain view of the bytes. Only meaningful while nothing else (a device) writes the memory,
    /// and only for readable mappings.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is `len` bytes and lives as long as self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// Plain mutable view of the bytes (same caveats as [`Mmap::as_slice`], plus writable).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self guarantees exclusivity on our side.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: we own exactly this mapping; nothing borrows it any more. A failure cannot be
        // reported from drop and leaves at worst a leaked mapping.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_buffer_round_trip() {
        let mut m = Mmap::anonymous(8192).expect("mmap");
        assert_eq!(m.addr() % 4096, 0);
        assert!(m.as_slice().iter().all(|&b| b == 0));
        m.write::<u32>(4, 0xdead_beef).expect("in bounds");
        assert_eq!(m.read::<u32>(4).expect("in bounds"), 0xdead_beef);
        m.write_bytes(8190, &[1, 2]).expect("in bounds");
        let mut two = [0u8; 2];
        m.read_bytes(8190, &mut two).expect("in bounds");
        assert_eq!(two, [1, 2]);
        assert_eq!(m.read::<u32>(8190).expect_err("oob").raw_os_error(), Some(libc::EINVAL));
        assert_eq!(m.read::<u32>(2).expect_err("unaligned").raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn map_fd_reports_errno() {
        let f = std::fs::File::open("/dev/null").expect("/dev/null");
        use std::os::fd::AsFd;
        let e = Mmap::map_fd(f.as_fd(), 0, 4096, Prot::READ).expect_err("/dev/null has no mmap");
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV));
    }
}
