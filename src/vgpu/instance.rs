// SPDX-License-Identifier: GPL-2.0

//! One vGPU: its slice of the physical VRAM, its emulated hardware, its engine, its settings and
//! whether a VM has it open. Its VFIO regions are in `region.rs`, its sysfs files in `attrs.rs`.

use kernel::{
    new_mutex,
    new_spinlock,
    prelude::*,
    str::BStr,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        Mutex,
        SpinLock, //
    }, //
};

use super::{
    config::ConfigSpace,
    display::{
        DisplayRegs,
        Limits, //
    },
    edid,
    engine::{
        irq,
        Engine, //
    },
    gpu::Gpu,
    migration::MigCtl,
    params::Params,
    scanout::{
        Scanout,
        REGION_DISPLAY, //
    },
    slice::VramSlice,
    types::VgpuType,
    uapi,
    vram::AllocError,
};
use crate::vfio::{
    bindings as vb,
    device::{
        DeviceInfo,
        GfxPlane,
        IrqInfo,
        IrqSet,
        Mmap,
        PlaneQuery,
        RegionInfo,
        DRM_PLANE_TYPE_CURSOR,
        DRM_PLANE_TYPE_OVERLAY,
        DRM_PLANE_TYPE_PRIMARY, //
    },
    mdev,
    migration::{
        DirtyBitmap,
        LogRange,
        MigFile,
        MigState, //
    },
    support,
    Device,
    DeviceOps, //
};
use kernel::uaccess::{
    UserSliceReader,
    UserSliceWriter, //
};

/// The emulated hardware state of a vGPU, touched from the access path (no sleeping there).
pub(super) struct Hw {
    pub(super) config: ConfigSpace,
    pub(super) display: DisplayRegs,
}

/// What changes while a vGPU exists.
pub(super) struct State {
    /// A VM (a VFIO user) has the device open.
    pub(super) open: bool,
    pub(super) params: Params,
    /// `vgpu_params` as last written (trimmed).
    pub(super) params_text: KVec<u8>,
    /// The task that opened the device: `<name>[<pid>]`, empty when not open.
    pub(super) vm_name: KVec<u8>,
}

/// A vGPU instance: the driver data of its VFIO device.
#[pin_data]
pub(crate) struct Vgpu {
    pub(super) vtype: &'static VgpuType,
    pub(super) slice: Arc<VramSlice>,
    /// What the display region shows (`scanout.rs`).
    pub(super) scanout: Arc<Scanout>,
    pub(super) engine: Arc<Engine>,
    /// Whether memory decode is on in the config space (`PCI_COMMAND_MEMORY`): BAR accesses
    /// check it without taking `hw`.
    pub(super) memory_on: Atomic<bool>,
    #[pin]
    pub(super) state: Mutex<State>,
    #[pin]
    pub(super) hw: SpinLock<Hw>,
    #[pin]
    pub(super) mig: Mutex<MigCtl>,
}

impl Vgpu {
    /// Places a new instance of type `type_index` on `gpu`.
    pub(crate) fn new(
        gpu: &Arc<Gpu>,
        type_index: usize,
        mdev: &mdev::Device,
    ) -> Result<impl PinInit<Self, Error>> {
        let vtype = gpu.vgpu_type(type_index).ok_or(EINVAL)?;
        let slice = VramSlice::new(gpu, vtype, mdev.uuid()).map_err(|e| {
            match e {
                AllocError::NoSpace { free, largest_free } => dev_err!(
                    mdev.as_dev(),
                    "cannot create {} (nvidia-{}): it needs a free {} MiB slice, the GPU has {} MiB free and its largest free slice is {} MiB\n",
                    BStr::from_bytes(vtype.name.to_bytes()),
                    vtype.id,
                    vtype.profile_mib,
                    free >> 20,
                    largest_free >> 20
                ),
                AllocError::Mixed { size, type_id } => dev_err!(
                    mdev.as_dev(),
                    "cannot create {} (nvidia-{}, {} MiB): the scheduler's fixed_share policy allows one framebuffer size per GPU, and nvidia-{} ({} MiB) is on it\n",
                    BStr::from_bytes(vtype.name.to_bytes()),
                    vtype.id,
                    vtype.profile_mib,
                    type_id,
                    size >> 20
                ),
                _ => dev_err!(
                    mdev.as_dev(),
                    "cannot create {} (nvidia-{}): {:?}\n",
                    BStr::from_bytes(vtype.name.to_bytes()),
                    vtype.id,
                    e
                ),
            }
            match e {
                AllocError::NoSpace { .. } => ENOSPC,
                AllocError::BadSize | AllocError::Mixed { .. } => EINVAL,
                AllocError::NoMemory => ENOMEM,
                // `Gpu::alloc` waits out a scrub; a signal ends the wait.
                AllocError::Scrubbing | AllocError::Interrupted => ERESTARTSYS,
            }
        })?;
        let slice = Arc::new(slice, GFP_KERNEL)?;
        let limits = Limits {
            max_width: vtype.mode_width,
            max_height: vtype.mode_height,
            fb_size: u32::try_from(vtype.usable_bytes())?,
            heads: vtype.heads,
            frl_fps: vtype.frl_fps,
        };
        let mut edid = [0u8; edid::BLOCK];
        edid::generate(
            &mut edid,
            vtype.id,
            vtype.name.to_bytes(),
            vtype.heads,
            vtype.mode_width,
            vtype.mode_height,
        );
        let fb_bar = u32::try_from(vtype.profile_bytes())?;
        let engine = Engine::new(
            slice.clone(),
            vtype.frl_fps,
            gpu.sched().clone(),
            gpu.new_sched_id(),
            vtype.max_instances,
        )?;
        let scanout = Scanout::new(slice.clone(), mdev.uuid())?;
        Ok(try_pin_init!(Self {
            vtype,
            slice,
            scanout,
            engine,
            memory_on: Atomic::new(false),
            hw <- new_spinlock!(Hw {
                config: ConfigSpace::new(fb_bar),
                display: DisplayRegs::new(limits, edid),
            }),
            mig <- new_mutex!(MigCtl::new()),
            state <- new_mutex!(State {
                open: false,
                params: Params::default(),
                params_text: KVec::new(),
                vm_name: KVec::new(),
            }),
        }))
    }

    /// Moves the display region to the guest's scan-out start; if it moved, its mappings are
    /// zapped so that the next access maps the new place.
    pub(super) fn follow_scanout(this: &Device<Self>) {
        let mode = this.hw.lock().display.mode();
        if this.scanout.follow(mode) {
            this.mappings().zap(REGION_DISPLAY, 0, this.scanout.size());
        }
    }

    /// `<comm>[<pid>]` of the calling task.
    fn caller_name() -> Result<KVec<u8>> {
        let (comm, pid) = support::current_task_name();
        let len = comm.iter().position(|&c| c == 0).unwrap_or(comm.len());
        let mut name = KVec::with_capacity(len + 12, GFP_KERNEL)?;
        name.extend_from_slice(&comm[..len], GFP_KERNEL)?;
        let pid_text = kernel::str::CString::try_from_fmt(fmt!("[{}]", pid))?;
        name.extend_from_slice(pid_text.to_bytes(), GFP_KERNEL)?;
        Ok(name)
    }

    /// The mdev core made the instance and it can be opened now.
    pub(crate) fn log_created(dev: &Device<Self>) {
        dev_info!(
            dev.dev(),
            "created {} (nvidia-{}, class {:?}) at VRAM {} MiB\n",
            BStr::from_bytes(dev.vtype.name.to_bytes()),
            dev.vtype.id,
            dev.vtype.class,
            dev.slice.vram_offset() >> 20
        );
    }
}

#[vtable]
impl DeviceOps for Vgpu {
    const NAME: &'static CStr = c"nvidia-vgpu-vfio";

    fn open(this: &Device<Self>) -> Result {
        // Everything that can fail comes first: a failed open leaves the vGPU as it was.
        let name = Self::caller_name()?;
        let handle = this.dma_handle()?;
        // Every user starts from a device at power-on state.
        Self::reset(this)?;
        let frl = this.state.lock().params.frame_rate_limiter;
        this.engine.open(handle, frl)?;
        let mut st = this.state.lock();
        st.open = true;
        st.vm_name = name;
        Ok(())
    }

    fn close(this: &Device<Self>) {
        // A transfer in progress ends: its file reads or writes fail from now on.
        this.mig.lock().reset();
        this.engine.close();
        let mut st = this.state.lock();
        st.open = false;
        st.vm_name.clear();
    }

    fn info(_this: &Device<Self>) -> DeviceInfo {
        DeviceInfo {
            flags: vb::VFIO_DEVICE_FLAGS_PCI | vb::VFIO_DEVICE_FLAGS_RESET,
            // The PCI regions and the display region.
            num_regions: REGION_DISPLAY + 1,
            num_irqs: vb::VFIO_PCI_NUM_IRQS,
        }
    }

    fn region_info(this: &Device<Self>, index: u32) -> Result<RegionInfo> {
        this.region(index)
    }

    fn irq_info(_this: &Device<Self>, index: u32) -> Result<IrqInfo> {
        let flags = match index {
            irq::INDEX_INTX => {
                vb::VFIO_IRQ_INFO_EVENTFD
                    | vb::VFIO_IRQ_INFO_MASKABLE
                    | vb::VFIO_IRQ_INFO_AUTOMASKED
            }
            irq::INDEX_MSI => vb::VFIO_IRQ_INFO_EVENTFD | vb::VFIO_IRQ_INFO_NORESIZE,
            irq::INDEX_REQ => vb::VFIO_IRQ_INFO_EVENTFD,
            i if i < vb::VFIO_PCI_NUM_IRQS => 0,
            _ => return Err(EINVAL),
        };
        Ok(IrqInfo {
            flags,
            count: Engine::irq_count(index),
        })
    }

    fn set_irqs(this: &Device<Self>, set: IrqSet<'_>) -> Result {
        let index = set.index;
        this.engine.set_irqs(set)?;
        if index == irq::INDEX_MSI {
            let on = this.engine.msi_enabled();
            this.hw.lock().config.set_msi_enabled(on);
        }
        Ok(())
    }

    fn request(this: &Device<Self>, count: u32) {
        if count == 0 && this.slice.gpu().is_gone() {
            // The board is going: what the user mapped of it is taken away (the next touch
            // faults, and faults fail).
            let fb = vb::VFIO_PCI_BAR0_REGION_INDEX;
            this.mappings().zap(fb, 0, this.vtype.profile_bytes());
            this.mappings().zap(REGION_DISPLAY, 0, this.scanout.size());
        }
        let asked = this.engine.request_release();
        if count == 0 {
            if asked {
                dev_notice!(
                    this.dev(),
                    "removal requested: asking the VM to release the vGPU\n"
                );
            } else {
                dev_notice!(
                    this.dev(),
                    "removal requested, but the vGPU's user takes no request: waiting for it to close\n"
                );
            }
        }
    }

    fn dma_unmap(this: &Device<Self>, iova: u64, len: u64) {
        this.engine.dma_unmap(iova, len);
    }

    fn reset(this: &Device<Self>) -> Result {
        // Any migration state goes back to RUNNING (an open data file ends).
        this.mig.lock().reset();
        {
            let mut hw = this.hw.lock();
            hw.config.reset();
            hw.display.reset();
            this.memory_on.store(hw.config.memory_enabled(), Relaxed);
        }
        this.engine.reset();
        Self::follow_scanout(this);
        Ok(())
    }

    fn read(this: &Device<Self>, offset: u64, out: &mut UserSliceWriter) -> Result<usize> {
        this.region_read(offset, out)
    }

    fn write(this: &Device<Self>, offset: u64, data: &mut UserSliceReader) -> Result<usize> {
        let (n, display) = this.region_write(offset, data)?;
        if display {
            Self::follow_scanout(this);
        }
        Ok(n)
    }

    fn query_gfx_plane(this: &Device<Self>, q: PlaneQuery) -> Result<GfxPlane> {
        match q {
            PlaneQuery::ProbeRegion => Ok(GfxPlane::default()),
            // No dma-buf planes: QEMU then shows the region plane, without OpenGL.
            PlaneQuery::ProbeDmabuf | PlaneQuery::Dmabuf(_) => Err(EINVAL),
            // QEMU's region display asks with the type left 0 (OVERLAY), as the kernel's mdpy
            // sample allows: the region plane is the primary plane.
            PlaneQuery::Region(DRM_PLANE_TYPE_OVERLAY | DRM_PLANE_TYPE_PRIMARY) => {
                let hw = this.hw.lock();
                let le = hw.display.save().1 != uapi::RVGPU_BYTEORDER_BE;
                Ok(this.scanout.plane(hw.display.mode(), le))
            }
            // No cursor plane: a disabled one, with no hotspot.
            PlaneQuery::Region(DRM_PLANE_TYPE_CURSOR) => Ok(GfxPlane {
                x_hot: u32::MAX,
                y_hot: u32::MAX,
                ..GfxPlane::default()
            }),
            PlaneQuery::Region(_) => Err(EINVAL),
        }
    }

    fn mmap(this: &Device<Self>, vma: &Mmap<'_>) -> Result {
        this.region_mmap(vma)
    }

    const MIGRATION_FLAGS: u32 =
        vb::VFIO_MIGRATION_STOP_COPY | vb::VFIO_MIGRATION_P2P | vb::VFIO_MIGRATION_PRE_COPY;
    const DMA_LOGGING: bool = true;

    fn migration_set_state(this: &Device<Self>, target: MigState) -> Result<Option<MigFile>> {
        Self::set_migration_state(this, target)
    }

    fn migration_state(this: &Device<Self>) -> MigState {
        this.mig.lock().state
    }

    fn migration_data_size(this: &Device<Self>) -> Result<u64> {
        Ok(this.migration_data_size())
    }

    fn log_start(this: &Device<Self>, ranges: &[LogRange], page_size: u64) -> Result<u64> {
        this.engine.log_start(ranges, page_size).inspect_err(|e| {
            if *e == EBUSY {
                dev_err!(this.dev(), "DMA logging: started already\n");
            }
        })
    }

    fn log_stop(this: &Device<Self>) -> Result {
        this.engine.log_stop();
        Ok(())
    }

    fn log_read_and_clear(
        this: &Device<Self>,
        iova: u64,
        len: u64,
        dirty: &mut DirtyBitmap,
    ) -> Result {
        this.engine.log_report(iova, len, dirty)
    }
}
