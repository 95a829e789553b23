// SPDX-License-Identifier: GPL-2.0

//! A vGPU's command engine and interrupts (`uapi/rvgpu.h`, registers 0x700..0x740).
//!
//! The physical Bochs board has no engine: the host driver executes each vGPU's commands, on the
//! kernel's unbound workqueue, never in the register trap path. A worker runs at most [`BATCH`]
//! commands and then queues itself again, so one vGPU's long ring cannot starve the others.
//!
//! - `engine/regs.rs`: the registers, as the trap path reads and writes them;
//! - `engine/irq.rs`: interrupt delivery through eventfds;
//! - `engine/pins.rs`: the cache of pinned guest pages;
//! - `engine/cmd.rs`: commands, decoded into a typed [`cmd::Command`];
//! - `engine/exec.rs`: running them.
//!
//! # Life cycle
//!
//! [`Engine::open`] starts it from power-on state; [`Engine::close`] is its one quiesce point:
//! it stops the doorbell (`open` cleared under `regs`), then, under `vblank`, marks the engine
//! closed and cancels the vblank timer (waiting for a running callback), then cancels the worker
//! (waiting for a running one, which cannot re-arm the timer: it checks `closed` under the same
//! lock). When `close` returns no timer, worker or callback of this engine runs, so the module
//! can go.
//!
//! # Locks
//!
//! In this order (a lock further down is never held while one further up is taken):
//! `vblank` (mutex), `bounce` (mutex, the worker's), `pins` (mutex, one page access at a time; a
//! leaf: nothing calls into the VFIO core while holding it, see `engine/pins.rs`), `regs`
//! (spinlock), `irqs` (spinlock). The trap path takes only the spinlocks.

use kernel::{
    impl_has_hr_timer, impl_has_work, new_mutex, new_spinlock, new_work,
    page::PAGE_SIZE,
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
        self,
        Work,
        WorkItem, //
    },
};

use super::{
    slice::VramSlice,
    uapi, //
};
use crate::vfio::{
    dma::DmaHandle,
    support, //
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

/// Commands one worker run executes before it queues itself again.
pub(crate) const BATCH: u32 = 64;
/// Size of the buffer framebuffer copies go through.
const BOUNCE: usize = 16 * 1024;

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
    vblank_period_us: i64,
    /// Whether the vblank timer should keep running (read in the timer callback, which runs in
    /// interrupt context and so takes no lock).
    vblank_on: Atomic<bool>,
    /// Vertical blanks the timer counted and the worker has not reported yet.
    vblank_pending: Atomic<u32>,
    /// Guest pages the DMA log recorded as written, in total (`nvidia/migration`).
    dirty_pages: Atomic<u64>,
    #[pin]
    vblank: Mutex<Vblank>,
    #[pin]
    bounce: Mutex<KVec<u8>>,
    #[pin]
    pins: Mutex<PinCache>,
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
    pub(crate) fn new(slice: Arc<VramSlice>, frl_fps: u32) -> Result<Arc<Self>> {
        let mut bounce = KVec::with_capacity(BOUNCE, GFP_KERNEL)?;
        bounce.resize(BOUNCE, 0, GFP_KERNEL)?;
        let pins = PinCache::new(slice.gpu().clone());
        Arc::pin_init(
            try_pin_init!(Self {
                slice,
                vblank_period_us: 1_000_000 / i64::from(frl_fps.max(1)),
                vblank_on: Atomic::new(false),
                vblank_pending: Atomic::new(0),
                dirty_pages: Atomic::new(0),
                vblank <- new_mutex!(Vblank {
                    closed: true,
                    timer: None,
                }),
                bounce <- new_mutex!(bounce),
                pins <- new_mutex!(pins),
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
    /// through `handle`.
    pub(crate) fn open(&self, handle: Arc<DmaHandle>) {
        let stale = self.pins.lock().open(handle);
        drop(stale);
        self.vblank.lock().closed = false;
        self.regs.lock().reset(true);
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
        // Unpinned here, with the cache unlocked (see `engine/pins.rs`).
        let released = self.pins.lock().close();
        drop(released);
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
        self.kick();
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
        self.update_vblank();
    }

    /// User space unmapped `[iova, iova + len)`: the pins in it are gone when this returns (a
    /// command using them fails with `DMA_FAULT`).
    pub(crate) fn dma_unmap(&self, iova: u64, len: u64) {
        let released = self.pins.lock().unmap(iova, len);
        drop(released);
    }

    /// Queues the worker (from the trap path, the timer callback or the worker itself).
    fn kick(self: &Arc<Self>) {
        // Already queued: that run will see the new state.
        let _ = workqueue::system_unbound().enqueue(self.clone());
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
    fn fetch(&self, base: u64, head: u32) -> Result<[u8; CMD_SIZE], CmdError> {
        let mut raw = [0u8; CMD_SIZE];
        let at = iova_add(base, u64::from(head)).map_err(|_| CmdError::Ring)?;
        self.guest_read(at, &mut raw).map_err(|_| CmdError::Ring)?;
        Ok(raw)
    }

    /// One worker run: vertical blanks counted by the timer, then at most `BATCH` commands.
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
                self.raise(IRQ_VBLANK);
            }
        }
        let mut bounce = self.bounce.lock();
        for _ in 0..BATCH {
            let (base, size, head, tail, generation) = {
                let mut r = self.regs.lock();
                if !r.open || r.stopped || r.ring_size == 0 || r.head == r.tail {
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
                    // HEAD stays: the ring runs again from there once a valid TAIL is written.
                    let mut r = self.regs.lock();
                    r.error = CmdError::Ring.code();
                    r.error_head = head;
                    r.busy = false;
                }
                self.raise(IRQ_ERROR);
                return;
            }
            let fb_size = self.slice.usable();
            let result = self.fetch(base, head).and_then(|bytes| {
                let cmd = Command::try_from(RawCmd {
                    bytes: &bytes,
                    fb_size,
                })?;
                self.execute(&mut bounce, &cmd)
            });
            let irq = {
                let mut r = self.regs.lock();
                if r.generation != generation {
                    // The ring was reprogrammed meanwhile: this command's outcome is moot.
                    continue;
                }
                r.head = (head + CMD_SIZE as u32) % size;
                match result {
                    Ok(fence) => {
                        r.completed = r.completed.wrapping_add(1);
                        if fence {
                            IRQ_COMPLETION
                        } else {
                            0
                        }
                    }
                    Err(e) => {
                        r.error = e.code();
                        r.error_head = head;
                        IRQ_ERROR
                    }
                }
            };
            if irq != 0 {
                self.raise(irq);
            }
        }
        drop(bounce);
        // More work left: queue again behind the other vGPUs.
        self.kick();
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
