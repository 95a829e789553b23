// SPDX-License-Identifier: GPL-2.0

//! Live migration of a vGPU (VFIO migration v2 with STOP_COPY, P2P and PRE_COPY) and the
//! logging of the guest pages its engine writes.
//!
//! The arcs, one at a time ([`crate::vfio::migration::walk`] splits longer moves):
//!
//! | arc | what happens |
//! |---|---|
//! | RUNNING ⇄ RUNNING_P2P, PRE_COPY ⇄ PRE_COPY_P2P | nothing: a vGPU makes no peer-to-peer DMA |
//! | RUNNING_P2P → STOP | the engine stops at a command boundary; no interrupt, no vblank |
//! | STOP → RUNNING_P2P | the engine goes on (a doorbell written while stopped runs now) |
//! | RUNNING(_P2P) → PRE_COPY(_P2P) | a saving stream starts: header, then sweeps of the framebuffer's changed pages |
//! | PRE_COPY(_P2P) → RUNNING(_P2P) | the saving stream ends |
//! | PRE_COPY(_P2P) → STOP_COPY | the engine stops; the same stream goes on with the pages still changed, the device state and the end |
//! | STOP → STOP_COPY | a saving stream of everything |
//! | STOP_COPY → STOP | the saving stream ends |
//! | STOP → RESUMING | a resuming stream starts |
//! | RESUMING → STOP | the stream is checked and the device state applied; on a refused stream the vGPU is in ERROR until `VFIO_DEVICE_RESET` |
//!
//! `vgpu_params` `precopy=0` keeps the framebuffer out of the pre-copy phase (STOP_COPY only).

use zerocopy::FromZeros;

use kernel::{
    prelude::*,
    sync::{
        aref::ARef,
        atomic::Relaxed,
        Arc, //
    }, //
};

use super::{
    instance::Vgpu,
    uapi::{
        self,
        rvgpu_mig_state, //
    },
};
use crate::vfio::{
    migration::{
        self,
        MigFile,
        MigState, //
    },
    Device,
};

mod stream;

use stream::{
    Resumer,
    Saver,
    StreamId, //
};

/// What `nvidia/migration` counts, over every transfer since the vGPU was created.
pub(crate) struct Counters {
    /// Bytes of saving and of resuming streams.
    pub(crate) saved: u64,
    pub(crate) loaded: u64,
    /// Pre-copy sweeps of the framebuffer that sent something.
    pub(crate) rounds: u64,
    /// Framebuffer pages sent again because they changed after they were sent.
    pub(crate) resent_pages: u64,
}

/// A vGPU's migration state (under `Vgpu::mig`).
pub(crate) struct MigCtl {
    pub(crate) state: MigState,
    saver: Option<Arc<Saver>>,
    resumer: Option<Arc<Resumer>>,
    /// Counters for `nvidia/migration`, of the transfers that ended.
    saved: u64,
    loaded: u64,
    rounds: u64,
    resent: u64,
    /// The last RESUMING -> STOP refused the stream.
    resume_failed: bool,
}

impl MigCtl {
    pub(crate) fn new() -> Self {
        Self {
            state: MigState::Running,
            saver: None,
            resumer: None,
            saved: 0,
            loaded: 0,
            rounds: 0,
            resent: 0,
            resume_failed: false,
        }
    }

    /// Ends any transfer: its file reads or writes fail from now on.
    fn end_transfers(&mut self) {
        if let Some(s) = self.saver.take() {
            let (sent, rounds, resent) = s.progress();
            self.saved += sent;
            self.rounds += rounds;
            self.resent += resent;
            s.disable();
        }
        if let Some(r) = self.resumer.take() {
            self.loaded += r.received();
            r.disable();
        }
    }

    /// The counters of `nvidia/migration`, the transfer under way included.
    pub(crate) fn counters(&self) -> Counters {
        let (sent, rounds, resent) = self.saver.as_ref().map_or((0, 0, 0), |s| s.progress());
        let received = self.resumer.as_ref().map_or(0, |r| r.received());
        Counters {
            saved: self.saved + sent,
            loaded: self.loaded + received,
            rounds: self.rounds + rounds,
            resent_pages: self.resent + resent,
        }
    }

    /// Back to RUNNING with no transfer (open, close, reset).
    pub(crate) fn reset(&mut self) {
        self.end_transfers();
        self.state = MigState::Running;
    }
}

impl Vgpu {
    fn stream_id(&self) -> StreamId {
        StreamId {
            type_id: self.vtype.id,
            fb_size: self.slice.usable() as u32,
        }
    }

    /// A saving stream of this vGPU; `precopy`: the framebuffer goes in the pre-copy phase.
    fn saver(&self, dev: &Device<Self>, precopy: bool) -> Result<Arc<Saver>> {
        Saver::new(
            self.slice.clone(),
            self.scanout.clone(),
            dev.mappings(),
            self.stream_id(),
            precopy,
        )
    }

    /// The device state, everything but the framebuffer (the engine is stopped).
    fn capture(&self) -> Result<KBox<rvgpu_mig_state>> {
        let mut st = KBox::new(rvgpu_mig_state::new_zeroed(), GFP_KERNEL)?;
        {
            let hw = self.hw.lock();
            hw.config.read(0, &mut st.config);
            let (dispi, byteorder) = hw.display.save();
            st.dispi = dispi.map(u16::to_le);
            st.byteorder = byteorder.to_le();
        }
        self.engine.save(&mut st);
        let s = self.state.lock();
        let n = s.params_text.len().min(st.params.len());
        st.params[..n].copy_from_slice(&s.params_text[..n]);
        st.params_len = (n as u32).to_le();
        Ok(st)
    }

    /// Applies a resumed device state; `EINVAL` (with one log line) if it is not one this vGPU
    /// can have.
    fn apply(&self, dev: &Device<Self>, st: &rvgpu_mig_state) -> Result {
        let id = u32::from_le_bytes([st.config[0], st.config[1], st.config[2], st.config[3]]);
        let ours = uapi::RVGPU_PCI_VENDOR_ID | (uapi::RVGPU_PCI_DEVICE_ID << 16);
        if id != ours {
            dev_err!(
                dev.dev(),
                "migration: device state for PCI device {:04x}:{:04x}, this vGPU is {:04x}:{:04x}\n",
                id & 0xffff,
                id >> 16,
                ours & 0xffff,
                ours >> 16
            );
            return Err(EINVAL);
        }
        let len = u32::from_le(st.params_len) as usize;
        let params = st.params.get(..len).ok_or(EINVAL).inspect_err(|_| {
            dev_err!(
                dev.dev(),
                "migration: vgpu_params of {} bytes in the device state\n",
                len
            )
        })?;
        let parsed = super::params::parse(params).map_err(|_| {
            dev_err!(
                dev.dev(),
                "migration: vgpu_params in the device state do not parse\n"
            );
            EINVAL
        })?;
        let byteorder = u32::from_le(st.byteorder);
        {
            let mut hw = self.hw.lock();
            hw.display
                .restore(st.dispi.map(u16::from_le), byteorder)
                .inspect_err(|_| {
                    dev_err!(
                        dev.dev(),
                        "migration: bad display registers in the device state\n"
                    )
                })?;
            hw.config.restore(&st.config);
            self.memory_on.store(hw.config.memory_enabled(), Relaxed);
        }
        self.engine.restore(st);
        Self::follow_scanout(dev);
        let mut s = self.state.lock();
        let mut text = KVec::with_capacity(len, GFP_KERNEL)?;
        text.extend_from_slice(params, GFP_KERNEL)?;
        s.params = parsed;
        s.params_text = text;
        Ok(())
    }

    /// One arc of the FSM (see the module documentation).
    fn step(
        &self,
        dev: &Device<Self>,
        m: &mut MigCtl,
        from: MigState,
        to: MigState,
    ) -> Result<Option<MigFile>> {
        use MigState::*;
        match (from, to) {
            (Running, RunningP2p)
            | (RunningP2p, Running)
            | (PreCopy, PreCopyP2p)
            | (PreCopyP2p, PreCopy) => Ok(None),
            (RunningP2p, Stop) | (Running, Stop) => {
                self.engine.stop();
                Ok(None)
            }
            (Stop, RunningP2p) | (Stop, Running) => {
                self.engine.resume();
                Ok(None)
            }
            (Running, PreCopy) | (RunningP2p, PreCopyP2p) => {
                let precopy = self.state.lock().params.precopy;
                let saver = self.saver(dev, precopy)?;
                let file = MigFile::new(dev, saver.clone(), false)?;
                m.saver = Some(saver);
                Ok(Some(file))
            }
            (PreCopy, Running) | (PreCopyP2p, RunningP2p) | (StopCopy, Stop) => {
                m.end_transfers();
                Ok(None)
            }
            (PreCopy, StopCopy) | (PreCopyP2p, StopCopy) => {
                self.engine.stop();
                let st = self.capture()?;
                m.saver.as_ref().ok_or(EINVAL)?.stop_copy(st);
                Ok(None)
            }
            (Stop, StopCopy) => {
                let saver = self.saver(dev, false)?;
                saver.stop_copy(self.capture()?);
                let file = MigFile::new(dev, saver.clone(), false)?;
                m.saver = Some(saver);
                Ok(Some(file))
            }
            (Stop, Resuming) => {
                let dev_ref: ARef<kernel::device::Device> = dev.dev().into();
                let resumer = Resumer::new(self.slice.clone(), self.stream_id(), dev_ref)?;
                let file = MigFile::new(dev, resumer.clone(), true)?;
                m.resumer = Some(resumer);
                Ok(Some(file))
            }
            (Resuming, Stop) => {
                let r = m.resumer.as_ref().ok_or(EINVAL)?;
                let st = r.finish();
                m.end_transfers();
                let applied = st.and_then(|st| self.apply(dev, &st));
                m.resume_failed = applied.is_err();
                applied.map(|()| None)
            }
            _ => Err(EINVAL),
        }
    }

    /// `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE` SET.
    pub(crate) fn set_migration_state(
        dev: &Device<Self>,
        target: MigState,
    ) -> Result<Option<MigFile>> {
        let mut m = dev.mig.lock();
        let cur = m.state;
        m.resume_failed = false;
        let (at, r) = migration::walk(dev, cur, target, |from, to| dev.step(dev, &mut m, from, to));
        // A refused resume leaves the device state undefined: ERROR until a reset. Any other
        // failure (an illegal target, say) leaves the state where the walk stopped.
        m.state = if m.resume_failed { MigState::Error } else { at };
        r
    }

    /// `VFIO_DEVICE_FEATURE_MIG_DATA_SIZE`.
    pub(crate) fn migration_data_size(&self) -> u64 {
        let m = self.mig.lock();
        match m.saver.as_ref() {
            Some(s) => s.stop_copy_bytes(),
            None => {
                let fb = self.slice.usable();
                let records = fb.div_ceil(u64::from(uapi::RVGPU_MIG_VRAM_MAX)) + 2;
                size_of::<uapi::rvgpu_mig_header>() as u64
                    + fb
                    + records * size_of::<uapi::rvgpu_mig_record>() as u64
                    + size_of::<rvgpu_mig_state>() as u64
            }
        }
    }
}
