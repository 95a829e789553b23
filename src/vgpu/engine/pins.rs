// SPDX-License-Identifier: GPL-2.0

//! The engine's cache of pinned guest pages.
//!
//! Guest memory is reached through pages pinned with `vfio_pin_pages()` ([`DmaHandle::pin`]),
//! kept across commands (at most [`MAX_PINS`] per vGPU, one evicted in turn beyond that) and
//! released when user space unmaps them (`dma_unmap`) or closes the device. A [`PinnedPage`]
//! unpins itself when it is dropped, so no path can leak a pin; the GPU-wide
//! `nvidia/pinned_pages` counter follows the cache.
//!
//! The cache's lock is a leaf: nothing calls into the VFIO core while holding it. The VFIO core
//! calls `dma_unmap` with its own locks held (type1: `device_list_lock`, taken under
//! `iommu->lock`), and pinning or unpinning takes `iommu->lock`; so pins are made with the lock
//! dropped, and pins that leave the cache are handed back to the caller to drop after unlocking.
//!
//! `dma_unmap` must leave no page of the range pinned, and none may be pinned again while the
//! VFIO core finishes the unmap: type1 checks for pins after the callback returns, calls it again
//! while there are some, and stops the kernel (`BUG_ON`) after ten tries (iommufd refuses such
//! pins itself). So:
//! - every pin outside the cache (being made, or released and not yet unpinned) is counted in
//!   `outside`, and `dma_unmap` waits until there is none (new pins wait for the unmap meanwhile);
//! - on the type1 path the unmapped range is refused to new pins for [`UNMAP_GRACE_NS`] (the
//!   core finishes the unmap as soon as the callback returns; the range may be mapped again
//!   after that, and a new open starts afresh). iommufd refuses such pins itself.
//!
//! An unmap that happens while a pin is being made moves `unmaps` on, and the new pin is then
//! thrown away and made again (which fails if its page was unmapped).

use kernel::{
    page::PAGE_SIZE,
    prelude::*,
    sync::{
        atomic::Relaxed,
        Arc, //
    }, //
};

use super::{
    super::gpu::Gpu,
    cmd::CmdError,
    Engine, //
};
use crate::vfio::{
    dma::{
        DmaHandle,
        PinnedPage, //
    },
    support::monotonic_ns, //
};

/// Guest pages kept pinned per vGPU.
pub(crate) const MAX_PINS: usize = 1024;
/// How often a pin is made again when unmaps keep racing with it.
const PIN_TRIES: u32 = 4;

/// How long a range `dma_unmap` took away is refused to new pins (see the module documentation).
const UNMAP_GRACE_NS: u64 = 100_000_000;
/// Recently unmapped ranges remembered; beyond that the oldest is forgotten.
const MAX_DYING: usize = 64;

/// Pins that left the cache, to be dropped (unpinned) once its lock is released.
pub(crate) type Released = KVec<PinnedPage>;

/// A range `dma_unmap` took away: no pin is made in `start..end` before `until` (monotonic ns).
struct Dying {
    start: u64,
    end: u64,
    until: u64,
}

/// A vGPU's pinned guest pages (under `Engine::pins`).
pub(crate) struct PinCache {
    /// The open device's guest memory; `None` while closed.
    handle: Option<Arc<DmaHandle>>,
    pins: KVec<PinnedPage>,
    /// Where the next eviction from a full cache happens.
    next_evict: usize,
    /// Unmaps so far (see the module documentation).
    unmaps: u64,
    /// Ranges unmapped less than [`UNMAP_GRACE_NS`] ago.
    dying: KVec<Dying>,
    /// Pins outside the cache not yet unpinned (see the module documentation).
    outside: u32,
    /// `dma_unmap` calls waiting for `outside` to reach 0.
    unmapping: u32,
    /// The GPU whose `pinned_pages` counts these pins.
    gpu: Arc<Gpu>,
}

impl PinCache {
    pub(crate) fn new(gpu: Arc<Gpu>) -> Self {
        Self {
            handle: None,
            pins: KVec::new(),
            next_evict: 0,
            unmaps: 0,
            dying: KVec::new(),
            outside: 0,
            unmapping: 0,
            gpu,
        }
    }

    /// Pages pinned now.
    pub(crate) fn len(&self) -> usize {
        self.pins.len()
    }

    /// The device was opened: pins come from `handle` now (a new address space: what was
    /// unmapped in the last one is no longer refused).
    fn open(&mut self, handle: Arc<DmaHandle>) -> Released {
        self.handle = Some(handle);
        self.dying.clear();
        self.take_all()
    }

    /// The device is being closed: every pin leaves, and no new one can be made.
    fn close(&mut self) -> Released {
        self.handle = None;
        self.unmaps += 1;
        self.take_all()
    }

    fn take_all(&mut self) -> Released {
        self.gpu.pinned().fetch_sub(self.pins.len() as u64, Relaxed);
        core::mem::take(&mut self.pins)
    }

    /// Moves the pin at `i` to `out` (dropped if `out` has no room: it is unpinned then).
    fn take(&mut self, i: usize, out: &mut Released) {
        if let Ok(p) = self.pins.remove(i) {
            self.gpu.pinned().fetch_sub(1, Relaxed);
            if out.push(p, GFP_KERNEL).is_err() {
                // Out of memory for the list: the pin was dropped, unpinned under the lock.
            }
        }
    }

    /// User space unmapped `[iova, iova + len)`: the pins in it leave the cache, and the range
    /// is refused to new pins for a while. Called with no pin outside the cache.
    fn unmap(&mut self, iova: u64, len: u64, now: u64) -> Released {
        self.unmaps += 1;
        let end = iova.saturating_add(len);
        let fenced = self.handle.as_ref().is_some_and(|h| h.core_fences_unmaps());
        self.dying.retain(|d| d.until > now);
        if !fenced {
            self.remember_dying(iova, end, now);
        }
        let mut out = KVec::new();
        let mut i = 0;
        while i < self.pins.len() {
            if (iova..end).contains(&self.pins[i].iova()) {
                self.take(i, &mut out);
            } else {
                i += 1;
            }
        }
        out
    }

    /// Refuses `[start, end)` to new pins for [`UNMAP_GRACE_NS`] from `now`.
    fn remember_dying(&mut self, start: u64, end: u64, now: u64) {
        if self.dying.len() >= MAX_DYING {
            let _ = self.dying.remove(0);
        }
        let until = now.saturating_add(UNMAP_GRACE_NS);
        if self
            .dying
            .push(Dying { start, end, until }, GFP_KERNEL)
            .is_err()
        {
            // Out of memory for the list: new pins of the range are refused by `unmaps` only.
        }
    }

    /// Whether the page at `base` is in a range unmapped less than [`UNMAP_GRACE_NS`] ago.
    fn dying(&self, base: u64, now: u64) -> bool {
        self.dying
            .iter()
            .any(|d| d.until > now && (d.start..d.end).contains(&base))
    }

    fn find(&self, base: u64, write: bool) -> Option<usize> {
        self.pins
            .iter()
            .position(|p| p.iova() == base && (p.writable() || !write))
    }

    /// Adds a new pin, evicting what it replaces or what no longer fits into `out`.
    fn insert(&mut self, p: PinnedPage, out: &mut Released) -> Result<usize, CmdError> {
        // A read-only pin of this page is replaced by a writable one.
        if let Some(i) = self.pins.iter().position(|q| q.iova() == p.iova()) {
            self.take(i, out);
        }
        if self.pins.len() >= MAX_PINS {
            // Full: one pin goes, in turn (a cheap approximation of the oldest).
            let victim = self.next_evict % self.pins.len();
            self.next_evict = victim + 1;
            self.take(victim, out);
        }
        self.pins
            .push(p, GFP_KERNEL)
            .map_err(|_| CmdError::DmaFault)?;
        self.gpu.pinned().fetch_add(1, Relaxed);
        Ok(self.pins.len() - 1)
    }
}

impl Drop for PinCache {
    fn drop(&mut self) {
        drop(self.take_all());
    }
}

impl Engine {
    /// Drops pins that left the cache with one counted in `outside` (see the module
    /// documentation), then tells a waiting `dma_unmap` when none is left.
    fn drop_outside(&self, released: Released) {
        drop(released);
        let mut pins = self.pins.lock();
        pins.outside -= 1;
        if pins.outside == 0 {
            self.pins_idle.notify_all();
        }
    }

    /// Empties the cache (device opened with `handle`, or closed with `None`); the pins leave
    /// unpinned when this returns.
    pub(super) fn pins_reset(&self, handle: Option<Arc<DmaHandle>>) {
        let released = {
            let mut pins = self.pins.lock();
            let r = match handle {
                Some(h) => pins.open(h),
                None => pins.close(),
            };
            pins.outside += 1;
            r
        };
        self.drop_outside(released);
    }

    /// `dma_unmap`: when this returns, no page of `[iova, iova + len)` is pinned, and none is
    /// pinned again for [`UNMAP_GRACE_NS`].
    pub(super) fn pins_unmap(&self, iova: u64, len: u64) {
        let released = {
            let mut pins = self.pins.lock();
            pins.unmapping += 1;
            while pins.outside > 0 {
                self.pins_idle.wait(&mut pins);
            }
            let r = pins.unmap(iova, len, monotonic_ns());
            pins.unmapping -= 1;
            if pins.unmapping == 0 {
                self.pins_idle.notify_all();
            }
            r
        };
        drop(released);
    }

    /// Runs `f` on the pinned page holding `iova` (pinned now if it is not cached; writable if
    /// `write`), with the cache locked only around the lookup and `f`.
    fn with_page<R>(
        &self,
        iova: u64,
        write: bool,
        f: impl FnOnce(&PinnedPage) -> R,
    ) -> Result<R, CmdError> {
        let base = iova & !(PAGE_SIZE as u64 - 1);
        // Called once: on the cached page, or on the new pin once it is in the cache.
        let mut f = Some(f);
        let mut call = |p: &PinnedPage| f.take().map(|f| f(p)).ok_or(CmdError::DmaFault);
        for _ in 0..PIN_TRIES {
            let (handle, unmaps) = {
                let mut pins = self.pins.lock();
                if let Some(i) = pins.find(base, write) {
                    return call(&pins.pins[i]);
                }
                // An unmap waits for the pins outside the cache: none is added meanwhile.
                while pins.unmapping > 0 {
                    self.pins_idle.wait(&mut pins);
                }
                if pins.dying(base, monotonic_ns()) {
                    return Err(CmdError::DmaFault);
                }
                let handle = pins.handle.clone().ok_or(CmdError::DmaFault)?;
                pins.outside += 1;
                (handle, pins.unmaps)
            };
            // No lock held: this takes the VFIO core's.
            let fresh = match handle.pin(base, write) {
                Ok(p) => p,
                Err(_) => {
                    self.drop_outside(KVec::new());
                    return Err(CmdError::DmaFault);
                }
            };
            let mut released = KVec::new();
            let r = {
                let mut pins = self.pins.lock();
                if pins.unmaps != unmaps {
                    // An unmap (or close) raced with the pin: make it again.
                    if released.push(fresh, GFP_KERNEL).is_err() {
                        // Out of memory for the list: the pin was dropped, unpinned under the
                        // lock.
                    }
                    None
                } else {
                    Some(
                        pins.insert(fresh, &mut released)
                            .and_then(|i| call(&pins.pins[i])),
                    )
                }
            };
            self.drop_outside(released);
            if let Some(r) = r {
                return r;
            }
        }
        Err(CmdError::DmaFault)
    }

    /// Reads guest memory at `iova` into `buf`, which must not cross a page boundary.
    pub(super) fn page_read(&self, iova: u64, buf: &mut [u8]) -> Result<(), CmdError> {
        let off = (iova % PAGE_SIZE as u64) as usize;
        self.with_page(iova, false, |p| p.read(off, buf))?
            .map_err(|_| CmdError::DmaFault)
    }

    /// Writes `data` into guest memory at `iova`; `data` must not cross a page boundary.
    pub(super) fn page_write(&self, iova: u64, data: &[u8]) -> Result<(), CmdError> {
        let off = (iova % PAGE_SIZE as u64) as usize;
        self.with_page(iova, true, |p| p.write(off, data))?
            .map_err(|_| CmdError::DmaFault)?;
        self.log_write(iova, data.len() as u64);
        Ok(())
    }
}
