// SPDX-License-Identifier: GPL-2.0

//! A vGPU's VFIO regions, laid out as vfio-pci does (region index in the device-file offset's
//! bits from 40 up): the config space, BAR0 (the framebuffer: its usable part mapped straight
//! onto the vGPU's VRAM slice, the host's reservation reading all-ones) and BAR2 (the register
//! window, decoded in `bar2.rs`).

use kernel::{
    prelude::*,
    sync::atomic::Relaxed,
    uaccess::{
        UserSliceReader,
        UserSliceWriter, //
    }, //
};

use super::{
    bar2::{
        self,
        Reg, //
    },
    config,
    display::Effect,
    instance::Vgpu,
    scanout::{
        self,
        REGION_DISPLAY, //
    },
};
use crate::vfio::{
    bindings as vb,
    device::{
        region_offset,
        split_offset,
        Mmap,
        RegionInfo, //
    },
    support::cond_resched,
};

const REGION_FB: u32 = vb::VFIO_PCI_BAR0_REGION_INDEX;
const REGION_MMIO: u32 = vb::VFIO_PCI_BAR2_REGION_INDEX;
const REGION_CONFIG: u32 = vb::VFIO_PCI_CONFIG_REGION_INDEX;
/// Framebuffer reads and writes through the device file go through a buffer of this size...
const FB_CHUNK: usize = 256;
/// ...and let the scheduler in after this many bytes.
const FB_STEP: usize = 1 << 20;

/// A region access: which region, where in it.
struct Access {
    index: u32,
    pos: usize,
}

/// Splits a device-file offset into region index and offset inside it, refusing accesses that
/// cross the end of their region.
fn access(offset: u64, len: usize, fb_size: u64, display_size: u64) -> Result<Access> {
    let (index, pos) = split_offset(offset);
    let index = u32::try_from(index).map_err(|_| EINVAL)?;
    let end = pos.checked_add(len as u64).ok_or(EINVAL)?;
    let limit = match index {
        REGION_CONFIG => config::SIZE as u64,
        REGION_MMIO => bar2::SIZE as u64,
        REGION_FB => fb_size,
        REGION_DISPLAY => display_size,
        _ => return Err(EINVAL),
    };
    if end > limit {
        return Err(EINVAL);
    }
    Ok(Access {
        index,
        pos: usize::try_from(pos)?,
    })
}

impl Vgpu {
    /// `VFIO_DEVICE_GET_REGION_INFO`.
    pub(super) fn region(&self, index: u32) -> Result<RegionInfo> {
        if index > REGION_DISPLAY {
            return Err(EINVAL);
        }
        let rw = vb::VFIO_REGION_INFO_FLAG_READ | vb::VFIO_REGION_INFO_FLAG_WRITE;
        let mut info = RegionInfo {
            offset: region_offset(index, 0),
            ..RegionInfo::default()
        };
        match index {
            REGION_FB => {
                info.size = self.vtype.profile_bytes();
                info.flags = rw | vb::VFIO_REGION_INFO_FLAG_MMAP;
                // Only the usable part maps; the reservation at the end is the host's.
                info.sparse_mmap = Some((0, self.slice.usable()));
            }
            REGION_MMIO => {
                info.size = bar2::SIZE as u64;
                info.flags = rw;
            }
            REGION_CONFIG => {
                info.size = config::SIZE as u64;
                info.flags = rw;
            }
            REGION_DISPLAY => {
                info.size = self.scanout.size();
                info.flags = rw | vb::VFIO_REGION_INFO_FLAG_MMAP;
                info.region_type = Some(scanout::REGION_TYPE);
            }
            _ => {}
        }
        Ok(info)
    }

    pub(super) fn region_read(&self, offset: u64, out: &mut UserSliceWriter) -> Result<usize> {
        let len = out.len();
        let a = self.access(offset, len)?;
        match a.index {
            REGION_CONFIG => {
                let mut buf = [0u8; config::SIZE];
                let b = buf.get_mut(..len).ok_or(EINVAL)?;
                self.hw.lock().config.read(a.pos, b);
                out.write_slice(b)?;
            }
            REGION_MMIO => {
                let v = self.mmio_read(a.pos, len)?;
                out.write_slice(&v.to_le_bytes()[..len])?;
            }
            REGION_DISPLAY => self.fb_read(self.display_pos(a.pos)?, out)?,
            _ => self.fb_read(a.pos, out)?,
        }
        Ok(len)
    }

    /// A region write; the bytes written, and whether a display register was.
    pub(super) fn region_write(
        &self,
        offset: u64,
        data: &mut UserSliceReader,
    ) -> Result<(usize, bool)> {
        let len = data.len();
        let a = self.access(offset, len)?;
        let mut display = false;
        match a.index {
            REGION_CONFIG => {
                let mut buf = [0u8; config::SIZE];
                let b = buf.get_mut(..len).ok_or(EINVAL)?;
                data.read_slice(b)?;
                let mut hw = self.hw.lock();
                hw.config.write(a.pos, b);
                self.memory_on.store(hw.config.memory_enabled(), Relaxed);
            }
            REGION_MMIO => {
                let mut b = [0u8; 4];
                let bytes = b.get_mut(..len).ok_or(EINVAL)?;
                data.read_slice(bytes)?;
                display = self.mmio_write(a.pos, len, u32::from_le_bytes(b))?;
            }
            REGION_DISPLAY => self.fb_write(self.display_pos(a.pos)?, data)?,
            _ => self.fb_write(a.pos, data)?,
        }
        Ok((len, display))
    }

    fn access(&self, offset: u64, len: usize) -> Result<Access> {
        if self.slice.gpu().is_gone() {
            return Err(ENODEV);
        }
        access(offset, len, self.vtype.profile_bytes(), self.scanout.size())
    }

    /// A display-region offset as a framebuffer offset (beyond the usable part it reads
    /// all-ones and drops writes, as the framebuffer's reservation does).
    fn display_pos(&self, pos: usize) -> Result<usize> {
        usize::try_from(self.scanout.start())?
            .checked_add(pos)
            .ok_or(EINVAL)
    }

    pub(super) fn region_mmap(&self, vma: &Mmap<'_>) -> Result {
        let (index, pos) = vma.region();
        if self.slice.gpu().is_gone() {
            return Err(ENODEV);
        }
        if !vma.is_shared() {
            return Err(EINVAL);
        }
        match u32::try_from(index) {
            Ok(REGION_FB) => self.slice.mmap(pos, vma),
            Ok(REGION_DISPLAY) => self.scanout.mmap(pos, vma),
            _ => Err(EINVAL),
        }
    }

    /// A trapped register read: decoded once (`bar2::pieces`), each register read where it is
    /// emulated. Memory decode off reads all-ones.
    fn mmio_read(&self, pos: usize, len: usize) -> Result<u32> {
        let (pieces, n) = bar2::pieces(pos, len)?;
        if !self.memory_on.load(Relaxed) {
            return Ok(u32::MAX);
        }
        if let Reg::Engine(r) = pieces[0].reg {
            return Ok(self.engine.read(r));
        }
        let hw = self.hw.lock();
        Ok(pieces[..n]
            .iter()
            .fold(0, |v, p| v | p.extract(hw.display.read(p.reg))))
    }

    /// A trapped register write. A partial write merges into its register. Whether it was a
    /// display register.
    fn mmio_write(&self, pos: usize, len: usize, val: u32) -> Result<bool> {
        let (pieces, n) = bar2::pieces(pos, len)?;
        if !self.memory_on.load(Relaxed) {
            return Ok(false);
        }
        if let Reg::Engine(r) = pieces[0].reg {
            self.engine.write(r, val);
            return Ok(false);
        }
        let mut effect = Effect::None;
        {
            let mut hw = self.hw.lock();
            for p in &pieces[..n] {
                let new = p.merge(hw.display.stored(p.reg), val);
                if let e @ Effect::ClearFramebuffer(_) = hw.display.write(p.reg, new) {
                    effect = e;
                }
            }
        }
        if let Effect::ClearFramebuffer(bytes) = effect {
            // In the vCPU's write, outside the lock, in bounded steps. A board that is gone
            // has nothing to clear.
            let _ = self.slice.clear(0, u64::from(bytes));
        }
        Ok(true)
    }

    /// Whether a framebuffer access reaches VRAM: not in the host's reservation (all-ones,
    /// writes dropped), not with memory decode off.
    fn fb_live(&self, pos: usize, len: usize) -> bool {
        (pos + len) as u64 <= self.slice.usable() && self.memory_on.load(Relaxed)
    }

    fn fb_read(&self, pos: usize, out: &mut UserSliceWriter) -> Result {
        let len = out.len();
        let live = self.fb_live(pos, len);
        let mut buf = [0xffu8; FB_CHUNK];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(FB_CHUNK);
            if live {
                self.slice.read((pos + done) as u64, &mut buf[..n])?;
            }
            out.write_slice(&buf[..n])?;
            done += n;
            if done % FB_STEP == 0 {
                cond_resched();
            }
        }
        Ok(())
    }

    fn fb_write(&self, pos: usize, data: &mut UserSliceReader) -> Result {
        let len = data.len();
        let live = self.fb_live(pos, len);
        let mut buf = [0u8; FB_CHUNK];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(FB_CHUNK);
            data.read_slice(&mut buf[..n])?;
            if live {
                self.slice.write((pos + done) as u64, &buf[..n])?;
            }
            done += n;
            if done % FB_STEP == 0 {
                cond_resched();
            }
        }
        Ok(())
    }
}
