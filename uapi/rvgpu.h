/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * rvgpu: the guest-visible interface of a vGPU.
 *
 * A vGPU is a PCI display adapter compatible with QEMU's bochs-display, so that the guest's stock
 * bochs-drm driver (or any driver for that device) works unchanged. This header is the contract
 * a guest driver can rely on; uapi/README.md explains it.
 */
#ifndef _UAPI_RVGPU_H
#define _UAPI_RVGPU_H

#include <linux/types.h>

/* PCI identity. */
#define RVGPU_PCI_VENDOR_ID		0x1234
#define RVGPU_PCI_DEVICE_ID		0x1111
#define RVGPU_PCI_CLASS			0x038000	/* display controller, other */
#define RVGPU_PCI_REVISION		0x02
#define RVGPU_PCI_SUBSYSTEM_VENDOR_ID	0x1af4
#define RVGPU_PCI_SUBSYSTEM_ID		0x1100

/*
 * BAR0: the framebuffer, 32-bit prefetchable memory, the size of the vGPU type's profile (a
 * power of two). Only the first RVGPU_REG_FB_SIZE bytes are the vGPU's framebuffer; the rest is
 * reserved by the host: reads return all-ones, writes are dropped.
 *
 * BAR2: the register window, 32-bit memory, 4 KiB. Accesses are 1, 2 or 4 bytes, naturally
 * aligned; registers are little-endian.
 */
#define RVGPU_MMIO_SIZE			0x1000

/*
 * The display region, for a viewer of the guest's screen on the host (VFIO, not the guest): VFIO
 * region index VFIO_PCI_NUM_REGIONS (9), with a VFIO_REGION_INFO_CAP_TYPE capability of type
 * VFIO_REGION_TYPE_PCI_VENDOR_TYPE | RVGPU_PCI_VENDOR_ID and the subtype below. Its offset 0 is
 * the scan-out start inside the framebuffer (X_OFFSET * bytes per pixel + Y_OFFSET * stride), it
 * ends with the framebuffer, and it can be mmapped; when the guest pans, the region follows.
 * VFIO_DEVICE_QUERY_GFX_PLANE (PROBE | REGION, then REGION) names it as the primary plane's
 * region; dma-buf planes are not offered.
 */
#define RVGPU_REGION_SUBTYPE_SCANOUT	1

/* 0x000 - 0x3ff: EDID (read-only): one EDID 1.4 block, the rest zero. */
#define RVGPU_MMIO_EDID			0x000
#define RVGPU_MMIO_EDID_SIZE		0x400

/* 0x500 - 0x515: VBE DISPI registers, 16 bits each, at RVGPU_MMIO_DISPI + index * 2. */
#define RVGPU_MMIO_DISPI		0x500
#define RVGPU_DISPI_INDEX_ID		0x0	/* reads 0xb0c5; 0xb0c0-0xb0c5 may be written */
#define RVGPU_DISPI_INDEX_XRES		0x1
#define RVGPU_DISPI_INDEX_YRES		0x2
#define RVGPU_DISPI_INDEX_BPP		0x3	/* 8, 15, 16, 24 or 32 */
#define RVGPU_DISPI_INDEX_ENABLE	0x4
#define RVGPU_DISPI_INDEX_BANK		0x5	/* stored, no effect */
#define RVGPU_DISPI_INDEX_VIRT_WIDTH	0x6
#define RVGPU_DISPI_INDEX_VIRT_HEIGHT	0x7	/* set by the device when enabled */
#define RVGPU_DISPI_INDEX_X_OFFSET	0x8
#define RVGPU_DISPI_INDEX_Y_OFFSET	0x9
#define RVGPU_DISPI_INDEX_VIDEO_MEMORY_64K 0xa	/* read-only: RVGPU_REG_FB_SIZE / 64 KiB */
#define RVGPU_DISPI_COUNT		0xb	/* registers at 0x500 - 0x515; above them read 0 */

#define RVGPU_DISPI_ID			0xb0c5
#define RVGPU_DISPI_ENABLED		0x01
#define RVGPU_DISPI_GETCAPS		0x02	/* XRES, YRES, BPP read the maximums */
#define RVGPU_DISPI_8BIT_DAC		0x20
#define RVGPU_DISPI_LFB_ENABLED		0x40
#define RVGPU_DISPI_NOCLEARMEM		0x80	/* without it, enabling clears the visible area */

/* 0x600 - 0x607: QEMU's extension registers (32 bits). */
#define RVGPU_MMIO_QEXT			0x600
#define RVGPU_MMIO_QEXT_END		0x620	/* QEMU's and rvgpu's extension registers end */
#define RVGPU_MMIO_QEXT_SIZE		0x600	/* read-only: 0x20, the size of 0x600 - 0x61f */
#define RVGPU_MMIO_QEXT_BYTEORDER	0x604	/* framebuffer byte order */
#define RVGPU_BYTEORDER_LE		0x1e1e1e1e
#define RVGPU_BYTEORDER_BE		0xbebebebe

/* 0x608 - 0x61f: rvgpu's registers (32 bits, read-only): what the vGPU type allows. */
#define RVGPU_REG_MAGIC			0x608	/* RVGPU_MAGIC */
#define RVGPU_REG_HEADS			0x60c	/* display heads of the type */
#define RVGPU_REG_MAX_WIDTH		0x610	/* maximum resolution of the type */
#define RVGPU_REG_MAX_HEIGHT		0x614
#define RVGPU_REG_FB_SIZE		0x618	/* usable framebuffer at the start of BAR0, bytes */
#define RVGPU_REG_FRL_FPS		0x61c	/* the type's frame-rate limit */

#define RVGPU_MAGIC			0x50475652	/* "RVGP" */

/*
 * 0x700 - 0x73f: interrupts and the command engine (32-bit registers).
 *
 * The physical board has no engine: each vGPU's engine is executed by the host driver, by the
 * physical GPU's scheduler (a workqueue of its own), outside the register trap path. Interrupts reach the VM through
 * INTx (pin A; VFIO index 0, with mask/unmask and automasking) or MSI (one vector, VFIO index 1).
 * The engine registers are 32 bits wide and take 4-byte accesses only.
 */
#define RVGPU_MMIO_ENGINE		0x700
#define RVGPU_MMIO_ENGINE_SIZE		0x40

#define RVGPU_REG_IRQ_STATUS		0x700	/* pending sources; write 1 to clear */
#define RVGPU_REG_IRQ_ENABLE		0x704	/* sources that interrupt */
#define RVGPU_IRQ_COMPLETION		(1 << 0)	/* a FENCE command completed */
#define RVGPU_IRQ_ERROR			(1 << 1)	/* a command failed: see RVGPU_REG_ERROR */
#define RVGPU_IRQ_VBLANK		(1 << 2)	/* vertical blank, at the type's frame rate */

#define RVGPU_REG_RING_BASE_LO		0x708	/* ring IOVA, 4 KiB aligned */
#define RVGPU_REG_RING_BASE_HI		0x70c
#define RVGPU_REG_RING_SIZE		0x710	/* bytes, power of two, 4 KiB - 1 MiB; 0 = off;
						 * writing it resets HEAD and TAIL to 0 */
#define RVGPU_REG_RING_HEAD		0x714	/* read-only: offset of the next command to run */
#define RVGPU_REG_RING_TAIL		0x718	/* doorbell: offset after the last command */
#define RVGPU_REG_ERROR			0x71c	/* last error code (RVGPU_ERR_*); write to clear */
#define RVGPU_REG_ERROR_HEAD		0x720	/* ring offset of the command that failed */
#define RVGPU_REG_FENCE			0x724	/* read-only: value of the last completed FENCE */
#define RVGPU_REG_COMPLETED		0x728	/* read-only: commands completed (wraps) */
#define RVGPU_REG_VBLANK_COUNT		0x72c	/* read-only: vertical blanks so far (wraps) */
#define RVGPU_REG_ENGINE_STATUS		0x730	/* read-only: bit 0 busy */

/* Error codes. */
#define RVGPU_ERR_NONE			0
#define RVGPU_ERR_BAD_OPCODE		1	/* unknown opcode */
#define RVGPU_ERR_FB_RANGE		2	/* rectangle outside the usable framebuffer */
#define RVGPU_ERR_DMA_FAULT		3	/* guest memory not mapped (or unmapped meanwhile) */
#define RVGPU_ERR_RING			4	/* TAIL not a multiple of 32 or not below RING_SIZE,
						 * or the ring itself could not be read */
#define RVGPU_ERR_BAD_ARGS		5	/* zero or misaligned sizes, width > stride, height
						 * where there is none */
#define RVGPU_ERR_HOST			6	/* the host could not reach the physical GPU's
						 * memory (the board was removed) */

/*
 * Commands: 32 bytes each, little-endian, in the ring. The engine runs the commands from HEAD up
 * to TAIL (wrapping at RING_SIZE) in order. A failing command sets ERROR and ERROR_HEAD, raises
 * RVGPU_IRQ_ERROR and is skipped; later commands still run.
 *
 * Rectangles in the framebuffer are given in bytes: a start offset, a stride and a width (all
 * multiples of 4 for FILL), so commands do not depend on the display mode.
 *
 * WAIT_VBLANK paces a "draw, wait for vblank" loop at the type's frame-rate limit (frl_config in
 * the type's description; RVGPU_REG_FRL_FPS): it completes 1/frl_config s after the previous
 * WAIT_VBLANK completed, or at once if that time has passed (a slow frame is not made up for by
 * a burst). The commands after it wait with it; the engine runs other vGPUs meanwhile. With the
 * limiter off it completes at once, so the loop runs unpaced: `frame_rate_limiter=0` in the
 * vGPU's nvidia/vgpu_params (taken when the device is opened), or a scheduler policy other than
 * best_effort (as on NVIDIA's vGPU, equal_share and fixed_share turn the limiter off).
 *
 * The physical GPU's engine time is shared between its vGPUs by a time-sliced scheduler (the
 * physical GPU's nvidia/scheduler file); a long FILL or COPY is preempted between lines when its
 * vGPU's time slice ends and goes on in its next one.
 */
#define RVGPU_CMD_NOP			0
#define RVGPU_CMD_FILL			1	/* fill a framebuffer rectangle with a 32-bit value */
#define RVGPU_CMD_COPY_TO_FB		2	/* guest memory -> framebuffer rectangle */
#define RVGPU_CMD_COPY_FROM_FB		3	/* framebuffer rectangle -> guest memory */
#define RVGPU_CMD_FENCE			4	/* write a 32-bit value to guest memory, then interrupt */
#define RVGPU_CMD_WAIT_VBLANK		5	/* end a frame: wait for the frame-rate limiter's next
						 * vertical blank (no arguments, height 0) */

#define RVGPU_CMD_SIZE			32	/* bytes, sizeof(struct rvgpu_cmd) */
#define RVGPU_RING_MIN_SIZE		0x1000
#define RVGPU_RING_MAX_SIZE		0x100000

/* The arguments of each command, after opcode and height (24 bytes each). */
struct rvgpu_cmd_fill {
	__u32 fb_offset;
	__u32 fb_stride;
	__u32 width;			/* bytes, a multiple of 4 */
	__u32 value;
	__u32 pad[2];
};

struct rvgpu_cmd_copy {
	__u64 iova;			/* guest memory, lines iova_stride bytes apart */
	__u32 iova_stride;
	__u32 fb_offset;
	__u32 fb_stride;
	__u32 width;			/* bytes */
};

struct rvgpu_cmd_fence {
	__u64 iova;			/* 4-byte aligned */
	__u32 value;
	__u32 pad[3];
};

struct rvgpu_cmd {
	__u32 opcode;
	__u32 height;			/* lines, for FILL and COPY_*; 0 for the others */
	union {
		struct rvgpu_cmd_fill fill;
		struct rvgpu_cmd_copy copy;
		struct rvgpu_cmd_fence fence;
		__u32 args[6];
	};
};

_Static_assert(sizeof(struct rvgpu_cmd) == RVGPU_CMD_SIZE, "rvgpu_cmd is 32 bytes");
_Static_assert(sizeof(struct rvgpu_cmd_fill) == 24 && sizeof(struct rvgpu_cmd_copy) == 24 &&
	       sizeof(struct rvgpu_cmd_fence) == 24, "command arguments are 24 bytes");

/*
 * Live migration (VFIO migration v2: STOP_COPY, P2P and PRE_COPY). The data stream a vGPU saves
 * and resumes from is opaque to QEMU; it is written down here so that tools can check it. All
 * fields are little-endian.
 *
 * A stream is one struct rvgpu_mig_header followed by records, each a struct rvgpu_mig_record and
 * `len` bytes; the last record is RVGPU_MIG_REC_END. Saving, PRE_COPY sends the header and the
 * framebuffer (the "initial bytes"), then again the pages that changed since they were sent;
 * STOP_COPY then sends the pages still changed (VRAM records), the device state (one
 * RVGPU_MIG_REC_STATE) and the end record. VRAM records may come in any order and cover a page
 * more than once: the last one wins. Resuming validates the header as
 * soon as it is complete (a stream for another type or framebuffer size, or of another version,
 * is refused with EINVAL), every record as it arrives, and the whole stream at RESUMING -> STOP.
 */
#define RVGPU_MIG_MAGIC			0x3147494d55504752ULL	/* "RGPUMIG1" */
#define RVGPU_MIG_VERSION		1

struct rvgpu_mig_header {
	__u64 magic;			/* RVGPU_MIG_MAGIC */
	__u32 version;			/* RVGPU_MIG_VERSION */
	__u32 header_size;		/* sizeof(struct rvgpu_mig_header) */
	__u32 type_id;			/* the vGPU type: nvidia-<type_id> */
	__u32 fb_size;			/* its usable framebuffer, bytes (RVGPU_REG_FB_SIZE) */
	__u32 state_size;		/* sizeof(struct rvgpu_mig_state) */
	__u32 flags;			/* 0 */
	__u32 reserved[8];		/* 0 */
};

#define RVGPU_MIG_REC_VRAM		1	/* `len` bytes of the framebuffer at `offset` */
#define RVGPU_MIG_REC_STATE		2	/* a struct rvgpu_mig_state; `offset` 0 */
#define RVGPU_MIG_REC_END		3	/* the end of the stream; `len` and `offset` 0 */
#define RVGPU_MIG_VRAM_MAX		0x100000	/* the largest VRAM record */

struct rvgpu_mig_record {
	__u32 kind;			/* RVGPU_MIG_REC_* */
	__u32 len;			/* bytes that follow */
	__u64 offset;
};

#define RVGPU_MIG_PARAMS_MAX		1024

/* The device state: everything of the vGPU but its framebuffer. */
struct rvgpu_mig_state {
	__u8 config[256];		/* PCI configuration space */
	__u64 ring_base;		/* the engine registers, as RVGPU_REG_* read */
	__u32 byteorder;		/* RVGPU_MMIO_QEXT_BYTEORDER */
	__u32 irq_status;
	__u32 irq_enable;
	__u32 ring_size;
	__u32 ring_head;
	__u32 ring_tail;
	__u32 error;
	__u32 error_head;
	__u32 fence;
	__u32 completed;
	__u32 vblank_count;
	__u32 intx_masked;		/* 1: INTx is masked (automasked or by VFIO) */
	__u32 params_len;		/* bytes of params used */
	__u16 dispi[RVGPU_DISPI_COUNT];	/* the DISPI registers */
	__u16 pad;
	__u8 params[RVGPU_MIG_PARAMS_MAX];	/* nvidia/vgpu_params as written */
	__u32 reserved;
};

_Static_assert(sizeof(struct rvgpu_mig_header) == 64, "rvgpu_mig_header is 64 bytes");
_Static_assert(sizeof(struct rvgpu_mig_record) == 16, "rvgpu_mig_record is 16 bytes");
_Static_assert(sizeof(struct rvgpu_mig_state) == 1368, "rvgpu_mig_state is 1368 bytes");

#endif /* _UAPI_RVGPU_H */
