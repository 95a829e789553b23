/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C entry points for what the C VFIO/mdev API offers only as static inline functions or macros.
 * Implemented in helpers.c; called from the Rust layer in src/vfio/.
 */
#ifndef RVGPU_VFIO_HELPERS_H
#define RVGPU_VFIO_HELPERS_H

struct module;
struct vfio_device;
struct mdev_device;
struct device;
struct vm_area_struct;

struct module *rvgpu_this_module(void);
void rvgpu_vfio_put_device(struct vfio_device *vdev);
int rvgpu_remap_io_wc(struct vm_area_struct *vma, unsigned long pfn, unsigned long size);

#endif

struct eventfd_ctx;
struct page;

void rvgpu_eventfd_signal(struct eventfd_ctx *ctx);
void rvgpu_page_read(struct page *page, unsigned int offset, void *buf, unsigned int len);
void rvgpu_page_write(struct page *page, unsigned int offset, const void *buf, unsigned int len);
struct device *rvgpu_vfio_device_dev(struct vfio_device *vdev);
