// SPDX-License-Identifier: GPL-2.0
//! `VFIO_DEVICE_QUERY_GFX_PLANE` latency of a vGPU beside the kernel's mdpy sample, from one run
//! in one VM: what QEMU's `display=on` pays on every display refresh before it reads the region.
//!
//! `rvgpu-plane-bench RVGPU_UUID MDPY_UUID`: sets the vGPU's display to 1024x768x32 (memory decode
//! on, the DISPI registers written through BAR2) and times region-plane queries of the primary
//! plane on both devices. Figures only: nothing here passes or fails.

use std::time::Instant;

use vfio_client::rvgpu::{
    DISPI_ENABLED, DISPI_INDEX_BPP, DISPI_INDEX_ENABLE, DISPI_INDEX_XRES, DISPI_INDEX_YRES, DISPI_LFB_ENABLED,
    DISPI_NOCLEARMEM, MMIO_DISPI, REGION_BAR2, REGION_CONFIG,
};
use vfio_client::uapi::{DRM_PLANE_TYPE_PRIMARY, VFIO_GFX_PLANE_TYPE_REGION};
use vfio_client::{Device, OpenPath};

const QUERIES: u32 = 20_000;

fn ns_per_query(dev: &Device) -> Result<(f64, String), Box<dyn std::error::Error>> {
    let p = dev.query_gfx_plane(VFIO_GFX_PLANE_TYPE_REGION, DRM_PLANE_TYPE_PRIMARY)?;
    let what =
        format!("{}x{} stride {} format {:#x} region {}", p.width, p.height, p.stride, p.drm_format, p.region_index);
    for _ in 0..100 {
        dev.query_gfx_plane(VFIO_GFX_PLANE_TYPE_REGION, DRM_PLANE_TYPE_PRIMARY)?;
    }
    let t = Instant::now();
    for _ in 0..QUERIES {
        dev.query_gfx_plane(VFIO_GFX_PLANE_TYPE_REGION, DRM_PLANE_TYPE_PRIMARY)?;
    }
    Ok((t.elapsed().as_nanos() as f64 / f64::from(QUERIES), what))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, rv, md] = args.as_slice() else {
        eprintln!("usage: rvgpu-plane-bench RVGPU_UUID MDPY_UUID");
        std::process::exit(2);
    };
    let vgpu = Device::open(rv, OpenPath::Container)?;
    let mdpy = Device::open(md, OpenPath::Container)?;
    let cfg = vgpu.region_info(REGION_CONFIG)?;
    let bar2 = vgpu.region_info(REGION_BAR2)?;
    let mut cmd = [0u8; 2];
    vgpu.read_region_exact(&cfg, 4, &mut cmd)?;
    vgpu.write_region_all(&cfg, 4, &(u16::from_le_bytes(cmd) | 0x2).to_le_bytes())?;
    let enable = DISPI_ENABLED | DISPI_LFB_ENABLED | DISPI_NOCLEARMEM;
    for (index, v) in [
        (DISPI_INDEX_ENABLE, 0),
        (DISPI_INDEX_BPP, 32),
        (DISPI_INDEX_XRES, 1024),
        (DISPI_INDEX_YRES, 768),
        (DISPI_INDEX_ENABLE, enable),
    ] {
        vgpu.write_region_all(&bar2, MMIO_DISPI + 2 * index, &v.to_le_bytes())?;
    }
    let (r, rw) = ns_per_query(&vgpu)?;
    let (m, mw) = ns_per_query(&mdpy)?;
    println!("VFIO_DEVICE_QUERY_GFX_PLANE (region, primary plane), {QUERIES} queries:");
    println!("  rvgpu  {r:9.0} ns   ({rw})");
    println!("  mdpy   {m:9.0} ns   ({mw})");
    println!("  ratio rvgpu/mdpy {:9.2}", r / m);
    Ok(())
}
