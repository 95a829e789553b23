// SPDX-License-Identifier: GPL-2.0

//! The physical GPU as rvgpu shares it out: its board (the hardware, behind the
//! [`Board`] trait), its type table and its VRAM partition. One [`Gpu`] exists per bound PCI
//! device; it is the data of the device's mdev parent.

use kernel::{
    device,
    fmt,
    impl_has_work,
    new_condvar,
    new_mutex,
    new_work,
    prelude::*,
    str::BStr,
    sync::{
        aref::ARef,
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        CondVar,
        Mutex, //
    },
    workqueue::{
        self,
        Work,
        WorkItem, //
    }, //
};

use super::{
    scanout::Scanout,
    sched::{
        self,
        ConfigError,
        Policy,
        Scheduler, //
    },
    types::{
        TypeTable,
        VgpuType, //
    },
    vram::{
        AllocError,
        Slice,
        VramAllocator, //
    },
};
use crate::{
    board::Board,
    vfio::{
        support::cancel_work_sync,
        sysfs::{
            Attr,
            Group,
            SysfsBuf, //
        }, //
    },
};

const MIB: u64 = 1 << 20;

/// The files of the `nvidia/` directory on the physical GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GpuAttr {
    VramTotalMib,
    VramFreeMib,
    VramLargestFreeMib,
    Placement,
    PinnedPages,
    Scanout,
    Scheduler,
    SchedulerLog,
    Accounting,
}

/// The `nvidia/` directory on the physical GPU.
pub(crate) const GPU_ATTRS: Group<GpuAttr> = Group {
    name: c"nvidia",
    attrs: &[
        Attr {
            name: c"vram_total_mib",
            writable: false,
            id: GpuAttr::VramTotalMib,
        },
        Attr {
            name: c"vram_free_mib",
            writable: false,
            id: GpuAttr::VramFreeMib,
        },
        Attr {
            name: c"vram_largest_free_mib",
            writable: false,
            id: GpuAttr::VramLargestFreeMib,
        },
        Attr {
            name: c"placement",
            writable: false,
            id: GpuAttr::Placement,
        },
        Attr {
            name: c"pinned_pages",
            writable: false,
            id: GpuAttr::PinnedPages,
        },
        Attr {
            name: c"scanout",
            writable: true,
            id: GpuAttr::Scanout,
        },
        Attr {
            name: c"scheduler",
            writable: true,
            id: GpuAttr::Scheduler,
        },
        Attr {
            name: c"scheduler_log",
            writable: false,
            id: GpuAttr::SchedulerLog,
        },
        Attr {
            name: c"accounting",
            writable: false,
            id: GpuAttr::Accounting,
        },
    ],
};

/// The GPU's scheduler, shut down when the GPU goes (after its last vGPU).
struct SchedOwner(Arc<Scheduler>);

impl Drop for SchedOwner {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

/// The state shared by a physical GPU and its vGPUs.
#[pin_data]
pub(crate) struct Gpu {
    board: Arc<dyn Board>,
    /// The PCI device, for log lines.
    dev: ARef<device::Device>,
    /// Guest pages pinned by all of this GPU's vGPU engines.
    pinned: Atomic<u64>,
    table: &'static TypeTable,
    /// Shares the engine's time between the vGPUs.
    sched: SchedOwner,
    /// The next vGPU's number in the scheduler log.
    next_sched_id: Atomic<u32>,
    /// The board is being removed: its vGPUs' users get `ENODEV` (see [`Gpu::set_gone`]).
    gone: Atomic<bool>,
    /// [`Gpu::drain_scrubs`] ran: slices given back after it are scrubbed in place.
    drained: Atomic<bool>,
    #[pin]
    vram: Mutex<VramAllocator>,
    /// A retired slice was scrubbed (a create waiting for one, or the removal, goes on).
    #[pin]
    scrubbed: CondVar,
    /// Scrubs the retired slices, after their vGPUs' removal (on the system's unbound queue).
    #[pin]
    scrub: Work<Gpu>,
    #[pin]
    scanout: Mutex<ScanoutCtl>,
}

impl_has_work! {
    impl HasWork<Self> for Gpu { self.scrub }
}

impl WorkItem for Gpu {
    type Pointer = Arc<Gpu>;

    fn run(this: Arc<Gpu>) {
        this.scrub_retired();
    }
}

/// The board's own display output (`nvidia/scanout`): the scan-outs of this GPU's vGPUs (from
/// their creation to their removal), and the one the board shows.
struct ScanoutCtl {
    views: KVec<Arc<Scanout>>,
    shown: Option<Arc<Scanout>>,
}

impl Gpu {
    pub(crate) fn new(
        dev: &device::Device,
        board: Arc<dyn Board>,
        table: &'static TypeTable,
    ) -> Result<Arc<Self>> {
        let total = u64::from(table.vram_mib) * MIB;
        let name = kernel::str::CString::try_from_fmt(fmt!("rvgpu-sched/{}", dev.name()))?;
        let sched = SchedOwner(Scheduler::new(&name)?);
        Arc::pin_init(
            try_pin_init!(Self {
                board,
                dev: dev.into(),
                pinned: Atomic::new(0),
                table,
                sched,
                next_sched_id: Atomic::new(0),
                gone: Atomic::new(false),
                drained: Atomic::new(false),
                vram <- new_mutex!(VramAllocator::new(total)),
                scrubbed <- new_condvar!("rvgpu::Gpu::scrubbed"),
                scrub <- new_work!("rvgpu::Gpu::scrub"),
                scanout <- new_mutex!(ScanoutCtl {
                    views: KVec::new(),
                    shown: None,
                }),
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn board(&self) -> &dyn Board {
        &*self.board
    }

    /// Guest pages pinned by all of this GPU's vGPU engines.
    pub(crate) fn pinned(&self) -> &Atomic<u64> {
        &self.pinned
    }

    pub(crate) fn table(&self) -> &'static TypeTable {
        self.table
    }

    pub(crate) fn vgpu_type(&self, index: usize) -> Option<&'static VgpuType> {
        self.table.types.get(index)
    }

    /// How many more instances of type `index` fit now.
    pub(crate) fn available(&self, index: usize) -> u32 {
        let Some(t) = self.vgpu_type(index) else {
            return 0;
        };
        let vram = self.vram.lock();
        let mixed = self.sched().policy() == Policy::FixedShare
            && vram.slices().iter().any(|s| s.size != t.profile_bytes());
        if mixed {
            0
        } else {
            vram.available(t.profile_bytes())
        }
    }

    /// The GPU's scheduler.
    pub(crate) fn sched(&self) -> &Arc<Scheduler> {
        &self.sched.0
    }

    /// A number for a new vGPU in the scheduler log.
    pub(crate) fn new_sched_id(&self) -> u32 {
        self.next_sched_id.fetch_add(1, Relaxed)
    }

    /// Places a slice for an instance of `t`, waiting for the scrub of a retired slice if the
    /// place it gets is one (`Interrupted` if a signal comes meanwhile). Under fixed share every
    /// vGPU must have the same framebuffer size (as on NVIDIA's): another size is refused.
    pub(crate) fn alloc(&self, t: &VgpuType, uuid: [u8; 16]) -> Result<Slice, AllocError> {
        let mut vram = self.vram.lock();
        loop {
            if self.sched().policy() == Policy::FixedShare {
                if let Some(other) = vram.slices().iter().find(|s| s.size != t.profile_bytes()) {
                    return Err(AllocError::Mixed {
                        size: other.size,
                        type_id: other.type_id,
                    });
                }
            }
            match vram.alloc(t.profile_bytes(), t.id, uuid) {
                Ok(slice) => {
                    self.sched().set_density(self.density(&vram));
                    return Ok(slice);
                }
                Err(AllocError::Scrubbing) => {
                    if self.scrubbed.wait_interruptible(&mut vram) {
                        return Err(AllocError::Interrupted);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The largest `max_instance` among the types of the vGPUs in `vram`.
    fn density(&self, vram: &VramAllocator) -> u32 {
        vram.slices()
            .iter()
            .filter_map(|s| self.table.types.iter().find(|t| t.id == s.type_id))
            .map(|t| t.max_instances)
            .max()
            .unwrap_or(0)
    }

    /// The board is being removed (unplugged, or its driver unbound): from now on every access
    /// of a vGPU user to the vGPU's regions and framebuffer fails with `ENODEV`, and its engine
    /// commands that reach VRAM with `HOST`, while the removal asks the users to let go (the VFIO
    /// request interrupt) and waits for them.
    pub(crate) fn set_gone(&self) {
        self.gone.store(true, Relaxed);
    }

    /// Whether [`Gpu::set_gone`] was called.
    pub(crate) fn is_gone(&self) -> bool {
        self.gone.load(Relaxed)
    }

    /// Gives a slice back: it is retired at once (free for `available_instances`) and scrubbed
    /// after this returns, by the GPU's scrub work; no vGPU gets it before it is clean.
    pub(crate) fn free(self: &Arc<Self>, slice: &Slice) {
        let mut vram = self.vram.lock();
        // Read under the lock: `drain_scrubs` sets it under the lock too.
        let drained = self.drained.load(Relaxed);
        if drained {
            // After `drain_scrubs` (a slice that outlived its vGPU's removal): no work is
            // queued any more, so the scrub is done here, before the slice is given back.
            drop(vram);
            let _ = self.board.vram_clear(slice.offset, slice.size);
            vram = self.vram.lock();
            let _ = vram.release(slice.offset);
        } else if vram.retire(slice.offset).is_err() {
            // Not in use: nothing to scrub (cannot happen; a slice is freed once).
            return;
        }
        self.sched().set_density(self.density(&vram));
        drop(vram);
        if !drained {
            // Already queued or running: that run finds this one too.
            let _ = workqueue::system_unbound().enqueue(self.clone());
        }
    }

    /// The scrub work: zeroes the retired slices, oldest first, and hands each back.
    fn scrub_retired(&self) {
        loop {
            let Some(slice) = self.vram.lock().next_dirty() else {
                return;
            };
            // If the board is already unbound its VRAM is out of reach anyway (`ENODEV`).
            let _ = self.board.vram_clear(slice.offset, slice.size);
            self.vram.lock().scrubbed(slice.offset);
            self.scrubbed.notify_all();
        }
    }

    /// Every vGPU of the GPU is gone (its mdev parent was unregistered): waits until the last
    /// retired slice is scrubbed and the scrub work has returned, so that no code of the
    /// driver runs for this GPU afterwards.
    pub(crate) fn drain_scrubs(self: &Arc<Self>) {
        {
            let mut vram = self.vram.lock();
            // Under the lock, so that a `free` either retires its slice before (and is waited
            // for here) or scrubs it itself.
            self.drained.store(true, Relaxed);
            while !vram.scrubbing().is_empty() {
                self.scrubbed.wait(&mut vram);
            }
        }
        cancel_work_sync(self);
    }

    /// The files of the physical GPU's `nvidia/` directory.
    pub(crate) fn show_attr(&self, attr: GpuAttr, out: &mut SysfsBuf) -> Result {
        let vram = self.vram.lock();
        match attr {
            GpuAttr::VramTotalMib => out.emit(fmt!("{}\n", vram.total() / MIB)),
            GpuAttr::VramFreeMib => out.emit(fmt!("{}\n", vram.free() / MIB)),
            GpuAttr::VramLargestFreeMib => out.emit(fmt!("{}\n", vram.largest_free() / MIB)),
            GpuAttr::Placement => self.write_placement(&vram, out),
            GpuAttr::PinnedPages => out.emit(fmt!("{}\n", self.pinned.load(Relaxed))),
            GpuAttr::Scanout => {
                drop(vram);
                match &self.scanout.lock().shown {
                    Some(v) => out.emit(fmt!("{}\n", Uuid(v.uuid()))),
                    None => out.emit(fmt!("none\n")),
                }
            }
            GpuAttr::Scheduler => {
                drop(vram);
                let (policy, slice_us) = self.sched().config();
                out.emit(fmt!("policy={} timeslice_us={}\n", policy.name(), slice_us))
            }
            GpuAttr::SchedulerLog => {
                drop(vram);
                self.sched().emit_log(out)
            }
            GpuAttr::Accounting => {
                let vgpus = vram.slices().len();
                drop(vram);
                let (now, busy) = self.sched().busy_now(None);
                self.accounting_head(out, now)?;
                self.sched().totals().emit(out, busy)?;
                out.emit(fmt!(
                    "rvgpu-pinned-pages: {}\nrvgpu-vgpus: {}\nrvgpu-runnable-idle: {} ns\n",
                    self.pinned.load(Relaxed),
                    vgpus,
                    self.sched().runnable_idle_ns()
                ))
            }
        }
    }

    /// The first lines of an accounting file (the GPU's or one of its vGPUs').
    /// `now` is the time the engine time that follows was read at.
    pub(crate) fn accounting_head(&self, out: &mut SysfsBuf, now: u64) -> Result {
        out.emit(fmt!(
            "drm-driver: rvgpu\ndrm-pdev: {}\nrvgpu-time: {} ns\n",
            self.dev.name(),
            now
        ))
    }

    /// Writes `nvidia/scheduler`: `policy=<best_effort|equal_share|fixed_share>`,
    /// `timeslice_us=<1000..30000, or 0 for the default>` or both. Anything else: `EINVAL` with
    /// one log line, and nothing changes; so is fixed share while vGPUs of different
    /// framebuffer sizes are on the GPU.
    fn store_scheduler(&self, data: &[u8]) -> Result {
        let text = data.trim_ascii();
        let shown = BStr::from_bytes(&text[..text.len().min(64)]);
        let change = sched::parse_config(text).map_err(|e| {
            match e {
                ConfigError::Empty => dev_err!(
                    self.dev,
                    "nvidia/scheduler: empty; write policy=<best_effort|equal_share|fixed_share> and/or timeslice_us=<{}..{}>\n",
                    sched::SLICE_MIN_US,
                    sched::SLICE_MAX_US
                ),
                ConfigError::NotKeyValue(i) => dev_err!(
                    self.dev,
                    "nvidia/scheduler: '{}' is not key=value\n",
                    BStr::from_bytes(i)
                ),
                ConfigError::UnknownKey(k) => dev_err!(
                    self.dev,
                    "nvidia/scheduler: unknown key '{}' (policy, timeslice_us)\n",
                    BStr::from_bytes(k)
                ),
                ConfigError::BadPolicy(v) => dev_err!(
                    self.dev,
                    "nvidia/scheduler: unknown policy '{}' (best_effort, equal_share, fixed_share)\n",
                    BStr::from_bytes(v)
                ),
                ConfigError::BadSlice(v) => dev_err!(
                    self.dev,
                    "nvidia/scheduler: timeslice_us '{}' is not 0 (default) or {}..{}\n",
                    BStr::from_bytes(v),
                    sched::SLICE_MIN_US,
                    sched::SLICE_MAX_US
                ),
            }
            EINVAL
        })?;
        // Under the VRAM lock, so that no vGPU of another size is created meanwhile.
        let vram = self.vram.lock();
        if change.policy == Some(Policy::FixedShare) {
            let mut sizes = vram.slices().iter();
            if let Some(first) = sizes.next() {
                if let Some(other) = sizes.find(|s| s.size != first.size) {
                    dev_err!(
                        self.dev,
                        "nvidia/scheduler: fixed_share needs vGPUs of one framebuffer size; this GPU has nvidia-{} ({} MiB) and nvidia-{} ({} MiB)\n",
                        first.type_id,
                        first.size / MIB,
                        other.type_id,
                        other.size / MIB
                    );
                    return Err(EINVAL);
                }
            }
        }
        let (policy, slice_us) = self.sched().configure(change);
        drop(vram);
        dev_info!(
            self.dev,
            "scheduler: policy {} time slice {} us ('{}')\n",
            policy.name(),
            slice_us,
            shown
        );
        Ok(())
    }

    /// Writes `nvidia/scanout`: a UUID of one of this GPU's vGPUs makes the board's display show
    /// that vGPU's scan-out (and follow it), `none` releases the display. Anything else, or a
    /// UUID that is not one of this GPU's vGPUs: `EINVAL` with one log line.
    pub(crate) fn store_attr(&self, attr: GpuAttr, data: &[u8]) -> Result {
        if attr == GpuAttr::Scheduler {
            return self.store_scheduler(data);
        }
        if attr != GpuAttr::Scanout {
            return Err(EPERM);
        }
        let text = data.trim_ascii();
        let mut ctl = self.scanout.lock();
        if text == b"none" {
            ctl.shown = None;
            return self.board.show(None);
        }
        let Some(uuid) = parse_uuid(text) else {
            dev_err!(
                self.dev,
                "nvidia/scanout: '{}' is neither a vGPU UUID nor 'none'\n",
                BStr::from_bytes(&text[..text.len().min(64)])
            );
            return Err(EINVAL);
        };
        let Some(view) = ctl.views.iter().find(|v| *v.uuid() == uuid).cloned() else {
            dev_err!(
                self.dev,
                "nvidia/scanout: no vGPU {} on this GPU\n",
                Uuid(&uuid)
            );
            return Err(EINVAL);
        };
        let scan = view.board_scan();
        if let Err(e) = self.board.show(scan) {
            dev_err!(
                self.dev,
                "nvidia/scanout: the board cannot show vGPU {}'s mode ({:?})\n",
                Uuid(&uuid),
                scan
            );
            ctl.shown = None;
            return Err(e);
        }
        dev_info!(self.dev, "the board's display shows vGPU {}\n", Uuid(&uuid));
        ctl.shown = Some(view);
        Ok(())
    }

    /// A vGPU was created: its scan-out can be shown from now on.
    pub(crate) fn scanout_register(&self, view: &Arc<Scanout>) -> Result {
        self.scanout.lock().views.push(view.clone(), GFP_KERNEL)?;
        Ok(())
    }

    /// A vGPU is being removed: if the board shows it, the display is released.
    pub(crate) fn scanout_unregister(&self, view: &Scanout) {
        let mut ctl = self.scanout.lock();
        ctl.views.retain(|v| !core::ptr::eq(&**v, view));
        if ctl.shown.as_deref().is_some_and(|v| core::ptr::eq(v, view)) {
            ctl.shown = None;
            let _ = self.board.show(None);
            dev_info!(
                self.dev,
                "vGPU {} removed: the board's display is released\n",
                Uuid(view.uuid())
            );
        }
    }

    /// A vGPU's mode changed: if the board shows it, the board follows.
    pub(crate) fn scanout_follow(&self, view: &Scanout) {
        let ctl = self.scanout.lock();
        if ctl.shown.as_deref().is_some_and(|v| core::ptr::eq(v, view)) {
            // A mode the board cannot show turns its display off until the next change.
            let _ = self.board.show(view.board_scan());
        }
    }

    /// One line per slice and per free range, in address order:
    /// `<offset>M <size>M nvidia-<id> <name> <uuid>`, `<offset>M <size>M scrubbing` (a removed
    /// vGPU's slice not scrubbed yet) or `<offset>M <size>M free`.
    fn write_placement(&self, vram: &VramAllocator, out: &mut SysfsBuf) -> Result {
        let mut pos = 0;
        loop {
            // The next slice at or after `pos`, in use or being scrubbed (they never overlap).
            let live = vram.slices().iter().map(|s| (s, false));
            let dirty = vram.scrubbing().iter().map(|s| (s, true));
            let next = Iterator::chain(live, dirty)
                .filter(|(s, _)| s.offset >= pos)
                .min_by_key(|(s, _)| s.offset);
            let Some((s, dirty)) = next else {
                break;
            };
            if s.offset > pos {
                out.emit(fmt!("{}M {}M free\n", pos / MIB, (s.offset - pos) / MIB))?;
            }
            pos = s.offset + s.size;
            if dirty {
                out.emit(fmt!("{}M {}M scrubbing\n", s.offset / MIB, s.size / MIB))?;
                continue;
            }
            let name = self
                .table
                .types
                .iter()
                .find(|t| t.id == s.type_id)
                .map_or(c"?", |t| t.name);
            out.emit(fmt!(
                "{}M {}M nvidia-{} {} {}\n",
                s.offset / MIB,
                s.size / MIB,
                s.type_id,
                BStr::from_bytes(name.to_bytes()),
                Uuid(&s.uuid)
            ))?;
        }
        if pos < vram.total() {
            out.emit(fmt!(
                "{}M {}M free\n",
                pos / MIB,
                (vram.total() - pos) / MIB
            ))?;
        }
        Ok(())
    }
}

/// A UUID in its canonical text form (`8-4-4-4-12` hex digits, either case).
pub(crate) fn parse_uuid(text: &[u8]) -> Option<[u8; 16]> {
    if text.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut digits = text
        .iter()
        .enumerate()
        .filter(|&(i, _)| !matches!(i, 8 | 13 | 18 | 23));
    if [8, 13, 18, 23].iter().any(|&i| text[i] != b'-') {
        return None;
    }
    for b in out.iter_mut() {
        let hi = char::from(*digits.next()?.1).to_digit(16)?;
        let lo = char::from(*digits.next()?.1).to_digit(16)?;
        *b = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// Formats a UUID in its canonical text form.
pub(crate) struct Uuid<'a>(pub(crate) &'a [u8; 16]);

impl fmt::Display for Uuid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{:02x}", b)?;
        }
        Ok(())
    }
}

#[kunit_tests(rvgpu_vgpu_gpu)]
mod tests {
    use super::*;

    #[test]
    fn uuids() {
        let u = parse_uuid(b"0123ABCD-4567-89ab-cdef-0123456789ab");
        assert_eq!(
            u,
            Some([
                0x01, 0x23, 0xab, 0xcd, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67,
                0x89, 0xab
            ])
        );
        assert_eq!(parse_uuid(b"0123abcd-4567-89ab-cdef-0123456789a"), None);
        assert_eq!(parse_uuid(b"0123abcd-4567-89ab-cdef_0123456789ab"), None);
        assert_eq!(parse_uuid(b"0123abcg-4567-89ab-cdef-0123456789ab"), None);
        assert_eq!(parse_uuid(b"none"), None);
    }
}
