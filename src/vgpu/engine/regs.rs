// SPDX-License-Identifier: GPL-2.0

//! The engine's registers (`RVGPU_REG_IRQ_STATUS` .. `RVGPU_REG_ENGINE_STATUS`), emulated: the
//! trap path reads and writes them here, never sleeping; a doorbell tells the scheduler (which
//! may run the first commands there and then, without sleeping).

use super::{
    super::bar2::EngineReg,
    Engine,
    IRQ_ALL,
    IRQ_VBLANK, //
};

/// The guest-visible engine state; the trap path and the worker share it (under
/// `Engine::regs`).
#[derive(Default)]
pub(crate) struct EngineRegs {
    /// A user has the device open (cleared first thing at close: no doorbell queues work then).
    pub(crate) open: bool,
    pub(crate) irq_status: u32,
    pub(crate) irq_enable: u32,
    pub(crate) ring_base: u64,
    pub(crate) ring_size: u32,
    pub(crate) head: u32,
    pub(crate) tail: u32,
    pub(crate) error: u32,
    pub(crate) error_head: u32,
    pub(crate) fence: u32,
    pub(crate) completed: u32,
    pub(crate) vblank_count: u32,
    pub(crate) busy: bool,
    /// Migration STOP: no command runs, no interrupt is delivered, no vblank is counted.
    pub(crate) stopped: bool,
    /// The ring's registers are invalid (ERROR is RING): nothing runs until they are written.
    pub(crate) ring_bad: bool,
    /// Bumped whenever the ring is reprogrammed (size, reset, open): a command that was
    /// running then does not move HEAD afterwards.
    pub(crate) generation: u32,
}

impl EngineRegs {
    /// Power-on state, keeping whether the device is open and moving the generation on.
    pub(crate) fn reset(&mut self, open: bool) {
        *self = Self {
            open,
            generation: self.generation.wrapping_add(1),
            ..Self::default()
        };
    }
}

impl Engine {
    /// Reads an engine register.
    pub(crate) fn read(&self, reg: EngineReg) -> u32 {
        let r = self.regs.lock();
        match reg {
            EngineReg::IrqStatus => r.irq_status,
            EngineReg::IrqEnable => r.irq_enable,
            EngineReg::RingBaseLo => r.ring_base as u32,
            EngineReg::RingBaseHi => (r.ring_base >> 32) as u32,
            EngineReg::RingSize => r.ring_size,
            EngineReg::RingHead => r.head,
            EngineReg::RingTail => r.tail,
            EngineReg::Error => r.error,
            EngineReg::ErrorHead => r.error_head,
            EngineReg::Fence => r.fence,
            EngineReg::Completed => r.completed,
            EngineReg::VblankCount => r.vblank_count,
            EngineReg::EngineStatus => u32::from(r.busy),
            EngineReg::Reserved => 0,
        }
    }

    /// Writes an engine register. Never sleeps: a doorbell (`RING_TAIL`) tells the scheduler
    /// ([`super::super::sched::Scheduler::kick`]), a change of the vblank enable only queues the
    /// engine's work item.
    pub(crate) fn write(self: &kernel::sync::Arc<Self>, reg: EngineReg, val: u32) {
        let (vblank, doorbell) = {
            let mut r = self.regs.lock();
            if matches!(
                reg,
                EngineReg::RingBaseLo
                    | EngineReg::RingBaseHi
                    | EngineReg::RingSize
                    | EngineReg::RingTail
            ) {
                r.ring_bad = false;
            }
            let kick = match reg {
                EngineReg::IrqStatus => {
                    r.irq_status &= !val;
                    false
                }
                EngineReg::IrqEnable => {
                    // The vblank timer is started or stopped by the worker (it takes a mutex,
                    // which the trap path must not).
                    let vblank = (r.irq_enable ^ val) & IRQ_VBLANK != 0;
                    r.irq_enable = val & IRQ_ALL;
                    vblank
                }
                EngineReg::RingBaseLo => {
                    r.ring_base = (r.ring_base & !0xffff_ffff) | u64::from(val);
                    false
                }
                EngineReg::RingBaseHi => {
                    r.ring_base = (r.ring_base & 0xffff_ffff) | (u64::from(val) << 32);
                    false
                }
                EngineReg::RingSize => {
                    r.ring_size = val;
                    r.head = 0;
                    r.tail = 0;
                    r.generation = r.generation.wrapping_add(1);
                    false
                }
                EngineReg::RingTail => {
                    r.tail = val;
                    false
                }
                EngineReg::Error => {
                    r.error = 0;
                    r.error_head = 0;
                    false
                }
                EngineReg::RingHead
                | EngineReg::ErrorHead
                | EngineReg::Fence
                | EngineReg::Completed
                | EngineReg::VblankCount
                | EngineReg::EngineStatus
                | EngineReg::Reserved => false,
            };
            let live = r.open && !r.stopped;
            // RING_SIZE too: a command in flight is dropped (and `busy` cleared) by a run.
            (
                kick && live,
                matches!(reg, EngineReg::RingTail | EngineReg::RingSize) && live,
            )
        };
        if vblank {
            self.kick();
        }
        if doorbell {
            self.sched.kick(self);
        }
    }
}
