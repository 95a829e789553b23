/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C VFIO and mdev API as seen by the rvgpu Rust layer: the input of the module's private
 * bindgen step (Kbuild). Function-like macros (the VFIO ioctl numbers) are turned into constants
 * here, because bindgen drops them.
 */
#include <linux/mdev.h>
#include <linux/vfio.h>
#include <uapi/linux/vfio.h>
#include <linux/iova_bitmap.h>

#include "helpers.h"

const unsigned int RVGPU_VFIO_DEVICE_GET_INFO = VFIO_DEVICE_GET_INFO;
const unsigned int RVGPU_VFIO_DEVICE_GET_REGION_INFO = VFIO_DEVICE_GET_REGION_INFO;
const unsigned int RVGPU_VFIO_DEVICE_GET_IRQ_INFO = VFIO_DEVICE_GET_IRQ_INFO;
const unsigned int RVGPU_VFIO_DEVICE_SET_IRQS = VFIO_DEVICE_SET_IRQS;
const unsigned int RVGPU_VFIO_DEVICE_RESET = VFIO_DEVICE_RESET;
const unsigned int RVGPU_VFIO_DEVICE_QUERY_GFX_PLANE = VFIO_DEVICE_QUERY_GFX_PLANE;
const unsigned int RVGPU_VFIO_DEVICE_GET_GFX_DMABUF = VFIO_DEVICE_GET_GFX_DMABUF;
const unsigned int RVGPU_VFIO_MIG_GET_PRECOPY_INFO = VFIO_MIG_GET_PRECOPY_INFO;
