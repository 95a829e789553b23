// SPDX-License-Identifier: GPL-2.0

//! The engine's cache of pinned guest pages.
//!
//! Guest memory is reached through pages pinned with `vfio_pin_pages()` ([`DmaHandle::pin`]),
//! a run of up to [`RUN_PAGES`] at a time from the page a command needs on, kept across commands
//! (at most [`MAX_PINS`] pages per vGPU, runs evicted in turn beyond that) and released when user
//! space unmaps them (`dma_unmap`) or closes the device. The cache is a red-black tree of runs by
//! IOVA, so a lookup costs the same however many pages are pinned. A [`PinnedRun`] unpins itself
//! when it is dropped, so no path can leak a pin; the GPU-wide `nvidia/pinned_pages` counter
//! follows the cache.
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
    rbtree::{
        RBTree,
        RBTreeNode,
        RBTreeNodeReservation, //
    },
    sync::{
        atomic::Relaxed,
        Arc, //
    }, //
};

use super::{
    super::gpu::Gpu,
    cmd::CmdError,
    Engine,
    Runner, //
};
use crate::vfio::{
    dma::{
        DmaHandle,
        PinnedRun, //
    },
    support::monotonic_ns, //
};

/// Guest pages kept pinned per vGPU (32 MiB): beyond that, runs are evicted in turn.
pub(crate) const MAX_PINS: usize = 8192;
/// Pages a miss pins at once from the page it needs on (256 KiB), in one `vfio_pin_pages()`
/// call: commands walk guest buffers upwards, so the next pages are needed next. The run stops
/// short of a run already cached; where the guest has not mapped them all, one page is pinned.
const RUN_PAGES: usize = 64;
/// How often a pin is made again when unmaps keep racing with it.
const PIN_TRIES: u32 = 4;

/// How long a range `dma_unmap` took away is refused to new pins (see the module documentation).
const UNMAP_GRACE_NS: u64 = 100_000_000;
/// Recently unmapped ranges remembered; beyond that the oldest is forgotten.
const MAX_DYING: usize = 64;

/// Pins that left the cache, to be dropped (unpinned) once its lock is released.
#[derive(Default)]
pub(crate) struct Released {
    /// A whole cache's runs (only held, to be dropped with the rest).
    _all: RBTree<u64, PinnedRun>,
    /// Runs taken one by one.
    some: KVec<RBTreeNode<u64, PinnedRun>>,
    /// A new run that could not be kept.
    fresh: Option<PinnedRun>,
}

impl Released {
    fn push(&mut self, node: RBTreeNode<u64, PinnedRun>) {
        if self.some.push(node, GFP_KERNEL).is_err() {
            // Out of memory for the list: the run was dropped, unpinned under the lock.
        }
    }
}

/// A range `dma_unmap` took away: no pin is made in `start..end` before `until` (monotonic ns).
struct Dying {
    start: u64,
    end: u64,
    until: u64,
}

/// A vGPU's pinned guest pages (under `Engine::pins`), in runs keyed by their first IOVA (runs
/// never overlap).
pub(crate) struct PinCache {
    /// The open device's guest memory; `None` while closed.
    handle: Option<Arc<DmaHandle>>,
    runs: RBTree<u64, PinnedRun>,
    /// Pages in `runs`.
    pages: usize,
    /// Where the next eviction from a full cache happens (an IOVA: the first run from there on).
    next_evict: u64,
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

/// Pages in `run`.
fn pages_of(run: &PinnedRun) -> usize {
    (run.len() / PAGE_SIZE as u64) as usize
}

impl PinCache {
    pub(crate) fn new(gpu: Arc<Gpu>) -> Self {
        Self {
            handle: None,
            runs: RBTree::new(),
            pages: 0,
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
        self.pages
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
        self.gpu.pinned().fetch_sub(self.pages as u64, Relaxed);
        self.pages = 0;
        Released {
            _all: core::mem::take(&mut self.runs),
            ..Released::default()
        }
    }

    /// Moves the run keyed `key` to `out`.
    fn take(&mut self, key: u64, out: &mut Released) {
        let n = self.runs.get(&key).map_or(0, pages_of);
        if let Some(node) = self.runs.remove_node(&key) {
            self.pages -= n;
            self.gpu.pinned().fetch_sub(n as u64, Relaxed);
            out.push(node);
        }
    }

    /// Moves every run touching `[start, end)` to `out`: the one holding `start` (it may start
    /// below), then every run starting before `end`.
    fn take_overlapping(&mut self, start: u64, end: u64, out: &mut Released) {
        let mut from = self.run_at(start).map_or(start, |r| r.iova());
        while let Some(key) = self
            .runs
            .cursor_lower_bound(&from)
            .map(|c| *c.current().0)
            .filter(|&k| k < end)
        {
            self.take(key, out);
            from = key;
        }
    }

    /// The run holding `iova`, if one is cached.
    fn run_at(&self, iova: u64) -> Option<&PinnedRun> {
        // The run with the greatest first IOVA not above `iova`.
        let key = match self.runs.cursor_lower_bound(&iova.saturating_add(1)) {
            Some(c) => c.peek_prev().map(|(k, _)| *k),
            None => self.runs.cursor_back().map(|c| *c.current().0),
        };
        key.and_then(|k| self.runs.get(&k))
            .filter(|r| r.contains(iova))
    }

    /// The first IOVA of the first run above `iova` (`None`: no run above it).
    fn next_start(&self, iova: u64) -> Option<u64> {
        self.runs
            .cursor_lower_bound(&iova.saturating_add(1))
            .map(|c| *c.current().0)
    }

    /// User space unmapped `[iova, iova + len)`: the runs touching it leave the cache, and the
    /// range is refused to new pins for a while. Called with no pin outside the cache.
    fn unmap(&mut self, iova: u64, len: u64, now: u64) -> Released {
        self.unmaps += 1;
        let end = iova.saturating_add(len);
        let fenced = self.handle.as_ref().is_some_and(|h| h.core_fences_unmaps());
        self.dying.retain(|d| d.until > now);
        if !fenced {
            self.remember_dying(iova, end, now);
        }
        let mut out = Released::default();
        self.take_overlapping(iova, end, &mut out);
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

    /// Whether `[start, end)` overlaps a range unmapped less than [`UNMAP_GRACE_NS`] ago.
    fn dying(&self, start: u64, end: u64, now: u64) -> bool {
        self.dying
            .iter()
            .any(|d| d.until > now && d.start < end && start < d.end)
    }

    /// The cached run holding `base`, if it is usable for the access (`write`).
    fn find(&self, base: u64, write: bool) -> Option<&PinnedRun> {
        self.run_at(base).filter(|r| r.writable() || !write)
    }

    /// How many pages a miss at `base` pins: up to [`RUN_PAGES`], short of the next cached run.
    fn run_pages(&self, base: u64) -> usize {
        let room = self
            .next_start(base)
            .map_or(u64::MAX, |next| (next - base) / PAGE_SIZE as u64);
        let to_top = (u64::MAX - base) / PAGE_SIZE as u64 + 1;
        (RUN_PAGES as u64).min(room).min(to_top).max(1) as usize
    }

    /// Adds a new run, evicting what it replaces or what no longer fits into `out`; `Err` hands
    /// the run back when there is no memory to keep it.
    fn insert(&mut self, run: PinnedRun, out: &mut Released) -> Result<(), PinnedRun> {
        let start = run.iova();
        let end = start.saturating_add(run.len());
        // Read-only runs inside the new one's range are replaced by it.
        self.take_overlapping(start, end, out);
        let n = pages_of(&run);
        while self.pages + n > MAX_PINS {
            // Full: runs go in turn, from where the last eviction stopped.
            let victim = match self.runs.cursor_lower_bound(&self.next_evict) {
                Some(c) => *c.current().0,
                None => match self.runs.cursor_front() {
                    Some(c) => *c.current().0,
                    None => break,
                },
            };
            self.next_evict = victim.saturating_add(1);
            self.take(victim, out);
        }
        let Ok(room) = RBTreeNodeReservation::new(GFP_KERNEL) else {
            return Err(run);
        };
        self.runs.insert(room.into_node(start, run));
        self.pages += n;
        self.gpu.pinned().fetch_add(n as u64, Relaxed);
        Ok(())
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

    /// Runs `f` on the pinned run holding `iova` (pinned now if it is not cached, with the pages
    /// after it; writable if `write`), with the cache locked only around the lookup and `f`.
    /// From a doorbell only a cached run is used, and only if the cache is not locked elsewhere
    /// (`CmdError::Later` otherwise).
    fn with_run<R>(
        &self,
        iova: u64,
        write: bool,
        runner: Runner,
        f: impl FnOnce(&PinnedRun) -> R,
    ) -> Result<R, CmdError> {
        let base = iova & !(PAGE_SIZE as u64 - 1);
        if runner == Runner::Doorbell {
            let pins = self.pins.try_lock().ok_or(CmdError::Later)?;
            return pins.find(base, write).map(f).ok_or(CmdError::Later);
        }
        // Called once: on the cached run, or on the new one once it is in the cache.
        let mut f = Some(f);
        let mut call = |r: &PinnedRun| f.take().map(|f| f(r)).ok_or(CmdError::DmaFault);
        for _ in 0..PIN_TRIES {
            let (handle, unmaps, want) = {
                let mut pins = self.pins.lock();
                if let Some(r) = pins.find(base, write) {
                    return call(r);
                }
                // An unmap waits for the pins outside the cache: none is added meanwhile.
                while pins.unmapping > 0 {
                    self.pins_idle.wait(&mut pins);
                }
                let now = monotonic_ns();
                let end = |pages: usize| base.saturating_add((pages * PAGE_SIZE) as u64);
                if pins.dying(base, end(1), now) {
                    return Err(CmdError::DmaFault);
                }
                let mut want = pins.run_pages(base);
                if want > 1 && pins.dying(base, end(want), now) {
                    want = 1;
                }
                let handle = pins.handle.clone().ok_or(CmdError::DmaFault)?;
                pins.outside += 1;
                (handle, pins.unmaps, want)
            };
            // No lock held: this takes the VFIO core's. Where the guest has not mapped the whole
            // run, only the page needed is pinned.
            let pinned = handle.pin(base, want, write).or_else(|e| {
                if want > 1 {
                    handle.pin(base, 1, write)
                } else {
                    Err(e)
                }
            });
            let fresh = match pinned {
                Ok(r) => r,
                Err(_) => {
                    self.drop_outside(Released::default());
                    return Err(CmdError::DmaFault);
                }
            };
            let mut released = Released::default();
            let r = {
                let mut pins = self.pins.lock();
                if pins.unmaps != unmaps {
                    // An unmap (or close) raced with the pin: make it again.
                    released.fresh = Some(fresh);
                    None
                } else {
                    match pins.insert(fresh, &mut released) {
                        Ok(()) => pins.find(base, write).map(&mut call),
                        Err(fresh) => {
                            // No memory to cache it: used once, then unpinned.
                            let r = call(&fresh);
                            released.fresh = Some(fresh);
                            Some(r)
                        }
                    }
                }
            };
            self.drop_outside(released);
            if let Some(r) = r {
                return r;
            }
        }
        Err(CmdError::DmaFault)
    }

    /// Reads guest memory at `iova` into the start of `buf`: as much of it as the pinned run
    /// holding `iova` covers, under one lookup. The bytes read (at least one).
    pub(super) fn span_read(
        &self,
        iova: u64,
        buf: &mut [u8],
        runner: Runner,
    ) -> Result<usize, CmdError> {
        self.with_run(iova, false, runner, |r| {
            let n = r.span(iova, buf.len());
            r.read(iova, &mut buf[..n]).map(|()| n)
        })?
        .map_err(|_| CmdError::DmaFault)
    }

    /// Writes the start of `data` into guest memory at `iova`: as much of it as the pinned run
    /// holding `iova` covers, under one lookup. The bytes written (at least one). The DMA log
    /// records them (a doorbell's slice runs only while the log is off, holding it off).
    pub(super) fn span_write(
        &self,
        iova: u64,
        data: &[u8],
        runner: Runner,
    ) -> Result<usize, CmdError> {
        let n = self
            .with_run(iova, true, runner, |r| {
                let n = r.span(iova, data.len());
                r.write(iova, &data[..n]).map(|()| n)
            })?
            .map_err(|_| CmdError::DmaFault)?;
        if runner == Runner::Worker {
            self.log_write(iova, n as u64);
        }
        Ok(n)
    }
}
