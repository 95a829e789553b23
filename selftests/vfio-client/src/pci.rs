// SPDX-License-Identifier: GPL-2.0
//! A little decoding of a PCI type-0 configuration header, as read from the VFIO config region.

/// One decoded Base Address Register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bar {
    /// I/O space BAR.
    Io {
        /// Address bits (low two bits cleared).
        addr: u32,
    },
    /// 32-bit memory BAR.
    Mem32 {
        /// Address bits (low four bits cleared).
        addr: u32,
        /// Prefetchable bit.
        prefetchable: bool,
    },
    /// 64-bit memory BAR (this index and the next).
    Mem64 {
        /// Address bits (low four bits cleared) from both registers.
        addr: u64,
        /// Prefetchable bit.
        prefetchable: bool,
    },
    /// Upper half of the previous 64-bit BAR.
    Upper,
}

/// A PCI capability found on the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    /// Offset in config space.
    pub offset: u8,
    /// Capability id.
    pub id: u8,
}

impl Capability {
    /// A short name for well-known ids.
    pub fn name(&self) -> &'static str {
        match self.id {
            0x01 => "PM",
            0x05 => "MSI",
            0x09 => "VENDOR",
            0x10 => "PCIe",
            0x11 => "MSI-X",
            0x12 => "SATA",
            0x13 => "AF",
            _ => "?",
        }
    }
}

/// A config-space snapshot (at least the 64-byte header; 256 bytes for capabilities).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciConfig {
    bytes: Vec<u8>,
}

impl PciConfig {
    /// Wraps the bytes read from config space.
    pub fn new(bytes: Vec<u8>) -> PciConfig {
        PciConfig { bytes }
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn u8_at(&self, off: usize) -> u8 {
        self.bytes.get(off).copied().unwrap_or(0)
    }
    fn u16_at(&self, off: usize) -> u16 {
        u16::from_le_bytes([self.u8_at(off), self.u8_at(off + 1)])
    }
    fn u32_at(&self, off: usize) -> u32 {
        u32::from_le_bytes([self.u8_at(off), self.u8_at(off + 1), self.u8_at(off + 2), self.u8_at(off + 3)])
    }

    /// Vendor ID (0x00).
    pub fn vendor_id(&self) -> u16 {
        self.u16_at(0x00)
    }
    /// Device ID (0x02).
    pub fn device_id(&self) -> u16 {
        self.u16_at(0x02)
    }
    /// Command register (0x04).
    pub fn command(&self) -> u16 {
        self.u16_at(0x04)
    }
    /// Status register (0x06).
    pub fn status(&self) -> u16 {
        self.u16_at(0x06)
    }
    /// Revision ID (0x08).
    pub fn revision(&self) -> u8 {
        self.u8_at(0x08)
    }
    /// 24-bit class code: base class, subclass, programming interface (0x09..0x0b).
    pub fn class_code(&self) -> u32 {
        self.u32_at(0x08) >> 8
    }
    /// Header type (0x0e), without the multi-function bit.
    pub fn header_type(&self) -> u8 {
        self.u8_at(0x0e) & 0x7f
    }
    /// Subsystem vendor ID (0x2c).
    pub fn subsystem_vendor_id(&self) -> u16 {
        self.u16_at(0x2c)
    }
    /// Subsystem ID (0x2e).
    pub fn subsystem_id(&self) -> u16 {
        self.u16_at(0x2e)
    }
    /// Interrupt line (0x3c).
    pub fn interrupt_line(&self) -> u8 {
        self.u8_at(0x3c)
    }
    /// Interrupt pin (0x3d; 0 none, 1 INTA...).
    pub fn interrupt_pin(&self) -> u8 {
        self.u8_at(0x3d)
    }

    /// The raw BAR register `i` (0..6).
    pub fn bar_raw(&self, i: usize) -> u32 {
        self.u32_at(0x10 + 4 * i)
    }

    /// The six BARs of a type-0 header, decoded from their type bits alone: an unimplemented BAR
    /// reads 0 and so decodes as a 32-bit memory BAR at 0; only the region size (or BAR sizing)
    /// tells them apart.
    pub fn bars(&self) -> [Bar; 6] {
        let mut bars = [Bar::Upper; 6];
        let mut i = 0;
        while i < 6 {
            let raw = self.bar_raw(i);
            bars[i] = if raw & 1 != 0 {
                Bar::Io { addr: raw & !0x3 }
            } else if (raw >> 1) & 0x3 == 0x2 && i < 5 {
                let addr = u64::from(raw & !0xf) | (u64::from(self.bar_raw(i + 1)) << 32);
                bars[i + 1] = Bar::Upper;
                let b = Bar::Mem64 { addr, prefetchable: raw & 0x8 != 0 };
                bars[i] = b;
                i += 2;
                continue;
            } else {
                Bar::Mem32 { addr: raw & !0xf, prefetchable: raw & 0x8 != 0 }
            };
            i += 1;
        }
        bars
    }

    /// The capability list (status bit 4 set, pointer at 0x34), walked safely: stops on a
    /// pointer below 0x40 or out of the snapshot, and after 48 entries (a loop).
    pub fn capabilities(&self) -> Vec<Capability> {
        let mut caps = Vec::new();
        if self.status() & 0x10 == 0 {
            return caps;
        }
        let mut p = self.u8_at(0x34) & !0x3;
        while p >= 0x40 && (p as usize) + 1 < self.bytes.len() && caps.len() < 48 {
            caps.push(Capability { offset: p, id: self.u8_at(p as usize) });
            p = self.u8_at(p as usize + 1) & !0x3;
        }
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Vec<u8> {
        let mut c = vec![0u8; 256];
        c[0..2].copy_from_slice(&0x1234u16.to_le_bytes());
        c[2..4].copy_from_slice(&0x1111u16.to_le_bytes());
        c[6..8].copy_from_slice(&0x0010u16.to_le_bytes());
        c[8] = 2;
        c[9..12].copy_from_slice(&[0x00, 0x00, 0x03]);
        c[0x10..0x14].copy_from_slice(&0xfe00_0008u32.to_le_bytes()); // mem32 prefetchable
        c[0x14..0x18].copy_from_slice(&0x0000_c001u32.to_le_bytes()); // io
        c[0x18..0x1c].copy_from_slice(&0xfebf_000cu32.to_le_bytes()); // mem64 prefetchable
        c[0x1c..0x20].copy_from_slice(&0x0000_0001u32.to_le_bytes());
        c[0x34] = 0x40;
        c[0x40] = 0x05;
        c[0x41] = 0x50;
        c[0x50] = 0x11;
        c[0x51] = 0x00;
        c
    }

    #[test]
    fn decodes_header_bars_and_caps() {
        let c = PciConfig::new(cfg());
        assert_eq!((c.vendor_id(), c.device_id(), c.revision()), (0x1234, 0x1111, 2));
        assert_eq!(c.class_code(), 0x030000);
        assert_eq!(
            c.bars(),
            [
                Bar::Mem32 { addr: 0xfe00_0000, prefetchable: true },
                Bar::Io { addr: 0xc000 },
                Bar::Mem64 { addr: 0x1_febf_0000, prefetchable: true },
                Bar::Upper,
                Bar::Mem32 { addr: 0, prefetchable: false },
                Bar::Mem32 { addr: 0, prefetchable: false },
            ]
        );
        let caps = c.capabilities();
        assert_eq!(caps, vec![Capability { offset: 0x40, id: 5 }, Capability { offset: 0x50, id: 0x11 }]);
        assert_eq!(caps[1].name(), "MSI-X");
    }

    #[test]
    fn capability_loop_is_bounded() {
        let mut b = cfg();
        b[0x51] = 0x40; // 0x50 -> 0x40 -> 0x50 ...
        assert_eq!(PciConfig::new(b).capabilities().len(), 48);
    }

    #[test]
    fn short_snapshot_reads_zero() {
        let c = PciConfig::new(vec![0x34, 0x12]);
        assert_eq!(c.vendor_id(), 0x1234);
        assert_eq!(c.device_id(), 0);
        assert!(c.capabilities().is_empty());
    }
}
