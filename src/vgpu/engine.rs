// SPDX-License-Identifier: GPL-2.0

//! A vGPU's command engine and interrupts (`uapi/rvgpu.h`, registers 0x700..0x740).
//!
//! The physical Bochs board has no engine: the host driver executes each vGPU's commands. They
//! run in the physical GPU's scheduler (`vgpu/sched.rs`), one time slice at a time
//! ([`Engine::run_slice`]), in its work item; a doorbell on an idle GPU runs the first commands
//! itself, in a short slice that never sleeps ([`Runner::Doorbell`]). The engine's own work item
//! reports vertical blanks.
//!
//! - `engine/regs.rs`: the registers, as the trap path reads and writes them;
//! - `engine/irq.rs`: interrupt delivery through eventfds;
//! - `engine/pins.rs`: the cache of pinned guest pages;
//! - `engine/cmd.rs`: commands, decoded into a typed [`cmd::Command`];
//! - `engine/exec.rs`: running them.
//!
//! # Life cycle
//!
//! [`Engine::open`] starts it from power-on state and attaches it to the scheduler;
//! [`Engine::close`] is its one quiesce point: it stops the doorbell (`open` cleared under
//! `regs`), then, under `vblank`, marks the engine closed and cancels the vblank timer (waiting
//! for a running callback), then cancels the work item (waiting for a running one, which cannot
//! re-arm the timer: it checks `closed` under the same lock), then detaches from the scheduler
//! (waiting for a slice of it in progress). When `close` returns no timer, work item or slice of
//! this engine runs, so the module can go.
//!
//! # Locks
//!
//! In this order (a lock further down is never held while one further up is taken):
//! `vblank` (mutex), the scheduler's `exec` (mutex), `exec` (mutex, a slice's), `pins` (mutex,
//! one page access at a time; a leaf: nothing calls into the VFIO core while holding it, see
//! `engine/pins.rs`), the scheduler's `state` (spinlock), `regs` (spinlock), `irqs` (spinlock).
//! The trap path takes only the spinlocks, and the mutexes only by `try_lock` (a doorbell's own
//! slice: the scheduler's `exec`, `exec`, `log`, `pins`).

use kernel::{
    impl_has_hr_timer, impl_has_work, new_condvar, new_mutex, new_spinlock, new_work,
    page::PAGE_SIZE,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        ArcBorrow,
        CondVar,
        Mutex,
        SpinLock, //
    },
    time::{
        hrtimer::{
            ArcHrTimerHandle,
            HrTimer,
            HrTimerCallback,
            HrTimerCallbackContext,
            HrTimerPointer,
            HrTimerRestart,
            RelativeMode, //
        },
        Delta,
        Monotonic, //
    },
    workqueue::{
        Work,
        WorkItem, //
    },
};

use super::{
    sched::{
        Scheduler,
        Stats, //
    },
    slice::VramSlice,
    uapi, //
};
use crate::vfio::{
    dma::DmaHandle,
    support::{
        self,
        monotonic_ns, //
    }, //
};

mod cmd;
mod exec;
pub(crate) mod irq;
mod log;
mod pins;
mod regs;

use cmd::{
    iova_add,
    CmdError,
    Command,
    RawCmd,
    CMD_SIZE, //
};
use irq::Irqs;
use log::DmaLog;
use pins::PinCache;
use regs::EngineRegs;

const IRQ_COMPLETION: u32 = uapi::RVGPU_IRQ_COMPLETION;
const IRQ_ERROR: u32 = uapi::RVGPU_IRQ_ERROR;
const IRQ_VBLANK: u32 = uapi::RVGPU_IRQ_VBLANK;
const IRQ_ALL: u32 = IRQ_COMPLETION | IRQ_ERROR | IRQ_VBLANK;

const RING_MIN: u32 = uapi::RVGPU_RING_MIN_SIZE;
const RING_MAX: u32 = uapi::RVGPU_RING_MAX_SIZE;

/// Size of the buffer framebuffer copies and fills go through; a long command can be
/// preempted after each such chunk.
const BOUNCE: usize = 16 * 1024;

/// Where a FILL or COPY is: line `y`, byte `x` of it.
#[derive(Clone, Copy, Default)]
pub(super) struct Progress {
    pub(super) y: u32,
    pub(super) x: u32,
}

/// The command at HEAD, started and not finished (preempted, or waiting for the frame-rate
/// limiter).
struct InFlight {
    cmd: Command,
    head: u32,
    generation: u32,
    at: Progress,
}

/// What running a slice works with (under `Engine::exec`).
struct Exec {
    bounce: KVec<u8>,
    cur: Option<InFlight>,
    /// When the last WAIT_VBLANK completed (ns; 0: none since open).
    frl_last: u64,
}

/// Who runs a slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Runner {
    /// The scheduler's work item: it may sleep (to pin guest pages, wait for a lock, let the CPU
    /// scheduler in).
    Worker,
    /// A doorbell, in the register trap path: it never sleeps. It reaches only guest pages already
    /// pinned, takes the engine's mutexes only if they are free and runs only while the DMA log is
    /// off; where it would have to sleep it stops ([`CmdError::Later`]) and leaves the rest to the
    /// work item.
    Doorbell,
}

/// What a finished command did (beyond moving HEAD on).
#[derive(Clone, Copy, Default)]
struct Outcome {
    /// A FENCE: the value written (`RVGPU_REG_FENCE`); it raises the completion interrupt.
    fence: Option<u32>,
}

/// How far one step of a command got.
enum Step {
    Done(Result<Outcome, CmdError>),
    /// The slice ended inside the command.
    Preempted,
    /// WAIT_VBLANK: until the limiter's next blank (`Engine::blocked_until`).
    Blocked,
}

/// The vblank timer and whether the engine is closed (under `Engine::vblank`).
struct Vblank {
    /// Set by `close`: the timer is not armed again until the next `open`.
    closed: bool,
    timer: Option<ArcHrTimerHandle<Engine>>,
}

/// A vGPU's engine.
#[pin_data]
pub(crate) struct Engine {
    /// The framebuffer the commands work on.
    slice: Arc<VramSlice>,
    /// The physical GPU's scheduler, which runs the commands.
    sched: Arc<Scheduler>,
    /// This vGPU's number in the GPU's scheduler log.
    sched_id: u32,
    /// `max_instance` of the vGPU's type (its fixed share is 1/`max_instance`).
    max_instance: u32,
    vblank_period_us: i64,
    /// The frame-rate limiter's period, ns.
    frl_period_ns: u64,
    /// `frame_rate_limiter` of the vGPU's parameters when it was opened.
    frl: Atomic<bool>,
    /// A WAIT_VBLANK waits until this time (ns; 0: none waits).
    blocked_until: Atomic<u64>,
    /// Whether the vblank timer should keep running (read in the timer callback, which runs in
    /// interrupt context and so takes no lock).
    vblank_on: Atomic<bool>,
    /// Vertical blanks the timer counted and the worker has not reported yet.
    vblank_pending: Atomic<u32>,
    /// Guest pages the DMA log recorded as written, in total (`nvidia/migration`).
    dirty_pages: Atomic<u64>,
    /// Engine use (`nvidia/accounting`).
    stats: Stats,
    #[pin]
    vblank: Mutex<Vblank>,
    #[pin]
    exec: Mutex<Exec>,
    #[pin]
    pins: Mutex<PinCache>,
    /// Signalled when the last pin outside the cache is gone or an unmap is over.
    #[pin]
    pins_idle: CondVar,
    #[pin]
    regs: SpinLock<EngineRegs>,
    #[pin]
    irqs: SpinLock<Irqs>,
    #[pin]
    log: Mutex<Option<DmaLog>>,
    #[pin]
    work: Work<Engine>,
    #[pin]
    timer: HrTimer<Engine>,
}

impl_has_work! {
    impl HasWork<Self> for Engine { self.work }
}

impl_has_hr_timer! {
    impl HasHrTimer<Self> for Engine {
        mode: RelativeMode<Monotonic>, field: self.timer
    }
}

impl Engine {
    pub(crate) fn new(
        slice: Arc<VramSlice>,
        frl_fps: u32,
        sched: Arc<Scheduler>,
        sched_id: u32,
        max_instance: u32,
    ) -> Result<Arc<Self>> {
        let mut bounce = KVec::with_capacity(BOUNCE, GFP_KERNEL)?;
        bounce.resize(BOUNCE, 0, GFP_KERNEL)?;
        let pins = PinCache::new(slice.gpu().clone());
        let fps = frl_fps.max(1);
        Arc::pin_init(
            try_pin_init!(Self {
                slice,
                sched,
                sched_id,
                max_instance,
                vblank_period_us: 1_000_000 / i64::from(fps),
                frl_period_ns: 1_000_000_000 / u64::from(fps),
                frl: Atomic::new(true),
                blocked_until: Atomic::new(0),
                vblank_on: Atomic::new(false),
                vblank_pending: Atomic::new(0),
                dirty_pages: Atomic::new(0),
                stats: Stats::new(),
                vblank <- new_mutex!(Vblank {
                    closed: true,
                    timer: None,
                }),
                exec <- new_mutex!(Exec {
                    bounce,
                    cur: None,
                    frl_last: 0,
                }),
                pins <- new_mutex!(pins),
                pins_idle <- new_condvar!("rvgpu::Engine::pins_idle"),
                regs <- new_spinlock!(EngineRegs::default()),
                irqs <- new_spinlock!(Irqs::default()),
                log <- new_mutex!(None),
                work <- new_work!("rvgpu::Engine::work"),
                timer <- HrTimer::new(),
            }),
            GFP_KERNEL,
        )
    }

    /// A user opened the device: the engine starts from power-on state, reaching guest memory
    /// through `handle`, scheduled on the GPU; `frl` is the vGPU's `frame_rate_limiter`.
    pub(crate) fn open(self: &Arc<Self>, handle: Arc<DmaHandle>, frl: bool) -> Result {
        // The only step that can fail comes first.
        self.sched.attach(self.clone())?;
        self.pins_reset(Some(handle));
        {
            let mut ex = self.exec.lock();
            ex.cur = None;
            ex.frl_last = 0;
        }
        self.frl.store(frl, Relaxed);
        self.blocked_until.store(0, Relaxed);
        self.vblank.lock().closed = false;
        self.regs.lock().reset(true);
        Ok(())
    }

    /// The user closed the device: the one quiesce point (see the module documentation). When
    /// this returns nothing of the engine runs, no page is pinned and no interrupt is set up.
    pub(crate) fn close(self: &Arc<Self>) {
        self.regs.lock().open = false;
        {
            let mut v = self.vblank.lock();
            v.closed = true;
            self.vblank_on.store(false, Relaxed);
            // Dropping the handle cancels the timer and waits for a callback in progress.
            v.timer = None;
        }
        support::cancel_work_sync(self);
        self.sched.detach(self);
        self.exec.lock().cur = None;
        self.blocked_until.store(0, Relaxed);
        // Unpinned here, with the cache unlocked (see `engine/pins.rs`).
        self.pins_reset(None);
        self.irqs_off();
        self.log_stop();
        self.vblank_pending.store(0, Relaxed);
    }

    /// Migration STOP: parks the engine at a command boundary and stops the vblank timer.
    /// When this returns no command runs until [`Engine::resume`].
    pub(crate) fn stop(self: &Arc<Self>) {
        self.regs.lock().stopped = true;
        self.update_vblank();
        support::cancel_work_sync(self);
        // A slice in progress ends at its next command boundary (it sees `stopped`).
        self.sched.sync();
        // Nothing runs until `resume`, which tells the scheduler.
        self.regs.lock().busy = false;
    }

    /// Out of migration STOP: the engine goes on (a doorbell written meanwhile runs now, an
    /// interrupt raised meanwhile is delivered).
    pub(crate) fn resume(self: &Arc<Self>) {
        let pending = {
            let mut r = self.regs.lock();
            r.stopped = false;
            r.irq_status & r.irq_enable != 0
        };
        self.update_vblank();
        if pending {
            self.deliver();
        }
        self.sched.kick(self);
    }

    /// Engine use, for `nvidia/accounting`.
    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Adds `n` to one counter of the vGPU's and of its GPU's.
    fn count(&self, n: u64, field: impl Fn(&Stats) -> &Atomic<u64>) {
        field(&self.stats).fetch_add(n, Relaxed);
        field(self.sched.totals()).fetch_add(n, Relaxed);
    }

    pub(crate) fn sched_id(&self) -> u32 {
        self.sched_id
    }

    pub(crate) fn max_instance(&self) -> u32 {
        self.max_instance
    }

    /// Guest pages this engine keeps pinned.
    pub(crate) fn pinned_pages(&self) -> usize {
        self.pins.lock().len()
    }

    /// Whether WAIT_VBLANK waits: the vGPU's limiter is on and the policy is best effort.
    fn frl_on(&self) -> bool {
        self.frl.load(Relaxed) && self.sched.policy() == super::sched::Policy::BestEffort
    }

    /// Whether the engine has work, and from when it may run it (0: now; later while a
    /// WAIT_VBLANK waits); `None` without work.
    pub(crate) fn ready_at(&self) -> Option<u64> {
        let has = {
            let r = self.regs.lock();
            // A command left in flight (`busy`) when the ring was switched off or reprogrammed
            // gets one more run, which drops it and clears `busy`.
            r.open
                && !r.stopped
                && (r.busy || (!r.ring_bad && r.ring_size != 0 && r.head != r.tail))
        };
        if !has {
            return None;
        }
        Some(if self.frl_on() {
            self.blocked_until.load(Relaxed)
        } else {
            0
        })
    }

    /// Guest pages the DMA log recorded, in total.
    pub(crate) fn dirty_pages(&self) -> u64 {
        self.dirty_pages.load(Relaxed)
    }

    /// The engine's part of the migration state (the engine is stopped).
    pub(crate) fn save(&self, st: &mut uapi::rvgpu_mig_state) {
        {
            let r = self.regs.lock();
            st.ring_base = r.ring_base.to_le();
            st.irq_status = r.irq_status.to_le();
            st.irq_enable = r.irq_enable.to_le();
            st.ring_size = r.ring_size.to_le();
            st.ring_head = r.head.to_le();
            st.ring_tail = r.tail.to_le();
            st.error = r.error.to_le();
            st.error_head = r.error_head.to_le();
            st.fence = r.fence.to_le();
            st.completed = r.completed.to_le();
            st.vblank_count = r.vblank_count.to_le();
        }
        st.intx_masked = u32::from(self.intx_masked()).to_le();
    }

    /// Takes the engine's part of a resumed migration state (the engine is stopped; the ring
    /// is checked when it runs, as after any doorbell).
    pub(crate) fn restore(&self, st: &uapi::rvgpu_mig_state) {
        {
            let mut r = self.regs.lock();
            r.ring_base = u64::from_le(st.ring_base);
            r.irq_status = u32::from_le(st.irq_status);
            r.irq_enable = u32::from_le(st.irq_enable) & IRQ_ALL;
            r.ring_size = u32::from_le(st.ring_size);
            r.head = u32::from_le(st.ring_head);
            r.tail = u32::from_le(st.ring_tail);
            r.error = u32::from_le(st.error);
            r.error_head = u32::from_le(st.error_head);
            r.fence = u32::from_le(st.fence);
            r.completed = u32::from_le(st.completed);
            r.vblank_count = u32::from_le(st.vblank_count);
            r.generation = r.generation.wrapping_add(1);
        }
        self.set_intx_masked(u32::from_le(st.intx_masked) != 0);
    }

    /// Back to power-on state (device reset), the device staying open.
    pub(crate) fn reset(self: &Arc<Self>) {
        {
            let mut r = self.regs.lock();
            let open = r.open;
            r.reset(open);
        }
        self.blocked_until.store(0, Relaxed);
        self.update_vblank();
    }

    /// User space unmapped `[iova, iova + len)`: the pins in it are gone when this returns (a
    /// command using them fails with `DMA_FAULT`).
    pub(crate) fn dma_unmap(&self, iova: u64, len: u64) {
        self.pins_unmap(iova, len);
    }

    /// Queues the engine's work item (vblank reports), on the GPU's workqueue.
    fn kick(self: &Arc<Self>) {
        // Already queued: that run will see the new state.
        let _ = self.sched.queue().enqueue(self.clone());
    }

    /// Starts or stops the vblank timer to match the enable bit (process context: may sleep).
    fn update_vblank(self: &Arc<Self>) {
        let mut v = self.vblank.lock();
        let want = !v.closed && {
            let r = self.regs.lock();
            r.open && !r.stopped && r.irq_enable & IRQ_VBLANK != 0
        };
        self.vblank_on.store(want, Relaxed);
        match (want, v.timer.is_some()) {
            (true, false) => {
                v.timer = Some(
                    self.clone()
                        .start(Delta::from_micros(self.vblank_period_us)),
                )
            }
            (false, true) => v.timer = None,
            _ => {}
        }
    }

    /// Reads the command at `head` of the ring at `base`.
    fn fetch(&self, base: u64, head: u32, runner: Runner) -> Result<[u8; CMD_SIZE], CmdError> {
        let mut raw = [0u8; CMD_SIZE];
        let at = iova_add(base, u64::from(head)).map_err(|_| CmdError::Ring)?;
        self.guest_read(at, &mut raw, runner).map_err(|e| match e {
            CmdError::Later => e,
            _ => CmdError::Ring,
        })?;
        Ok(raw)
    }

    /// The work item: reports the vertical blanks the timer counted.
    fn process(self: &Arc<Self>) {
        self.update_vblank();
        let blanks = self.vblank_pending.xchg(0, Relaxed);
        if blanks != 0 {
            let counted = {
                let mut r = self.regs.lock();
                if r.open && !r.stopped {
                    r.vblank_count = r.vblank_count.wrapping_add(blanks);
                }
                r.open && !r.stopped
            };
            if counted {
                self.count(u64::from(blanks), |s| &s.vblanks);
                self.raise(IRQ_VBLANK);
            }
        }
    }

    /// One time slice: commands from HEAD until the ring is empty, the engine is stopped or
    /// `deadline` (ns) passes; a long command stops between chunks and goes on in the next slice.
    /// Run from a doorbell, it also stops where it would have to sleep ([`Runner::Doorbell`]).
    pub(crate) fn run_slice(&self, deadline: u64, runner: Runner) {
        let (mut guard, _log_off) = match runner {
            Runner::Worker => (self.exec.lock(), None),
            Runner::Doorbell => {
                let Some(guard) = self.exec.try_lock() else {
                    return;
                };
                // Held, and seen off, for the whole slice: its guest writes need no log entry.
                let Some(log) = self.log.try_lock().filter(|l| l.is_none()) else {
                    return;
                };
                (guard, Some(log))
            }
        };
        let ex = &mut *guard;
        loop {
            let (base, size, head, tail, generation) = {
                let mut r = self.regs.lock();
                if !r.open || r.stopped || r.ring_bad || r.ring_size == 0 || r.head == r.tail {
                    r.busy = false;
                    return;
                }
                r.busy = true;
                (r.ring_base, r.ring_size, r.head, r.tail, r.generation)
            };
            let ring_ok = size.is_power_of_two()
                && (RING_MIN..=RING_MAX).contains(&size)
                && base % PAGE_SIZE as u64 == 0
                && tail % CMD_SIZE as u32 == 0
                && tail < size;
            if !ring_ok {
                {
                    // HEAD stays: the ring runs again from there once it is programmed again.
                    let mut r = self.regs.lock();
                    r.error = CmdError::Ring.code();
                    r.error_head = head;
                    r.busy = false;
                    r.ring_bad = true;
                }
                self.raise(IRQ_ERROR);
                return;
            }
            let resumed = ex
                .cur
                .take()
                .filter(|c| c.generation == generation && c.head == head);
            let mut cur = match resumed {
                Some(c) => c,
                None => {
                    let fb_size = self.slice.usable();
                    let decoded = self.fetch(base, head, runner).and_then(|bytes| {
                        Command::try_from(RawCmd {
                            bytes: &bytes,
                            fb_size,
                        })
                    });
                    match decoded {
                        Ok(cmd) => InFlight {
                            cmd,
                            head,
                            generation,
                            at: Progress::default(),
                        },
                        Err(CmdError::Later) => return,
                        Err(e) => {
                            let drained = self.complete(head, size, generation, Err(e));
                            if drained || monotonic_ns() >= deadline {
                                return;
                            }
                            continue;
                        }
                    }
                }
            };
            let drained = match self.step(ex, &mut cur, deadline, runner) {
                Step::Done(result) => self.complete(head, size, generation, result),
                Step::Preempted | Step::Blocked => {
                    ex.cur = Some(cur);
                    return;
                }
            };
            if drained || monotonic_ns() >= deadline {
                return;
            }
        }
    }

    /// Runs `cur` on from where it is, until it is done or `deadline` passes (or, from a
    /// doorbell, until it would have to sleep).
    fn step(&self, ex: &mut Exec, cur: &mut InFlight, deadline: u64, runner: Runner) -> Step {
        let finished = |r: Result<bool, CmdError>| match r {
            Ok(true) => Step::Done(Ok(Outcome::default())),
            Ok(false) | Err(CmdError::Later) => Step::Preempted,
            Err(e) => Step::Done(Err(e)),
        };
        match cur.cmd {
            Command::Nop => Step::Done(Ok(Outcome::default())),
            Command::Fill { rect, value } => {
                finished(self.fill(&mut ex.bounce, &rect, value, &mut cur.at, deadline, runner))
            }
            Command::Copy {
                dir,
                iova,
                iova_stride,
                rect,
            } => finished(self.copy(
                &mut ex.bounce,
                dir,
                iova,
                iova_stride,
                &rect,
                &mut cur.at,
                deadline,
                runner,
            )),
            Command::Fence { iova, value } => {
                match self.guest_write(iova, &value.to_le_bytes(), runner) {
                    Ok(()) => Step::Done(Ok(Outcome { fence: Some(value) })),
                    Err(CmdError::Later) => Step::Preempted,
                    Err(e) => Step::Done(Err(e)),
                }
            }
            Command::WaitVblank => self.wait_vblank(&mut ex.frl_last),
        }
    }

    /// WAIT_VBLANK: done when the limiter's period since the last one has passed.
    fn wait_vblank(&self, last: &mut u64) -> Step {
        let now = monotonic_ns();
        if !self.frl_on() {
            self.blocked_until.store(0, Relaxed);
            *last = now;
            return Step::Done(Ok(Outcome::default()));
        }
        let blocked = self.blocked_until.load(Relaxed);
        if blocked != 0 {
            if now < blocked {
                return Step::Blocked;
            }
            // Released at the blank itself, so that the pace does not drift.
            self.blocked_until.store(0, Relaxed);
            *last = blocked;
            self.count(1, |s| &s.frl_delayed);
            return Step::Done(Ok(Outcome::default()));
        }
        let next = *last + self.frl_period_ns;
        if *last == 0 || now >= next {
            *last = now;
            Step::Done(Ok(Outcome::default()))
        } else {
            self.blocked_until.store(next, Relaxed);
            Step::Blocked
        }
    }

    /// The command at `head` finished with `result`: HEAD moves on, the counters and the
    /// interrupt follow (unless the ring was reprogrammed meanwhile), in one critical section.
    /// Whether the ring is drained (nothing more runs now; `busy` is then cleared, as at the
    /// top of [`Engine::run_slice`]).
    fn complete(
        &self,
        head: u32,
        size: u32,
        generation: u32,
        result: Result<Outcome, CmdError>,
    ) -> bool {
        let (deliver, drained) = {
            let mut r = self.regs.lock();
            if r.generation != generation {
                // The ring was reprogrammed meanwhile: this command's outcome is moot.
                return false;
            }
            r.head = (head + CMD_SIZE as u32) % size;
            let irq = match result {
                Ok(done) => {
                    r.completed = r.completed.wrapping_add(1);
                    match done.fence {
                        Some(value) => {
                            r.fence = value;
                            IRQ_COMPLETION
                        }
                        None => 0,
                    }
                }
                Err(e) => {
                    r.error = e.code();
                    r.error_head = head;
                    IRQ_ERROR
                }
            };
            r.irq_status |= irq;
            let drained = !r.open || r.stopped || r.head == r.tail;
            if drained {
                r.busy = false;
            }
            (
                irq != 0 && r.irq_status & r.irq_enable != 0 && !r.stopped,
                drained,
            )
        };
        self.count(1, |s| &s.commands);
        if deliver {
            self.deliver();
        }
        drained
    }
}

impl WorkItem for Engine {
    type Pointer = Arc<Engine>;

    fn run(this: Arc<Engine>) {
        this.process();
    }
}

impl HrTimerCallback for Engine {
    type Pointer<'a> = Arc<Self>;

    /// Interrupt context: no locks; the worker reports the blank.
    fn run(this: ArcBorrow<'_, Self>, mut ctx: HrTimerCallbackContext<'_, Self>) -> HrTimerRestart {
        if !this.vblank_on.load(Relaxed) {
            return HrTimerRestart::NoRestart;
        }
        this.vblank_pending.fetch_add(1, Relaxed);
        let arc: Arc<Self> = this.into();
        arc.kick();
        ctx.forward_now(Delta::from_micros(this.vblank_period_us));
        HrTimerRestart::Restart
    }
}
