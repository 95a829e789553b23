// SPDX-License-Identifier: GPL-2.0

//! The engine's commands (`struct rvgpu_cmd`, `uapi/rvgpu.h`): decoded once into a typed
//! [`Command`] by one `TryFrom`, which decides every argument error (`BAD_OPCODE`, `BAD_ARGS`,
//! `FB_RANGE`); the engine then runs only well-formed commands.

use kernel::prelude::*;

use super::super::uapi::{
    self,
    rvgpu_cmd,
    rvgpu_cmd_copy,
    rvgpu_cmd_fence,
    rvgpu_cmd_fill, //
};

/// The size of a command in the ring.
pub(crate) const CMD_SIZE: usize = uapi::RVGPU_CMD_SIZE as usize;
/// Where a command's arguments start (after `opcode` and `height`).
const ARGS: usize = 8;

const _: () = assert!(
    size_of::<rvgpu_cmd>() == CMD_SIZE
        && core::mem::offset_of!(rvgpu_cmd, opcode) == 0
        && core::mem::offset_of!(rvgpu_cmd, height) == 4
        && core::mem::offset_of!(rvgpu_cmd, __bindgen_anon_1) == ARGS
        && size_of::<rvgpu_cmd_fill>() == CMD_SIZE - ARGS
        && size_of::<rvgpu_cmd_copy>() == CMD_SIZE - ARGS
        && size_of::<rvgpu_cmd_fence>() == CMD_SIZE - ARGS
);

/// Why a command failed: the guest sees [`CmdError::code`] in `RVGPU_REG_ERROR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmdError {
    BadOpcode,
    FbRange,
    /// Guest memory not mapped (or unmapped meanwhile), or an IOVA past the top.
    DmaFault,
    /// A bad `TAIL`, or the ring itself could not be read.
    Ring,
    BadArgs,
    /// The host could not reach the physical GPU's memory (the board is gone).
    Host,
    /// Not a failure, and never a command's outcome: a slice run from a doorbell
    /// ([`super::Runner::Doorbell`]) got where it would have had to sleep (a guest page not pinned
    /// yet, a lock held elsewhere). The command stays where it is, for the scheduler's work item.
    Later,
}

impl CmdError {
    /// The `RVGPU_ERR_*` code.
    pub(crate) fn code(self) -> u32 {
        match self {
            Self::BadOpcode => uapi::RVGPU_ERR_BAD_OPCODE,
            Self::FbRange => uapi::RVGPU_ERR_FB_RANGE,
            Self::DmaFault => uapi::RVGPU_ERR_DMA_FAULT,
            Self::Ring => uapi::RVGPU_ERR_RING,
            Self::BadArgs => uapi::RVGPU_ERR_BAD_ARGS,
            // Never reported (see `Later`); the host's code if it ever were.
            Self::Host | Self::Later => uapi::RVGPU_ERR_HOST,
        }
    }
}

/// A rectangle of the framebuffer: `height` lines of `width` bytes, `stride` apart, from
/// `offset`; inside the framebuffer by construction ([`Rect::new`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rect {
    pub(crate) offset: u32,
    pub(crate) stride: u32,
    pub(crate) width: u32,
    pub(crate) height: u32,
}

impl Rect {
    /// Checks a rectangle against a framebuffer of `fb_size` bytes.
    pub(crate) fn new(
        fb_size: u64,
        offset: u32,
        stride: u32,
        width: u32,
        height: u32,
    ) -> Result<Self, CmdError> {
        if width == 0 || height == 0 || width > stride {
            return Err(CmdError::BadArgs);
        }
        let end = u64::from(offset) + u64::from(stride) * u64::from(height - 1) + u64::from(width);
        if end > fb_size {
            return Err(CmdError::FbRange);
        }
        Ok(Self {
            offset,
            stride,
            width,
            height,
        })
    }

    /// The same bytes as one line when the lines follow each other (`stride` is the width):
    /// moved a bounce buffer at a time instead of a line at a time.
    fn span(self) -> Self {
        match self.width.checked_mul(self.height) {
            Some(len) if self.stride == self.width && self.height > 1 => Self {
                offset: self.offset,
                stride: len,
                width: len,
                height: 1,
            },
            _ => self,
        }
    }

    /// Where line `y` starts in the framebuffer.
    pub(crate) fn line(&self, y: u32) -> u64 {
        u64::from(self.offset) + u64::from(y) * u64::from(self.stride)
    }
}

/// Which way a copy goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    ToFb,
    FromFb,
}

/// A well-formed command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    Nop,
    /// Fill `rect` with a 32-bit value.
    Fill {
        rect: Rect,
        value: u32,
    },
    /// Copy between guest memory (lines `iova_stride` apart from `iova`) and `rect`.
    Copy {
        dir: Direction,
        iova: u64,
        iova_stride: u32,
        rect: Rect,
    },
    /// Write `value` to guest memory at `iova`, then interrupt.
    Fence {
        iova: u64,
        value: u32,
    },
    /// Wait for the frame-rate limiter's next vertical blank.
    WaitVblank,
}

/// A command as it sits in the ring, with the size of the framebuffer it is checked against.
pub(crate) struct RawCmd<'a> {
    pub(crate) bytes: &'a [u8; CMD_SIZE],
    pub(crate) fb_size: u64,
}

impl TryFrom<RawCmd<'_>> for Command {
    type Error = CmdError;

    fn try_from(raw: RawCmd<'_>) -> Result<Self, CmdError> {
        let b = raw.bytes;
        let opcode = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let height = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let args = &b[ARGS..];
        match opcode {
            uapi::RVGPU_CMD_NOP if height != 0 => Err(CmdError::BadArgs),
            uapi::RVGPU_CMD_NOP => Ok(Command::Nop),
            uapi::RVGPU_CMD_FILL => {
                let a = rvgpu_cmd_fill::read_from_bytes(args).map_err(|_| CmdError::BadArgs)?;
                let (offset, stride, width) = (
                    u32::from_le(a.fb_offset),
                    u32::from_le(a.fb_stride),
                    u32::from_le(a.width),
                );
                if width % 4 != 0 || offset % 4 != 0 || stride % 4 != 0 {
                    return Err(CmdError::BadArgs);
                }
                Ok(Command::Fill {
                    rect: Rect::new(raw.fb_size, offset, stride, width, height)?.span(),
                    value: u32::from_le(a.value),
                })
            }
            uapi::RVGPU_CMD_COPY_TO_FB | uapi::RVGPU_CMD_COPY_FROM_FB => {
                let a = rvgpu_cmd_copy::read_from_bytes(args).map_err(|_| CmdError::BadArgs)?;
                let (iova_stride, width) = (u32::from_le(a.iova_stride), u32::from_le(a.width));
                if width > iova_stride {
                    return Err(CmdError::BadArgs);
                }
                let rect = Rect::new(
                    raw.fb_size,
                    u32::from_le(a.fb_offset),
                    u32::from_le(a.fb_stride),
                    width,
                    height,
                )?;
                // Lines that follow each other in guest memory and in the framebuffer: one span.
                let (rect, iova_stride) = match rect.span() {
                    s if iova_stride == width && s.height == 1 => (s, s.width),
                    _ => (rect, iova_stride),
                };
                Ok(Command::Copy {
                    dir: if opcode == uapi::RVGPU_CMD_COPY_TO_FB {
                        Direction::ToFb
                    } else {
                        Direction::FromFb
                    },
                    iova: u64::from_le(a.iova),
                    iova_stride,
                    rect,
                })
            }
            uapi::RVGPU_CMD_FENCE => {
                let a = rvgpu_cmd_fence::read_from_bytes(args).map_err(|_| CmdError::BadArgs)?;
                let iova = u64::from_le(a.iova);
                if height != 0 || iova % 4 != 0 {
                    return Err(CmdError::BadArgs);
                }
                Ok(Command::Fence {
                    iova,
                    value: u32::from_le(a.value),
                })
            }
            uapi::RVGPU_CMD_WAIT_VBLANK if height != 0 => Err(CmdError::BadArgs),
            uapi::RVGPU_CMD_WAIT_VBLANK => Ok(Command::WaitVblank),
            _ => Err(CmdError::BadOpcode),
        }
    }
}

/// `a + b` on guest addresses: wrapping past the top of the IOVA space is a DMA fault.
pub(crate) fn iova_add(a: u64, b: u64) -> Result<u64, CmdError> {
    a.checked_add(b).ok_or(CmdError::DmaFault)
}

#[kunit_tests(rvgpu_vgpu_engine_cmd)]
mod tests {
    use super::*;

    const FB: u64 = 4 << 20;

    fn raw(words: [u32; 8]) -> [u8; CMD_SIZE] {
        let mut b = [0u8; CMD_SIZE];
        for (chunk, w) in b.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        b
    }

    fn decode(words: [u32; 8]) -> Result<Command, CmdError> {
        Command::try_from(RawCmd {
            bytes: &raw(words),
            fb_size: FB,
        })
    }

    #[test]
    fn rectangles() {
        assert!(Rect::new(FB, 0, 4096, 4096, 1024).is_ok());
        // The last byte of the framebuffer, and one past it.
        assert!(Rect::new(FB, (4 << 20) - 4, 4, 4, 1).is_ok());
        assert_eq!(
            Rect::new(FB, (4 << 20) - 4, 8, 8, 1),
            Err(CmdError::FbRange)
        );
        assert_eq!(Rect::new(FB, 0, 4096, 4096, 1025), Err(CmdError::FbRange));
        // Sizes that would overflow 32 bits are still caught.
        assert_eq!(
            Rect::new(FB, u32::MAX, u32::MAX, u32::MAX, u32::MAX),
            Err(CmdError::FbRange)
        );
        assert_eq!(Rect::new(FB, 0, 4, 8, 1), Err(CmdError::BadArgs));
        assert_eq!(Rect::new(FB, 0, 4, 0, 1), Err(CmdError::BadArgs));
        assert_eq!(Rect::new(FB, 0, 4, 4, 0), Err(CmdError::BadArgs));
    }

    #[test]
    fn iova_arithmetic() {
        assert_eq!(iova_add(0x1000, 0x1000), Ok(0x2000));
        assert_eq!(iova_add(u64::MAX - 3, 3), Ok(u64::MAX));
        assert_eq!(iova_add(u64::MAX - 3, 4), Err(CmdError::DmaFault));
    }

    #[test]
    fn commands() {
        assert_eq!(decode([0; 8]), Ok(Command::Nop));
        assert_eq!(decode([0, 1, 0, 0, 0, 0, 0, 0]), Err(CmdError::BadArgs));
        assert_eq!(decode([9, 0, 0, 0, 0, 0, 0, 0]), Err(CmdError::BadOpcode));
        assert_eq!(decode([6, 0, 0, 0, 0, 0, 0, 0]), Err(CmdError::BadOpcode));
        assert_eq!(decode([5, 0, 0, 0, 0, 0, 0, 0]), Ok(Command::WaitVblank));
        assert_eq!(decode([5, 1, 0, 0, 0, 0, 0, 0]), Err(CmdError::BadArgs));
        assert_eq!(
            decode([1, 2, 16, 64, 32, 0xdead_beef, 0, 0]),
            Ok(Command::Fill {
                rect: Rect {
                    offset: 16,
                    stride: 64,
                    width: 32,
                    height: 2
                },
                value: 0xdead_beef
            })
        );
        // Lines that follow each other are one span.
        assert_eq!(
            decode([1, 4, 0, 64, 64, 7, 0, 0]),
            Ok(Command::Fill {
                rect: Rect {
                    offset: 0,
                    stride: 256,
                    width: 256,
                    height: 1
                },
                value: 7
            })
        );
        assert_eq!(
            decode([2, 3, 0x1000, 0x1, 128, 0, 128, 128]),
            Ok(Command::Copy {
                dir: Direction::ToFb,
                iova: 0x1_0000_1000,
                iova_stride: 384,
                rect: Rect {
                    offset: 0,
                    stride: 384,
                    width: 384,
                    height: 1
                }
            })
        );
        // Contiguous in the framebuffer only: line by line.
        assert_eq!(
            decode([2, 3, 0x1000, 0x1, 256, 0, 128, 128]),
            Ok(Command::Copy {
                dir: Direction::ToFb,
                iova: 0x1_0000_1000,
                iova_stride: 256,
                rect: Rect {
                    offset: 0,
                    stride: 128,
                    width: 128,
                    height: 3
                }
            })
        );
        // FILL sizes must be multiples of 4.
        assert_eq!(decode([1, 2, 16, 64, 30, 0, 0, 0]), Err(CmdError::BadArgs));
        assert_eq!(
            decode([2, 3, 0x1000, 0x1, 256, 0, 4096, 128]),
            Ok(Command::Copy {
                dir: Direction::ToFb,
                iova: 0x1_0000_1000,
                iova_stride: 256,
                rect: Rect {
                    offset: 0,
                    stride: 4096,
                    width: 128,
                    height: 3
                }
            })
        );
        // Width beyond the guest stride, and a rectangle beyond the framebuffer.
        assert_eq!(
            decode([3, 1, 0, 0, 64, 0, 4096, 128]),
            Err(CmdError::BadArgs)
        );
        assert_eq!(
            decode([3, 2, 0, 0, 4096, (4 << 20) - 4096, 4096, 4096]),
            Err(CmdError::FbRange)
        );
        assert_eq!(
            decode([4, 0, 0x2000, 0, 7, 0, 0, 0]),
            Ok(Command::Fence {
                iova: 0x2000,
                value: 7
            })
        );
        assert_eq!(
            decode([4, 0, 0x2002, 0, 7, 0, 0, 0]),
            Err(CmdError::BadArgs)
        );
        assert_eq!(
            decode([4, 1, 0x2000, 0, 7, 0, 0, 0]),
            Err(CmdError::BadArgs)
        );
    }

    #[test]
    fn error_codes_are_the_headers() {
        assert_eq!(CmdError::BadOpcode.code(), 1);
        assert_eq!(CmdError::DmaFault.code(), 3);
        assert_eq!(CmdError::Host.code(), 6);
    }
}
