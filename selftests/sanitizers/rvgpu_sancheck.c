// SPDX-License-Identifier: GPL-2.0
/*
 * rvgpu_sancheck: a test-only module that commits one deliberate fault of the kind the test
 * kernel's sanitizers exist to catch, chosen by the "fault" parameter, so that the test suite
 * can show each of them is live and that its report fails the run
 * (selftests/vm/99-sanitizers.sh):
 *
 *   fault=kasan     reads one byte past the end of a kmalloc()ed buffer (KASAN)
 *   fault=lockdep   takes two mutexes in one order, then in the other (lockdep)
 *   fault=kmemleak  allocates buffers and forgets the only pointers to them (kmemleak)
 *
 * Loading it always succeeds once the fault is committed; it is never loaded outside the test VM.
 */
#include <linux/compiler.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/string.h>

static char *fault = "";
module_param(fault, charp, 0444);
MODULE_PARM_DESC(fault, "the fault to commit: kasan, lockdep or kmemleak");

static DEFINE_MUTEX(sancheck_a);
static DEFINE_MUTEX(sancheck_b);

static int sancheck_kasan(void)
{
	size_t len = 16;
	char *p;
	char c;

	/* Hidden from the compiler, which would otherwise see the overflow at build time. */
	OPTIMIZER_HIDE_VAR(len);
	p = kmalloc(len, GFP_KERNEL);
	if (!p)
		return -ENOMEM;
	c = READ_ONCE(p[len]);
	pr_info("rvgpu_sancheck: read byte %zu of a %zu-byte buffer (%d)\n", len, len, c);
	kfree(p);
	return 0;
}

static int sancheck_lockdep(void)
{
	mutex_lock(&sancheck_a);
	mutex_lock(&sancheck_b);
	mutex_unlock(&sancheck_b);
	mutex_unlock(&sancheck_a);

	mutex_lock(&sancheck_b);
	mutex_lock(&sancheck_a);
	mutex_unlock(&sancheck_a);
	mutex_unlock(&sancheck_b);
	pr_info("rvgpu_sancheck: took sancheck_a then sancheck_b, then the other way round\n");
	return 0;
}

/* Above KMALLOC_MAX_CACHE_SIZE (two pages). */
#define SANCHECK_LEAK_SIZE (4 * PAGE_SIZE)

static noinline int sancheck_kmemleak(void)
{
	int i;

	/*
	 * Sixteen of them, each larger than the largest kmalloc cache, so that they come from the
	 * page allocator: a slab object's pointer stays behind in the per-CPU sheaf it was taken
	 * from (kmemleak scans the sheaf and counts that as a reference), and a stale copy of the
	 * last pointer may stay in a stack kmemleak scans (a cached thread stack, say).
	 */
	for (i = 0; i < 16; i++) {
		char *p = kmalloc(SANCHECK_LEAK_SIZE, GFP_KERNEL);

		if (!p)
			return -ENOMEM;
		memset(p, 0x5a, SANCHECK_LEAK_SIZE);
		OPTIMIZER_HIDE_VAR(p);
	}
	pr_info("rvgpu_sancheck: leaked sixteen %lu-byte buffers\n", SANCHECK_LEAK_SIZE);
	return 0;
}

static int __init sancheck_init(void)
{
	if (!strcmp(fault, "kasan"))
		return sancheck_kasan();
	if (!strcmp(fault, "lockdep"))
		return sancheck_lockdep();
	if (!strcmp(fault, "kmemleak"))
		return sancheck_kmemleak();
	pr_err("rvgpu_sancheck: fault=%s: not kasan, lockdep or kmemleak\n", fault);
	return -EINVAL;
}

static void __exit sancheck_exit(void)
{
}

module_init(sancheck_init);
module_exit(sancheck_exit);
MODULE_DESCRIPTION("rvgpu test-only module: one deliberate fault for each sanitizer");
MODULE_LICENSE("GPL");
