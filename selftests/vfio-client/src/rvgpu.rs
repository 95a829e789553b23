//! The guest-visible interface of an rvgpu vGPU: the constants of `uapi/rvgpu.h` (and the VFIO
//! region and interrupt indexes a vGPU uses), for the test programs. Each constant is named as
//! in the header (without its `RVGPU_` prefix), where it is documented.

#![allow(missing_docs)]

pub const REG_FB_SIZE: u64 = 0x618;
pub const REG_FRL_FPS: u64 = 0x61c;
pub const REG_IRQ_STATUS: u64 = 0x700;
pub const REG_IRQ_ENABLE: u64 = 0x704;
pub const IRQ_COMPLETION: u32 = 1 << 0;
pub const IRQ_ERROR: u32 = 1 << 1;
pub const IRQ_VBLANK: u32 = 1 << 2;
pub const IRQ_ALL: u32 = IRQ_COMPLETION | IRQ_ERROR | IRQ_VBLANK;
pub const REG_RING_BASE_LO: u64 = 0x708;
pub const REG_RING_BASE_HI: u64 = 0x70c;
pub const REG_RING_SIZE: u64 = 0x710;
pub const REG_RING_HEAD: u64 = 0x714;
pub const REG_RING_TAIL: u64 = 0x718;
pub const REG_ERROR: u64 = 0x71c;
pub const REG_ERROR_HEAD: u64 = 0x720;
pub const REG_FENCE: u64 = 0x724;
pub const REG_COMPLETED: u64 = 0x728;
pub const REG_VBLANK_COUNT: u64 = 0x72c;
pub const REG_ENGINE_STATUS: u64 = 0x730;

pub const ERR_NONE: u32 = 0;
pub const ERR_BAD_OPCODE: u32 = 1;
pub const ERR_FB_RANGE: u32 = 2;
pub const ERR_DMA_FAULT: u32 = 3;
pub const ERR_RING: u32 = 4;
pub const ERR_BAD_ARGS: u32 = 5;

pub const CMD_NOP: u32 = 0;
pub const CMD_FILL: u32 = 1;
pub const CMD_COPY_TO_FB: u32 = 2;
pub const CMD_COPY_FROM_FB: u32 = 3;
pub const CMD_FENCE: u32 = 4;
pub const CMD_BYTES: u32 = 32;

pub const DISPI: u64 = 0x500;
pub const REGION_BAR0: u32 = 0;
pub const REGION_BAR2: u32 = 2;
pub const REGION_CONFIG: u32 = 7;
pub const INTX: u32 = 0;
pub const MSI: u32 = 1;
pub const MSIX: u32 = 2;
/// The MSI capability (uapi/README.md): control at +2, address at +4/+8, data at +12.
pub const MSI_CAP: u64 = 0x48;
