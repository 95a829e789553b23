// SPDX-License-Identifier: GPL-2.0

//! One vGPU: its slice of the physical VRAM, its settings and whether a VM has it open.

use kernel::{
    new_mutex,
    prelude::*,
    str::BStr,
    sync::{
        Arc,
        Mutex, //
    }, //
};

use super::{
    config::{
        self,
        ConfigSpace, //
    },
    edid,
    engine::{
        self,
        Engine, //
    },
    gpu::Gpu,
    params::{
        self,
        Params, //
    },
    regs::{
        self,
        Effect,
        Regs, //
    },
    types::VgpuType,
    vram::{
        AllocError,
        Slice, //
    },
};
use crate::vfio::{
    self,
    bindings as vb,
    device::{
        DeviceInfo,
        IrqInfo,
        IrqSet,
        Mmap,
        RegionInfo, //
    },
    mdev,
    sysfs::SysfsBuf,
    Device,
    DeviceOps, //
};
use kernel::{
    new_spinlock,
    sync::SpinLock,
    uaccess::{
        UserSliceReader,
        UserSliceWriter, //
    },
};

/// Device-file offsets: region index in the top bits, as vfio-pci does.
const REGION_SHIFT: u32 = 40;
const REGION_MASK: u64 = (1 << REGION_SHIFT) - 1;
const REGION_FB: u32 = vb::VFIO_PCI_BAR0_REGION_INDEX;
const REGION_MMIO: u32 = vb::VFIO_PCI_BAR2_REGION_INDEX;
const REGION_CONFIG: u32 = vb::VFIO_PCI_CONFIG_REGION_INDEX;
/// Framebuffer reads and writes through the device file go through a buffer of this size.
const FB_CHUNK: usize = 256;

/// The emulated hardware state of a vGPU, touched from the access path (no sleeping there).
struct Hw {
    config: ConfigSpace,
    regs: Regs,
}

/// A vGPU's VRAM slice; dropping it scrubs the slice and returns it to the board.
struct SliceGuard {
    gpu: Arc<Gpu>,
    slice: Slice,
}

impl Drop for SliceGuard {
    fn drop(&mut self) {
        self.gpu.free(&self.slice);
    }
}

/// What changes while a vGPU exists.
struct State {
    /// A VM (a VFIO user) has the device open.
    open: bool,
    params: Params,
    /// `vgpu_params` as last written (trimmed).
    params_text: KVec<u8>,
    /// The task that opened the device: `<name>[<pid>]`, empty when not open.
    vm_name: KVec<u8>,
}

/// A vGPU instance: the driver data of its VFIO device.
#[pin_data]
pub(crate) struct Vgpu {
    vtype: &'static VgpuType,
    slice: SliceGuard,
    engine: Arc<Engine>,
    #[pin]
    state: Mutex<State>,
    #[pin]
    hw: SpinLock<Hw>,
}

impl Vgpu {
    /// Places a new instance of type `type_index` on `gpu`.
    pub(crate) fn new(
        gpu: &Arc<Gpu>,
        type_index: usize,
        mdev: &mdev::Device,
    ) -> Result<impl PinInit<Self, Error>> {
        let vtype = gpu.vgpu_type(type_index).ok_or(EINVAL)?;
        let slice = gpu.alloc(vtype, mdev.uuid()).map_err(|e| {
            let (free, largest) = match e {
                AllocError::NoSpace { free, largest_free } => (free, largest_free),
                _ => (0, 0),
            };
            match e {
                AllocError::NoSpace { .. } => dev_err!(
                    mdev.as_dev(),
                    "cannot create {} (nvidia-{}): it needs a free {} MiB slice, the GPU has {} MiB free and its largest free slice is {} MiB\n",
                    BStr::from_bytes(vtype.name.to_bytes()),
                    vtype.id,
                    vtype.profile_mib,
                    free >> 20,
                    largest >> 20
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
                AllocError::BadSize => EINVAL,
                AllocError::NoMemory => ENOMEM,
            }
        })?;
        dev_info!(
            mdev.as_dev(),
            "created {} (nvidia-{}, class {:?}) at VRAM {} MiB\n",
            BStr::from_bytes(vtype.name.to_bytes()),
            vtype.id,
            vtype.class,
            slice.offset >> 20
        );
        let slice = SliceGuard {
            gpu: gpu.clone(),
            slice,
        };
        let limits = regs::Limits {
            max_width: vtype.max_width,
            max_height: vtype.max_height,
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
            vtype.max_width,
            vtype.max_height,
        );
        let fb_bar = u32::try_from(vtype.profile_bytes())?;
        let engine = Engine::new(
            gpu.board_arc(),
            slice.slice.offset,
            vtype.usable_bytes(),
            vtype.frl_fps,
            gpu.pinned_counter(),
        )?;
        Ok(try_pin_init!(Self {
            vtype,
            slice,
            engine,
            hw <- new_spinlock!(Hw {
                config: ConfigSpace::new(fb_bar),
                regs: Regs::new(limits, edid),
            }),
            state <- new_mutex!(State {
                open: false,
                params: Params::default(),
                params_text: KVec::new(),
                vm_name: KVec::new(),
            }),
        }))
    }
}

#[vtable]
impl DeviceOps for Vgpu {
    const NAME: &'static CStr = c"nvidia-vgpu-vfio";

    fn open(this: &Device<Self>) -> Result {
        let (comm, pid) = vfio::current_task_name();
        let len = comm.iter().position(|&c| c == 0).unwrap_or(comm.len());
        let mut name = KVec::with_capacity(len + 12, GFP_KERNEL)?;
        name.extend_from_slice(&comm[..len], GFP_KERNEL)?;
        let pid_text = kernel::str::CString::try_from_fmt(fmt!("[{}]", pid))?;
        name.extend_from_slice(pid_text.to_bytes(), GFP_KERNEL)?;
        let mut st = this.state.lock();
        st.open = true;
        st.vm_name = name;
        drop(st);
        // Every user starts from a device at power-on state.
        Self::reset(this)?;
        this.engine.open(this.dma_handle()?);
        Ok(())
    }

    fn close(this: &Device<Self>) {
        this.engine.close();
        let mut st = this.state.lock();
        st.open = false;
        st.vm_name.clear();
    }

    fn info(_this: &Device<Self>) -> DeviceInfo {
        DeviceInfo {
            flags: vb::VFIO_DEVICE_FLAGS_PCI | vb::VFIO_DEVICE_FLAGS_RESET,
            num_regions: vb::VFIO_PCI_NUM_REGIONS,
            num_irqs: vb::VFIO_PCI_NUM_IRQS,
        }
    }

    fn region_info(this: &Device<Self>, index: u32) -> Result<RegionInfo> {
        if index >= vb::VFIO_PCI_NUM_REGIONS {
            return Err(EINVAL);
        }
        let rw = vb::VFIO_REGION_INFO_FLAG_READ | vb::VFIO_REGION_INFO_FLAG_WRITE;
        let mut info = RegionInfo {
            offset: u64::from(index) << REGION_SHIFT,
            ..RegionInfo::default()
        };
        match index {
            REGION_FB => {
                info.size = this.vtype.profile_bytes();
                info.flags = rw | vb::VFIO_REGION_INFO_FLAG_MMAP;
                // Only the usable part maps; the reservation at the end is the host's.
                info.sparse_mmap = Some((0, this.vtype.usable_bytes()));
            }
            REGION_MMIO => {
                info.size = regs::SIZE as u64;
                info.flags = rw;
            }
            REGION_CONFIG => {
                info.size = config::SIZE as u64;
                info.flags = rw;
            }
            _ => {}
        }
        Ok(info)
    }

    fn irq_info(_this: &Device<Self>, index: u32) -> Result<IrqInfo> {
        let flags = match index {
            engine::IRQ_INDEX_INTX => {
                vb::VFIO_IRQ_INFO_EVENTFD
                    | vb::VFIO_IRQ_INFO_MASKABLE
                    | vb::VFIO_IRQ_INFO_AUTOMASKED
            }
            engine::IRQ_INDEX_MSI => vb::VFIO_IRQ_INFO_EVENTFD | vb::VFIO_IRQ_INFO_NORESIZE,
            engine::IRQ_INDEX_REQ => vb::VFIO_IRQ_INFO_EVENTFD,
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
        if index == engine::IRQ_INDEX_MSI {
            let on = this.engine.msi_enabled();
            this.hw.lock().config.set_msi_enabled(on);
        }
        Ok(())
    }

    fn request(this: &Device<Self>, count: u32) {
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
        {
            let mut hw = this.hw.lock();
            hw.config.reset();
            hw.regs.reset();
        }
        this.engine.reset();
        Ok(())
    }

    fn read(this: &Device<Self>, offset: u64, out: &mut UserSliceWriter) -> Result<usize> {
        let len = out.len();
        let (index, pos) = split(offset, len)?;
        match index {
            REGION_CONFIG => {
                let mut buf = [0u8; config::SIZE];
                let b = buf.get_mut(..len).ok_or(EINVAL)?;
                this.hw.lock().config.read(pos, b);
                out.write_slice(b)?;
            }
            REGION_MMIO => {
                if !Self::mmio_access_ok(pos, len) {
                    return Err(EINVAL);
                }
                let v = {
                    let hw = this.hw.lock();
                    if !hw.config.memory_enabled() {
                        u32::MAX
                    } else if (engine::START..engine::END).contains(&pos) {
                        drop(hw);
                        this.engine.read(pos)
                    } else {
                        hw.regs.read(pos, len)
                    }
                };
                out.write_slice(&v.to_le_bytes()[..len])?;
            }
            REGION_FB => this.fb_read(pos, out)?,
            _ => return Err(EINVAL),
        }
        Ok(len)
    }

    fn write(this: &Device<Self>, offset: u64, data: &mut UserSliceReader) -> Result<usize> {
        let len = data.len();
        let (index, pos) = split(offset, len)?;
        match index {
            REGION_CONFIG => {
                let mut buf = [0u8; config::SIZE];
                let b = buf.get_mut(..len).ok_or(EINVAL)?;
                data.read_slice(b)?;
                this.hw.lock().config.write(pos, b);
            }
            REGION_MMIO => {
                if !Self::mmio_access_ok(pos, len) {
                    return Err(EINVAL);
                }
                let mut b = [0u8; 4];
                data.read_slice(&mut b[..len])?;
                let val = u32::from_le_bytes(b);
                let effect = {
                    let mut hw = this.hw.lock();
                    if !hw.config.memory_enabled() {
                        Effect::None
                    } else if (engine::START..engine::END).contains(&pos) {
                        drop(hw);
                        this.engine.write(pos, val);
                        Effect::None
                    } else {
                        hw.regs.write(pos, len, val)
                    }
                };
                if let Effect::ClearFramebuffer(n) = effect {
                    let n = u64::from(n)
                        .min(this.vtype.usable_bytes())
                        .next_multiple_of(8);
                    let _ = this
                        .slice
                        .gpu
                        .board()
                        .vram_clear(this.slice.slice.offset, n);
                }
            }
            REGION_FB => this.fb_write(pos, data)?,
            _ => return Err(EINVAL),
        }
        Ok(len)
    }

    fn mmap(this: &Device<Self>, vma: &Mmap<'_>) -> Result {
        let index = vma.offset() >> REGION_SHIFT;
        let pos = vma.offset() & REGION_MASK;
        let end = pos.checked_add(vma.len()).ok_or(EINVAL)?;
        if index != u64::from(REGION_FB) || end > this.vtype.usable_bytes() || !vma.is_shared() {
            return Err(EINVAL);
        }
        let board = this.slice.gpu.board();
        vma.remap_io_wc(board.vram_phys() + this.slice.slice.offset + pos)
    }
}

/// Splits a device-file offset into region index and offset inside it, refusing accesses that
/// cross the end of the region space.
fn split(offset: u64, len: usize) -> Result<(u32, usize)> {
    let index = u32::try_from(offset >> REGION_SHIFT).map_err(|_| EINVAL)?;
    let pos = offset & REGION_MASK;
    let end = pos.checked_add(len as u64).ok_or(EINVAL)?;
    let limit = match index {
        REGION_CONFIG => config::SIZE as u64,
        REGION_MMIO => regs::SIZE as u64,
        REGION_FB => 1 << REGION_SHIFT,
        _ => return Err(EINVAL),
    };
    if end > limit {
        return Err(EINVAL);
    }
    Ok((index, usize::try_from(pos)?))
}

/// The framebuffer through the device file (what QEMU uses where it cannot mmap).
impl Vgpu {
    /// Register window accesses: the engine's registers are 32-bit only.
    fn mmio_access_ok(pos: usize, len: usize) -> bool {
        Regs::valid_access(pos, len) && (len == 4 || !(engine::START..engine::END).contains(&pos))
    }

    fn fb_check(&self, pos: usize, len: usize) -> Result<bool> {
        let end = (pos as u64).checked_add(len as u64).ok_or(EINVAL)?;
        if end > self.vtype.profile_bytes() {
            return Err(EINVAL);
        }
        // The reservation and a disabled memory decode read as all-ones and drop writes.
        Ok(end <= self.vtype.usable_bytes() && self.hw.lock().config.memory_enabled())
    }

    fn fb_read(&self, pos: usize, out: &mut UserSliceWriter) -> Result {
        let len = out.len();
        let live = self.fb_check(pos, len)?;
        let mut buf = [0xffu8; FB_CHUNK];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(FB_CHUNK);
            if live {
                let at = self.slice.slice.offset + (pos + done) as u64;
                self.slice.gpu.board().vram_read(at, &mut buf[..n])?;
            }
            out.write_slice(&buf[..n])?;
            done += n;
        }
        Ok(())
    }

    fn fb_write(&self, pos: usize, data: &mut UserSliceReader) -> Result {
        let len = data.len();
        let live = self.fb_check(pos, len)?;
        let mut buf = [0u8; FB_CHUNK];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(FB_CHUNK);
            data.read_slice(&mut buf[..n])?;
            if live {
                let at = self.slice.slice.offset + (pos + done) as u64;
                self.slice.gpu.board().vram_write(at, &buf[..n])?;
            }
            done += n;
        }
        Ok(())
    }

    /// The `display` file: the scan-out mode the guest set, or `disabled`.
    pub(crate) fn show_display(&self, out: &mut SysfsBuf) -> Result {
        let mode = self.hw.lock().regs.mode();
        match mode {
            Some(m) => out.emit(fmt!(
                "{}x{} bpp={} stride={} offset={}\n",
                m.width,
                m.height,
                m.bpp,
                m.stride,
                m.offset
            )),
            None => out.emit(fmt!("disabled\n")),
        }
    }
}

/// The sysfs side of an instance.
impl Vgpu {
    pub(crate) fn show_params(&self, out: &mut SysfsBuf) -> Result {
        let st = self.state.lock();
        out.emit(fmt!("{}\n", BStr::from_bytes(&st.params_text)))
    }

    pub(crate) fn show_vm_name(&self, out: &mut SysfsBuf) -> Result {
        let st = self.state.lock();
        out.emit(fmt!("{}\n", BStr::from_bytes(&st.vm_name)))
    }
}

impl Device<Vgpu> {
    /// `vgpu_params` is refused with `EPERM` while a VM has the vGPU open, with `E2BIG` over
    /// 1024 bytes and with `EINVAL` for anything malformed, unknown or out of range; a refused
    /// write changes nothing.
    pub(crate) fn store_params(&self, data: &[u8]) -> Result {
        let text = params::trim(data);
        let mut st = self.state.lock();
        if st.open {
            dev_err!(self.dev(), "vgpu_params: refused while the vGPU is open\n");
            return Err(EPERM);
        }
        let p = params::parse(text).map_err(|e| {
            match e {
                params::ParamsError::TooLong(n) => dev_err!(
                    self.dev(),
                    "vgpu_params: {} bytes, at most {} allowed\n",
                    n,
                    params::MAX_LEN
                ),
                params::ParamsError::NotKeyValue(item) => dev_err!(
                    self.dev(),
                    "vgpu_params: '{}' is not key=value\n",
                    BStr::from_bytes(item)
                ),
                params::ParamsError::UnknownKey(key) => dev_err!(
                    self.dev(),
                    "vgpu_params: unknown key '{}'\n",
                    BStr::from_bytes(key)
                ),
                params::ParamsError::BadValue(key, value) => dev_err!(
                    self.dev(),
                    "vgpu_params: bad value '{}' for '{}'\n",
                    BStr::from_bytes(value),
                    BStr::from_bytes(key)
                ),
            }
            e.errno()
        })?;
        let mut copy = KVec::with_capacity(text.len(), GFP_KERNEL)?;
        copy.extend_from_slice(text, GFP_KERNEL)?;
        st.params = p;
        st.params_text = copy;
        Ok(())
    }
}
