// SPDX-License-Identifier: GPL-2.0
/*
 * Out-of-line copies of static inline functions and macros of the C kernel API, for the Rust
 * layer in src/vfio/ (Rust can only call real symbols).
 */
#include <linux/anon_inodes.h>
#include <linux/eventfd.h>
#include <linux/fs.h>
#include <linux/interval_tree.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/mdev.h>
#include <linux/moduleparam.h>
#include <linux/sched.h>
#include <linux/string.h>
#include <linux/sysfs.h>
#include <linux/timekeeping.h>
#include <linux/vfio.h>
#include <linux/workqueue.h>

#include "helpers.h"

/* iova_bitmap_set(), for DMA dirty logging reports. */
MODULE_IMPORT_NS("IOMMUFD");

void rvgpu_vfio_put_device(struct vfio_device *vdev)
{
	vfio_put_device(vdev);
}

/* The reference-counted device embedded in a VFIO device (vfio_put_device() puts it). */
struct device *rvgpu_vfio_device_dev(struct vfio_device *vdev)
{
	return &vdev->device;
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

void rvgpu_cond_resched(void)
{
	cond_resched();
}

/* The calling task's name, read as get_task_comm() does, NUL-padded into buf[len]. */
void rvgpu_current_comm(char *buf, unsigned int len)
{
	char comm[TASK_COMM_LEN];

	get_task_comm(comm, current);
	strscpy_pad(buf, comm, len);
}

/*
 * A sysfs attribute that is not in static memory needs a lock class key for lockdep
 * (sysfs_attr_init()); all of rvgpu's attributes share this one.
 */
void rvgpu_sysfs_attr_init(struct attribute *attr)
{
	sysfs_attr_init(attr);
}

/* A migration data file: an anonymous inode file read or written as a stream (no offsets). */
struct file *rvgpu_mig_file(const char *name, const struct file_operations *fops, void *priv,
			    int flags)
{
	struct file *file = anon_inode_getfile(name, fops, priv, flags);

	if (!IS_ERR(file))
		stream_open(file_inode(file), file);
	return file;
}

/* Copies up to max ranges of a DMA logging start ([start, last] each); returns how many. */
unsigned int rvgpu_log_ranges(struct rb_root_cached *ranges, unsigned long long *start,
			      unsigned long long *last, unsigned int max)
{
	struct interval_tree_node *node;
	unsigned int n = 0;

	for (node = interval_tree_iter_first(ranges, 0, ULONG_MAX); node && n < max;
	     node = interval_tree_iter_next(node, 0, ULONG_MAX)) {
		start[n] = node->start;
		last[n] = node->last;
		n++;
	}
	return n;
}

/*
 * Sets a VMA being set up by mmap to be filled in on fault (VM_IO | VM_PFNMAP, not expandable,
 * not dumped, write-combining, as vfio-pci maps BARs). With a pfn_mkwrite handler in ops, the
 * mm core then maps its shared pages read-only until their first write.
 */
void rvgpu_vma_map_on_fault(struct vm_area_struct *vma, const struct vm_operations_struct *ops,
			    void *priv)
{
	vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
	vma->vm_page_prot = pgprot_writecombine(vma->vm_page_prot);
	vma->vm_private_data = priv;
	vma->vm_ops = ops;
}

/* Zaps [start, start + len) of the device file from every mapping of it (as vfio-pci does). */
void rvgpu_vfio_zap(struct vfio_device *vdev, unsigned long long start, unsigned long long len)
{
	unmap_mapping_range(vdev->inode->i_mapping, start, len, true);
}

/*
 * A workqueue of the driver's own (a physical GPU's scheduler runs on it): unbound, as the
 * kernel's system_unbound_wq, and high-priority (nice -20 workers, as a GPU's own scheduling
 * thread would be: time slices are not lost to user processes), with the default number of
 * concurrent items. The 7.3 Rust crate cannot create one yet.
 */
struct workqueue_struct *rvgpu_alloc_workqueue(const char *name)
{
	return alloc_workqueue("%s", WQ_UNBOUND | WQ_HIGHPRI, 0, name);
}

void rvgpu_destroy_workqueue(struct workqueue_struct *wq)
{
	destroy_workqueue(wq);
}

/* CLOCK_MONOTONIC in nanoseconds (what user space reads with clock_gettime()). */
unsigned long long rvgpu_ktime_get_ns(void)
{
	return ktime_get_ns();
}

/*
 * The "persona" module parameter (a string: the 7.3 Rust crate's module parameters are numbers
 * and booleans only). Read-only once loaded.
 */
static char *persona = "";
module_param(persona, charp, 0444);
MODULE_PARM_DESC(persona,
		 "present a real board's vGPU type table instead of the board's own: t4 (Tesla T4) or m60 (Tesla M60); see mdev_types/");

const char *rvgpu_persona(void)
{
	return persona ? persona : "";
}
