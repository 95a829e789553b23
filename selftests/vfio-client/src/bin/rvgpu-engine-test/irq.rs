// SPDX-License-Identifier: GPL-2.0
//! Results 1-2 and 8: interrupt info, `VFIO_DEVICE_SET_IRQS` validation and loopback, INTx
//! delivery with automasking.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use vfio_client::harness::{drain, quiet, wait_irq, Gpu, IDLE_TIMEOUT, IRQ_WAIT_MS, QUIET_MS};
use vfio_client::irq::encode_irq_set;
use vfio_client::rvgpu::*;
use vfio_client::tap::{all, ensure, es, expect_errno, expect_errno_in};
use vfio_client::uapi::{
    VFIO_IRQ_INFO_AUTOMASKED, VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_INFO_MASKABLE, VFIO_IRQ_INFO_NORESIZE,
    VFIO_IRQ_SET_ACTION_MASK, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_BOOL, VFIO_IRQ_SET_DATA_EVENTFD,
    VFIO_IRQ_SET_DATA_NONE,
};
use vfio_client::{EventFd, IrqAction, IrqData};

pub fn irq_info(g: &Gpu) -> Result<(), String> {
    let i0 = g.dev.irq_info(INTX).map_err(|e| format!("GET_IRQ_INFO 0: {e}"))?;
    let i1 = g.dev.irq_info(MSI).map_err(|e| format!("GET_IRQ_INFO 1: {e}"))?;
    let i2 = g.dev.irq_info(MSIX).map_err(|e| format!("GET_IRQ_INFO 2: {e}"))?;
    let mut pin = [0u8; 1];
    g.dev.read_region_exact(&g.cfg, 0x3d, &mut pin).map_err(|e| format!("config 0x3d: {e}"))?;
    all(vec![
        (
            "INTx".into(),
            ensure(
                i0.count == 1 && i0.flags == VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED,
                || format!("{i0:?} {:?}", i0.flag_names()),
            ),
        ),
        (
            "MSI".into(),
            // vfio-pci also says NORESIZE for MSI; allowed, not required.
            ensure(i1.count == 1 && i1.flags & !VFIO_IRQ_INFO_NORESIZE == VFIO_IRQ_INFO_EVENTFD, || {
                format!("{i1:?} {:?}", i1.flag_names())
            }),
        ),
        ("MSI-X".into(), ensure(i2.count == 0, || format!("{i2:?}"))),
        (
            "config interrupt pin".into(),
            ensure(pin[0] == 1, || format!("config 0x3d (interrupt pin) is {}, INTx is pin A (1)", pin[0])),
        ),
    ])
}

pub fn raw_set_irqs(g: &Gpu, flags: u32, index: u32, start: u32, count: u32, payload: &[u8]) -> io::Result<()> {
    let mut buf = encode_irq_set(flags, index, start, count, payload);
    g.dev.set_irqs_raw(&mut buf)
}

/// A loopback trigger of an index without an eventfd: vfio-pci refuses it (`EINVAL`); accepting
/// it is tolerated as long as nothing is signalled.
pub fn refused_or_silent(g: &Gpu, index: u32, efd: &EventFd) -> Result<(), String> {
    match g.dev.trigger_irqs(index, 0, 1) {
        Ok(()) => quiet(efd, 200, "loopback trigger without an eventfd"),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        Err(e) => Err(format!("loopback trigger without an eventfd: {e}")),
    }
}

pub fn set_irqs_validation(g: &Gpu) -> Result<(), String> {
    let efd = EventFd::new().map_err(es)?;
    let fd = efd.as_raw_fd();
    let fdb = fd.to_ne_bytes();
    let two: Vec<u8> = [fd, fd].iter().flat_map(|f| f.to_ne_bytes()).collect();
    let trig = VFIO_IRQ_SET_ACTION_TRIGGER;
    let null = fs::File::open("/dev/null").map_err(es)?;
    let nullfd: RawFd = null.as_raw_fd();
    let mut checks: Vec<(String, Result<(), String>)> = vec![
        (
            "index 5".into(),
            expect_errno("", raw_set_irqs(g, trig | VFIO_IRQ_SET_DATA_EVENTFD, 5, 0, 1, &fdb), libc::EINVAL),
        ),
        (
            "index 9 disable".into(),
            expect_errno("", raw_set_irqs(g, trig | VFIO_IRQ_SET_DATA_NONE, 9, 0, 0, &[]), libc::EINVAL),
        ),
        (
            "INTx start 1".into(),
            expect_errno("", raw_set_irqs(g, trig | VFIO_IRQ_SET_DATA_NONE, INTX, 1, 1, &[]), libc::EINVAL),
        ),
        (
            "INTx count 2".into(),
            expect_errno("", raw_set_irqs(g, trig | VFIO_IRQ_SET_DATA_EVENTFD, INTX, 0, 2, &two), libc::EINVAL),
        ),
        (
            "MSI start 1".into(),
            expect_errno("", raw_set_irqs(g, trig | VFIO_IRQ_SET_DATA_EVENTFD, MSI, 1, 1, &fdb), libc::EINVAL),
        ),
        (
            "MSI-X eventfd".into(),
            expect_errno("", raw_set_irqs(g, trig | VFIO_IRQ_SET_DATA_EVENTFD, MSIX, 0, 1, &fdb), libc::EINVAL),
        ),
        (
            "two data types".into(),
            expect_errno(
                "",
                raw_set_irqs(g, trig | VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL, INTX, 0, 1, &[1]),
                libc::EINVAL,
            ),
        ),
        (
            "unknown flag bit 6".into(),
            expect_errno("", raw_set_irqs(g, trig | VFIO_IRQ_SET_DATA_NONE | (1 << 6), INTX, 0, 1, &[]), libc::EINVAL),
        ),
        ("no data type".into(), expect_errno("", raw_set_irqs(g, trig, INTX, 0, 1, &[]), libc::EINVAL)),
        (
            "two actions".into(),
            expect_errno_in(
                "",
                raw_set_irqs(g, VFIO_IRQ_SET_ACTION_MASK | trig | VFIO_IRQ_SET_DATA_NONE, INTX, 0, 1, &[]),
                &[libc::EINVAL, libc::ENOTTY],
            ),
        ),
        (
            "no action".into(),
            expect_errno_in(
                "",
                raw_set_irqs(g, VFIO_IRQ_SET_DATA_NONE, INTX, 0, 1, &[]),
                &[libc::EINVAL, libc::ENOTTY],
            ),
        ),
        (
            "argsz short of the payload".into(),
            expect_errno("", raw_set_irqs(g, trig | VFIO_IRQ_SET_DATA_EVENTFD, INTX, 0, 1, &[]), libc::EINVAL),
        ),
        ("fd not open".into(), expect_errno("", g.dev.set_irq_eventfds(INTX, 0, &[9999]), libc::EBADF)),
        ("fd not an eventfd".into(), expect_errno("", g.dev.set_irq_eventfds(INTX, 0, &[nullfd]), libc::EINVAL)),
        ("trigger with no eventfd set".into(), refused_or_silent(g, INTX, &efd)),
    ];

    // INTx: eventfd, loopback triggers, automask/unmask, teardown with -1, disable.
    let r = (|| {
        g.dev.set_irq_eventfds(INTX, 0, &[fd]).map_err(|e| format!("set INTx eventfd: {e}"))?;
        g.dev.trigger_irqs(INTX, 0, 1).map_err(|e| format!("DATA_NONE trigger: {e}"))?;
        let n = wait_irq(&efd, 1000, "DATA_NONE trigger")?;
        ensure(n == 1, || format!("DATA_NONE trigger: count {n}"))?;
        g.dev.unmask_irqs(INTX, 0, 1).map_err(|e| format!("unmask: {e}"))?;
        g.dev
            .set_irqs(IrqAction::Trigger, INTX, 0, IrqData::Bool(&[false]))
            .map_err(|e| format!("DATA_BOOL false: {e}"))?;
        quiet(&efd, 100, "DATA_BOOL false trigger")?;
        g.dev
            .set_irqs(IrqAction::Trigger, INTX, 0, IrqData::Bool(&[true]))
            .map_err(|e| format!("DATA_BOOL true: {e}"))?;
        wait_irq(&efd, 1000, "DATA_BOOL true trigger")?;
        g.dev.unmask_irqs(INTX, 0, 1).map_err(|e| format!("unmask: {e}"))?;
        g.dev
            .set_irqs(IrqAction::Unmask, INTX, 0, IrqData::Bool(&[true]))
            .map_err(|e| format!("DATA_BOOL unmask: {e}"))?;
        // Teardown with -1: nothing reaches the old eventfd any more.
        g.dev.set_irq_eventfds(INTX, 0, &[-1]).map_err(|e| format!("teardown with -1: {e}"))?;
        refused_or_silent(g, INTX, &efd).map_err(|e| format!("after teardown: {e}"))?;
        // Set again, disable the whole index: triggers are refused.
        g.dev.set_irq_eventfds(INTX, 0, &[fd]).map_err(|e| format!("set INTx eventfd again: {e}"))?;
        g.dev.disable_irqs(INTX).map_err(|e| format!("disable INTx: {e}"))?;
        refused_or_silent(g, INTX, &efd).map_err(|e| format!("after disable: {e}"))
    })();
    checks.push(("INTx loopback".into(), r));

    // MSI loopback and teardown.
    let r = (|| {
        g.dev.set_irq_eventfds(MSI, 0, &[fd]).map_err(|e| format!("set MSI eventfd: {e}"))?;
        g.dev.trigger_irqs(MSI, 0, 1).map_err(|e| format!("MSI DATA_NONE trigger: {e}"))?;
        wait_irq(&efd, 1000, "MSI DATA_NONE trigger")?;
        g.dev
            .set_irqs(IrqAction::Trigger, MSI, 0, IrqData::Bool(&[true]))
            .map_err(|e| format!("MSI DATA_BOOL: {e}"))?;
        wait_irq(&efd, 1000, "MSI DATA_BOOL trigger")?;
        g.dev.set_irq_eventfds(MSI, 0, &[-1]).map_err(|e| format!("MSI teardown with -1: {e}"))?;
        refused_or_silent(g, MSI, &efd).map_err(|e| format!("MSI after teardown: {e}"))?;
        // The index may or may not still count as enabled after the -1; a disable must leave it off.
        let _ = g.dev.disable_irqs(MSI);
        refused_or_silent(g, MSI, &efd).map_err(|e| format!("MSI after disable: {e}"))
    })();
    checks.push(("MSI loopback".into(), r));
    all(checks)
}

pub fn intx_test(g: &mut Gpu, intx: &EventFd, msi: &EventFd) -> Result<(), String> {
    g.msi_off()?;
    g.intx_on(intx)?;
    let r = (|| {
        g.set_reg(REG_IRQ_ENABLE, IRQ_COMPLETION)?;
        g.clear()?;
        drain(intx)?;
        g.submit(&[Cmd::fence(Gpu::scratch_iova(0), 0xa1)])?;
        wait_irq(intx, IRQ_WAIT_MS, "first completion").map_err(|e| format!("{e}; {}", g.dump()))?;
        g.wait_idle(IDLE_TIMEOUT)?;
        // The guest's handler clears the source but VFIO has not unmasked: a new completion must
        // not signal.
        g.set_reg(REG_IRQ_STATUS, IRQ_COMPLETION)?;
        g.run(&[Cmd::fence(Gpu::scratch_iova(0), 0xa2)])?;
        let f = g.reg(REG_FENCE)?;
        ensure(f == 0xa2, || format!("FENCE {f:#x}, want 0xa2"))?;
        quiet(intx, QUIET_MS, "second completion while automasked")?;
        let st = g.reg(REG_IRQ_STATUS)?;
        ensure(st & IRQ_COMPLETION != 0, || format!("STATUS {st:#x}: COMPLETION should be pending"))?;
        // Unmask with the source still pending: the line is still asserted, so it signals.
        g.dev.unmask_irqs(INTX, 0, 1).map_err(|e| format!("unmask: {e}"))?;
        wait_irq(intx, IRQ_WAIT_MS, "unmask with COMPLETION pending")?;
        // Clear the source, unmask: nothing.
        g.set_reg(REG_IRQ_STATUS, IRQ_COMPLETION)?;
        g.dev.unmask_irqs(INTX, 0, 1).map_err(|e| format!("unmask: {e}"))?;
        quiet(intx, QUIET_MS, "unmask with nothing pending")?;
        // And a new completion signals again.
        g.submit(&[Cmd::fence(Gpu::scratch_iova(0), 0xa3)])?;
        wait_irq(intx, IRQ_WAIT_MS, "completion after unmask")?;
        g.wait_idle(IDLE_TIMEOUT)?;
        g.set_reg(REG_IRQ_STATUS, IRQ_ALL)?;
        g.dev.unmask_irqs(INTX, 0, 1).map_err(|e| format!("unmask: {e}"))
    })();
    // Back to MSI for what follows, whatever happened.
    let back = g.intx_off().and_then(|()| g.msi_on(msi));
    r.and(back)
}
