/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C entry points for what the C kernel API offers only as static inline functions or macros.
 * Implemented in helpers.c; called from the Rust layer in src/vfio/ (Rust can only call real
 * symbols).
 */
#ifndef RVGPU_VFIO_HELPERS_H
#define RVGPU_VFIO_HELPERS_H

struct attribute;
struct device;
struct file;
struct file_operations;
struct rb_root_cached;
struct eventfd_ctx;
struct page;
struct vfio_device;
struct vm_area_struct;
struct vm_operations_struct;
struct workqueue_struct;

void rvgpu_vfio_put_device(struct vfio_device *vdev);
struct device *rvgpu_vfio_device_dev(struct vfio_device *vdev);
void rvgpu_eventfd_signal(struct eventfd_ctx *ctx);
void rvgpu_page_read(struct page *page, unsigned int offset, void *buf, unsigned int len);
void rvgpu_page_write(struct page *page, unsigned int offset, const void *buf, unsigned int len);
void rvgpu_cond_resched(void);
void rvgpu_sysfs_attr_init(struct attribute *attr);
struct file *rvgpu_mig_file(const char *name, const struct file_operations *fops, void *priv,
			    int flags);
unsigned int rvgpu_log_ranges(struct rb_root_cached *ranges, unsigned long long *start,
			      unsigned long long *last, unsigned int max);
void rvgpu_current_comm(char *buf, unsigned int len);
void rvgpu_vma_map_on_fault(struct vm_area_struct *vma, const struct vm_operations_struct *ops,
			    void *priv);
void rvgpu_vfio_zap(struct vfio_device *vdev, unsigned long long start, unsigned long long len);

struct workqueue_struct *rvgpu_alloc_workqueue(const char *name);
void rvgpu_destroy_workqueue(struct workqueue_struct *wq);
unsigned long long rvgpu_ktime_get_ns(void);
const char *rvgpu_persona(void);

#endif /* RVGPU_VFIO_HELPERS_H */
