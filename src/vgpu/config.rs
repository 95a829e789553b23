// SPDX-License-Identifier: GPL-2.0

//! The vGPU's emulated PCI configuration space (256 bytes).
//!
//! IDs and class are those of QEMU's `bochs-display` (1234:1111, class 0x038000, revision 2),
//! so the guest's stock bochs-drm driver binds. BAR0 is the framebuffer (32-bit prefetchable
//! memory, the size of the type's profile), BAR2 the 4 KiB register window (32-bit memory). The
//! capability list holds power management (0x40) and MSI (0x48, one 64-bit vector).
//!
//! Writes go through a per-byte write mask: read-only bits keep their value whatever is
//! written, BAR address bits below the BAR size read back as zero (BAR sizing works as on
//! hardware).

use kernel::prelude::*;

use super::uapi;

/// Size of the configuration space.
pub(crate) const SIZE: usize = 256;

pub(crate) const COMMAND: usize = 0x04;
/// `PCI_COMMAND_MEMORY`: memory decode on.
pub(crate) const COMMAND_MEMORY: u16 = 0x2;
const COMMAND_MASTER: u16 = 0x4;
const COMMAND_SERR: u16 = 0x100;
const COMMAND_PARITY: u16 = 0x40;
const COMMAND_INTX_DISABLE: u16 = 0x400;

const STATUS: usize = 0x06;
const STATUS_CAP_LIST: u16 = 0x10;
const BAR0: usize = 0x10;
const BAR2: usize = 0x18;
const BAR_MEM_PREFETCH: u32 = 0x8;
const CAP_PTR: usize = 0x34;
const INTERRUPT_LINE: usize = 0x3c;

const PM_CAP: usize = 0x40;
const MSI_CAP: usize = 0x48;
/// MSI control: 64-bit address capable, one vector.
const MSI_FLAGS_64BIT: u16 = 0x80;

/// The register window (BAR2) size.
const MMIO_BAR_SIZE: u32 = super::bar2::SIZE as u32;

/// The configuration space of one vGPU.
pub(crate) struct ConfigSpace {
    bytes: [u8; SIZE],
    wmask: [u8; SIZE],
    /// The power-on contents, for reset.
    reset: [u8; SIZE],
}

impl ConfigSpace {
    /// A configuration space at power-on for a framebuffer BAR of `fb_bar_size` bytes (a power of
    /// two).
    pub(crate) fn new(fb_bar_size: u32) -> Self {
        let mut c = Self {
            bytes: [0; SIZE],
            wmask: [0; SIZE],
            reset: [0; SIZE],
        };
        c.put16(0x00, uapi::RVGPU_PCI_VENDOR_ID as u16);
        c.put16(0x02, uapi::RVGPU_PCI_DEVICE_ID as u16);
        c.put16(STATUS, STATUS_CAP_LIST);
        // Revision 2: bochs-drm then reads QEMU's extension registers.
        c.bytes[0x08] = uapi::RVGPU_PCI_REVISION as u8;
        // Display controller, other.
        c.bytes[0x0a] = (uapi::RVGPU_PCI_CLASS >> 8) as u8;
        c.bytes[0x0b] = (uapi::RVGPU_PCI_CLASS >> 16) as u8;
        c.put16(0x2c, uapi::RVGPU_PCI_SUBSYSTEM_VENDOR_ID as u16); // QEMU's.
        c.put16(0x2e, uapi::RVGPU_PCI_SUBSYSTEM_ID as u16);
        c.put32(BAR0, BAR_MEM_PREFETCH);
        c.put32(BAR2, 0);
        c.bytes[INTERRUPT_LINE + 1] = 1; // Interrupt pin A.
        c.bytes[CAP_PTR] = PM_CAP as u8;
        // Power management, version 3; PMCSR: D0.
        c.bytes[PM_CAP] = 0x01;
        c.bytes[PM_CAP + 1] = MSI_CAP as u8;
        c.put16(PM_CAP + 2, 0x0003);
        // MSI: one vector, 64-bit.
        c.bytes[MSI_CAP] = 0x05;
        c.bytes[MSI_CAP + 1] = 0;
        c.put16(MSI_CAP + 2, MSI_FLAGS_64BIT);

        let cmd =
            COMMAND_MEMORY | COMMAND_MASTER | COMMAND_SERR | COMMAND_PARITY | COMMAND_INTX_DISABLE;
        c.mask16(COMMAND, cmd);
        c.wmask[0x0c] = 0xff; // Cache line size.
        c.wmask[0x0d] = 0xff; // Latency timer.
        c.mask32(BAR0, !(fb_bar_size - 1) & !0xf);
        c.mask32(BAR2, !(MMIO_BAR_SIZE - 1) & !0xf);
        c.wmask[INTERRUPT_LINE] = 0xff;
        c.mask16(PM_CAP + 4, 0x0003); // PMCSR power state.
        c.mask16(MSI_CAP + 2, 0x0071); // Enable and multiple-message enable.
        c.mask32(MSI_CAP + 4, !0x3); // Address low, dword aligned.
        c.mask32(MSI_CAP + 8, !0); // Address high.
        c.mask16(MSI_CAP + 12, 0xffff); // Data.
        c.reset = c.bytes;
        c
    }

    fn put16(&mut self, off: usize, v: u16) {
        self.bytes[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn put32(&mut self, off: usize, v: u32) {
        self.bytes[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn mask16(&mut self, off: usize, m: u16) {
        self.wmask[off..off + 2].copy_from_slice(&m.to_le_bytes());
    }

    fn mask32(&mut self, off: usize, m: u32) {
        self.wmask[off..off + 4].copy_from_slice(&m.to_le_bytes());
    }

    fn get16(&self, off: usize) -> u16 {
        u16::from_le_bytes([self.bytes[off], self.bytes[off + 1]])
    }

    /// The bytes at `off..off + out.len()`; the caller checks the range.
    pub(crate) fn read(&self, off: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.bytes[off..off + out.len()]);
    }

    /// Writes `data` at `off` through the write mask; the caller checks the range.
    pub(crate) fn write(&mut self, off: usize, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            let m = self.wmask[off + i];
            let old = self.bytes[off + i];
            self.bytes[off + i] = (old & !m) | (b & m);
        }
        // Only 0 is a valid multiple-message enable with one vector.
        let msi = self.get16(MSI_CAP + 2) & !0x0070;
        self.put16(MSI_CAP + 2, msi);
    }

    /// Sets the MSI capability's enable bit: the state follows what user space set up through
    /// `VFIO_DEVICE_SET_IRQS`.
    pub(crate) fn set_msi_enabled(&mut self, on: bool) {
        let ctl = self.get16(MSI_CAP + 2);
        self.put16(MSI_CAP + 2, if on { ctl | 1 } else { ctl & !1 });
    }

    /// Whether memory decode is on (BAR accesses are answered).
    pub(crate) fn memory_enabled(&self) -> bool {
        self.get16(COMMAND) & COMMAND_MEMORY != 0
    }

    /// Takes resumed contents (the caller checked the IDs), through the write mask as a guest
    /// write would: read-only bits keep this device's values.
    pub(crate) fn restore(&mut self, bytes: &[u8; SIZE]) {
        self.write(0, bytes);
    }

    /// Back to the power-on contents.
    pub(crate) fn reset(&mut self) {
        self.bytes = self.reset;
    }
}

#[kunit_tests(rvgpu_vgpu_config)]
mod tests {
    use super::*;

    fn read32(c: &ConfigSpace, off: usize) -> u32 {
        let mut b = [0u8; 4];
        c.read(off, &mut b);
        u32::from_le_bytes(b)
    }

    #[test]
    fn identity() {
        let c = ConfigSpace::new(64 << 20);
        assert_eq!(read32(&c, 0), 0x1111_1234);
        assert_eq!(read32(&c, 8) >> 8, 0x038000);
        assert_eq!(c.bytes[CAP_PTR], 0x40);
        assert_eq!(c.bytes[0x40], 1);
        assert_eq!(c.bytes[0x41], 0x48);
        assert_eq!(c.bytes[0x48], 5);
        assert!(!c.memory_enabled());
    }

    #[test]
    fn bar_sizing() {
        let mut c = ConfigSpace::new(64 << 20);
        c.write(BAR0, &u32::MAX.to_le_bytes());
        assert_eq!(read32(&c, BAR0), 0xfc00_0008);
        c.write(BAR2, &u32::MAX.to_le_bytes());
        assert_eq!(read32(&c, BAR2), 0xffff_f000);
        c.write(BAR0, &0xe123_4567u32.to_le_bytes());
        assert_eq!(read32(&c, BAR0), 0xe000_0008);
        // Unimplemented BARs stay zero.
        c.write(0x14, &u32::MAX.to_le_bytes());
        assert_eq!(read32(&c, 0x14), 0);
    }

    #[test]
    fn read_only_fields_and_reset() {
        let mut c = ConfigSpace::new(16 << 20);
        c.write(0, &[0xff; 12]);
        assert_eq!(read32(&c, 0), 0x1111_1234);
        c.write(COMMAND, &[0xff, 0xff]);
        assert!(c.memory_enabled());
        assert_eq!(c.get16(COMMAND), 0x0546);
        c.write(MSI_CAP + 2, &[0xff, 0xff]);
        assert_eq!(c.get16(MSI_CAP + 2), 0x0081);
        c.set_msi_enabled(false);
        assert_eq!(c.get16(MSI_CAP + 2), 0x0080);
        c.set_msi_enabled(true);
        assert_eq!(c.get16(MSI_CAP + 2), 0x0081);
        c.reset();
        assert!(!c.memory_enabled());
        assert_eq!(c.get16(MSI_CAP + 2), MSI_FLAGS_64BIT);
    }
}
