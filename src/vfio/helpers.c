// SPDX-License-Identifier: GPL-2.0
/*
 * Out-of-line copies of static inline functions and macros of the C VFIO/mdev API, for the Rust
 * layer in src/vfio/ (Rust can only call real symbols).
 */
#include <linux/eventfd.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mdev.h>
#include <linux/vfio.h>

#include "helpers.h"

struct module *rvgpu_this_module(void)
{
	return THIS_MODULE;
}

void rvgpu_vfio_put_device(struct vfio_device *vdev)
{
	vfio_put_device(vdev);
}


/*
 * Maps I/O memory (a device BAR) into a VMA being set up by mmap, write-combining, the way
 * vfio-pci maps BARs: VM_IO | VM_PFNMAP, not expandable, not dumped.
 */
int rvgpu_remap_io_wc(struct vm_area_struct *vma, unsigned long pfn, unsigned long size)
{
	vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
	vma->vm_page_prot = pgprot_writecombine(vma->vm_page_prot);
	return io_remap_pfn_range(vma, vma->vm_start, pfn, size, vma->vm_page_prot);
}

void rvgpu_eventfd_signal(struct eventfd_ctx *ctx)
{
	eventfd_signal(ctx);
}

void rvgpu_page_read(struct page *page, unsigned int offset, void *buf, unsigned int len)
{
	memcpy_from_page(buf, page, offset, len);
}

void rvgpu_page_write(struct page *page, unsigned int offset, const void *buf, unsigned int len)
{
	memcpy_to_page(page, offset, buf, len);
}

/* The reference-counted device embedded in a VFIO device (vfio_put_device() puts it). */
struct device *rvgpu_vfio_device_dev(struct vfio_device *vdev)
{
	return &vdev->device;
}
