// SPDX-License-Identifier: GPL-2.0
//! Parsing of VFIO capability chains (`struct vfio_info_cap_header` lists) as returned after a
//! `vfio_region_info`.

use std::io;

use crate::uapi::{
    read_pod, vfio_info_cap_header, vfio_region_info_cap_sparse_mmap, vfio_region_info_cap_type,
    vfio_region_sparse_mmap_area, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, VFIO_REGION_INFO_CAP_SPARSE_MMAP,
    VFIO_REGION_INFO_CAP_TYPE,
};

/// One mmap-able area of a region (`struct vfio_region_sparse_mmap_area`), relative to the region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseArea {
    /// Offset of the area within the region.
    pub offset: u64,
    /// Size of the area in bytes.
    pub size: u64,
}

/// A region capability, decoded where this crate knows the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionCap {
    /// `VFIO_REGION_INFO_CAP_SPARSE_MMAP`: only these areas may be mmap'd.
    SparseMmap {
        /// Capability version from the header.
        version: u16,
        /// The areas, in the kernel's order.
        areas: Vec<SparseArea>,
    },
    /// `VFIO_REGION_INFO_CAP_TYPE`: a device-specific region type.
    Type {
        /// Capability version from the header.
        version: u16,
        /// Region type (`VFIO_REGION_TYPE_*`, possibly with `VFIO_REGION_TYPE_PCI_VENDOR_TYPE`).
        type_: u32,
        /// Type-specific subtype.
        subtype: u32,
    },
    /// `VFIO_REGION_INFO_CAP_MSIX_MAPPABLE` (a header without payload).
    MsixMappable {
        /// Capability version from the header.
        version: u16,
    },
    /// Any other id: the header and the raw bytes up to the next capability (or the buffer end).
    Unknown {
        /// Capability id.
        id: u16,
        /// Capability version.
        version: u16,
        /// Bytes after the 8-byte header.
        data: Vec<u8>,
    },
}

impl RegionCap {
    /// The capability id (`VFIO_REGION_INFO_CAP_*`).
    pub fn id(&self) -> u16 {
        match self {
            RegionCap::SparseMmap { .. } => VFIO_REGION_INFO_CAP_SPARSE_MMAP,
            RegionCap::Type { .. } => VFIO_REGION_INFO_CAP_TYPE,
            RegionCap::MsixMappable { .. } => VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
            RegionCap::Unknown { id, .. } => *id,
        }
    }
}

/// A malformed chain: `EINVAL`-style `InvalidData` error with a description.
fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Upper bound on the number of capabilities walked, against cyclic chains.
const MAX_CAPS: usize = 256;

/// Walks the chain in `buf` (the whole `argsz`-sized info buffer) starting at offset `first`
/// (`cap_offset`; 0 means no capability). Offsets are relative to the start of `buf`, as in the
/// kernel ABI. Fails with `InvalidData` on out-of-bounds headers or payloads, a chain that points
/// backwards or into the fixed info struct, and loops.
pub fn parse_chain(buf: &[u8], first: u32, fixed_size: usize) -> io::Result<Vec<RegionCap>> {
    let mut caps = Vec::new();
    let mut off = first as usize;
    while off != 0 {
        if caps.len() >= MAX_CAPS {
            return Err(bad(format!("capability chain longer than {MAX_CAPS} entries")));
        }
        if off < fixed_size {
            return Err(bad(format!("capability at {off:#x} overlaps the {fixed_size}-byte info struct")));
        }
        let hdr: vfio_info_cap_header = read_pod(buf, off)
            .ok_or_else(|| bad(format!("capability header at {off:#x} beyond the {}-byte buffer", buf.len())))?;
        let next = hdr.next as usize;
        if next != 0 && next <= off {
            return Err(bad(format!("capability at {off:#x} links backwards to {next:#x}")));
        }
        // The payload of this capability ends at the next one, or at the end of the buffer.
        let end = if next == 0 { buf.len() } else { next.min(buf.len()) };
        caps.push(parse_one(buf, off, end, &hdr)?);
        off = next;
    }
    Ok(caps)
}

fn parse_one(buf: &[u8], off: usize, end: usize, hdr: &vfio_info_cap_header) -> io::Result<RegionCap> {
    Ok(match hdr.id {
        VFIO_REGION_INFO_CAP_SPARSE_MMAP => {
            let cap: vfio_region_info_cap_sparse_mmap =
                read_pod(buf, off).ok_or_else(|| bad(format!("sparse-mmap capability at {off:#x} truncated")))?;
            let area_size = std::mem::size_of::<vfio_region_sparse_mmap_area>();
            let first = off + std::mem::size_of::<vfio_region_info_cap_sparse_mmap>();
            let areas = (0..cap.nr_areas as usize)
                .map(|i| {
                    read_pod::<vfio_region_sparse_mmap_area>(buf, first + i * area_size)
                        .map(|a| SparseArea { offset: a.offset, size: a.size })
                        .ok_or_else(|| {
                            bad(format!("sparse-mmap capability at {off:#x}: area {i} of {} truncated", cap.nr_areas))
                        })
                })
                .collect::<io::Result<Vec<_>>>()?;
            RegionCap::SparseMmap { version: hdr.version, areas }
        }
        VFIO_REGION_INFO_CAP_TYPE => {
            let cap: vfio_region_info_cap_type =
                read_pod(buf, off).ok_or_else(|| bad(format!("type capability at {off:#x} truncated")))?;
            RegionCap::Type { version: hdr.version, type_: cap.type_, subtype: cap.subtype }
        }
        VFIO_REGION_INFO_CAP_MSIX_MAPPABLE => RegionCap::MsixMappable { version: hdr.version },
        id => {
            let start = off + std::mem::size_of::<vfio_info_cap_header>();
            RegionCap::Unknown { id, version: hdr.version, data: buf.get(start..end).unwrap_or(&[]).to_vec() }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uapi::{as_bytes, vfio_region_info, VFIO_REGION_INFO_FLAG_CAPS};

    /// Builds `vfio_region_info` + caps the way the kernel's vfio_info_add_capability does.
    fn synthetic() -> Vec<u8> {
        let mut buf = Vec::new();
        let info = vfio_region_info {
            argsz: 0, // patched below
            flags: VFIO_REGION_INFO_FLAG_CAPS,
            index: 0,
            cap_offset: 32,
            size: 0x10000,
            offset: 0,
        };
        buf.extend_from_slice(as_bytes(&info));
        // Sparse mmap with two areas at 32: header(8) + nr_areas/reserved(8) + 2*16 = 48 bytes.
        let sparse = vfio_region_info_cap_sparse_mmap {
            header: vfio_info_cap_header { id: 1, version: 1, next: 80 },
            nr_areas: 2,
            reserved: 0,
        };
        buf.extend_from_slice(as_bytes(&sparse));
        for a in [
            vfio_region_sparse_mmap_area { offset: 0, size: 0x1000 },
            vfio_region_sparse_mmap_area { offset: 0x4000, size: 0x2000 },
        ] {
            buf.extend_from_slice(as_bytes(&a));
        }
        // Type capability at 80.
        let ty = vfio_region_info_cap_type {
            header: vfio_info_cap_header { id: 2, version: 1, next: 96 },
            type_: 1,
            subtype: 1,
        };
        buf.extend_from_slice(as_bytes(&ty));
        // An unknown capability at 96 with 8 payload bytes, ending the chain.
        buf.extend_from_slice(as_bytes(&vfio_info_cap_header { id: 0x77, version: 3, next: 0 }));
        buf.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let len = buf.len() as u32;
        buf[..4].copy_from_slice(&len.to_ne_bytes());
        buf
    }

    #[test]
    fn parses_sparse_type_and_unknown() {
        let buf = synthetic();
        let caps = parse_chain(&buf, 32, 32).expect("valid chain");
        assert_eq!(
            caps,
            vec![
                RegionCap::SparseMmap {
                    version: 1,
                    areas: vec![SparseArea { offset: 0, size: 0x1000 }, SparseArea { offset: 0x4000, size: 0x2000 }]
                },
                RegionCap::Type { version: 1, type_: 1, subtype: 1 },
                RegionCap::Unknown { id: 0x77, version: 3, data: vec![1, 2, 3, 4, 5, 6, 7, 8] },
            ]
        );
        assert_eq!(caps.iter().map(RegionCap::id).collect::<Vec<_>>(), vec![1, 2, 0x77]);
    }

    #[test]
    fn empty_chain() {
        assert!(parse_chain(&synthetic(), 0, 32).expect("no caps").is_empty());
    }

    #[test]
    fn rejects_truncated_sparse_areas() {
        let buf = synthetic();
        // Cut in the middle of the second area.
        let err = parse_chain(&buf[..70], 32, 32).expect_err("truncated");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn rejects_out_of_bounds_and_overlapping_offsets() {
        let buf = synthetic();
        assert!(parse_chain(&buf, 4096, 32).is_err());
        assert!(parse_chain(&buf, 8, 32).is_err());
    }

    #[test]
    fn rejects_loops() {
        let mut buf = synthetic();
        // Make the type capability (at 80) point back to the sparse one (at 32).
        buf[80 + 4..80 + 8].copy_from_slice(&32u32.to_ne_bytes());
        let err = parse_chain(&buf, 32, 32).expect_err("loop");
        assert!(err.to_string().contains("backwards"), "{err}");
        // And a self-loop.
        buf[80 + 4..80 + 8].copy_from_slice(&80u32.to_ne_bytes());
        assert!(parse_chain(&buf, 32, 32).is_err());
    }
}
