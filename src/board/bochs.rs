// SPDX-License-Identifier: GPL-2.0

//! QEMU's Bochs display adapter (PCI 1234:1111): `bochs-display`, `secondary-vga` and the stdvga.
//!
//! BAR0 is the VRAM. BAR2 is a 4 KiB MMIO window: the EDID blob at 0x000, the VBE DISPI
//! registers at 0x500 (16-bit, index * 2) and QEMU's extension registers at 0x600.

use kernel::{
    device::Core,
    io::{
        Io,
        IoBase, //
    },
    pci,
    prelude::*, //
};

use super::{
    dispi::{
        self,
        DISPI_BPP,
        DISPI_ENABLE,
        DISPI_ID,
        DISPI_VIDEO_MEMORY_64K,
        DISPI_VIRT_WIDTH,
        DISPI_XRES,
        DISPI_X_OFFSET,
        DISPI_YRES,
        DISPI_Y_OFFSET, //
    },
    Board,
    BoardIdentity,
    Scan, //
};
use crate::{
    vfio::support::{
        cond_resched,
        mmio_bytes, //
    },
    vgpu::uapi, //
};

const QEMU_VENDOR_ID: u16 = uapi::RVGPU_PCI_VENDOR_ID as u16;
const BOCHS_DEVICE_ID: u16 = uapi::RVGPU_PCI_DEVICE_ID as u16;

/// Size of the MMIO BAR (BAR2): the same window a vGPU presents.
const MMIO_SIZE: usize = uapi::RVGPU_MMIO_SIZE as usize;

pub(super) struct Bochs {
    /// The framebuffer (BAR0), mapped whole.
    vram: pci::DevresBar,
    /// The MMIO registers (BAR2).
    mmio: pci::DevresBar<MMIO_SIZE>,
    vram_size: u64,
    vram_phys: u64,
    dispi_id: u16,
}

/// VRAM is cleared in chunks of this size, each under its own access guard, with the scheduler
/// let in between chunks.
const CLEAR_CHUNK: u64 = 1 << 20;

/// What a scrub copies into the VRAM, a page at a time.
static ZEROS: [u8; 4096] = [0; 4096];

impl Bochs {
    pub(super) fn probe(pdev: &pci::Device<Core<'_>>) -> Result<Self> {
        if pdev.vendor_id().as_raw() != QEMU_VENDOR_ID || pdev.device_id() != BOCHS_DEVICE_ID {
            return Err(ENODEV);
        }
        pdev.enable_device_mem()?;

        let mmio = pdev
            .iomap_region_sized::<MMIO_SIZE>(2, c"rvgpu/mmio")
            .inspect_err(|e| dev_err!(pdev, "cannot map the MMIO BAR (BAR2): {:?}\n", e))?;
        let dispi_id: u16 = mmio.read(DISPI_ID).id().into();
        if !dispi_id_is_known(dispi_id) {
            dev_err!(pdev, "unknown DISPI interface id {:#06x}\n", dispi_id);
            return Err(ENODEV);
        }
        let bar_len = pdev.resource_len(0)?;
        let units: u16 = mmio.read(DISPI_VIDEO_MEMORY_64K).units().into();
        let vram_size = vram_size(units, bar_len).inspect_err(|_| {
            dev_err!(
                pdev,
                "VRAM size register says {} x 64 KiB, BAR0 is {} bytes\n",
                units,
                bar_len
            )
        })?;
        let vram = pdev
            .iomap_region(0, c"rvgpu/vram")
            .inspect_err(|e| dev_err!(pdev, "cannot map the VRAM BAR (BAR0): {:?}\n", e))?;

        let vram_phys = pdev.resource_start(0)?;
        Ok(Self {
            vram_phys,
            vram: vram.into_devres()?,
            mmio: mmio.into_devres()?,
            vram_size,
            dispi_id,
        })
    }
}

impl Board for Bochs {
    fn model(&self) -> &'static str {
        "bochs"
    }

    fn vram_size(&self) -> u64 {
        self.vram_size
    }

    fn identity(&self) -> BoardIdentity {
        BoardIdentity {
            interface: "DISPI",
            version: self.dispi_id.into(),
        }
    }

    fn vram_clear(&self, offset: u64, len: u64) -> Result {
        let end = offset.checked_add(len).ok_or(EINVAL)?;
        if end > self.vram_size || offset % 8 != 0 || len % 8 != 0 {
            return Err(EINVAL);
        }
        let mut pos = offset;
        while pos < end {
            let chunk_end = end.min(pos + CLEAR_CHUNK);
            {
                let bar = self.vram.try_access().ok_or(ENODEV)?;
                while pos < chunk_end {
                    let n = (chunk_end - pos).min(ZEROS.len() as u64) as usize;
                    mmio_bytes((&*bar).as_view(), usize::try_from(pos)?, n)?
                        .copy_from_slice(&ZEROS[..n]);
                    pos += n as u64;
                }
            }
            cond_resched();
        }
        Ok(())
    }

    fn vram_read(&self, offset: u64, buf: &mut [u8]) -> Result {
        self.check_range(offset, buf.len())?;
        let bar = self.vram.try_access().ok_or(ENODEV)?;
        mmio_bytes((&*bar).as_view(), usize::try_from(offset)?, buf.len())?.copy_to_slice(buf);
        Ok(())
    }

    fn vram_write(&self, offset: u64, data: &[u8]) -> Result {
        self.check_range(offset, data.len())?;
        let bar = self.vram.try_access().ok_or(ENODEV)?;
        mmio_bytes((&*bar).as_view(), usize::try_from(offset)?, data.len())?.copy_from_slice(data);
        Ok(())
    }

    fn vram_phys(&self) -> u64 {
        self.vram_phys
    }

    /// Programs the DISPI registers: BPP, XRES, YRES, enable (with NOCLEARMEM, so the picture
    /// is not cleared), then VIRT_WIDTH and the X/Y offsets that put the scan-out start at
    /// `scan.offset` (`X_OFFSET * bytes per pixel + Y_OFFSET * stride`, as QEMU scans out).
    fn show(&self, scan: Option<Scan>) -> Result {
        let io = self.mmio.try_access().ok_or(ENODEV)?;
        io.write_reg(DISPI_ENABLE::zeroed());
        let Some(s) = scan else {
            return Ok(());
        };
        let bytes = match s.bpp {
            32 => 4,
            24 => 3,
            15 | 16 => 2,
            8 => 1,
            _ => return Err(EINVAL),
        };
        let line = u64::from(s.stride);
        let fits = |v: u64| u16::try_from(v).map_err(|_| EINVAL);
        if line == 0 || s.stride % bytes != 0 || (s.offset % line) % u64::from(bytes) != 0 {
            return Err(EINVAL);
        }
        if s.offset + line * u64::from(s.height) > self.vram_size {
            return Err(EINVAL);
        }
        let virt = fits(u64::from(s.stride / bytes))?;
        let y = fits(s.offset / line)?;
        let x = fits((s.offset % line) / u64::from(bytes))?;
        io.write_reg(DISPI_BPP::from(fits(s.bpp.into())?));
        io.write_reg(DISPI_XRES::from(fits(s.width.into())?));
        io.write_reg(DISPI_YRES::from(fits(s.height.into())?));
        io.write_reg(
            DISPI_ENABLE::zeroed()
                .with_enabled(true)
                .with_lfb_enabled(true)
                .with_noclearmem(true),
        );
        io.write_reg(DISPI_VIRT_WIDTH::from(virt));
        io.write_reg(DISPI_X_OFFSET::from(x));
        io.write_reg(DISPI_Y_OFFSET::from(y));
        Ok(())
    }
}

impl Bochs {
    fn check_range(&self, offset: u64, len: usize) -> Result {
        let end = offset.checked_add(len as u64).ok_or(EINVAL)?;
        if end > self.vram_size {
            return Err(EINVAL);
        }
        Ok(())
    }
}

fn dispi_id_is_known(id: u16) -> bool {
    (dispi::ID_MIN..=dispi::ID_MAX).contains(&id)
}

/// The VRAM size the board reports (in 64 KiB units), checked against the BAR0 length.
fn vram_size(units_64k: u16, bar0_len: u64) -> Result<u64> {
    let size = u64::from(units_64k) << 16;
    if size == 0 || size > bar0_len {
        return Err(EIO);
    }
    Ok(size)
}

#[kunit_tests(rvgpu_board_bochs)]
mod tests {
    use super::*;

    #[test]
    fn vram_size_from_register() {
        assert_eq!(vram_size(1024, 64 << 20), Ok(64 << 20));
        assert_eq!(vram_size(4096, 256 << 20), Ok(256 << 20));
        assert_eq!(vram_size(8192, 512 << 20), Ok(512 << 20));
        // A register smaller than the BAR is the usable part.
        assert_eq!(vram_size(256, 64 << 20), Ok(16 << 20));
    }

    #[test]
    fn vram_size_rejects_nonsense() {
        assert_eq!(vram_size(0, 64 << 20), Err(EIO));
        assert_eq!(vram_size(2048, 64 << 20), Err(EIO));
    }

    #[test]
    fn dispi_ids() {
        assert!(dispi_id_is_known(0xb0c0));
        assert!(dispi_id_is_known(0xb0c5));
        assert!(!dispi_id_is_known(0xb0c6));
        assert!(!dispi_id_is_known(0xffff));
    }
}
