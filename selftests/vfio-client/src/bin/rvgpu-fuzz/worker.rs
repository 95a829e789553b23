// SPDX-License-Identifier: GPL-2.0
//! One worker process: its state (the open vGPU, its DMA buffers, its PRNG), its loop of random
//! operations and the open/close family.
//!
//! Workers 0 and 1 own their vGPU: they open it, set its DMA buffers up and fuzz it, and now and
//! then close and open it again. Further workers only race for the vGPU (the open fails while
//! its owner has it: counted) and, when they get it, do read-only operations before closing it;
//! they also fuzz sysfs.

use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::AtomicBool;
use std::thread::sleep;
use std::time::{Duration, Instant};

use vfio_client::rvgpu::*;
use vfio_client::{Device, EventFd, Mmap, OpenPath, RegionInfo};

use crate::shared::{Fam, Rng, Slot};
use crate::Config;

/// Where the ring buffer is mapped for DMA: the ring in its first [`RING_AREA`] bytes (a ring of
/// up to `RING_MAX_SIZE`), scratch (fence targets, copy targets) in the rest.
pub const RING_IOVA: u64 = 0x1_2340_0000;
/// The ring buffer's length.
pub const RING_BUF: usize = 2 << 20;
/// The part of the ring buffer rings live in.
pub const RING_AREA: usize = RING_MAX_SIZE as usize;
/// Where the data buffer (copy sources and targets) is mapped, when it is.
pub const DATA_IOVA: u64 = 0x2000_0000;
/// The data buffer's length.
pub const DATA_LEN: usize = 1 << 20;
/// Where a device mapping (BAR0's mmap) is mapped for DMA for a moment.
pub const BAR_DMA_IOVA: u64 = 0x4000_0000;
/// An IOVA nothing is ever mapped at.
pub const UNMAPPED_IOVA: u64 = 0x7000_0000;
/// The highest region index the fuzzer uses as a region (one past the display region).
pub const LAST_INDEX: u32 = 10;
/// `VFIO_PCI_INDEX_TO_OFFSET`'s shift.
pub const INDEX_SHIFT: u32 = 40;
/// The page size mmap offsets are aligned to.
pub const PAGE: u64 = 4096;

/// An open vGPU and what the worker knows of it.
pub struct Dev {
    /// The device.
    pub dev: Device,
    /// The regions' info at open time, index 0..=[`LAST_INDEX`] (`None`: the query failed).
    pub regions: Vec<Option<RegionInfo>>,
    /// The usable framebuffer (BAR0's sparse mmap area).
    pub usable: u64,
    /// Whether the data buffer is mapped at [`DATA_IOVA`], as far as the worker knows.
    pub data_mapped: AtomicBool,
}

impl Dev {
    /// The device-file offset of region `index`.
    pub fn base(&self, index: u32) -> u64 {
        self.regions.get(index as usize).and_then(|r| r.as_ref()).map_or(u64::from(index) << INDEX_SHIFT, |r| r.offset)
    }

    /// The size of region `index` at open time (0 if unknown).
    pub fn size(&self, index: u32) -> u64 {
        self.regions.get(index as usize).and_then(|r| r.as_ref()).map_or(0, |r| r.size)
    }

    /// Reads the BAR2 register at `off`, counted in `f`.
    pub fn reg(&self, sh: &Slot, f: Fam, off: u64) -> Option<u32> {
        let mut b = [0u8; 4];
        let r = self.dev.pread(self.base(REGION_BAR2) + off, &mut b);
        sh.rec(f, &r);
        matches!(r, Ok(4)).then(|| u32::from_le_bytes(b))
    }

    /// Writes the BAR2 register at `off`, counted in `f`.
    pub fn set_reg(&self, sh: &Slot, f: Fam, off: u64, v: u32) -> bool {
        let r = self.dev.pwrite(self.base(REGION_BAR2) + off, &v.to_le_bytes());
        sh.rec(f, &r) && matches!(r, Ok(4))
    }

    /// Memory decode and bus mastering on (the command register), counted in `f`.
    pub fn enable(&self, sh: &Slot, f: Fam) -> bool {
        let r = self.dev.pwrite(self.base(REGION_CONFIG) + 4, &0x0006u16.to_le_bytes());
        sh.rec(f, &r)
    }

    /// Programs the ring at [`RING_IOVA`] with `size` bytes, counted in `f`.
    pub fn setup_ring(&self, sh: &Slot, f: Fam, size: u32) {
        self.set_reg(sh, f, REG_RING_BASE_LO, RING_IOVA as u32);
        self.set_reg(sh, f, REG_RING_BASE_HI, (RING_IOVA >> 32) as u32);
        self.set_reg(sh, f, REG_RING_SIZE, size);
    }
}

/// A worker's state. Field order is drop order: the device goes first (closing it ends its DMA),
/// then the buffers it may have been using.
pub struct Worker<'a> {
    /// The vGPU, while this worker has it open.
    pub dev: Option<Dev>,
    /// The ring buffer (mapped at [`RING_IOVA`] while the vGPU is open).
    pub ring: Mmap,
    /// The data buffer (mapped at [`DATA_IOVA`] at times).
    pub data: Mmap,
    /// Where DMA logging reports may write (never mapped for DMA, never read).
    pub sink: Mmap,
    /// A 64 KiB buffer for reads and writes.
    pub iobuf: Vec<u8>,
    /// Eventfds for `SET_IRQS`.
    pub efds: Vec<EventFd>,
    /// `/dev/null`, a file that is not an eventfd.
    pub devnull: Option<File>,
    /// A non-blocking pipe (read end, write end), to touch mappings through the kernel.
    pub pipe: Option<(OwnedFd, OwnedFd)>,
    /// The command line.
    pub cfg: &'a Config,
    /// This worker's index.
    pub idx: usize,
    /// Its vGPU.
    pub uuid: String,
    /// The other vGPU.
    pub other: String,
    /// Whether it owns its vGPU (workers 0 and 1).
    pub owner: bool,
    /// Its PRNG.
    pub rng: Rng,
    /// Its shared slot.
    pub sh: &'static Slot,
    /// When the loop stops.
    pub end: Instant,
    /// vGPUs it created: `(uuid, operations until it removes it)`.
    pub pending: Vec<(u128, u32)>,
}

fn alloc(len: usize) -> Mmap {
    Mmap::anonymous(len).unwrap_or_else(|e| {
        println!("# worker: allocating {len} bytes: {e}");
        std::process::exit(3)
    })
}

/// A non-blocking pipe.
fn pipe() -> Option<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
        return None;
    }
    // SAFETY: two fresh descriptors nobody else owns.
    Some(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Worker `idx`'s whole life; its exit status.
pub fn run(cfg: &Config, idx: usize, sh: &'static Slot) -> i32 {
    sh.set_op("starting");
    let mut w = Worker {
        dev: None,
        ring: alloc(RING_BUF),
        data: alloc(DATA_LEN),
        sink: alloc(1 << 20),
        iobuf: vec![0u8; 64 << 10],
        efds: (0..3).filter_map(|_| EventFd::new().ok()).collect(),
        devnull: File::open("/dev/null").ok(),
        pipe: pipe(),
        cfg,
        idx,
        uuid: cfg.uuids[idx % 2].clone(),
        other: cfg.uuids[(idx + 1) % 2].clone(),
        owner: idx < 2,
        rng: Rng::new(cfg.seed.wrapping_add(idx as u64)),
        sh,
        end: Instant::now() + Duration::from_secs_f64(cfg.seconds),
        pending: Vec::new(),
    };
    w.run_loop();
    sh.set_op("cleaning up");
    crate::sysfs::remove_all(&mut w);
    sh.set_op("closing the device");
    w.dev = None;
    sh.set_op("done");
    sh.done.store(1, std::sync::atomic::Ordering::Relaxed);
    0
}

/// What an owner does next.
#[derive(Clone, Copy)]
enum Op {
    Ioctl,
    Region,
    Mmap,
    Irq,
    Engine,
    Migration,
    Sysfs,
    Reopen,
}

impl Worker<'_> {
    fn run_loop(&mut self) {
        if self.owner {
            self.open_own();
        } else {
            // The owners open first (mostly).
            sleep(Duration::from_millis(200));
        }
        while Instant::now() < self.end {
            if self.owner {
                self.owner_step();
            } else {
                match self.rng.weighted(&[(6, Op::Sysfs), (4, Op::Reopen)]) {
                    Op::Sysfs => crate::sysfs::op(self),
                    _ => self.race(),
                }
            }
            crate::sysfs::expire(self);
        }
    }

    fn owner_step(&mut self) {
        let op = self.rng.weighted(&[
            (20, Op::Ioctl),
            (20, Op::Region),
            (12, Op::Mmap),
            (12, Op::Irq),
            (8, Op::Engine),
            (1, Op::Migration),
            (10, Op::Sysfs),
            (1, Op::Reopen),
        ]);
        if self.dev.is_none() && !matches!(op, Op::Sysfs) {
            // Someone else has the vGPU (an open race), or opening failed: try again, slowly.
            if !self.open_own() {
                sleep(Duration::from_millis(self.rng.range(1, 10)));
                return;
            }
        }
        match op {
            Op::Ioctl => crate::ioctl::op(self),
            Op::Region => crate::region::rw_op(self),
            Op::Mmap => crate::region::mmap_op(self),
            Op::Irq => crate::irq::op(self),
            Op::Engine => crate::engine::op(self),
            Op::Migration => crate::migration::op(self),
            Op::Sysfs => crate::sysfs::op(self),
            Op::Reopen => self.reopen(),
        }
    }

    /// Opens the worker's vGPU on the command line's path and sets it up as a guest would:
    /// the ring and data buffers mapped, memory decode and bus mastering on, a ring.
    pub fn open_own(&mut self) -> bool {
        self.sh.set_op("open");
        let r = Device::open(&self.uuid, self.cfg.path);
        let dev = match r {
            Ok(d) => {
                self.sh.rec_ok(Fam::Open);
                d
            }
            Err(e) => {
                self.sh.rec_err(Fam::Open, e.raw_os_error());
                return false;
            }
        };
        self.sh.set_op("open: set-up");
        let regions: Vec<Option<RegionInfo>> = (0..=LAST_INDEX).map(|i| dev.region_info(i).ok()).collect();
        let usable = regions[REGION_BAR0 as usize]
            .as_ref()
            .and_then(|r| r.sparse_areas().and_then(|a| a.first()).map(|a| a.size))
            .unwrap_or(0);
        let r = dev.map_dma(&self.ring, RING_IOVA);
        self.sh.rec(Fam::Dma, &r);
        let r = dev.map_dma(&self.data, DATA_IOVA);
        let mapped = self.sh.rec(Fam::Dma, &r);
        let d = Dev { dev, regions, usable, data_mapped: AtomicBool::new(mapped) };
        d.enable(self.sh, Fam::Open);
        d.setup_ring(self.sh, Fam::Open, 64 << 10);
        self.dev = Some(d);
        true
    }

    /// Closes the vGPU and opens it again (another worker may get it in between).
    fn reopen(&mut self) {
        self.sh.set_op("close");
        self.dev = None;
        sleep(Duration::from_millis(self.rng.range(0, 30)));
        let t = Instant::now();
        while !self.open_own() && t.elapsed() < Duration::from_millis(500) {
            sleep(Duration::from_millis(self.rng.range(1, 10)));
        }
    }

    /// A non-owner's try at the vGPU: usually its owner has it (counted); when the open succeeds,
    /// a few read-only operations, then close.
    fn race(&mut self) {
        self.sh.set_op("race: open");
        let path = if self.rng.percent(70) {
            self.cfg.path
        } else if self.cfg.path == OpenPath::Container {
            OpenPath::Iommufd
        } else {
            OpenPath::Container
        };
        let dev = match Device::open(&self.uuid, path) {
            Ok(d) => {
                self.sh.rec_ok(Fam::Open);
                d
            }
            Err(e) => {
                self.sh.rec_err(Fam::Open, e.raw_os_error());
                sleep(Duration::from_millis(self.rng.range(0, 5)));
                return;
            }
        };
        self.sh.set_op("race: read-only");
        let sh = self.sh;
        sh.rec(Fam::Ioctl, &dev.info());
        for i in 0..=LAST_INDEX + 1 {
            sh.rec(Fam::Ioctl, &dev.region_info(i));
        }
        for i in 0..=5 {
            sh.rec(Fam::Ioctl, &dev.irq_info(i));
        }
        let mut cfg = [0u8; 256];
        sh.rec(Fam::Region, &dev.pread(u64::from(REGION_CONFIG) << INDEX_SHIFT, &mut cfg));
        let mut r4 = [0u8; 4];
        for off in [REG_MAGIC, REG_FB_SIZE, REG_RING_HEAD, REG_COMPLETED, REG_ENGINE_STATUS] {
            sh.rec(Fam::Region, &dev.pread((u64::from(REGION_BAR2) << INDEX_SHIFT) + off, &mut r4));
        }
        sh.rec(Fam::Migration, &dev.mig_state_raw());
        sh.rec(
            Fam::Ioctl,
            &dev.query_gfx_plane(
                vfio_client::uapi::VFIO_GFX_PLANE_TYPE_PROBE | vfio_client::uapi::VFIO_GFX_PLANE_TYPE_REGION,
                vfio_client::uapi::DRM_PLANE_TYPE_PRIMARY,
            ),
        );
        sleep(Duration::from_millis(self.rng.range(0, 20)));
        self.sh.set_op("race: close");
        drop(dev);
    }
}
