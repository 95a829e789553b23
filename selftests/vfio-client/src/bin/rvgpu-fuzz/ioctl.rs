// SPDX-License-Identifier: GPL-2.0
//! Device ioctls with short, exact, huge and garbage arguments: every one rvgpu handles
//! (`GET_INFO`, `GET_REGION_INFO`, `GET_IRQ_INFO`, `SET_IRQS`, `RESET`, `QUERY_GFX_PLANE`,
//! `GET_GFX_DMABUF`, `DEVICE_FEATURE`) and unknown ones of the VFIO range.
//!
//! Memory safety: `argsz` never exceeds the buffer given (which
//! [`vfio_client::ioctl::ioctl_buf`] pads to at least 4 KiB), and the fields the kernel takes as
//! pointers or returns as new fds are sanitized: a DMA logging report's bitmap is our sink
//! buffer (when the bitmap the arguments describe fits in it) or an address no process can own,
//! a device-state SET's `data_fd` is preset to -1 so that only a descriptor the kernel installed
//! is closed afterwards.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use vfio_client::uapi::*;

use crate::shared::{Fam, Rng};
use crate::worker::{Worker, DATA_IOVA, DATA_LEN, RING_IOVA};

/// An address user space can never own (above the canonical user half): pointers the kernel
/// must refuse.
const BAD_PTR: u64 = 0xffff_8000_dead_0000;

fn put32(b: &mut [u8], off: usize, v: u32) {
    if let Some(s) = b.get_mut(off..off + 4) {
        s.copy_from_slice(&v.to_ne_bytes());
    }
}

fn put64(b: &mut [u8], off: usize, v: u64) {
    if let Some(s) = b.get_mut(off..off + 8) {
        s.copy_from_slice(&v.to_ne_bytes());
    }
}

fn get32(b: &[u8], off: usize) -> Option<u32> {
    b.get(off..off + 4).map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn get64(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8).map_or(0, |s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_ne_bytes(a)
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    GetInfo,
    RegionInfo,
    IrqInfo,
    SetIrqs,
    Reset,
    QueryPlane,
    GetDmabuf,
    Feature,
    Unknown,
}

/// `(what, command, minsz)`.
fn command(w: Which, rng: &Rng) -> (&'static str, u64, usize) {
    match w {
        Which::GetInfo => ("ioctl GET_INFO", VFIO_DEVICE_GET_INFO, 16),
        Which::RegionInfo => ("ioctl GET_REGION_INFO", VFIO_DEVICE_GET_REGION_INFO, 32),
        Which::IrqInfo => ("ioctl GET_IRQ_INFO", VFIO_DEVICE_GET_IRQ_INFO, 16),
        Which::SetIrqs => ("ioctl SET_IRQS", VFIO_DEVICE_SET_IRQS, 20),
        Which::Reset => ("ioctl RESET", VFIO_DEVICE_RESET, 0),
        Which::QueryPlane => ("ioctl QUERY_GFX_PLANE", VFIO_DEVICE_QUERY_GFX_PLANE, 60),
        Which::GetDmabuf => ("ioctl GET_GFX_DMABUF", VFIO_DEVICE_GET_GFX_DMABUF, 12),
        Which::Feature => ("ioctl DEVICE_FEATURE", VFIO_DEVICE_FEATURE, 8),
        Which::Unknown => {
            // The VFIO range without the device ioctls (the other cases, with their arguments
            // sanitized) and BIND/ATTACH/DETACH_IOMMUFD_PT (which would take the worker's own
            // DMA set-up apart); or any number of it with direction and size bits, which no
            // VFIO ioctl has (all are `_IO`).
            let nr = rng.range(u64::from(VFIO_BASE), u64::from(VFIO_BASE) + 40) as u8;
            let cmd = if rng.percent(30) {
                ioc(rng.range(1, 3) as u32, VFIO_TYPE, nr, rng.below(512) as usize)
            } else if (VFIO_BASE + 7..=VFIO_BASE + 20).contains(&nr) {
                io(VFIO_TYPE, VFIO_BASE + 21)
            } else {
                io(VFIO_TYPE, nr)
            };
            ("ioctl unknown", cmd, 8)
        }
    }
}

/// One ioctl with a random argument.
pub fn op(w: &mut Worker) {
    let Worker { dev, rng, sh, sink, efds, devnull, .. } = w;
    let Some(d) = dev.as_ref() else { return };
    let which = rng.weighted(&[
        (6, Which::GetInfo),
        (8, Which::RegionInfo),
        (6, Which::IrqInfo),
        (6, Which::SetIrqs),
        (1, Which::Reset),
        (6, Which::QueryPlane),
        (4, Which::GetDmabuf),
        (10, Which::Feature),
        (2, Which::Unknown),
    ]);
    let (name, cmd, minsz) = command(which, rng);
    sh.set_op(name);
    if which == Which::Reset {
        // RESET takes no argument; a garbage one (with an argsz the buffer really has: the
        // client sizes its scratch buffer by argsz) must be ignored.
        let r = if rng.percent(80) {
            d.dev.ioctl_none(cmd)
        } else {
            let mut b = rng.bytes(64);
            put32(&mut b, 0, rng.below(65) as u32);
            d.dev.ioctl(cmd, &mut b)
        };
        sh.rec(Fam::Ioctl, &r);
        return;
    }

    // The buffer, then argsz no larger than it.
    let len = match rng.below(8) {
        0 => minsz.max(4),
        1 => minsz + 8,
        2 => 64,
        3 => 256,
        4 => 4096,
        5 => 64 << 10,
        _ => rng.range(4, 64 << 10) as usize,
    };
    let mut buf = vec![0u8; len];
    let mode = rng.below(10);
    if mode < 3 {
        rng.fill(&mut buf);
    }
    let argsz = match rng.below(10) {
        0 => 0,
        1 => 1,
        2 => minsz.saturating_sub(1),
        3 | 4 => minsz,
        5 => minsz + rng.below(64) as usize,
        6 => len,
        7 => rng.below(len as u64 + 1) as usize,
        _ => minsz + rng.below(16) as usize,
    }
    .min(len);
    put32(&mut buf, 0, argsz as u32);
    let near = mode >= 3;
    let efd = efds.first().map_or(-1, |e| e.as_raw_fd());
    let nullfd = devnull.as_ref().map_or(-1, |f| f.as_raw_fd());
    let mut feature = None;
    match which {
        Which::GetInfo if near => put32(&mut buf, 4, rng.edgy32()),
        Which::RegionInfo if near => {
            put32(&mut buf, 8, if rng.percent(80) { rng.below(13) as u32 } else { rng.edgy32() });
            if rng.percent(30) {
                put32(&mut buf, 4, rng.edgy32());
                put32(&mut buf, 12, rng.edgy32());
            }
        }
        Which::IrqInfo if near => put32(&mut buf, 8, if rng.percent(80) { rng.below(7) as u32 } else { rng.edgy32() }),
        Which::SetIrqs => {
            if near {
                let data = rng.pick(&[VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_DATA_BOOL, VFIO_IRQ_SET_DATA_EVENTFD, 0, 3]);
                let action = rng.pick(&[
                    VFIO_IRQ_SET_ACTION_TRIGGER,
                    VFIO_IRQ_SET_ACTION_MASK,
                    VFIO_IRQ_SET_ACTION_UNMASK,
                    0,
                    VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_TRIGGER,
                ]);
                let extra = if rng.percent(10) { 1 << rng.range(6, 31) } else { 0 };
                put32(&mut buf, 4, data | action | extra);
                put32(&mut buf, 8, if rng.percent(85) { rng.below(6) as u32 } else { rng.edgy32() });
                put32(&mut buf, 12, if rng.percent(80) { rng.below(3) as u32 } else { rng.edgy32() });
                put32(&mut buf, 16, if rng.percent(80) { rng.below(4) as u32 } else { rng.edgy32() });
            }
            // The data: fds of every kind, or bools.
            for k in 0..4 {
                let fd = rng.pick(&[efd, -1, nullfd, rng.range(3, 1024) as i32, rng.u32() as i32]);
                put32(&mut buf, 20 + 4 * k, fd as u32);
            }
        }
        Which::QueryPlane if near => {
            let flags = rng.pick(&[
                VFIO_GFX_PLANE_TYPE_PROBE | VFIO_GFX_PLANE_TYPE_REGION,
                VFIO_GFX_PLANE_TYPE_REGION,
                VFIO_GFX_PLANE_TYPE_PROBE | VFIO_GFX_PLANE_TYPE_DMABUF,
                VFIO_GFX_PLANE_TYPE_DMABUF,
                VFIO_GFX_PLANE_TYPE_PROBE,
                0,
                7,
                rng.edgy32(),
            ]);
            put32(&mut buf, 4, flags);
            put32(&mut buf, 8, if rng.percent(80) { rng.below(4) as u32 } else { rng.edgy32() });
        }
        Which::GetDmabuf if near => {
            put32(&mut buf, 4, if rng.percent(70) { 0 } else { rng.edgy32() });
            put32(&mut buf, 8, if rng.percent(70) { rng.below(4) as u32 } else { rng.edgy32() });
        }
        Which::Feature => feature = Some(feature_arg(rng, &mut buf, near, sink.addr(), sink.len())),
        _ => {}
    }

    let r = d.dev.ioctl(cmd, &mut buf);
    sh.rec(Fam::Ioctl, &r);
    let Ok(ret) = r else { return };
    // Descriptors the kernel made for us.
    let new_fd = match (which, feature) {
        (Which::GetDmabuf, _) | (Which::Feature, Some(VFIO_DEVICE_FEATURE_DMA_BUF)) if ret > 2 => Some(ret),
        (Which::Feature, Some(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE)) => {
            get32(&buf, 12).map(|v| v as i32).filter(|&fd| fd > 2)
        }
        _ => None,
    };
    if let Some(fd) = new_fd {
        // SAFETY: a descriptor the kernel just installed for this call (a data fd's field was
        // preset to -1, so any other value is the kernel's); nothing else owns it.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }
}

/// Fills a `VFIO_DEVICE_FEATURE` argument (header flags and data) in `buf`; the feature index.
fn feature_arg(rng: &Rng, buf: &mut [u8], near: bool, sink: u64, sink_len: usize) -> u32 {
    let feature = if rng.percent(90) {
        rng.weighted(&[
            (1, VFIO_DEVICE_FEATURE_PCI_VF_TOKEN),
            (4, VFIO_DEVICE_FEATURE_MIGRATION),
            (6, VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE),
            (1, VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY),
            (1, VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP),
            (1, VFIO_DEVICE_FEATURE_LOW_POWER_EXIT),
            (4, VFIO_DEVICE_FEATURE_DMA_LOGGING_START),
            (3, VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP),
            (4, VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT),
            (4, VFIO_DEVICE_FEATURE_MIG_DATA_SIZE),
            (1, VFIO_DEVICE_FEATURE_BUS_MASTER),
            (1, VFIO_DEVICE_FEATURE_DMA_BUF),
            (3, VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2),
            (1, 13),
        ])
    } else {
        rng.below(0x1_0000) as u32
    };
    let ops = rng.weighted(&[
        (5, VFIO_DEVICE_FEATURE_GET),
        (5, VFIO_DEVICE_FEATURE_SET),
        (2, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET),
        (2, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET),
        (1, VFIO_DEVICE_FEATURE_PROBE),
        (1, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET),
        (1, 0),
        (1, rng.u32() & !VFIO_DEVICE_FEATURE_MASK),
    ]);
    put32(buf, 4, ops | feature);
    let d = 8; // where the feature's data starts
    if near {
        match feature {
            VFIO_DEVICE_FEATURE_MIGRATION | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE => put64(buf, d, rng.u64()),
            VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE => {
                put32(buf, d, if rng.percent(85) { rng.below(9) as u32 } else { rng.edgy32() })
            }
            VFIO_DEVICE_FEATURE_DMA_LOGGING_START => {
                put64(buf, d, rng.pick(&[4096, 1 << rng.range(12, 30), 0, rng.u64()]));
                put32(buf, d + 8, rng.pick(&[0, 1, 2, 3, rng.edgy32()]));
                put32(buf, d + 12, if rng.percent(80) { 0 } else { rng.u32() });
                // The ranges follow the control struct in the buffer itself: the kernel only
                // reads them.
                let at = d + 24;
                for k in 0..3 {
                    let iova = rng.pick(&[DATA_IOVA, RING_IOVA, 0, rng.u64() & !0xfff, rng.u64()]);
                    put64(buf, at + 16 * k, iova);
                    put64(buf, at + 16 * k + 8, rng.pick(&[DATA_LEN as u64, 4096, 0, rng.u64()]));
                }
                let ranges = buf.as_ptr() as u64 + at as u64;
                put64(buf, d + 16, rng.pick(&[ranges, 0, BAD_PTR, rng.u64()]));
            }
            VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT => {
                put64(buf, d, rng.pick(&[DATA_IOVA, RING_IOVA, 0, rng.u64()]));
                put64(buf, d + 8, rng.pick(&[DATA_LEN as u64, 4096, 64 << 20, 0, rng.u64()]));
                put64(buf, d + 16, rng.pick(&[4096, 1 << rng.range(12, 30), 0, 4095, rng.u64()]));
            }
            _ => {
                let n = rng.below(64) as usize;
                for k in 0..n {
                    if let Some(b) = buf.get_mut(d + k) {
                        *b = rng.u32() as u8;
                    }
                }
            }
        }
    }
    // Sanitize what the kernel would take as a pointer to write to, or return as a new fd.
    match feature {
        VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE => put32(buf, d + 4, u32::MAX),
        VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT => {
            let (iova, length, page) = (get64(buf, d), get64(buf, d + 8), get64(buf, d + 16));
            let bitmap = if page != 0 && length != 0 {
                let shift = page.trailing_zeros();
                let span = u128::from(iova & (page - 1)) + u128::from(length);
                let bits = (span >> shift) + 2;
                let bytes = bits.div_ceil(64) * 8 + 4096;
                if bytes <= sink_len as u128 {
                    sink
                } else {
                    BAD_PTR
                }
            } else {
                rng.pick(&[0, BAD_PTR])
            };
            put64(buf, d + 24, bitmap);
        }
        _ => {}
    }
    feature
}
