// SPDX-License-Identifier: GPL-2.0

//! A vGPU's interrupts: MSI when user space set an eventfd for it, else INTx with automasking
//! (the line stays masked until user space unmasks it through VFIO), and the device request
//! interrupt. Raising one never sleeps.

use kernel::prelude::*;

use super::Engine;
use crate::vfio::{
    bindings as vb,
    device::{
        IrqAction,
        IrqData,
        IrqSet, //
    },
    eventfd::EventFd,
};

/// The VFIO interrupt indexes a vGPU has.
pub(crate) const INDEX_INTX: u32 = vb::VFIO_PCI_INTX_IRQ_INDEX;
pub(crate) const INDEX_MSI: u32 = vb::VFIO_PCI_MSI_IRQ_INDEX;
/// The device request interrupt: the host asks user space to release the device.
pub(crate) const INDEX_REQ: u32 = vb::VFIO_PCI_REQ_IRQ_INDEX;

/// Interrupt delivery (under `Engine::irqs`).
#[derive(Default)]
pub(crate) struct Irqs {
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
            INDEX_INTX => &self.intx,
            INDEX_REQ => &self.req,
            _ => &self.msi,
        }
    }

    /// Sets (or, with `None`, tears down) the eventfd of an index; INTx starts unmasked.
    fn set(&mut self, index: u32, efd: Option<EventFd>) {
        match index {
            INDEX_INTX => {
                self.intx = efd;
                self.intx_masked = false;
            }
            INDEX_REQ => self.req = efd,
            _ => self.msi = efd,
        }
    }
}

impl Engine {
    /// Raises interrupt sources `bits` and delivers the interrupt if one is enabled.
    pub(crate) fn raise(&self, bits: u32) {
        let pending = {
            let mut r = self.regs.lock();
            r.irq_status |= bits;
            r.irq_status & r.irq_enable != 0 && !r.stopped
        };
        if pending {
            self.deliver();
        }
    }

    pub(super) fn deliver(&self) {
        let signalled = {
            let mut i = self.irqs.lock();
            if let Some(msi) = i.msi.as_ref() {
                msi.signal();
                true
            } else if !i.intx_masked {
                if let Some(intx) = i.intx.as_ref() {
                    intx.signal();
                    i.intx_masked = true;
                    true
                } else {
                    false
                }
            } else {
                false
            }
        };
        if signalled {
            self.count(1, |s| &s.interrupts);
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

    /// Whether INTx is masked (for the migration state), and setting it.
    pub(crate) fn intx_masked(&self) -> bool {
        self.irqs.lock().intx_masked
    }

    pub(crate) fn set_intx_masked(&self, masked: bool) {
        self.irqs.lock().intx_masked = masked;
    }

    /// Tears every interrupt down (close).
    pub(crate) fn irqs_off(&self) {
        *self.irqs.lock() = Irqs::default();
    }

    /// `VFIO_DEVICE_GET_IRQ_INFO` counts: one INTx, one MSI vector, one request interrupt.
    pub(crate) fn irq_count(index: u32) -> u32 {
        match index {
            INDEX_INTX | INDEX_MSI | INDEX_REQ => 1,
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
            (INDEX_INTX, IrqAction::Mask) => {
                if selected {
                    self.irqs.lock().intx_masked = true;
                }
                Ok(())
            }
            (INDEX_INTX, IrqAction::Unmask) => {
                if selected {
                    self.irqs.lock().intx_masked = false;
                    // Still pending: the line goes up again.
                    let pending = {
                        let r = self.regs.lock();
                        r.irq_status & r.irq_enable != 0
                    };
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
}
