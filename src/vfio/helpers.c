// SPDX-License-Identifier: GPL-2.0
/*
 * Out-of-line copies of static inline functions and macros of the C VFIO/mdev API, for the Rust
 * layer in src/vfio/ (Rust can only call real symbols).
 */
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

struct device *rvgpu_mdev_dev(struct mdev_device *mdev)
{
	return mdev_dev(mdev);
}
