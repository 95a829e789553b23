// SPDX-License-Identifier: GPL-2.0
//! Access-path figures for a vGPU beside the kernel's mbochs sample, from one run in one VM.
//!
//! `rvgpu-bench GPU RVGPU_UUID MBOCHS_UUID`: prints the latency of a trapped 4-byte register
//! read (pread on the device file) on rvgpu, on mbochs and of a config-space read, and the
//! framebuffer write bandwidth through the vGPU's mmap beside a direct mmap of the physical BAR0
//! (`resource0`), with the ratios. Figures only: nothing here passes or fails.

use std::fs;
use std::os::fd::AsFd;
use std::time::Instant;

use vfio_client::rvgpu::{MMIO_DISPI, REGION_BAR0, REGION_BAR2, REGION_CONFIG};
use vfio_client::{Device, Mmap, OpenPath, Prot};

const READS: u32 = 20_000;
const FB_BYTES: usize = 16 << 20;
const FB_ROUNDS: u32 = 4;

fn ns_per_read(dev: &Device, offset: u64) -> f64 {
    let mut b = [0u8; 4];
    for _ in 0..100 {
        let _ = dev.pread(offset, &mut b);
    }
    let t = Instant::now();
    for _ in 0..READS {
        let _ = dev.pread(offset, &mut b);
    }
    t.elapsed().as_nanos() as f64 / f64::from(READS)
}

fn mib_per_s(map: &mut Mmap) -> f64 {
    let chunk = vec![0x5au8; 1 << 20];
    let t = Instant::now();
    for r in 0..FB_ROUNDS {
        for off in (0..FB_BYTES).step_by(chunk.len()) {
            map.as_mut_slice()[off..off + chunk.len()].copy_from_slice(&chunk);
        }
        map.as_mut_slice()[0] = r as u8;
    }
    let secs = t.elapsed().as_secs_f64();
    (FB_BYTES as f64 * f64::from(FB_ROUNDS)) / (1u64 << 20) as f64 / secs
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, gpu, rv, mb] = args.as_slice() else {
        eprintln!("usage: rvgpu-bench GPU RVGPU_UUID MBOCHS_UUID");
        std::process::exit(2);
    };
    let rvgpu = Device::open(rv, OpenPath::Container)?;
    let mbochs = Device::open(mb, OpenPath::Container)?;
    let (rv_bar2, rv_cfg, rv_bar0) =
        (rvgpu.region_info(REGION_BAR2)?, rvgpu.region_info(REGION_CONFIG)?, rvgpu.region_info(REGION_BAR0)?);
    let mb_bar2 = mbochs.region_info(REGION_BAR2)?;
    // Memory decode on, so register reads are answered.
    rvgpu.pwrite(rv_cfg.offset + 4, &6u16.to_le_bytes())?;

    // mbochs has its DISPI registers at the same place.
    let rv_reg = ns_per_read(&rvgpu, rv_bar2.offset + MMIO_DISPI);
    let mb_reg = ns_per_read(&mbochs, mb_bar2.offset + MMIO_DISPI);
    let rv_cfg_ns = ns_per_read(&rvgpu, rv_cfg.offset);
    println!("trapped 4-byte register read (pread), {READS} reads:");
    println!("  rvgpu  BAR2 DISPI     {rv_reg:9.0} ns");
    println!("  mbochs BAR2 DISPI     {mb_reg:9.0} ns");
    println!("  rvgpu  config space   {rv_cfg_ns:9.0} ns");
    println!("  ratio rvgpu/mbochs    {:9.2}", rv_reg / mb_reg);
    println!("  ratio register/config {:9.2}", rv_reg / rv_cfg_ns);

    let usable = rv_bar0.sparse_areas().and_then(|a| a.first()).map_or(0, |a| a.size as usize);
    let len = FB_BYTES.min(usable);
    let mut vmap = rvgpu.mmap_region(&rv_bar0, 0, len, Prot::RW)?;
    let res = fs::OpenOptions::new().read(true).write(true).open(format!("/sys/bus/pci/devices/{gpu}/resource0"))?;
    let mut pmap = Mmap::map_fd(res.as_fd(), 0, len, Prot::RW)?;
    let v = mib_per_s(&mut vmap);
    let p = mib_per_s(&mut pmap);
    println!("framebuffer write bandwidth, {} MiB x {FB_ROUNDS}:", len >> 20);
    println!("  through the vGPU mmap     {v:9.0} MiB/s");
    println!("  direct mmap of resource0  {p:9.0} MiB/s");
    println!("  ratio vGPU/direct         {:9.2}", v / p);
    Ok(())
}
