// SPDX-License-Identifier: GPL-2.0
//! Interrupt plumbing: eventfds and the `VFIO_DEVICE_SET_IRQS` argument encoding.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::ioctl::cvt;
use crate::uapi::{
    as_bytes, vfio_irq_set, VFIO_IRQ_SET_ACTION_MASK, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_ACTION_UNMASK,
    VFIO_IRQ_SET_DATA_BOOL, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE,
};

/// An eventfd (`EFD_CLOEXEC | EFD_NONBLOCK`), closed on drop.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    /// `eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)`.
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: plain syscall; on success we own the returned fd.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: fd is a fresh descriptor nobody else owns.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Reads and resets the counter. `Ok(None)` when it is zero (`EAGAIN`).
    pub fn read(&self) -> io::Result<Option<u64>> {
        let mut v = 0u64;
        // SAFETY: reads 8 bytes into `v`.
        let n = unsafe { libc::read(self.0.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        if n == 8 {
            return Ok(Some(v));
        }
        let e = io::Error::last_os_error();
        if n < 0 && e.raw_os_error() == Some(libc::EAGAIN) {
            Ok(None)
        } else if n < 0 {
            Err(e)
        } else {
            Err(io::Error::from(io::ErrorKind::UnexpectedEof))
        }
    }

    /// Adds `v` to the counter (what the kernel's irqfd side sees as a signal).
    pub fn write(&self, v: u64) -> io::Result<()> {
        // SAFETY: writes the 8 bytes of `v`.
        let n = unsafe { libc::write(self.0.as_raw_fd(), (&v as *const u64).cast(), 8) };
        if n == 8 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Waits up to `timeout_ms` (-1: forever) for the counter to become non-zero; `Ok(true)` if it
    /// did. Does not consume the count.
    pub fn wait(&self, timeout_ms: i32) -> io::Result<bool> {
        let mut pfd = libc::pollfd { fd: self.0.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let n = cvt(unsafe { libc::poll(&mut pfd, 1, timeout_ms) })?;
        Ok(n > 0 && pfd.revents & libc::POLLIN != 0)
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// The action part of `vfio_irq_set.flags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqAction {
    /// `VFIO_IRQ_SET_ACTION_MASK`.
    Mask,
    /// `VFIO_IRQ_SET_ACTION_UNMASK`.
    Unmask,
    /// `VFIO_IRQ_SET_ACTION_TRIGGER`.
    Trigger,
}

impl IrqAction {
    /// The flag bit.
    pub fn flag(self) -> u32 {
        match self {
            IrqAction::Mask => VFIO_IRQ_SET_ACTION_MASK,
            IrqAction::Unmask => VFIO_IRQ_SET_ACTION_UNMASK,
            IrqAction::Trigger => VFIO_IRQ_SET_ACTION_TRIGGER,
        }
    }
}

/// The data part of `VFIO_DEVICE_SET_IRQS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqData<'a> {
    /// `VFIO_IRQ_SET_DATA_NONE` on `count` vectors (count 0 with Trigger disables the index).
    None {
        /// Number of vectors from `start`.
        count: u32,
    },
    /// `VFIO_IRQ_SET_DATA_BOOL`: one bool (u8) per vector.
    Bool(&'a [bool]),
    /// `VFIO_IRQ_SET_DATA_EVENTFD`: one fd per vector, `-1` to tear down / skip.
    EventFd(&'a [RawFd]),
}

impl IrqData<'_> {
    /// The data-type flag bit.
    pub fn flag(&self) -> u32 {
        match self {
            IrqData::None { .. } => VFIO_IRQ_SET_DATA_NONE,
            IrqData::Bool(_) => VFIO_IRQ_SET_DATA_BOOL,
            IrqData::EventFd(_) => VFIO_IRQ_SET_DATA_EVENTFD,
        }
    }

    /// Number of vectors the data covers.
    pub fn count(&self) -> u32 {
        match self {
            IrqData::None { count } => *count,
            IrqData::Bool(b) => b.len() as u32,
            IrqData::EventFd(f) => f.len() as u32,
        }
    }

    /// The payload bytes that follow the header.
    pub fn payload(&self) -> Vec<u8> {
        match self {
            IrqData::None { .. } => Vec::new(),
            IrqData::Bool(b) => b.iter().map(|&x| u8::from(x)).collect(),
            IrqData::EventFd(f) => f.iter().flat_map(|fd| fd.to_ne_bytes()).collect(),
        }
    }
}

/// Encodes a complete `vfio_irq_set` argument (header with `argsz` = header + payload, then the
/// payload) from raw parts; tests can pass inconsistent values on purpose.
pub fn encode_irq_set(flags: u32, index: u32, start: u32, count: u32, payload: &[u8]) -> Vec<u8> {
    let hdr = vfio_irq_set {
        argsz: (std::mem::size_of::<vfio_irq_set>() + payload.len()) as u32,
        flags,
        index,
        start,
        count,
    };
    let mut buf = as_bytes(&hdr).to_vec();
    buf.extend_from_slice(payload);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventfd_counts() {
        let e = EventFd::new().expect("eventfd");
        assert_eq!(e.read().expect("read"), None);
        assert!(!e.wait(0).expect("poll"));
        e.write(2).expect("write");
        e.write(3).expect("write");
        assert!(e.wait(0).expect("poll"));
        assert_eq!(e.read().expect("read"), Some(5));
        assert_eq!(e.read().expect("read"), None);
    }

    #[test]
    fn irq_set_encoding() {
        let d = IrqData::EventFd(&[7, -1]);
        let buf = encode_irq_set(d.flag() | IrqAction::Trigger.flag(), 2, 1, d.count(), &d.payload());
        assert_eq!(buf.len(), 28);
        let words: Vec<u32> = buf.chunks(4).map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]])).collect();
        assert_eq!(words, vec![28, (1 << 2) | (1 << 5), 2, 1, 2, 7, u32::MAX]);
        let b = IrqData::Bool(&[true, false, true]);
        assert_eq!(b.payload(), vec![1, 0, 1]);
        assert_eq!(encode_irq_set(b.flag() | IrqAction::Mask.flag(), 0, 0, 3, &b.payload()).len(), 23);
        let n = IrqData::None { count: 0 };
        assert_eq!(encode_irq_set(n.flag() | IrqAction::Trigger.flag(), 0, 0, 0, &[]).len(), 20);
    }
}
