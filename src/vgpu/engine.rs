// SPDX-License-Identifier: GPL-2.0

//! A vGPU's command engine and interrupts (`uapi/rvgpu.h`, registers 0x700..0x740).
//!
//! The physical Bochs board has no engine: the host driver executes each vGPU's commands, on the
//! kernel's unbound workqueue, never in the register trap path. A worker runs at most
//! [`BATCH`] commands and then queues itself again, so one vGPU's long ring cannot starve the
//! others. Guest memory is reached through pages pinned with `vfio_pin_pages()`, kept in a small
//! per-vGPU cache across commands and released when user space unmaps them (`dma_unmap`) or
//! closes the device. A command that meets an unmapped IOVA fails with `RVGPU_ERR_DMA_FAULT`.
//!
//! Interrupts go out through eventfds: MSI when user space set one, else INTx with automasking
//! (the line stays masked until user space unmasks it through VFIO). Raising one never sleeps.

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

use crate::{
    board::Board,
    vfio::{
        device::{
            IrqAction,
            IrqData,
            IrqSet, //
        },
        dma::{
            DmaHandle,
            PinnedPage, //
        },
        eventfd::EventFd,
    },
};

pub(crate) const START: usize = 0x700;
pub(crate) const END: usize = 0x740;

const IRQ_STATUS: usize = 0x700;
const IRQ_ENABLE: usize = 0x704;
const RING_BASE_LO: usize = 0x708;
const RING_BASE_HI: usize = 0x70c;
const RING_SIZE: usize = 0x710;
const RING_HEAD: usize = 0x714;
const RING_TAIL: usize = 0x718;
const ERROR: usize = 0x71c;
const ERROR_HEAD: usize = 0x720;
const FENCE: usize = 0x724;
const COMPLETED: usize = 0x728;
const VBLANK_COUNT: usize = 0x72c;
const ENGINE_STATUS: usize = 0x730;

pub(crate) const IRQ_COMPLETION: u32 = 1 << 0;
pub(crate) const IRQ_ERROR: u32 = 1 << 1;
pub(crate) const IRQ_VBLANK: u32 = 1 << 2;
const IRQ_ALL: u32 = IRQ_COMPLETION | IRQ_ERROR | IRQ_VBLANK;

const ERR_BAD_OPCODE: u32 = 1;
const ERR_FB_RANGE: u32 = 2;
const ERR_DMA_FAULT: u32 = 3;
const ERR_RING: u32 = 4;
const ERR_BAD_ARGS: u32 = 5;

const CMD_NOP: u32 = 0;
const CMD_FILL: u32 = 1;
const CMD_COPY_TO_FB: u32 = 2;
const CMD_COPY_FROM_FB: u32 = 3;
const CMD_FENCE: u32 = 4;
const CMD_SIZE: u32 = 32;

const RING_MIN: u32 = 4096;
const RING_MAX: u32 = 1 << 20;

/// Commands one worker run executes before it queues itself again.
pub(crate) const BATCH: u32 = 64;
/// Guest pages kept pinned per vGPU; beyond this the cache is emptied first.
const MAX_PINS: usize = 1024;
/// Size of the buffer framebuffer copies go through.
const BOUNCE: usize = 16 * 1024;
/// VFIO interrupt indexes.
pub(crate) const IRQ_INDEX_INTX: u32 = 0;
pub(crate) const IRQ_INDEX_MSI: u32 = 1;
/// The device request interrupt: the host asks user space to release the device.
pub(crate) const IRQ_INDEX_REQ: u32 = 4;

/// The guest-visible engine registers; the trap path and the worker share them.
#[derive(Default)]
struct Regs {
    open: bool,
    irq_status: u32,
    irq_enable: u32,
    ring_base: u64,
    ring_size: u32,
    head: u32,
    tail: u32,
    error: u32,
    error_head: u32,
    fence: u32,
    completed: u32,
    vblank_count: u32,
    busy: bool,
    /// Bumped whenever the ring is reprogrammed (size, reset, open): a command that was
    /// running then does not move HEAD afterwards.
    generation: u32,
}

/// Interrupt delivery.
#[derive(Default)]
struct Irqs {
    intx: Option<EventFd>,
    /// INTx is automasked after each delivery until user space unmasks it.
    intx_masked: bool,
    msi: Option<EventFd>,
    req: Option<EventFd>,
}

impl Irqs {
    /// The eventfd of a VFIO interrupt index (MSI for any other index).
    fn slot(&self, index: u32) -> &Option<EventFd> {
        match index {
            IRQ_INDEX_INTX => &self.intx,
            IRQ_INDEX_REQ => &self.req,
            _ => &self.msi,
        }
    }

    /// Sets (or, with `None`, tears down) the eventfd of an index; INTx starts unmasked.
    fn set(&mut self, index: u32, efd: Option<EventFd>) {
        match index {
            IRQ_INDEX_INTX => {
                self.intx = efd;
                self.intx_masked = false;
            }
            IRQ_INDEX_REQ => self.req = efd,
            _ => self.msi = efd,
        }
    }
}

/// Guest memory as the worker sees it.
struct Dma {
    handle: Option<DmaHandle>,
    /// Pinned pages with whether they were pinned writable.
    pins: KVec<(PinnedPage, bool)>,
    /// Where the next eviction from a full `pins` happens.
    next_evict: usize,
    /// The buffer framebuffer copies go through.
    bounce: KVec<u8>,
}

/// A vGPU's engine.
#[pin_data]
pub(crate) struct Engine {
    board: Arc<dyn Board>,
    /// Where the vGPU's framebuffer starts in VRAM, and its usable size.
    fb_base: u64,
    fb_size: u64,
    vblank_period_us: i64,
    /// GPU-wide count of pages pinned by all engines (`nvidia/pinned_pages`).
    pinned: Arc<Atomic<u64>>,
    /// Worker runs queued or running; drained at close.
    inflight: Atomic<u32>,
    /// Whether the vblank timer should keep running (read in the timer callback, which runs in
    /// interrupt context and so takes no lock).
    vblank_on: Atomic<bool>,
    /// Vertical blanks the timer counted and the worker has not reported yet.
    vblank_pending: Atomic<u32>,
    #[pin]
    regs: SpinLock<Regs>,
    #[pin]
    irqs: SpinLock<Irqs>,
    #[pin]
    dma: Mutex<Dma>,
    #[pin]
    vblank_timer: Mutex<Option<ArcHrTimerHandle<Engine>>>,
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

/// What a failed command reports.
struct CmdError(u32);

/// A COPY command's rectangle (checked against the framebuffer before use).
struct Copy {
    to_fb: bool,
    iova: u64,
    iova_stride: u32,
    fb_offset: u32,
    fb_stride: u32,
    width: u32,
    height: u32,
}

impl From<Error> for CmdError {
    fn from(_: Error) -> Self {
        CmdError(ERR_DMA_FAULT)
    }
}

/// Checks a rectangle of `height` lines of `width` bytes, `stride` apart from `offset`, against
/// a framebuffer of `fb_size` bytes.
fn check_rect(
    fb_size: u64,
    offset: u32,
    stride: u32,
    width: u32,
    height: u32,
) -> Result<(), CmdError> {
    if width == 0 || height == 0 || width > stride {
        return Err(CmdError(ERR_BAD_ARGS));
    }
    let end = u64::from(offset) + u64::from(stride) * u64::from(height - 1) + u64::from(width);
    if end > fb_size {
        return Err(CmdError(ERR_FB_RANGE));
    }
    Ok(())
}

/// `a + b` on guest addresses: wrapping past the top of the IOVA space is a DMA fault.
fn iova_add(a: u64, b: u64) -> Result<u64, CmdError> {
    a.checked_add(b).ok_or(CmdError(ERR_DMA_FAULT))
}

impl Engine {
    pub(crate) fn new(
        board: Arc<dyn Board>,
        fb_base: u64,
        fb_size: u64,
        frl_fps: u32,
        pinned: Arc<Atomic<u64>>,
    ) -> Result<Arc<Self>> {
        let mut bounce = KVec::with_capacity(BOUNCE, GFP_KERNEL)?;
        bounce.resize(BOUNCE, 0, GFP_KERNEL)?;
        Arc::pin_init(
            try_pin_init!(Self {
                board,
                fb_base,
                fb_size,
                vblank_period_us: 1_000_000 / i64::from(frl_fps.max(1)),
                pinned,
                inflight: Atomic::new(0),
                vblank_on: Atomic::new(false),
                vblank_pending: Atomic::new(0),
                regs <- new_spinlock!(Regs::default()),
                irqs <- new_spinlock!(Irqs::default()),
                dma <- new_mutex!(Dma {
                    handle: None,
                    pins: KVec::new(),
                    next_evict: 0,
                    bounce,
                }),
                vblank_timer <- new_mutex!(None),
                work <- new_work!("rvgpu::Engine::work"),
                timer <- HrTimer::new(),
            }),
            GFP_KERNEL,
        )
    }

    /// A user opened the device: the engine starts from power-on state.
    pub(crate) fn open(&self, handle: DmaHandle) {
        self.dma.lock().handle = Some(handle);
        let mut r = self.regs.lock();
        *r = Regs {
            open: true,
            generation: r.generation.wrapping_add(1),
            ..Regs::default()
        };
    }

    /// The user closed the device: stop, wait for the worker, release every pinned page and
    /// interrupt.
    pub(crate) fn close(&self) {
        self.regs.lock().open = false;
        self.vblank_on.store(false, Relaxed);
        *self.vblank_timer.lock() = None;
        while self.inflight.load(Relaxed) != 0 {
            kernel::time::delay::fsleep(Delta::from_micros(100));
        }
        let mut dma = self.dma.lock();
        Self::unpin_all(&mut dma, &self.pinned);
        dma.handle = None;
        drop(dma);
        *self.irqs.lock() = Irqs::default();
    }

    /// Back to power-on state (device reset), the device staying open.
    pub(crate) fn reset(self: &Arc<Self>) {
        {
            let mut r = self.regs.lock();
            *r = Regs {
                open: r.open,
                generation: r.generation.wrapping_add(1),
                ..Regs::default()
            };
        }
        self.update_vblank();
    }

    fn unpin_all(dma: &mut Dma, pinned: &Atomic<u64>) {
        let n = dma.pins.len() as u64;
        let pins = core::mem::take(&mut dma.pins);
        if let Some(h) = dma.handle.as_ref() {
            for (p, _) in pins {
                h.unpin(p);
            }
            pinned.fetch_sub(n, Relaxed);
        }
    }

    /// User space unmapped `[iova, iova + len)`.
    pub(crate) fn dma_unmap(&self, iova: u64, len: u64) {
        let mut dma = self.dma.lock();
        let end = iova.saturating_add(len);
        let mut released = 0u64;
        let mut i = 0;
        while i < dma.pins.len() {
            let at = dma.pins[i].0.iova();
            if at < iova || at >= end {
                i += 1;
                continue;
            }
            let Ok((p, _)) = dma.pins.remove(i) else {
                break;
            };
            if let Some(h) = dma.handle.as_ref() {
                h.unpin(p);
                released += 1;
            }
        }
        self.pinned.fetch_sub(released, Relaxed);
    }

    /// Register read (4-byte aligned offset inside `START..END`).
    pub(crate) fn read(&self, off: usize) -> u32 {
        let r = self.regs.lock();
        match off {
            IRQ_STATUS => r.irq_status,
            IRQ_ENABLE => r.irq_enable,
            RING_BASE_LO => r.ring_base as u32,
            RING_BASE_HI => (r.ring_base >> 32) as u32,
            RING_SIZE => r.ring_size,
            RING_HEAD => r.head,
            RING_TAIL => r.tail,
            ERROR => r.error,
            ERROR_HEAD => r.error_head,
            FENCE => r.fence,
            COMPLETED => r.completed,
            VBLANK_COUNT => r.vblank_count,
            ENGINE_STATUS => u32::from(r.busy),
            _ => 0,
        }
    }

    /// Register write (4-byte aligned offset inside `START..END`). Never sleeps.
    pub(crate) fn write(self: &Arc<Self>, off: usize, val: u32) {
        let mut kick = false;
        let mut vblank = false;
        {
            let mut r = self.regs.lock();
            match off {
                IRQ_STATUS => r.irq_status &= !val,
                IRQ_ENABLE => {
                    vblank = (r.irq_enable ^ val) & IRQ_VBLANK != 0;
                    r.irq_enable = val & IRQ_ALL;
                }
                RING_BASE_LO => r.ring_base = (r.ring_base & !0xffff_ffff) | u64::from(val),
                RING_BASE_HI => r.ring_base = (r.ring_base & 0xffff_ffff) | (u64::from(val) << 32),
                RING_SIZE => {
                    r.ring_size = val;
                    r.head = 0;
                    r.tail = 0;
                    r.generation = r.generation.wrapping_add(1);
                }
                RING_TAIL => {
                    r.tail = val;
                    kick = true;
                }
                ERROR => {
                    r.error = 0;
                    r.error_head = 0;
                }
                _ => {}
            }
        }
        if kick {
            self.kick();
        }
        if vblank {
            // The timer is started outside the register lock; starting takes a mutex, which
            // the trap path must not: do it from the worker.
            self.kick();
        }
    }

    /// Queues the worker.
    fn kick(self: &Arc<Self>) {
        self.inflight.fetch_add(1, Relaxed);
        if workqueue::system_unbound().enqueue(self.clone()).is_err() {
            // Already queued: that run will see the new tail.
            self.inflight.fetch_sub(1, Relaxed);
        }
    }

    /// Raises interrupt sources `bits` and delivers the interrupt if one is enabled.
    fn raise(&self, bits: u32) {
        let pending = {
            let mut r = self.regs.lock();
            r.irq_status |= bits;
            r.irq_status & r.irq_enable != 0
        };
        if pending {
            self.deliver();
        }
    }

    fn deliver(&self) {
        let mut i = self.irqs.lock();
        if let Some(msi) = i.msi.as_ref() {
            msi.signal();
        } else if !i.intx_masked {
            if let Some(intx) = i.intx.as_ref() {
                intx.signal();
                i.intx_masked = true;
            }
        }
    }

    /// Asks user space to release the device (the request interrupt), if it listens.
    /// Returns whether anyone was asked.
    pub(crate) fn request_release(&self) -> bool {
        let i = self.irqs.lock();
        i.req.as_ref().map(|e| e.signal()).is_some()
    }

    /// Whether MSI delivery is set up (an eventfd for the vector).
    pub(crate) fn msi_enabled(&self) -> bool {
        self.irqs.lock().msi.is_some()
    }

    /// `VFIO_DEVICE_GET_IRQ_INFO` counts: one INTx, one MSI vector.
    pub(crate) fn irq_count(index: u32) -> u32 {
        match index {
            IRQ_INDEX_INTX | IRQ_INDEX_MSI | IRQ_INDEX_REQ => 1,
            _ => 0,
        }
    }

    /// `VFIO_DEVICE_SET_IRQS` (already validated against `irq_count`).
    pub(crate) fn set_irqs(&self, set: IrqSet<'_>) -> Result {
        // One vector per index: the VFIO core already refused anything past it.
        if set.start != 0 {
            return Err(EINVAL);
        }
        if set.count == 0 {
            // count 0 with DATA_NONE and TRIGGER: disable the index.
            if matches!(set.action, IrqAction::Trigger) && matches!(set.data, IrqData::None) {
                self.irqs.lock().set(set.index, None);
                return Ok(());
            }
            return Err(EINVAL);
        }
        let selected = match set.data {
            IrqData::None => true,
            IrqData::Bool(b) => b.first().is_some_and(|&v| v != 0),
            IrqData::EventFd(_) => true,
        };
        match (set.index, set.action) {
            (IRQ_INDEX_INTX, IrqAction::Mask) => {
                if selected {
                    self.irqs.lock().intx_masked = true;
                }
                Ok(())
            }
            (IRQ_INDEX_INTX, IrqAction::Unmask) => {
                if selected {
                    self.irqs.lock().intx_masked = false;
                    // Still pending: the line goes up again.
                    let r = self.regs.lock();
                    let pending = r.irq_status & r.irq_enable != 0;
                    drop(r);
                    if pending {
                        self.deliver();
                    }
                }
                Ok(())
            }
            (_, IrqAction::Trigger) => match set.data {
                IrqData::EventFd(fds) => {
                    let fd = fds.first().copied().unwrap_or(-1);
                    let efd = if fd < 0 {
                        None
                    } else {
                        Some(EventFd::from_fd(fd)?)
                    };
                    self.irqs.lock().set(set.index, efd);
                    Ok(())
                }
                _ => {
                    if selected {
                        if let Some(e) = self.irqs.lock().slot(set.index) {
                            e.signal();
                        }
                    }
                    Ok(())
                }
            },
            // MSI cannot be masked through VFIO here (no per-vector mask bits).
            _ => Err(EINVAL),
        }
    }

    /// Starts or stops the vblank timer to match the enable bit (worker context: may sleep).
    fn update_vblank(self: &Arc<Self>) {
        let want = {
            let r = self.regs.lock();
            r.open && r.irq_enable & IRQ_VBLANK != 0
        };
        self.vblank_on.store(want, Relaxed);
        let mut t = self.vblank_timer.lock();
        match (want, t.is_some()) {
            (true, false) => {
                *t = Some(
                    self.clone()
                        .start(Delta::from_micros(self.vblank_period_us)),
                )
            }
            (false, true) => *t = None,
            _ => {}
        }
    }

    /// Finds or pins the guest page holding `iova`.
    fn page<'a>(
        &self,
        dma: &'a mut Dma,
        iova: u64,
        write: bool,
    ) -> Result<&'a PinnedPage, CmdError> {
        let base = iova & !(PAGE_SIZE as u64 - 1);
        let found = dma
            .pins
            .iter()
            .position(|(p, w)| p.iova() == base && (*w || !write));
        let idx = match found {
            Some(i) => i,
            None => {
                if dma.pins.len() >= MAX_PINS {
                    // Full: one pin goes, in turn (a cheap approximation of the oldest).
                    let victim = dma.next_evict % dma.pins.len();
                    dma.next_evict = victim + 1;
                    let last = dma.pins.pop().ok_or(CmdError(ERR_DMA_FAULT))?;
                    let (p, _) = match dma.pins.get_mut(victim) {
                        Some(slot) => core::mem::replace(slot, last),
                        None => last,
                    };
                    if let Some(h) = dma.handle.as_ref() {
                        h.unpin(p);
                    }
                    self.pinned.fetch_sub(1, Relaxed);
                }
                // A read-only pin of this page is replaced by a writable one.
                if let Some(i) = dma.pins.iter().position(|(p, _)| p.iova() == base) {
                    let (p, _) = dma.pins.remove(i).map_err(|_| CmdError(ERR_DMA_FAULT))?;
                    if let Some(h) = dma.handle.as_ref() {
                        h.unpin(p);
                    }
                    self.pinned.fetch_sub(1, Relaxed);
                }
                dma.pins
                    .reserve(1, GFP_KERNEL)
                    .map_err(|_| CmdError(ERR_DMA_FAULT))?;
                let h = dma.handle.as_ref().ok_or(CmdError(ERR_DMA_FAULT))?;
                let p = h.pin(base, write)?;
                // Cannot fail: room was reserved above.
                if dma.pins.push_within_capacity((p, write)).is_err() {
                    return Err(CmdError(ERR_DMA_FAULT));
                }
                self.pinned.fetch_add(1, Relaxed);
                dma.pins.len() - 1
            }
        };
        Ok(&dma.pins[idx].0)
    }

    fn guest_read(&self, dma: &mut Dma, mut iova: u64, mut buf: &mut [u8]) -> Result<(), CmdError> {
        while !buf.is_empty() {
            let off = (iova % PAGE_SIZE as u64) as usize;
            let n = buf.len().min(PAGE_SIZE - off);
            let (now, rest) = buf.split_at_mut(n);
            self.page(dma, iova, false)?.read(off, now)?;
            buf = rest;
            if !buf.is_empty() {
                iova = iova_add(iova, n as u64)?;
            }
        }
        Ok(())
    }

    fn guest_write(&self, dma: &mut Dma, mut iova: u64, mut data: &[u8]) -> Result<(), CmdError> {
        while !data.is_empty() {
            let off = (iova % PAGE_SIZE as u64) as usize;
            let n = data.len().min(PAGE_SIZE - off);
            self.page(dma, iova, true)?.write(off, &data[..n])?;
            data = &data[n..];
            if !data.is_empty() {
                iova = iova_add(iova, n as u64)?;
            }
        }
        Ok(())
    }

    /// Checks a framebuffer rectangle (`width` bytes by `height` lines, `stride` apart).
    fn fb_rect(&self, offset: u32, stride: u32, width: u32, height: u32) -> Result<(), CmdError> {
        check_rect(self.fb_size, offset, stride, width, height)
    }

    /// A COPY command, line by line through the bounce buffer.
    fn copy(&self, dma: &mut Dma, buf: &mut [u8], c: &Copy) -> Result<(), CmdError> {
        for y in 0..c.height {
            let mut g = iova_add(c.iova, u64::from(y) * u64::from(c.iova_stride))?;
            let mut f =
                self.fb_base + u64::from(c.fb_offset) + u64::from(y) * u64::from(c.fb_stride);
            let mut left = c.width as usize;
            while left > 0 {
                let n = left.min(buf.len());
                if c.to_fb {
                    self.guest_read(dma, g, &mut buf[..n])?;
                    self.board.vram_write(f, &buf[..n])?;
                } else {
                    self.board.vram_read(f, &mut buf[..n])?;
                    self.guest_write(dma, g, &buf[..n])?;
                }
                left -= n;
                if left > 0 {
                    g = iova_add(g, n as u64)?;
                    f += n as u64;
                }
            }
        }
        Ok(())
    }

    fn execute(&self, dma: &mut Dma, c: &[u32; 8]) -> Result<bool, CmdError> {
        let word = |i: usize| c[i];
        let iova = u64::from(word(2)) | (u64::from(word(3)) << 32);
        let (opcode, height) = (word(0), word(1));
        match opcode {
            CMD_NOP if height != 0 => Err(CmdError(ERR_BAD_ARGS)),
            CMD_NOP => Ok(false),
            CMD_FILL => {
                let (offset, stride, width, value) = (word(2), word(3), word(4), word(5));
                if width % 4 != 0 || offset % 4 != 0 || stride % 4 != 0 {
                    return Err(CmdError(ERR_BAD_ARGS));
                }
                self.fb_rect(offset, stride, width, height)?;
                let line = [value.to_le_bytes(); 64];
                let line = line.as_flattened();
                for y in 0..height {
                    let mut at = u64::from(offset) + u64::from(y) * u64::from(stride);
                    let mut left = width as usize;
                    while left > 0 {
                        let n = left.min(line.len());
                        self.board.vram_write(self.fb_base + at, &line[..n])?;
                        at += n as u64;
                        left -= n;
                    }
                }
                Ok(false)
            }
            CMD_COPY_TO_FB | CMD_COPY_FROM_FB => {
                let (istride, offset, stride, width) = (word(4), word(5), word(6), word(7));
                if width > istride {
                    return Err(CmdError(ERR_BAD_ARGS));
                }
                self.fb_rect(offset, stride, width, height)?;
                let rect = Copy {
                    to_fb: opcode == CMD_COPY_TO_FB,
                    iova,
                    iova_stride: istride,
                    fb_offset: offset,
                    fb_stride: stride,
                    width,
                    height,
                };
                let mut bounce = core::mem::take(&mut dma.bounce);
                let r = self.copy(dma, &mut bounce, &rect);
                dma.bounce = bounce;
                r.map(|()| false)
            }
            CMD_FENCE => {
                if height != 0 || iova % 4 != 0 {
                    return Err(CmdError(ERR_BAD_ARGS));
                }
                self.guest_write(dma, iova, &word(4).to_le_bytes())?;
                self.regs.lock().fence = word(4);
                Ok(true)
            }
            _ => Err(CmdError(ERR_BAD_OPCODE)),
        }
    }

    /// One worker run: vertical blanks counted by the timer, then at most `BATCH` commands.
    fn process(self: &Arc<Self>) {
        self.update_vblank();
        let blanks = self.vblank_pending.xchg(0, Relaxed);
        if blanks != 0 {
            let on = {
                let mut r = self.regs.lock();
                r.vblank_count = r.vblank_count.wrapping_add(blanks);
                r.open
            };
            if on {
                self.raise(IRQ_VBLANK);
            }
        }
        let mut dma = self.dma.lock();
        for _ in 0..BATCH {
            let (base, size, head, tail, generation) = {
                let mut r = self.regs.lock();
                if !r.open || r.ring_size == 0 || r.head == r.tail {
                    r.busy = false;
                    return;
                }
                r.busy = true;
                (r.ring_base, r.ring_size, r.head, r.tail, r.generation)
            };
            let ring_ok = size.is_power_of_two()
                && (RING_MIN..=RING_MAX).contains(&size)
                && base % PAGE_SIZE as u64 == 0
                && tail % CMD_SIZE == 0
                && tail < size;
            if !ring_ok {
                {
                    // HEAD stays: the ring runs again from there once a valid TAIL is written.
                    let mut r = self.regs.lock();
                    r.error = ERR_RING;
                    r.error_head = head;
                    r.busy = false;
                }
                self.raise(IRQ_ERROR);
                return;
            }
            let mut raw = [0u8; CMD_SIZE as usize];
            let result = iova_add(base, u64::from(head))
                .and_then(|at| self.guest_read(&mut dma, at, &mut raw))
                .map_err(|_| CmdError(ERR_RING))
                .and_then(|()| {
                    let mut c = [0u32; 8];
                    for (w, b) in c.iter_mut().zip(raw.chunks_exact(4)) {
                        *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    }
                    self.execute(&mut dma, &c)
                });
            let irq = {
                let mut r = self.regs.lock();
                if r.generation != generation {
                    // The ring was reprogrammed meanwhile: this command's outcome is moot.
                    continue;
                }
                r.head = (head + CMD_SIZE) % size;
                match result {
                    Ok(fence) => {
                        r.completed = r.completed.wrapping_add(1);
                        if fence {
                            IRQ_COMPLETION
                        } else {
                            0
                        }
                    }
                    Err(CmdError(code)) => {
                        r.error = code;
                        r.error_head = head;
                        IRQ_ERROR
                    }
                }
            };
            if irq != 0 {
                self.raise(irq);
            }
        }
        drop(dma);
        // More work left: queue again behind the other vGPUs.
        self.kick();
    }
}

impl WorkItem for Engine {
    type Pointer = Arc<Engine>;

    fn run(this: Arc<Engine>) {
        this.process();
        this.inflight.fetch_sub(1, Relaxed);
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

#[kunit_tests(rvgpu_vgpu_engine)]
mod tests {
    use super::*;

    fn code<T>(r: Result<T, CmdError>) -> u32 {
        match r {
            Ok(_) => 0,
            Err(CmdError(c)) => c,
        }
    }

    #[test]
    fn rectangles() {
        const FB: u64 = 4 << 20;
        assert_eq!(code(check_rect(FB, 0, 4096, 4096, 1024)), 0);
        // The last byte of the framebuffer, and one past it.
        assert_eq!(code(check_rect(FB, (4 << 20) - 4, 4, 4, 1)), 0);
        assert_eq!(code(check_rect(FB, (4 << 20) - 4, 8, 8, 1)), ERR_FB_RANGE);
        assert_eq!(code(check_rect(FB, 0, 4096, 4096, 1025)), ERR_FB_RANGE);
        // Sizes that would overflow 32 bits are still caught.
        assert_eq!(
            code(check_rect(FB, u32::MAX, u32::MAX, u32::MAX, u32::MAX)),
            ERR_FB_RANGE
        );
        assert_eq!(code(check_rect(FB, 0, 4, 8, 1)), ERR_BAD_ARGS);
        assert_eq!(code(check_rect(FB, 0, 4, 0, 1)), ERR_BAD_ARGS);
        assert_eq!(code(check_rect(FB, 0, 4, 4, 0)), ERR_BAD_ARGS);
    }

    #[test]
    fn iova_arithmetic() {
        assert_eq!(code(iova_add(0x1000, 0x1000)), 0);
        assert_eq!(code(iova_add(u64::MAX - 3, 3)), 0);
        assert_eq!(code(iova_add(u64::MAX - 3, 4)), ERR_DMA_FAULT);
    }
}
