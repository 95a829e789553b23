// SPDX-License-Identifier: GPL-2.0
//! `SET_IRQS` on INTx, MSI, ERR and REQ (and indexes beyond), trigger/mask/unmask with
//! DATA_NONE, DATA_BOOL and DATA_EVENTFD, the eventfds good ones, closed ones (an eventfd made
//! and closed just before, its number passed), -1, not eventfds (`/dev/null`) and random
//! numbers; sometimes with MSI enabled in the capability as a guest does, and the loopback
//! (a user-space trigger) drained from the eventfd.

use std::os::fd::{AsFd, AsRawFd};

use vfio_client::irq::encode_irq_set;
use vfio_client::rvgpu::*;
use vfio_client::uapi::*;
use vfio_client::{EventFd, IrqAction, IrqData};

use crate::shared::Fam;
use crate::worker::Worker;

/// One `SET_IRQS` (or a short sequence of them).
pub fn op(w: &mut Worker) {
    let Worker { dev, rng, sh, efds, devnull, .. } = w;
    let Some(d) = dev.as_ref() else { return };
    let index = rng.weighted(&[
        (4, INTX),
        (4, MSI),
        (2, VFIO_PCI_ERR_IRQ_INDEX),
        (2, VFIO_PCI_REQ_IRQ_INDEX),
        (1, MSIX),
        (1, 5),
    ]);
    let index = if rng.percent(3) { rng.edgy32() } else { index };
    match rng.below(10) {
        0..=5 => {
            sh.set_op("irq: SET_IRQS");
            let action = rng.weighted(&[
                (5, VFIO_IRQ_SET_ACTION_TRIGGER),
                (2, VFIO_IRQ_SET_ACTION_MASK),
                (2, VFIO_IRQ_SET_ACTION_UNMASK),
                (1, VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK),
                (1, 0),
            ]);
            let data = rng.weighted(&[
                (4, VFIO_IRQ_SET_DATA_EVENTFD),
                (3, VFIO_IRQ_SET_DATA_NONE),
                (3, VFIO_IRQ_SET_DATA_BOOL),
                (1, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL),
                (1, 0),
            ]);
            let start = rng.weighted(&[(8, 0), (2, 1), (1, rng.edgy32())]);
            let count = rng.weighted(&[(6, 1), (2, 0), (2, 2), (1, rng.below(64) as u32), (1, rng.edgy32())]);
            // The closed eventfd: made, its number taken, closed.
            let closed = EventFd::new().map(|e| e.as_raw_fd()).unwrap_or(-1);
            let nullfd = devnull.as_ref().map_or(-1, |f| f.as_raw_fd());
            let n = (count as usize).min(64);
            let payload: Vec<u8> = if data & VFIO_IRQ_SET_DATA_EVENTFD != 0 {
                (0..n)
                    .flat_map(|_| {
                        let good = efds.get(rng.below(efds.len() as u64) as usize).map_or(-1, |e| e.as_raw_fd());
                        let fd = rng.weighted(&[
                            (4, good),
                            (2, closed),
                            (2, -1),
                            (1, nullfd),
                            (1, d.dev.as_fd().as_raw_fd()),
                            (1, rng.range(3, 1024) as i32),
                            (1, rng.u32() as i32),
                        ]);
                        fd.to_ne_bytes()
                    })
                    .collect()
            } else if data & VFIO_IRQ_SET_DATA_BOOL != 0 {
                (0..n).map(|_| rng.pick(&[0u8, 1, 1, 2, 0xff])).collect()
            } else {
                Vec::new()
            };
            // The payload cut short or padded now and then (argsz follows the bytes given).
            let mut payload = payload;
            if rng.percent(10) {
                payload.truncate(rng.below(payload.len() as u64 + 1) as usize);
            } else if rng.percent(5) {
                payload.extend(rng.bytes(rng.range(1, 16) as usize));
            }
            let mut arg = encode_irq_set(action | data, index, start, count, &payload);
            let r = d.dev.set_irqs_raw(&mut arg);
            sh.rec(Fam::Irq, &r);
        }
        6 => {
            // A guest's MSI set-up, the loopback, and the teardown (or not).
            sh.set_op("irq: MSI on");
            let Some(efd) = efds.first() else { return };
            let cfg = d.base(REGION_CONFIG);
            for (off, v) in [(MSI_CAP + 4, 0xfee0_0000u32), (MSI_CAP + 8, 0), (MSI_CAP + 12, 0x4041)] {
                let r = d.dev.pwrite(cfg + off, &v.to_le_bytes());
                sh.rec(Fam::Irq, &r);
            }
            let mut ctl = [0u8; 2];
            let r = d.dev.pread(cfg + MSI_CAP + 2, &mut ctl);
            sh.rec(Fam::Irq, &r);
            let on = u16::from_le_bytes(ctl) | 1;
            let r = d.dev.pwrite(cfg + MSI_CAP + 2, &on.to_le_bytes());
            sh.rec(Fam::Irq, &r);
            let r = d.dev.set_irq_eventfds(MSI, 0, &[efd.as_raw_fd()]);
            sh.rec(Fam::Irq, &r);
            sh.set_op("irq: MSI loopback");
            let r = d.dev.trigger_irqs(MSI, 0, 1);
            sh.rec(Fam::Irq, &r);
            let r = efd.wait(rng.below(3) as i32);
            sh.rec(Fam::Irq, &r);
            let r = efd.read();
            sh.rec(Fam::Irq, &r);
            if rng.percent(50) {
                sh.set_op("irq: MSI off");
                let r = d.dev.disable_irqs(MSI);
                sh.rec(Fam::Irq, &r);
            }
        }
        7 => {
            // INTx with an eventfd, triggered, masked, unmasked, by bools too.
            sh.set_op("irq: INTx");
            let Some(efd) = efds.get(1).or(efds.first()) else { return };
            let r = d.dev.set_irq_eventfds(INTX, 0, &[efd.as_raw_fd()]);
            sh.rec(Fam::Irq, &r);
            for _ in 0..rng.range(1, 6) {
                let bools = [rng.percent(50)];
                let (action, data) = rng.pick(&[
                    (IrqAction::Trigger, IrqData::None { count: 1 }),
                    (IrqAction::Mask, IrqData::None { count: 1 }),
                    (IrqAction::Unmask, IrqData::None { count: 1 }),
                    (IrqAction::Trigger, IrqData::Bool(&bools)),
                    (IrqAction::Mask, IrqData::Bool(&bools)),
                    (IrqAction::Unmask, IrqData::Bool(&bools)),
                ]);
                let r = d.dev.set_irqs(action, INTX, 0, data);
                sh.rec(Fam::Irq, &r);
            }
            let r = efd.read();
            sh.rec(Fam::Irq, &r);
            if rng.percent(50) {
                let r = d.dev.disable_irqs(INTX);
                sh.rec(Fam::Irq, &r);
            }
        }
        8 => {
            // Unmask with an eventfd (an irqfd-style resampler) and teardowns with -1.
            sh.set_op("irq: UNMASK eventfd");
            let fd = efds.last().map_or(-1, |e| e.as_raw_fd());
            let fd = rng.pick(&[fd, -1]);
            let r = d.dev.set_irqs(IrqAction::Unmask, index, 0, IrqData::EventFd(&[fd]));
            sh.rec(Fam::Irq, &r);
            let r = d.dev.set_irq_eventfds(index, 0, &[-1]);
            sh.rec(Fam::Irq, &r);
        }
        _ => {
            // A whole index off, or an eventfd swapped for a closed one.
            sh.set_op("irq: disable");
            let r = d.dev.disable_irqs(index);
            sh.rec(Fam::Irq, &r);
            if rng.percent(50) {
                let closed = EventFd::new().map(|e| e.as_raw_fd()).unwrap_or(-1);
                let r = d.dev.set_irq_eventfds(index, 0, &[closed]);
                sh.rec(Fam::Irq, &r);
            }
        }
    }
    // Whatever was signalled: drained, so the eventfds stay usable.
    for e in efds.iter() {
        let _ = e.read();
    }
}
