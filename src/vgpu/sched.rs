// SPDX-License-Identifier: GPL-2.0

//! The physical GPU's time between its vGPUs: one time-sliced scheduler per GPU, with NVIDIA's
//! policies (`nvidia/scheduler` on the GPU).
//!
//! Every vGPU engine command of a GPU runs in one work item, [`Scheduler`]'s, on a workqueue of
//! the GPU's own, except the first commands after a doorbell on an idle GPU, which the doorbell
//! runs itself (see [`Scheduler::kick`]). It runs one vGPU at a time for one time slice: the vGPU's commands in order
//! until the slice ends, a long FILL or COPY preempted between lines and resumed in the vGPU's
//! next slice. Then it picks the next vGPU in round-robin order among those that have work:
//!
//! - **best effort** (the default): work-conserving; a vGPU without work is passed over, so the
//!   busy ones get its time. A slice that ran over is repaid: the vGPU's next slice is shortened
//!   by the overrun (strict round robin).
//! - **equal share**: each running vGPU (open by a VM) gets at most 1/N of the GPU, N the running
//!   vGPUs, even when the others idle.
//! - **fixed share**: each vGPU gets at most 1/`max_instance` of its type, however many run.
//!   Only with vGPUs of one framebuffer size on the GPU, as on NVIDIA's.
//!
//! A cap is kept in time: after running `r` ns a vGPU with share `s` may run again `r / s` ns
//! after it last became eligible (credit for at most one slice of run time, `slice / s` ns, is
//! kept across idle time), so a slice that ran over is charged in full, and a turn that came
//! late or a slice that lost the CPU is made up from the credit rather than lost. When every vGPU with work is capped or waiting for
//! the frame-rate limiter, the work item ends and the scheduler's hrtimer queues it again at
//! the earliest time one may run.
//!
//! The slice is 1-30 ms; by default 2 ms, or 1 ms when the GPU holds a vGPU whose type allows
//! more than 8 per GPU (NVIDIA's defaults). Writing the policy or the slice takes effect at the
//! next slice.
//!
//! # Locks
//!
//! `exec` (mutex: held by the work item while it picks and runs one slice, so that
//! [`Scheduler::detach`] can wait for a slice of the vGPU to end), `wake` (mutex: the armed
//! timer), then `state` (spinlock: the doorbell takes it, in the trap path), then the engine's
//! own spinlocks. `log` is a leaf.

use kernel::{
    impl_has_hr_timer, impl_has_work, new_mutex, new_spinlock, new_work,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        ArcBorrow,
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

use super::engine::{
    Engine,
    Runner, //
};
use crate::vfio::support::{
    cond_resched,
    monotonic_ns,
    OwnedQueue, //
};

/// The shortest and the longest time slice, in microseconds (NVIDIA's 1-30 ms).
pub(crate) const SLICE_MIN_US: u32 = 1000;
pub(crate) const SLICE_MAX_US: u32 = 30000;
/// NVIDIA's default slices: 2 ms, or 1 ms above 8 vGPUs per GPU.
const SLICE_DEFAULT_US: u32 = 2000;
const SLICE_DENSE_US: u32 = 1000;
const DENSE_ABOVE: u32 = 8;
/// The longest slice a doorbell runs itself (ns): a few small commands, in the trap path.
const DOORBELL_SLICE_NS: u64 = 50_000;
/// Entries kept in `nvidia/scheduler_log` (the file must fit one page).
const LOG_LEN: usize = 56;

/// How a GPU's time is shared between its vGPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Policy {
    BestEffort,
    EqualShare,
    FixedShare,
}

impl Policy {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Policy::BestEffort => "best_effort",
            Policy::EqualShare => "equal_share",
            Policy::FixedShare => "fixed_share",
        }
    }

    fn parse(text: &[u8]) -> Option<Self> {
        [Policy::BestEffort, Policy::EqualShare, Policy::FixedShare]
            .into_iter()
            .find(|p| p.name().as_bytes() == text)
    }

    fn code(self) -> u32 {
        self as u32
    }

    fn from_code(c: u32) -> Self {
        match c {
            1 => Policy::EqualShare,
            2 => Policy::FixedShare,
            _ => Policy::BestEffort,
        }
    }
}

/// A change of `nvidia/scheduler`: what was given of `policy=<name> timeslice_us=<N>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct ConfigChange {
    pub(crate) policy: Option<Policy>,
    /// 0 restores the default.
    pub(crate) timeslice_us: Option<u32>,
}

/// Why a `nvidia/scheduler` write was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConfigError<'a> {
    Empty,
    NotKeyValue(&'a [u8]),
    UnknownKey(&'a [u8]),
    BadPolicy(&'a [u8]),
    BadSlice(&'a [u8]),
}

/// Parses `policy=<name>`, `timeslice_us=<N>` or both (blank or comma separated).
pub(crate) fn parse_config(text: &[u8]) -> Result<ConfigChange, ConfigError<'_>> {
    let mut c = ConfigChange::default();
    let mut any = false;
    for item in text
        .split(|&b| b == b' ' || b == b',' || b == b'\n' || b == b'\t')
        .filter(|i| !i.is_empty())
    {
        any = true;
        let mut kv = item.splitn(2, |&b| b == b'=');
        let (Some(key), Some(value)) = (kv.next(), kv.next()) else {
            return Err(ConfigError::NotKeyValue(item));
        };
        match key {
            b"policy" => {
                c.policy = Some(Policy::parse(value).ok_or(ConfigError::BadPolicy(value))?)
            }
            b"timeslice_us" => {
                let n = core::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok())
                    .filter(|&n| n == 0 || (SLICE_MIN_US..=SLICE_MAX_US).contains(&n))
                    .ok_or(ConfigError::BadSlice(value))?;
                c.timeslice_us = Some(n);
            }
            _ => return Err(ConfigError::UnknownKey(key)),
        }
    }
    if any {
        Ok(c)
    } else {
        Err(ConfigError::Empty)
    }
}

/// Counters of engine use, for a vGPU and (summed) for its GPU. Busy and wait times are in
/// nanoseconds. The scheduler's work item is the only writer of the slice counters.
pub(crate) struct Stats {
    pub(crate) busy_ns: Atomic<u64>,
    pub(crate) commands: Atomic<u64>,
    pub(crate) bytes: Atomic<u64>,
    pub(crate) interrupts: Atomic<u64>,
    pub(crate) vblanks: Atomic<u64>,
    pub(crate) frl_delayed: Atomic<u64>,
    pub(crate) slices: Atomic<u64>,
    pub(crate) wait_total_ns: Atomic<u64>,
    pub(crate) wait_max_ns: Atomic<u64>,
    pub(crate) overrun_total_ns: Atomic<u64>,
    pub(crate) overrun_max_ns: Atomic<u64>,
}

impl Stats {
    pub(crate) fn new() -> Self {
        Self {
            busy_ns: Atomic::new(0),
            commands: Atomic::new(0),
            bytes: Atomic::new(0),
            interrupts: Atomic::new(0),
            vblanks: Atomic::new(0),
            frl_delayed: Atomic::new(0),
            slices: Atomic::new(0),
            wait_total_ns: Atomic::new(0),
            wait_max_ns: Atomic::new(0),
            overrun_total_ns: Atomic::new(0),
            overrun_max_ns: Atomic::new(0),
        }
    }

    /// Records one slice: `run` ns of engine time after `wait` ns of waiting, `overrun` past its
    /// target (single writer: the scheduler's work item).
    fn slice(&self, run: u64, wait: u64, overrun: u64) {
        self.busy_ns.fetch_add(run, Relaxed);
        self.slices.fetch_add(1, Relaxed);
        self.wait_total_ns.fetch_add(wait, Relaxed);
        if wait > self.wait_max_ns.load(Relaxed) {
            self.wait_max_ns.store(wait, Relaxed);
        }
        self.overrun_total_ns.fetch_add(overrun, Relaxed);
        if overrun > self.overrun_max_ns.load(Relaxed) {
            self.overrun_max_ns.store(overrun, Relaxed);
        }
    }

    /// The `key: value` lines both accounting files share (DRM fdinfo's naming and units);
    /// `busy` is the engine time up to now ([`Scheduler::busy_now`]).
    pub(crate) fn emit(&self, out: &mut crate::vfio::sysfs::SysfsBuf, busy: u64) -> Result {
        let l = |a: &Atomic<u64>| a.load(Relaxed);
        out.emit(fmt!(
            "drm-engine-gfx: {} ns\nrvgpu-commands: {}\nrvgpu-bytes-moved: {}\nrvgpu-interrupts: {}\nrvgpu-vblanks: {}\nrvgpu-frl-delayed-frames: {}\nrvgpu-slices: {}\nrvgpu-wait-total: {} ns\nrvgpu-wait-max: {} ns\nrvgpu-overrun-total: {} ns\nrvgpu-overrun-max: {} ns\n",
            busy,
            l(&self.commands),
            l(&self.bytes),
            l(&self.interrupts),
            l(&self.vblanks),
            l(&self.frl_delayed),
            l(&self.slices),
            l(&self.wait_total_ns),
            l(&self.wait_max_ns),
            l(&self.overrun_total_ns),
            l(&self.overrun_max_ns)
        ))
    }
}

/// What the scheduler needs of a vGPU's engine (an [`Engine`]; a fake one in the unit tests).
pub(crate) trait Schedulable {
    /// `None` without work; else from when it may run (0: now).
    fn ready_at(&self) -> Option<u64>;
    /// `max_instance` of the vGPU's type.
    fn max_instance(&self) -> u32;
}

impl Schedulable for Engine {
    fn ready_at(&self) -> Option<u64> {
        Engine::ready_at(self)
    }

    fn max_instance(&self) -> u32 {
        Engine::max_instance(self)
    }
}

/// A vGPU as the scheduler sees it, from its open to its close.
struct Entity<E> {
    engine: Arc<E>,
    /// It has (or may have) work: set by its doorbell, recomputed after each of its slices.
    pending: bool,
    /// When it last started waiting (valid while `pending`).
    since: u64,
    /// Capped policies: it may not start a slice before this time.
    eligible: u64,
    /// Best effort: overrun not repaid yet.
    debt: u64,
}

/// What the work item does next.
enum Pick<E> {
    Run {
        engine: Arc<E>,
        target: u64,
        /// When it could have run first.
        ready: u64,
    },
    /// Nothing can run now; the earliest time something may.
    Idle(Option<u64>),
}

/// One slice, as [`State::charge`] books it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slice {
    run: u64,
    wait: u64,
    overrun: u64,
}

struct State<E = Engine> {
    policy: Policy,
    /// As written; 0 is the default.
    timeslice_us: u32,
    /// The largest `max_instance` among the GPU's vGPUs (for the default slice).
    density: u32,
    entities: KVec<Entity<E>>,
    /// Round robin: where the next search starts.
    cursor: usize,
    /// When the last slice ended.
    last_end: u64,
    /// The slice in progress: its vGPU (the engine's address) and when it started.
    running: Option<(usize, u64)>,
    /// The GPU is going away: nothing is queued any more.
    shut: bool,
}

impl<E: Schedulable> State<E> {
    fn new() -> Self {
        Self {
            policy: Policy::BestEffort,
            timeslice_us: 0,
            density: 0,
            entities: KVec::new(),
            cursor: 0,
            last_end: 0,
            running: None,
            shut: false,
        }
    }

    fn slice_us(&self) -> u32 {
        match self.timeslice_us {
            0 if self.density > DENSE_ABOVE => SLICE_DENSE_US,
            0 => SLICE_DEFAULT_US,
            n => n,
        }
    }

    /// A capped policy's `1 / share` for `engine` (0: not capped).
    fn factor(&self, engine: &E) -> u64 {
        match self.policy {
            Policy::BestEffort => 0,
            Policy::EqualShare => self.entities.len().max(1) as u64,
            Policy::FixedShare => u64::from(engine.max_instance().max(1)),
        }
    }

    fn find(&mut self, engine: &E) -> Option<&mut Entity<E>> {
        self.entities
            .iter_mut()
            .find(|e| core::ptr::eq(&*e.engine, engine))
    }

    fn attach(&mut self, engine: Arc<E>, now: u64) -> Result {
        self.entities.push(
            Entity {
                engine,
                pending: false,
                since: now,
                eligible: now,
                debt: 0,
            },
            GFP_ATOMIC,
        )?;
        Ok(())
    }

    fn detach(&mut self, engine: &E) -> Option<Entity<E>> {
        let i = self
            .entities
            .iter()
            .position(|e| core::ptr::eq(&*e.engine, engine));
        let gone = i.and_then(|i| self.entities.remove(i).ok());
        if self.cursor >= self.entities.len() {
            self.cursor = 0;
        }
        gone
    }

    /// The vGPU has work (a doorbell) at `now`; false if it is not attached.
    fn wake(&mut self, engine: &E, now: u64) -> bool {
        match self.find(engine) {
            Some(e) => {
                if !e.pending {
                    e.pending = true;
                    e.since = now;
                }
                true
            }
            None => false,
        }
    }

    /// A doorbell's own slice for `engine` at `now`: only when no other vGPU waits, and only
    /// if the policy would run it now (the work item decides otherwise, and arms its timer).
    fn pick_alone(&mut self, engine: &E, now: u64) -> Option<(Arc<E>, u64, u64)> {
        if self
            .entities
            .iter()
            .any(|e| e.pending && !core::ptr::eq(&*e.engine, engine))
        {
            return None;
        }
        match self.pick(now) {
            Pick::Run {
                engine,
                target,
                ready,
            } => {
                self.running = Some((address(&*engine), now));
                Some((engine, target.min(DOORBELL_SLICE_NS), ready))
            }
            Pick::Idle(_) => None,
        }
    }

    /// The next vGPU to run at `now`, round robin from the cursor.
    fn pick(&mut self, now: u64) -> Pick<E> {
        let slice = u64::from(self.slice_us()) * 1000;
        let n = self.entities.len();
        let policy = self.policy;
        let mut wake: Option<u64> = None;
        let earliest = |t: u64, wake: &mut Option<u64>| {
            *wake = Some(wake.map_or(t, |w| w.min(t)));
        };
        // Best effort: the first vGPU that gave its turn to repay an overrun, which runs after
        // all if no other can (the GPU never idles while a vGPU has work).
        let mut repaid: Option<(usize, u64)> = None;
        for k in 0..n {
            let i = (self.cursor + k) % n;
            let factor = self.factor(&self.entities[i].engine);
            let e = &mut self.entities[i];
            if !e.pending {
                continue;
            }
            let Some(frl_at) = e.engine.ready_at() else {
                e.pending = false;
                continue;
            };
            if frl_at > now {
                earliest(frl_at, &mut wake);
                continue;
            }
            let mut ready = e.since.max(frl_at);
            let target = match policy {
                Policy::BestEffort => {
                    if e.debt >= slice {
                        // The whole turn repays an overrun.
                        e.debt -= slice;
                        repaid = repaid.or(Some((i, ready)));
                        continue;
                    }
                    let t = slice - e.debt;
                    e.debt = 0;
                    t
                }
                Policy::EqualShare | Policy::FixedShare => {
                    // Credit for at most one slice of run time survives idle time (and absorbs
                    // a turn that came late or a slice that lost the CPU).
                    e.eligible = e.eligible.max(now.saturating_sub(slice * factor));
                    if e.eligible > now {
                        earliest(e.eligible, &mut wake);
                        continue;
                    }
                    ready = ready.max(e.eligible);
                    slice
                }
            };
            self.cursor = (i + 1) % n;
            return Pick::Run {
                engine: e.engine.clone(),
                target,
                ready,
            };
        }
        if let Some((i, ready)) = repaid {
            self.cursor = (i + 1) % n;
            return Pick::Run {
                engine: self.entities[i].engine.clone(),
                target: slice,
                ready,
            };
        }
        Pick::Idle(wake)
    }

    /// Books a slice of `engine` that was picked `ready`, ran from `start` to `end` for a
    /// target of `target` ns: a cap charges the run in full (the vGPU may run again `run / share`
    /// after it last became eligible), best effort keeps the overrun to repay.
    fn charge(&mut self, engine: &E, ready: u64, start: u64, end: u64, target: u64) -> Slice {
        let run = end.saturating_sub(start);
        let overrun = run.saturating_sub(target);
        let slice = u64::from(self.slice_us()) * 1000;
        let factor = self.factor(engine);
        self.last_end = end;
        self.running = None;
        if let Some(e) = self.find(engine) {
            if factor == 0 {
                // At most one slice is repaid: one long stall (a first pin, a lost CPU) costs
                // one turn, not many.
                e.debt = (e.debt + overrun).min(slice);
            } else {
                e.eligible += run * factor;
            }
            e.pending = engine.ready_at().is_some();
            e.since = end;
        }
        Slice {
            run,
            wait: start.saturating_sub(ready),
            overrun,
        }
    }
}

/// An engine's identity while it is scheduled (its address; nothing is reached through it).
fn address<E>(engine: &E) -> usize {
    core::ptr::from_ref(engine).addr()
}

/// One entry of `nvidia/scheduler_log`.
#[derive(Clone, Copy)]
enum LogEntry {
    Slice {
        seq: u64,
        start_us: u64,
        id: u32,
        run_us: u64,
        target_us: u64,
        wait_us: u64,
    },
    Config {
        seq: u64,
        t_us: u64,
        policy: Policy,
        slice_us: u32,
    },
}

/// The last [`LOG_LEN`] slices and configuration changes.
struct Log {
    seq: u64,
    entries: [Option<LogEntry>; LOG_LEN],
}

impl Log {
    fn push(&mut self, make: impl FnOnce(u64) -> LogEntry) {
        let seq = self.seq;
        self.seq += 1;
        self.entries[(seq % LOG_LEN as u64) as usize] = Some(make(seq));
    }
}

/// A physical GPU's scheduler.
#[pin_data]
pub(crate) struct Scheduler {
    queue: OwnedQueue,
    /// The policy, readable without a lock (the engine asks whether the limiter is on).
    policy: Atomic<u32>,
    /// The GPU's counters: every vGPU's summed, over the GPU's life.
    totals: Stats,
    /// Time the GPU was idle while a vGPU could have run (switching costs), ns.
    runnable_idle_ns: Atomic<u64>,
    #[pin]
    exec: Mutex<()>,
    #[pin]
    state: SpinLock<State>,
    #[pin]
    log: SpinLock<Log>,
    /// The armed wake-up and its time (taken before `state`).
    #[pin]
    wake: Mutex<Option<(u64, ArcHrTimerHandle<Scheduler>)>>,
    #[pin]
    work: Work<Scheduler>,
    #[pin]
    timer: HrTimer<Scheduler>,
}

impl_has_work! {
    impl HasWork<Self> for Scheduler { self.work }
}

impl_has_hr_timer! {
    impl HasHrTimer<Self> for Scheduler {
        mode: RelativeMode<Monotonic>, field: self.timer
    }
}

impl Scheduler {
    /// A scheduler with NVIDIA's defaults, its workqueue named `name`.
    pub(crate) fn new(name: &CStr) -> Result<Arc<Self>> {
        let queue = OwnedQueue::new(name)?;
        Arc::pin_init(
            try_pin_init!(Self {
                queue,
                policy: Atomic::new(Policy::BestEffort.code()),
                totals: Stats::new(),
                runnable_idle_ns: Atomic::new(0),
                exec <- new_mutex!(()),
                state <- new_spinlock!(State::new()),
                log <- new_spinlock!(Log {
                    seq: 0,
                    entries: [None; LOG_LEN],
                }),
                wake <- new_mutex!(None),
                work <- new_work!("rvgpu::Scheduler::work"),
                timer <- HrTimer::new(),
            }),
            GFP_KERNEL,
        )
    }

    /// The GPU's summed counters.
    pub(crate) fn totals(&self) -> &Stats {
        &self.totals
    }

    /// The time now and the engine time of `engine` (of the whole GPU if `None`) up to now,
    /// the slice in progress included: accounting read at any moment is exact, not behind by
    /// up to a slice.
    pub(crate) fn busy_now(&self, engine: Option<&Engine>) -> (u64, u64) {
        let st = self.state.lock();
        let now = monotonic_ns();
        let done = engine.map_or(&self.totals.busy_ns, |e| &e.stats().busy_ns);
        let who = engine.map(address);
        let running = match st.running {
            Some((a, start)) if who.is_none_or(|w| w == a) => now.saturating_sub(start),
            _ => 0,
        };
        (now, done.load(Relaxed) + running)
    }

    pub(crate) fn runnable_idle_ns(&self) -> u64 {
        self.runnable_idle_ns.load(Relaxed)
    }

    pub(crate) fn policy(&self) -> Policy {
        Policy::from_code(self.policy.load(Relaxed))
    }

    /// The effective setting, as `nvidia/scheduler` shows it.
    pub(crate) fn config(&self) -> (Policy, u32) {
        let st = self.state.lock();
        (st.policy, st.slice_us())
    }

    /// Applies a change (already checked); logged in `scheduler_log`.
    pub(crate) fn configure(&self, c: ConfigChange) -> (Policy, u32) {
        let (policy, slice_us, t_us) = {
            let mut st = self.state.lock();
            if let Some(p) = c.policy {
                st.policy = p;
                self.policy.store(p.code(), Relaxed);
            }
            if let Some(t) = c.timeslice_us {
                st.timeslice_us = t;
            }
            for e in st.entities.iter_mut() {
                e.debt = 0;
            }
            // Taken under the lock, as a slice's start is: a slice that starts before this time
            // was picked under the old setting, one that starts after it under the new one.
            (st.policy, st.slice_us(), monotonic_ns() / 1000)
        };
        self.log.lock().push(|seq| LogEntry::Config {
            seq,
            t_us,
            policy,
            slice_us,
        });
        (policy, slice_us)
    }

    /// The largest `max_instance` of the GPU's vGPUs changed (the default slice follows it).
    pub(crate) fn set_density(&self, max_instance: u32) {
        self.state.lock().density = max_instance;
    }

    /// A vGPU was opened: it is scheduled from now on (and counts as running for equal share).
    pub(crate) fn attach(&self, engine: Arc<Engine>) -> Result {
        let now = monotonic_ns();
        self.state.lock().attach(engine, now)
    }

    /// A vGPU is being closed: when this returns the scheduler does not run it any more.
    pub(crate) fn detach(&self, engine: &Engine) {
        let gone = self.state.lock().detach(engine);
        // A slice of it in progress ends first.
        drop(self.exec.lock());
        drop(gone);
    }

    /// The GPU's workqueue (the engines' own work items run on it too).
    pub(crate) fn queue(&self) -> &kernel::workqueue::Queue {
        self.queue.queue()
    }

    /// Waits until no slice is in progress (an engine stopped before this is not run again).
    pub(crate) fn sync(&self) {
        drop(self.exec.lock());
    }

    /// The vGPU has work (its doorbell). Never sleeps (trap path). When the GPU is idle and no
    /// other vGPU waits, the vGPU's first commands run here, in a short slice of its own
    /// ([`DOORBELL_SLICE_NS`], booked like any other) that stops where it would have to sleep;
    /// the work item runs the rest, and everything else, in turn.
    pub(crate) fn kick(self: &Arc<Self>, engine: &Engine) {
        let exec = self.exec.try_lock();
        let (now, queue, own) = {
            let mut st = self.state.lock();
            let now = monotonic_ns();
            let queue = st.wake(engine, now) && !st.shut;
            let own = match &exec {
                Some(_) if queue => st.pick_alone(engine, now).map(|p| (p, st.last_end)),
                _ => None,
            };
            (now, queue, own)
        };
        let more = match own {
            Some(((engine, target, ready), last_end)) => {
                self.run_picked(&engine, now, target, ready, last_end, Runner::Doorbell)
            }
            None => queue,
        };
        drop(exec);
        if more {
            self.enqueue();
        }
    }

    fn enqueue(self: &Arc<Self>) {
        // Already queued: that run sees the new state.
        let _ = self.queue.queue().enqueue(self.clone());
    }

    /// The GPU is going away (every vGPU is closed): no timer and no work item of this
    /// scheduler runs when this returns, and none is started again.
    pub(crate) fn shutdown(self: &Arc<Self>) {
        let timer = {
            let mut wake = self.wake.lock();
            self.state.lock().shut = true;
            wake.take()
        };
        // Cancels the timer, waiting for a callback in progress.
        drop(timer);
        crate::vfio::support::cancel_work_sync(self);
    }

    /// Arms the wake-up for `at` unless one is armed for earlier.
    fn arm(self: &Arc<Self>, at: u64) {
        let mut wake = self.wake.lock();
        let now = monotonic_ns();
        if self.state.lock().shut || wake.as_ref().is_some_and(|(t, _)| *t <= at && *t > now) {
            return;
        }
        // The old one first: both would be the same `hrtimer`, and dropping a handle cancels it.
        drop(wake.take());
        let delta = Delta::from_nanos(at.saturating_sub(now).max(1000) as i64);
        *wake = Some((at, self.clone().start(delta)));
    }

    /// The work item: slices until nothing can run now.
    fn run_slices(self: &Arc<Self>) {
        loop {
            // Held for one slice at a time, so that `detach` and `sync` wait for one slice only.
            let guard = self.exec.lock();
            let (now, pick, last_end) = {
                let mut st = self.state.lock();
                // Under the lock, as `configure` takes its time.
                let now = monotonic_ns();
                if st.shut {
                    return;
                }
                let pick = st.pick(now);
                if let Pick::Run { engine, .. } = &pick {
                    // The slice starts now (one critical section per pick: under the debug
                    // kernel every lock round trip is GPU time lost between slices).
                    st.running = Some((address(&**engine), now));
                }
                (now, pick, st.last_end)
            };
            let (engine, target, ready) = match pick {
                Pick::Run {
                    engine,
                    target,
                    ready,
                } => (engine, target, ready),
                Pick::Idle(Some(at)) => {
                    self.arm(at);
                    return;
                }
                Pick::Idle(None) => return,
            };
            self.run_picked(&engine, now, target, ready, last_end, Runner::Worker);
            drop(engine);
            drop(guard);
            cond_resched();
        }
    }

    /// Runs the slice of `engine` picked at `start` (`running` set, `exec` held) and books it;
    /// whether the vGPU has work left.
    fn run_picked(
        &self,
        engine: &Arc<Engine>,
        start: u64,
        target: u64,
        ready: u64,
        last_end: u64,
        runner: Runner,
    ) -> bool {
        let idle_from = last_end.max(ready);
        if start > idle_from {
            self.runnable_idle_ns.fetch_add(start - idle_from, Relaxed);
        }
        engine.run_slice(start + target, runner);
        // The counters move with `running`, so that `busy_now` never counts a slice twice or
        // not at all; the log entry goes in the same critical section.
        let mut st = self.state.lock();
        let b = st.charge(engine, ready, start, monotonic_ns(), target);
        engine.stats().slice(b.run, b.wait, b.overrun);
        self.totals.slice(b.run, b.wait, b.overrun);
        let id = engine.sched_id();
        self.log.lock().push(|seq| LogEntry::Slice {
            seq,
            start_us: start / 1000,
            id,
            run_us: b.run / 1000,
            target_us: target / 1000,
            wait_us: b.wait / 1000,
        });
        st.find(engine).is_some_and(|e| e.pending)
    }

    /// `nvidia/scheduler_log`: oldest first, one line each:
    /// `<seq> <start_us> <sched_id> <run_us> <target_us> <wait_us>` for a slice,
    /// `<seq> <t_us> config <policy> <timeslice_us>` for a configuration change.
    pub(crate) fn emit_log(&self, out: &mut crate::vfio::sysfs::SysfsBuf) -> Result {
        let entries = {
            let log = self.log.lock();
            let mut v = [None; LOG_LEN];
            let first = log.seq.saturating_sub(LOG_LEN as u64);
            for (slot, seq) in v.iter_mut().zip(first..log.seq) {
                *slot = log.entries[(seq % LOG_LEN as u64) as usize];
            }
            v
        };
        for e in entries.iter().flatten() {
            match *e {
                LogEntry::Slice {
                    seq,
                    start_us,
                    id,
                    run_us,
                    target_us,
                    wait_us,
                } => out.emit(fmt!(
                    "{} {} {} {} {} {}\n",
                    seq,
                    start_us,
                    id,
                    run_us,
                    target_us,
                    wait_us
                ))?,
                LogEntry::Config {
                    seq,
                    t_us,
                    policy,
                    slice_us,
                } => out.emit(fmt!(
                    "{} {} config {} {}\n",
                    seq,
                    t_us,
                    policy.name(),
                    slice_us
                ))?,
            }
        }
        Ok(())
    }
}

impl WorkItem for Scheduler {
    type Pointer = Arc<Scheduler>;

    fn run(this: Arc<Scheduler>) {
        this.run_slices();
    }
}

impl HrTimerCallback for Scheduler {
    type Pointer<'a> = Arc<Self>;

    /// Interrupt context: only queues the work item.
    fn run(this: ArcBorrow<'_, Self>, _ctx: HrTimerCallbackContext<'_, Self>) -> HrTimerRestart {
        let arc: Arc<Self> = this.into();
        arc.enqueue();
        HrTimerRestart::NoRestart
    }
}

#[kunit_tests(rvgpu_vgpu_sched)]
mod tests {
    use super::*;

    /// A vGPU that always has work (or never), of a type with `max` instances.
    struct Fake {
        busy: Atomic<bool>,
        max: u32,
    }

    impl Schedulable for Fake {
        fn ready_at(&self) -> Option<u64> {
            self.busy.load(Relaxed).then_some(0)
        }

        fn max_instance(&self) -> u32 {
            self.max
        }
    }

    const MS: u64 = 1_000_000;

    /// `n` saturating fakes (but those in `idle`) under `policy`, run for `ms` of simulated
    /// time with 1 us between slices, the `k`th slice overrunning by `over(k)` ns; returns
    /// each one's busy time and the longest wait.
    fn simulate(
        policy: Policy,
        n: usize,
        idle: &[usize],
        ms: u64,
        over: &dyn Fn(u64) -> u64,
    ) -> Result<(KVec<u64>, u64)> {
        let mut st = State::<Fake>::new();
        st.policy = policy;
        let mut fakes = KVec::new();
        for i in 0..n {
            let f = Arc::new(
                Fake {
                    busy: Atomic::new(!idle.contains(&i)),
                    max: 8,
                },
                GFP_KERNEL,
            )?;
            st.attach(f.clone(), 0)?;
            st.wake(&f, 0);
            fakes.push(f, GFP_KERNEL)?;
        }
        let mut busy = KVec::new();
        busy.resize(n, 0u64, GFP_KERNEL)?;
        let (mut now, mut wait_max, mut k) = (0u64, 0u64, 0u64);
        while now < ms * MS {
            match st.pick(now) {
                Pick::Run {
                    engine,
                    target,
                    ready,
                } => {
                    let end = now + target + over(k);
                    k += 1;
                    let b = st.charge(&engine, ready, now, end, target);
                    let i = fakes
                        .iter()
                        .position(|f| Arc::ptr_eq(f, &engine))
                        .unwrap_or(0);
                    busy[i] += b.run;
                    wait_max = wait_max.max(b.wait);
                    now = end + 1000;
                }
                Pick::Idle(Some(t)) => now = t,
                Pick::Idle(None) => break,
            }
        }
        Ok((busy, wait_max))
    }

    /// Whether every figure is within 2% of `want` ns.
    fn near(busy: &[u64], want: u64) -> bool {
        busy.iter().all(|&b| b.abs_diff(want) * 50 <= want)
    }

    #[test]
    fn equal_share() -> Result {
        // 1 s, 4 vGPUs: 250 ms each (the 1 us switches are the GPU's idle time).
        let (busy, _) = simulate(Policy::EqualShare, 4, &[], 1000, &|_| 0)?;
        assert!(near(&busy, 250 * MS));
        // One idles: the others get no more than 1/4.
        let (busy, _) = simulate(Policy::EqualShare, 4, &[3], 1000, &|_| 0)?;
        assert!(near(&busy[..3], 250 * MS) && busy[3] == 0);
        // 8 vGPUs, about one slice in 8 (scattered) losing the CPU for 3 ms: the GPU stays
        // busy and each still gets 1/8, give or take a slice and an overrun (a late turn or an
        // overrun is paid from credit; with credit of only 1/8 slice they cost up to 15%).
        let lost = |k: u64| {
            if (k.wrapping_mul(2_654_435_761) & 0xffff_ffff) >> 16 & 7 == 0 {
                3 * MS
            } else {
                0
            }
        };
        let (busy, _) = simulate(Policy::EqualShare, 8, &[], 1000, &lost)?;
        assert!(busy.iter().sum::<u64>() >= 990 * MS);
        assert!(busy
            .iter()
            .all(|&b| b * 50 >= 125 * MS * 49 && b <= 125 * MS + 5 * MS));
        Ok(())
    }

    #[test]
    fn fixed_share() -> Result {
        // 2 vGPUs of a type with 8 per GPU: 1/8 each, the GPU idles 3/4 of the time.
        let (busy, _) = simulate(Policy::FixedShare, 2, &[], 1000, &|_| 0)?;
        assert!(near(&busy, 125 * MS));
        // Overruns are charged: still 1/8.
        let (busy, _) = simulate(Policy::FixedShare, 2, &[], 1000, &|_| MS / 2)?;
        assert!(near(&busy, 125 * MS));
        Ok(())
    }

    #[test]
    fn best_effort() -> Result {
        // Work-conserving: 3 busy of 4 share everything.
        let (busy, wait) = simulate(Policy::BestEffort, 4, &[2], 999, &|_| 0)?;
        assert!(near(&[busy[0], busy[1], busy[3]], 333 * MS) && busy[2] == 0);
        // A waiting vGPU starts within (N - 1) x slice, plus the switches.
        assert!(wait <= 2 * 2 * MS + 3 * 1000);
        // A lone vGPU whose slices overrun by more than a slice still runs all the time.
        let (busy, _) = simulate(Policy::BestEffort, 1, &[], 100, &|_| 3 * MS)?;
        assert!(busy[0] * 100 >= 99 * 100 * MS);
        // Overruns are repaid: the shares stay equal.
        let (busy, wait) = simulate(Policy::BestEffort, 2, &[], 1000, &|_| 300_000)?;
        assert!(near(&busy, 500 * MS));
        // (Its wait spans the other's slice and the two switches around it.)
        assert!(wait <= 2 * MS + 300_000 + 2000);
        Ok(())
    }

    #[test]
    fn doorbell_slice() -> Result {
        let fake = || {
            Arc::new(
                Fake {
                    busy: Atomic::new(true),
                    max: 2,
                },
                GFP_KERNEL,
            )
        };
        let (a, b) = (fake()?, fake()?);
        let mut st = State::<Fake>::new();
        st.attach(a.clone(), 0)?;
        st.attach(b.clone(), 0)?;
        // Alone with work: a short slice of its own, booked like any other.
        st.wake(&a, 0);
        let Some((e, target, _)) = st.pick_alone(&a, 10) else {
            panic!("a lone vGPU with work gets no doorbell slice");
        };
        assert!(Arc::ptr_eq(&e, &a) && target == DOORBELL_SLICE_NS);
        assert_eq!(st.running, Some((address(&*a), 10)));
        st.charge(&a, 10, 10, 30_000, target);
        assert!(st.running.is_none());
        // Another vGPU waits: the work item decides, in turn.
        st.wake(&b, 30_000);
        assert!(st.pick_alone(&a, 31_000).is_none());
        // Fixed share: a vGPU past its share does not run from its doorbell either.
        let mut st = State::<Fake>::new();
        st.policy = Policy::FixedShare;
        st.attach(a.clone(), 0)?;
        st.wake(&a, 0);
        assert!(st.pick_alone(&a, 10).is_some());
        st.charge(&a, 10, 10, 3 * MS, DOORBELL_SLICE_NS);
        assert!(st.pick_alone(&a, 3 * MS + 10).is_none());
        Ok(())
    }

    #[test]
    fn config() {
        assert_eq!(
            parse_config(b"policy=equal_share timeslice_us=2000"),
            Ok(ConfigChange {
                policy: Some(Policy::EqualShare),
                timeslice_us: Some(2000)
            })
        );
        assert_eq!(
            parse_config(b"timeslice_us=30000\n"),
            Ok(ConfigChange {
                policy: None,
                timeslice_us: Some(30000)
            })
        );
        assert_eq!(
            parse_config(b"policy=fixed_share"),
            Ok(ConfigChange {
                policy: Some(Policy::FixedShare),
                timeslice_us: None
            })
        );
        assert_eq!(
            parse_config(b"timeslice_us=0").map(|c| c.timeslice_us),
            Ok(Some(0))
        );
        assert_eq!(parse_config(b" \n"), Err(ConfigError::Empty));
        assert_eq!(
            parse_config(b"policy=fair"),
            Err(ConfigError::BadPolicy(b"fair"))
        );
        assert_eq!(
            parse_config(b"timeslice_us=999"),
            Err(ConfigError::BadSlice(b"999"))
        );
        assert_eq!(
            parse_config(b"timeslice_us=30001"),
            Err(ConfigError::BadSlice(b"30001"))
        );
        assert_eq!(
            parse_config(b"timeslice_us=-1"),
            Err(ConfigError::BadSlice(b"-1"))
        );
        assert_eq!(
            parse_config(b"slice=1"),
            Err(ConfigError::UnknownKey(b"slice"))
        );
        assert_eq!(
            parse_config(b"best_effort"),
            Err(ConfigError::NotKeyValue(b"best_effort"))
        );
    }
}
