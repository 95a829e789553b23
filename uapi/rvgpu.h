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

#define RVGPU_DISPI_ID			0xb0c5
#define RVGPU_DISPI_ENABLED		0x01
#define RVGPU_DISPI_GETCAPS		0x02	/* XRES, YRES, BPP read the maximums */
#define RVGPU_DISPI_8BIT_DAC		0x20
#define RVGPU_DISPI_LFB_ENABLED		0x40
#define RVGPU_DISPI_NOCLEARMEM		0x80	/* without it, enabling clears the visible area */

/* 0x600 - 0x607: QEMU's extension registers (32 bits). */
#define RVGPU_MMIO_QEXT_SIZE		0x600	/* read-only: 0x20, the size of 0x600 - 0x61f */
#define RVGPU_MMIO_QEXT_BYTEORDER	0x604	/* framebuffer byte order */
#define RVGPU_BYTEORDER_LE		0xbebebebe
#define RVGPU_BYTEORDER_BE		0x1e1e1e1e

/* 0x608 - 0x61f: rvgpu's registers (32 bits, read-only): what the vGPU type allows. */
#define RVGPU_REG_MAGIC			0x608	/* RVGPU_MAGIC */
#define RVGPU_REG_HEADS			0x60c	/* display heads of the type */
#define RVGPU_REG_MAX_WIDTH		0x610	/* maximum resolution of the type */
#define RVGPU_REG_MAX_HEIGHT		0x614
#define RVGPU_REG_FB_SIZE		0x618	/* usable framebuffer at the start of BAR0, bytes */
#define RVGPU_REG_FRL_FPS		0x61c	/* the type's frame-rate limit */

#define RVGPU_MAGIC			0x50475652	/* "RVGP" */

#endif /* _UAPI_RVGPU_H */
