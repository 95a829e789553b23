// SPDX-License-Identifier: GPL-2.0
/*
 * rvgpu-load: drives a vGPU's command engine from INSIDE the nested guest (selftests/nested/init
 * runs it as /bin/rvgpu-load when the kernel command line has rvgpu.load=SECONDS), as a steady
 * load for a live-migration test. Built static by scripts/build-nested.sh; every constant and
 * structure of the device comes from uapi/rvgpu.h.
 *
 *   rvgpu-load [--iterations N] [--seconds S] [--report-every N] [--timeout-ms MS]
 *              [--device BDF] [--fb-offset OFF]
 *   rvgpu-load --display S [--device BDF]
 *                                the display steps (below), S seconds each, then exit
 *   rvgpu-load --self-test       no device needed: header and layout sanity, command encoding,
 *                                the verifier, and (with CAP_SYS_ADMIN) pagemap translation
 *
 *   --iterations N    stop after N iterations (default 0: no limit)
 *   --seconds S       stop after S seconds (default 0: no limit); with neither limit it runs until
 *                     SIGINT/SIGTERM, then finishes the iteration in flight and reports
 *   --report-every N  print a report line every N iterations (default 100) and at the end
 *   --timeout-ms MS   how long one iteration may wait for the engine (default 5000)
 *   --device BDF      the PCI function (default: the first 1234:1111 one)
 *   --fb-offset OFF   where the off-screen area starts in the framebuffer (default below)
 *
 * What it does. It finds the 1234:1111 function under /sys/bus/pci/devices (bochs-drm owns it and
 * keeps its console there; this program only uses an off-screen area), maps BAR2 (resource2, the
 * registers, 32-bit volatile accesses) and the off-screen area of BAR0 (resource0), checks
 * RVGPU_REG_MAGIC, sets bus mastering in the command register through the config file (restored
 * at exit), and allocates five page-aligned, mlock()ed pages of its own memory whose
 * guest-physical addresses it reads from /proc/self/pagemap (the nested guest has no IOMMU: the
 * guest-physical address is the vGPU's DMA address). Pages are not contiguous, so every command's
 * guest side stays within one page:
 *
 *   ring      the ring, RING_SIZE 4096 (one page); 5 commands of 32 bytes per iteration
 *   fence     word 0: the FENCE target
 *   pattern   the COPY_TO_FB source, regenerated every iteration
 *   rb_fill   the COPY_FROM_FB target for the FILL rectangle (4 lines of 1024 bytes, packed)
 *   rb_copy   the COPY_FROM_FB target for the copied line
 *
 * Framebuffer layout, at byte offsets from BASE into the framebuffer (BAR0). BASE is 4 MiB
 * (0x400000), or, when the console (fb0's stride * virtual height; without fb0 the type's
 * maximum resolution at 32 bpp) reaches past 4 MiB, the console's end rounded up to 64 KiB, or
 * --fb-offset. BASE + 64 KiB must fit in RVGPU_REG_FB_SIZE. The start line prints BASE.
 *
 *   BASE + 0x0000 .. 0x3400   FILL rectangle: 4 lines of 1024 bytes, stride 4096 (lines at
 *                             +0x0000, +0x1000, +0x2000, +0x3000), every 32-bit word
 *                             fill_value(iter) = 0xf1000000 | (iter & 0xffffff); the engine
 *                             fills it, COPY_FROM_FB reads it back into rb_fill
 *   BASE + 0x4000 .. 0x5000   COPY line: 4096 bytes, COPY_TO_FB from the pattern page, then
 *                             COPY_FROM_FB into rb_copy; 32-bit word w (0..1023) is
 *                             pattern_word(iter, w) = ((iter << 10) | w) * 0x9e3779b1 (mod 2^32)
 *   BASE + 0x8000 .. 0x9000   CPU page: plain 32-bit stores through the resource0 mapping, every
 *                             word cpu_value(iter) = 0xfb000000 | (iter & 0xffffff), written in
 *                             ascending order once per iteration; the report line's fb=<value>
 *                             is the last value completely written (a snapshot taken while the
 *                             guest runs may show the next value in a prefix of the page)
 *   the rest of BASE .. BASE + 0x10000 is not touched
 *
 * So with the test's video=1024x768 console (3 MiB) the framebuffer offsets are: FILL lines at
 * 0x400000, 0x401000, 0x402000, 0x403000 (1024 bytes each), the COPY line at 0x404000, the CPU
 * page at 0x408000 (4096 bytes each).
 *
 * All values little-endian (x86). Iterations count from 1; iter is also the FENCE value.
 *
 * The display steps (--display S), for a host that takes screenshots of the vGPU's display
 * plane: the program sets modes and pans through the DISPI registers in BAR2 (16-bit accesses),
 * as a driver that page-flips would, and holds each step S seconds after saying it:
 *
 *   NESTED: load display step=0 mode=1024x768x32 offset=0x0         the console, untouched
 *   NESTED: load display step=1 mode=800x600x32 offset=0x0          the console's bytes at 800x600
 *   NESTED: load display step=2 mode=1024x768x32 offset=0x300000    Y_OFFSET 768 (a second buffer at
 *                                                               3 MiB, filled with colour bars)
 *   NESTED: load display done status=<0 or 1>
 *
 * then it puts the console's mode (1024x768x32 at offset 0) back.
 *
 * One iteration: regenerate the pattern page, poison rb_fill/rb_copy (bitwise NOT of what is
 * expected) and the fence word (~iter); queue FILL, COPY_TO_FB, COPY_FROM_FB (fill rectangle),
 * COPY_FROM_FB (copy line), FENCE iter; ring the doorbell (RING_TAIL); write the CPU page; wait
 * (bounded by --timeout-ms) until RING_HEAD reaches the new tail, polling the fence word (memory)
 * and, less often, RING_HEAD (a trapped register); then check RVGPU_REG_ERROR is 0,
 * RVGPU_REG_FENCE and the fence word are iter and RVGPU_REG_COMPLETED went up by 5 (these count as
 * errors), and compare byte for byte (these count as mismatches): rb_fill and rb_copy against
 * what is expected, and the FILL rectangle, the COPY line and the CPU page as the CPU reads them
 * through resource0. An engine error is cleared (RVGPU_REG_ERROR written) and the loop goes on;
 * a timeout ends the run. (The timeout runs on the guest's clock; a migration test whose downtime
 * could count against it can raise --timeout-ms.)
 *
 * Output, on stdout (the serial console under the init), one line each:
 *   NESTED: load start bdf=<BDF> fb_size=0x<hex> base=0x<hex> console=0x<hex> ring=0x<pa>
 *   NESTED: load iter=<n> ok=<n> mismatches=<n> errors=<n> fb=0x<8 hex>
 *       every --report-every iterations and once at the end (unless the last periodic line
 *       already said exactly that): iter = iterations run, ok = those
 *       with no mismatch and no error, mismatches = buffers that differed, errors = engine
 *       errors, timeouts and register inconsistencies; fb = the CPU page's last value (0: none)
 *   NESTED: load mismatch iter=<n> what=<buffer> offset=0x<hex> got=0x<hex> want=0x<hex> bytes=<n>
 *       offset: the first differing byte in the buffer (rb_fill/rb_copy: in the page;
 *       fb_fill/fb_copy/fb_cpu: the framebuffer offset); got/want: the 32-bit words there;
 *       bytes: how many bytes of the buffer differ (at most 20 such lines in all)
 *   NESTED: load error <what>
 * Exit status: 0 if there was no mismatch and no error; 1 if there was; 2 if it could not start
 * (usage, no device, no engine, mapping or pagemap failures).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "uapi/rvgpu.h"

#define PAGE		4096u

/* The off-screen area (see the header comment). */
#define DEFAULT_BASE	0x400000u
#define BASE_ALIGN	0x10000u	/* BASE moved past the console: rounded up to 64 KiB */
#define REGION		0x10000u	/* what BASE reserves (and maps of resource0) */
#define FILL_OFF	0x0000u
#define FILL_STRIDE	0x1000u
#define FILL_WIDTH	1024u
#define FILL_HEIGHT	4u
#define COPY_OFF	0x4000u
#define COPY_WIDTH	PAGE
#define CPU_OFF		0x8000u
#define CPU_SIZE	PAGE

#define RING_BYTES	RVGPU_RING_MIN_SIZE
#define CMDS_PER_ITER	5u
#define MAX_PRINTED_MISMATCHES 20u

static const char *const cmd_name[CMDS_PER_ITER] = {
	"fill", "copy_to_fb", "copy_from_fb(fill)", "copy_from_fb(copy)", "fence",
};

enum { PG_RING, PG_FENCE, PG_PATTERN, PG_RB_FILL, PG_RB_COPY, NPAGES };
static const char *const page_name[NPAGES] = { "ring", "fence", "pattern", "rb_fill", "rb_copy" };

_Static_assert(RING_BYTES == PAGE, "the ring is one page");
_Static_assert(RING_BYTES % RVGPU_CMD_SIZE == 0, "commands tile the ring");
_Static_assert(FILL_WIDTH * FILL_HEIGHT == PAGE, "rb_fill holds the FILL rectangle packed");
_Static_assert(FILL_WIDTH % 4 == 0 && FILL_STRIDE % 4 == 0 && FILL_OFF % 4 == 0, "FILL sizes");
_Static_assert(FILL_OFF + FILL_STRIDE * (FILL_HEIGHT - 1) + FILL_WIDTH <= COPY_OFF, "disjoint");
_Static_assert(COPY_OFF + COPY_WIDTH <= CPU_OFF && CPU_OFF + CPU_SIZE <= REGION, "disjoint");
_Static_assert(offsetof(struct rvgpu_cmd, fill.fb_offset) == 8 &&
	       offsetof(struct rvgpu_cmd, fill.value) == 20 &&
	       offsetof(struct rvgpu_cmd, copy.iova) == 8 &&
	       offsetof(struct rvgpu_cmd, copy.width) == 28 &&
	       offsetof(struct rvgpu_cmd, fence.value) == 16, "command layout");

#define barrier() __asm__ __volatile__("" ::: "memory")
/* Orders normal stores (ring, guest pages) against the MMIO doorbell, and loads after it. */
#define full_fence() do { __atomic_thread_fence(__ATOMIC_SEQ_CST); barrier(); } while (0)

/* The per-iteration values (documented in the header comment). */
static uint32_t fill_value(uint32_t iter) { return 0xf1000000u | (iter & 0xffffffu); }
static uint32_t cpu_value(uint32_t iter) { return 0xfb000000u | (iter & 0xffffffu); }
static uint32_t pattern_word(uint32_t iter, uint32_t w)
{
	return ((iter << 10) | (w & 0x3ffu)) * 0x9e3779b1u;
}

static void put32(uint8_t *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	fputs("NESTED: load ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}
#define fail(...) say("error " __VA_ARGS__)

static uint64_t now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_us(long us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };

	nanosleep(&ts, NULL);	/* EINTR is fine: the callers re-check */
}

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

/* ---- files ------------------------------------------------------------------------------ */

/* The first line of a file, without its newline; -1 if it cannot be read. */
static int read_line(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

/* ---- guest memory ----------------------------------------------------------------------- */

struct guest {
	uint8_t *va;			/* NPAGES pages */
	uint64_t pa[NPAGES];
};

static uint8_t *page_va(const struct guest *g, int i) { return g->va + (size_t)i * PAGE; }

/* The guest-physical address of the page at va, from /proc/self/pagemap. */
static int pagemap_pa(int fd, const void *va, uint64_t *pa, int quiet)
{
	uint64_t e;
	off_t off = (off_t)((uintptr_t)va / PAGE) * 8;
	ssize_t n = pread(fd, &e, sizeof(e), off);

	if (n != (ssize_t)sizeof(e)) {
		if (!quiet)
			fail("pagemap read at %p: %s", va, n < 0 ? strerror(errno) : "short read");
		return -1;
	}
	if (!(e >> 63 & 1)) {
		if (!quiet)
			fail("pagemap: page %p not present (entry 0x%016" PRIx64 ")", va, e);
		return -1;
	}
	e &= (1ull << 55) - 1;
	if (e == 0) {
		if (!quiet)
			fail("pagemap shows no PFN for %p (needs root: CAP_SYS_ADMIN)", va);
		return -1;
	}
	*pa = e * PAGE;
	return 0;
}

/* NPAGES page-aligned pages, locked, touched, translated. */
static int guest_alloc(struct guest *g, int pagemap_fd)
{
	size_t len = (size_t)NPAGES * PAGE;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		fail("mmap of %zu bytes of guest memory: %s", len, strerror(errno));
		return -1;
	}
	g->va = p;
	memset(p, 0x5a, len);		/* real pages, not the zero page */
	if (mlock(p, len) != 0) {
		fail("mlock of %zu bytes: %s", len, strerror(errno));
		return -1;
	}
	memset(p, 0, len);
	for (int i = 0; i < NPAGES; i++)
		if (pagemap_pa(pagemap_fd, page_va(g, i), &g->pa[i], 0) != 0)
			return -1;
	for (int i = 0; i < NPAGES; i++)
		for (int j = i + 1; j < NPAGES; j++)
			if (g->pa[i] == g->pa[j]) {
				fail("pagemap: pages %s and %s share 0x%" PRIx64, page_name[i],
				     page_name[j], g->pa[i]);
				return -1;
			}
	return 0;
}

/* Whether the pages are still where they were (nothing should move them: they are locked). */
static int guest_check(const struct guest *g, int pagemap_fd)
{
	for (int i = 0; i < NPAGES; i++) {
		uint64_t pa;

		if (pagemap_pa(pagemap_fd, page_va(g, i), &pa, 0) != 0)
			return -1;
		if (pa != g->pa[i]) {
			fail("page %s moved from 0x%" PRIx64 " to 0x%" PRIx64, page_name[i], g->pa[i], pa);
			return -1;
		}
	}
	return 0;
}

/* ---- commands --------------------------------------------------------------------------- */

static void cmd_fill(struct rvgpu_cmd *c, uint32_t fb_off, uint32_t stride, uint32_t width,
		     uint32_t height, uint32_t value)
{
	memset(c, 0, sizeof(*c));
	c->opcode = htole32(RVGPU_CMD_FILL);
	c->height = htole32(height);
	c->fill.fb_offset = htole32(fb_off);
	c->fill.fb_stride = htole32(stride);
	c->fill.width = htole32(width);
	c->fill.value = htole32(value);
}

static void cmd_copy(struct rvgpu_cmd *c, uint32_t opcode, uint64_t iova, uint32_t iova_stride,
		     uint32_t fb_off, uint32_t fb_stride, uint32_t width, uint32_t height)
{
	memset(c, 0, sizeof(*c));
	c->opcode = htole32(opcode);
	c->height = htole32(height);
	c->copy.iova = htole64(iova);
	c->copy.iova_stride = htole32(iova_stride);
	c->copy.fb_offset = htole32(fb_off);
	c->copy.fb_stride = htole32(fb_stride);
	c->copy.width = htole32(width);
}

static void cmd_fence(struct rvgpu_cmd *c, uint64_t iova, uint32_t value)
{
	memset(c, 0, sizeof(*c));
	c->opcode = htole32(RVGPU_CMD_FENCE);
	c->fence.iova = htole64(iova);
	c->fence.value = htole32(value);
}

/* The five commands of iteration iter. */
static void build_cmds(struct rvgpu_cmd out[CMDS_PER_ITER], uint32_t iter, uint32_t base,
		       const uint64_t pa[NPAGES])
{
	cmd_fill(&out[0], base + FILL_OFF, FILL_STRIDE, FILL_WIDTH, FILL_HEIGHT, fill_value(iter));
	cmd_copy(&out[1], RVGPU_CMD_COPY_TO_FB, pa[PG_PATTERN], PAGE, base + COPY_OFF, PAGE,
		 COPY_WIDTH, 1);
	cmd_copy(&out[2], RVGPU_CMD_COPY_FROM_FB, pa[PG_RB_FILL], FILL_WIDTH, base + FILL_OFF,
		 FILL_STRIDE, FILL_WIDTH, FILL_HEIGHT);
	cmd_copy(&out[3], RVGPU_CMD_COPY_FROM_FB, pa[PG_RB_COPY], PAGE, base + COPY_OFF, PAGE,
		 COPY_WIDTH, 1);
	cmd_fence(&out[4], pa[PG_FENCE], iter);
}

/* The expected contents of the fill rectangle (packed) and of the copy line. */
static void expect_fill(uint8_t *buf, uint32_t iter)
{
	for (uint32_t i = 0; i < PAGE; i += 4)
		put32(buf + i, fill_value(iter));
}

static void expect_pattern(uint8_t *buf, uint32_t iter)
{
	for (uint32_t w = 0; w < PAGE / 4; w++)
		put32(buf + 4 * w, pattern_word(iter, w));
}

/* ---- verification ----------------------------------------------------------------------- */

static unsigned printed_mismatches;

/*
 * Compares n bytes; on a difference prints one mismatch line (unless quiet or too many have been
 * printed) and returns 1. The buffer holds lines of line bytes packed, which sit stride apart
 * from where0 in what the line names (for a plain buffer: line = stride = n); *first gets the
 * first differing offset in the buffer.
 */
static int verify(const char *what, uint32_t iter, const uint8_t *got, const uint8_t *want,
		  size_t n, uint64_t where0, size_t line, size_t stride, int quiet, size_t *first)
{
	size_t bad = 0, at = 0;

	for (size_t i = 0; i < n; i++)
		if (got[i] != want[i]) {
			if (!bad)
				at = i;
			bad++;
		}
	if (!bad)
		return 0;
	if (first)
		*first = at;
	if (!quiet) {
		if (printed_mismatches < MAX_PRINTED_MISMATCHES) {
			size_t w = at & ~(size_t)3;

			say("mismatch iter=%" PRIu32 " what=%s offset=0x%" PRIx64 " got=0x%08" PRIx32
			    " want=0x%08" PRIx32 " bytes=%zu", iter, what,
			    where0 + at / line * stride + at % line,
			    w + 4 <= n ? get32(got + w) : got[at], w + 4 <= n ? get32(want + w) : want[at],
			    bad);
		} else if (printed_mismatches == MAX_PRINTED_MISMATCHES) {
			say("mismatch: further mismatch lines not printed");
		}
		printed_mismatches++;
	}
	return 1;
}

/* Copies from a BAR mapping with 32-bit loads. */
static void mmio_read(uint8_t *dst, const volatile uint32_t *src, size_t bytes)
{
	for (size_t i = 0; i < bytes / 4; i++)
		put32(dst + 4 * i, le32toh(src[i]));
}

/* ---- the device ------------------------------------------------------------------------- */

static volatile uint32_t *bar2;
static uint32_t rd(uint32_t off) { return le32toh(bar2[off / 4]); }
static void wr(uint32_t off, uint32_t v) { bar2[off / 4] = htole32(v); }

static const char *err_name(uint32_t e)
{
	switch (e) {
	case RVGPU_ERR_NONE: return "none";
	case RVGPU_ERR_BAD_OPCODE: return "bad_opcode";
	case RVGPU_ERR_FB_RANGE: return "fb_range";
	case RVGPU_ERR_DMA_FAULT: return "dma_fault";
	case RVGPU_ERR_RING: return "ring";
	case RVGPU_ERR_BAD_ARGS: return "bad_args";
	case RVGPU_ERR_HOST: return "host";
	default: return "unknown";
	}
}

/* The first 1234:1111 function, or check the one given. */
static int find_device(char *bdf, size_t len, const char *want)
{
	static const char dir[] = "/sys/bus/pci/devices";
	char path[PATH_MAX], v[32], d[32];
	uint64_t vendor, device;
	struct dirent *de;
	DIR *dp = opendir(dir);
	int found = 0;

	if (!dp) {
		fail("cannot list %s: %s", dir, strerror(errno));
		return -1;
	}
	while (!found && (de = readdir(dp))) {
		if (de->d_name[0] == '.' || (want && strcmp(de->d_name, want) != 0))
			continue;
		snprintf(path, sizeof(path), "%s/%s/vendor", dir, de->d_name);
		if (read_line(path, v, sizeof(v)) != 0 || parse_u64(v, &vendor) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s/device", dir, de->d_name);
		if (read_line(path, d, sizeof(d)) != 0 || parse_u64(d, &device) != 0)
			continue;
		if (vendor == RVGPU_PCI_VENDOR_ID && device == RVGPU_PCI_DEVICE_ID) {
			snprintf(bdf, len, "%s", de->d_name);
			found = 1;
		} else if (want) {
			fail("device %s is %s:%s, not %04x:%04x", want, v, d, RVGPU_PCI_VENDOR_ID,
			     RVGPU_PCI_DEVICE_ID);
			closedir(dp);
			return -1;
		}
	}
	closedir(dp);
	if (!found) {
		if (want)
			fail("no PCI function %s", want);
		else
			fail("no %04x:%04x PCI function", RVGPU_PCI_VENDOR_ID, RVGPU_PCI_DEVICE_ID);
		return -1;
	}
	return 0;
}

/* Maps len bytes at off of BAR bar through resourceN; *size gets the BAR's size. */
static void *map_bar(const char *bdf, int bar, uint64_t off, size_t len, uint64_t *size)
{
	char path[PATH_MAX];
	struct stat st;
	void *p;
	int fd;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource%d", bdf, bar);
	fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
	if (fd < 0) {
		fail("open %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0) {
		fail("stat %s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	*size = (uint64_t)st.st_size;
	if (off + len > *size) {
		fail("BAR%d of %s is 0x%" PRIx64 " bytes; need 0x%" PRIx64, bar, bdf, *size,
		     off + (uint64_t)len);
		close(fd);
		return NULL;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)off);
	if (p == MAP_FAILED) {
		fail("mmap of %s (0x%zx bytes at 0x%" PRIx64 "): %s", path, len, off, strerror(errno));
		close(fd);
		return NULL;
	}
	close(fd);		/* the mapping stays */
	return p;
}

/* The PCI command register through the config file. */
static int config_fd = -1;
static uint16_t command_orig;
static int command_changed;

static int cmd_reg(const char *bdf, int write, uint16_t *val)
{
	uint8_t b[2];
	ssize_t n;

	if (config_fd < 0) {
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
		config_fd = open(path, O_RDWR | O_CLOEXEC);
		if (config_fd < 0) {
			fail("open %s: %s", path, strerror(errno));
			return -1;
		}
	}
	if (write) {
		b[0] = (uint8_t)*val;
		b[1] = (uint8_t)(*val >> 8);
		n = pwrite(config_fd, b, 2, 4);
	} else {
		n = pread(config_fd, b, 2, 4);
	}
	if (n != 2) {
		fail("%s of the PCI command register of %s: %s", write ? "write" : "read", bdf,
		     n < 0 ? strerror(errno) : "short");
		return -1;
	}
	if (!write)
		*val = (uint16_t)(b[0] | b[1] << 8);
	return 0;
}

/* Where the console's framebuffer ends: fb0's stride * virtual height, else the type's maximum. */
static uint64_t console_end(void)
{
	char s[64], vs[64];
	uint64_t stride, h;
	char *comma;

	if (read_line("/sys/class/graphics/fb0/stride", s, sizeof(s)) == 0 &&
	    read_line("/sys/class/graphics/fb0/virtual_size", vs, sizeof(vs)) == 0 &&
	    (comma = strchr(vs, ',')) && parse_u64(s, &stride) == 0 && parse_u64(comma + 1, &h) == 0)
		return stride * h;
	return (uint64_t)rd(RVGPU_REG_MAX_WIDTH) * rd(RVGPU_REG_MAX_HEIGHT) * 4;
}

/* ---- the load --------------------------------------------------------------------------- */

/* The display steps (see the top of the file). */
static void dispi_wr(unsigned idx, uint16_t v)
{
	volatile uint16_t *r = (volatile uint16_t *)((volatile uint8_t *)bar2 + RVGPU_MMIO_DISPI);

	r[idx] = htole16(v);
}

static void set_mode(unsigned w, unsigned h, unsigned virt_w, unsigned y_off)
{
	dispi_wr(RVGPU_DISPI_INDEX_ENABLE, 0);
	dispi_wr(RVGPU_DISPI_INDEX_BPP, 32);
	dispi_wr(RVGPU_DISPI_INDEX_XRES, w);
	dispi_wr(RVGPU_DISPI_INDEX_YRES, h);
	dispi_wr(RVGPU_DISPI_INDEX_ENABLE,
		 RVGPU_DISPI_ENABLED | RVGPU_DISPI_LFB_ENABLED | RVGPU_DISPI_NOCLEARMEM);
	dispi_wr(RVGPU_DISPI_INDEX_VIRT_WIDTH, virt_w);
	dispi_wr(RVGPU_DISPI_INDEX_X_OFFSET, 0);
	dispi_wr(RVGPU_DISPI_INDEX_Y_OFFSET, y_off);
}

static int display_steps(const char *device, uint64_t seconds)
{
	const uint32_t bars[8] = { 0xffffff, 0xffff00, 0x00ffff, 0x00ff00,
				   0xff00ff, 0xff0000, 0x0000ff, 0x202020 };
	const size_t second = 3u << 20, len = 1024u * 4 * 768;
	char bdf[64];
	uint64_t size;
	uint8_t *fb;

	if (find_device(bdf, sizeof(bdf), device) != 0)
		return 1;
	bar2 = map_bar(bdf, 2, 0, RVGPU_MMIO_SIZE, &size);
	fb = map_bar(bdf, 0, second, len, &size);
	if (!bar2 || !fb)
		return 1;
	/* The second buffer: eight vertical colour bars, a white frame line every 64 lines. */
	for (unsigned y = 0; y < 768; y++)
		for (unsigned x = 0; x < 1024; x++)
			put32(fb + (size_t)y * 4096 + x * 4, y % 64 == 0 ? 0xffffff : bars[x / 128]);
	say("display step=0 mode=1024x768x32 offset=0x0");
	sleep_us((long)seconds * 1000000);
	set_mode(800, 600, 800, 0);
	say("display step=1 mode=800x600x32 offset=0x0");
	sleep_us((long)seconds * 1000000);
	set_mode(1024, 768, 1024, 768);
	say("display step=2 mode=1024x768x32 offset=0x%zx", second);
	sleep_us((long)seconds * 1000000);
	set_mode(1024, 768, 1024, 0);
	say("display done status=0");
	return 0;
}

struct opts {
	uint64_t iterations, seconds, report_every, timeout_ms, fb_offset, display;
	int have_fb_offset;
	const char *device;
};

struct stats {
	uint64_t iter, ok, mismatches, errors;
	uint32_t fb;
};

static void report(const struct stats *s)
{
	static struct stats last;
	static int any;

	/* The final line is not repeated when the last periodic one said the same. */
	if (any && last.iter == s->iter && last.ok == s->ok && last.mismatches == s->mismatches &&
	    last.errors == s->errors && last.fb == s->fb)
		return;
	any = 1;
	last = *s;
	say("iter=%" PRIu64 " ok=%" PRIu64 " mismatches=%" PRIu64 " errors=%" PRIu64 " fb=0x%08" PRIx32,
	    s->iter, s->ok, s->mismatches, s->errors, s->fb);
}

/*
 * Waits until RING_HEAD reaches tail: 0 when it does, -1 on timeout. Polls the fence word (plain
 * memory) and RING_HEAD (trapped) only when the fence arrived or every 16th poll; spins with
 * sched_yield for the first 200 polls, then sleeps 1 ms between polls.
 */
static int wait_done(uint32_t tail, uint32_t iter, const volatile uint32_t *fence_word,
		     uint64_t timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;

	for (unsigned polls = 0;; polls++) {
		int fenced = le32toh(*fence_word) == iter;

		if ((fenced || polls % 16 == 0) && rd(RVGPU_REG_RING_HEAD) == tail)
			return 0;
		if (now_ms() >= deadline)
			return rd(RVGPU_REG_RING_HEAD) == tail ? 0 : -1;
		if (polls < 200)
			sched_yield();
		else
			sleep_us(1000);
	}
}

static int run(const struct opts *o)
{
	char bdf[256];
	uint64_t bar2_size, bar0_size, fb_size, console, base;
	volatile uint32_t *region;
	struct guest g = { 0 };
	struct stats s = { 0 };
	uint16_t cmd;
	uint32_t tail = 0, completed, eh;
	uint64_t start, last_check;
	int pagemap_fd, rc = 0;
	static uint8_t want_fill[PAGE], want_pattern[PAGE], want_cpu[PAGE], got[PAGE];

	if (find_device(bdf, sizeof(bdf), o->device) != 0)
		return 2;
	bar2 = map_bar(bdf, 2, 0, RVGPU_MMIO_SIZE, &bar2_size);
	if (!bar2)
		return 2;
	if (rd(RVGPU_REG_MAGIC) != RVGPU_MAGIC) {
		fail("%s is not an rvgpu vGPU: RVGPU_REG_MAGIC reads 0x%08" PRIx32 ", not 0x%08x", bdf,
		     rd(RVGPU_REG_MAGIC), RVGPU_MAGIC);
		return 2;
	}
	fb_size = rd(RVGPU_REG_FB_SIZE);
	console = console_end();
	if (o->have_fb_offset) {
		base = o->fb_offset;
		if (base % PAGE) {
			fail("--fb-offset 0x%" PRIx64 " is not 4 KiB aligned", base);
			return 2;
		}
		if (base < console) {
			fail("--fb-offset 0x%" PRIx64 " is inside the console (it ends at 0x%" PRIx64 ")",
			     base, console);
			return 2;
		}
	} else {
		base = DEFAULT_BASE;
		if (console > base)
			base = (console + BASE_ALIGN - 1) / BASE_ALIGN * BASE_ALIGN;
	}
	if (base + REGION > fb_size || base + REGION > UINT32_MAX) {
		fail("no room off screen: 0x%x bytes at 0x%" PRIx64 " do not fit in the framebuffer "
		     "(RVGPU_REG_FB_SIZE 0x%" PRIx64 ", console ends at 0x%" PRIx64 ")", REGION, base,
		     fb_size, console);
		return 2;
	}
	region = map_bar(bdf, 0, base, REGION, &bar0_size);
	if (!region)
		return 2;

	pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pagemap_fd < 0) {
		fail("open /proc/self/pagemap: %s (CONFIG_PROC_PAGE_MONITOR?)", strerror(errno));
		return 2;
	}
	if (guest_alloc(&g, pagemap_fd) != 0)
		return 2;

	/* Memory decode must be on (bochs-drm enabled it); bus mastering for the engine's DMA. */
	if (cmd_reg(bdf, 0, &cmd) != 0)
		return 2;
	if (!(cmd & 0x2)) {
		fail("memory decoding is off in the command register of %s (0x%04x)", bdf, cmd);
		return 2;
	}
	command_orig = cmd;
	if (!(cmd & 0x4)) {
		cmd |= 0x4;
		if (cmd_reg(bdf, 1, &cmd) != 0 || cmd_reg(bdf, 0, &cmd) != 0)
			return 2;
		command_changed = 1;
		if (!(cmd & 0x4)) {
			fail("bus mastering does not stick in the command register of %s (0x%04x)", bdf,
			     cmd);
			rc = 2;
			goto out_command;
		}
	}

	/* The ring: off, then base, clear errors and interrupts, then on (HEAD = TAIL = 0). */
	wr(RVGPU_REG_RING_SIZE, 0);
	wr(RVGPU_REG_IRQ_ENABLE, 0);
	wr(RVGPU_REG_RING_BASE_LO, (uint32_t)g.pa[PG_RING]);
	wr(RVGPU_REG_RING_BASE_HI, (uint32_t)(g.pa[PG_RING] >> 32));
	wr(RVGPU_REG_ERROR, 0);
	wr(RVGPU_REG_IRQ_STATUS, RVGPU_IRQ_COMPLETION | RVGPU_IRQ_ERROR | RVGPU_IRQ_VBLANK);
	full_fence();
	wr(RVGPU_REG_RING_SIZE, RING_BYTES);
	if (rd(RVGPU_REG_RING_SIZE) != RING_BYTES || rd(RVGPU_REG_RING_BASE_LO) != (uint32_t)g.pa[PG_RING] ||
	    rd(RVGPU_REG_RING_BASE_HI) != (uint32_t)(g.pa[PG_RING] >> 32) ||
	    rd(RVGPU_REG_RING_HEAD) != 0 || rd(RVGPU_REG_RING_TAIL) != 0 || rd(RVGPU_REG_ERROR) != 0) {
		fail("the engine registers do not hold what was written: size 0x%" PRIx32 " base 0x%08"
		     PRIx32 "%08" PRIx32 " head 0x%" PRIx32 " tail 0x%" PRIx32 " error %" PRIu32,
		     rd(RVGPU_REG_RING_SIZE), rd(RVGPU_REG_RING_BASE_HI), rd(RVGPU_REG_RING_BASE_LO),
		     rd(RVGPU_REG_RING_HEAD), rd(RVGPU_REG_RING_TAIL), rd(RVGPU_REG_ERROR));
		rc = 2;
		goto out_ring;
	}
	completed = rd(RVGPU_REG_COMPLETED);

	say("start bdf=%s fb_size=0x%" PRIx64 " base=0x%" PRIx64 " console=0x%" PRIx64 " ring=0x%" PRIx64,
	    bdf, fb_size, base, console, g.pa[PG_RING]);
	start = last_check = now_ms();
	while (!stop) {
		uint32_t iter = (uint32_t)(s.iter + 1), next, err, fence_reg, done, fence_mem;
		uint64_t bad = 0, errs = 0;
		struct rvgpu_cmd cmds[CMDS_PER_ITER];
		uint8_t *ring = page_va(&g, PG_RING);
		volatile uint32_t *fence_word = (volatile uint32_t *)page_va(&g, PG_FENCE);
		volatile uint32_t *cpu = region + CPU_OFF / 4;

		if (o->iterations && s.iter >= o->iterations)
			break;
		if (o->seconds && now_ms() - start >= o->seconds * 1000)
			break;
		if (s.iter >= UINT32_MAX)
			break;

		/* What the engine reads and what it must overwrite. */
		expect_fill(want_fill, iter);
		expect_pattern(want_pattern, iter);
		memcpy(page_va(&g, PG_PATTERN), want_pattern, PAGE);
		for (uint32_t i = 0; i < PAGE; i++) {
			page_va(&g, PG_RB_FILL)[i] = (uint8_t)~want_fill[i];
			page_va(&g, PG_RB_COPY)[i] = (uint8_t)~want_pattern[i];
		}
		*fence_word = htole32(~iter);

		build_cmds(cmds, iter, (uint32_t)base, g.pa);
		next = tail;
		for (unsigned i = 0; i < CMDS_PER_ITER; i++) {
			memcpy(ring + next, &cmds[i], sizeof(cmds[i]));
			next = (next + RVGPU_CMD_SIZE) % RING_BYTES;
		}
		full_fence();
		wr(RVGPU_REG_RING_TAIL, next);

		/* The CPU page, while the engine works. */
		for (uint32_t w = 0; w < CPU_SIZE / 4; w++)
			cpu[w] = htole32(cpu_value(iter));
		full_fence();
		s.fb = cpu_value(iter);

		if (wait_done(next, iter, fence_word, o->timeout_ms) != 0) {
			fail("iter=%" PRIu32 " timeout after %" PRIu64 " ms: head=0x%" PRIx32 " tail=0x%"
			     PRIx32 " fence=%" PRIu32 " fence_mem=0x%08" PRIx32 " completed=%" PRIu32
			     " error=%" PRIu32 " status=0x%" PRIx32, iter, o->timeout_ms,
			     rd(RVGPU_REG_RING_HEAD), rd(RVGPU_REG_RING_TAIL), rd(RVGPU_REG_FENCE),
			     le32toh(*fence_word), rd(RVGPU_REG_COMPLETED), rd(RVGPU_REG_ERROR),
			     rd(RVGPU_REG_ENGINE_STATUS));
			s.iter++;
			s.errors++;
			rc = 1;
			break;
		}
		tail = next;
		full_fence();

		err = rd(RVGPU_REG_ERROR);
		fence_reg = rd(RVGPU_REG_FENCE);
		done = rd(RVGPU_REG_COMPLETED) - completed;
		completed += done;
		fence_mem = le32toh(*fence_word);
		if (err != RVGPU_ERR_NONE) {
			uint32_t k;

			eh = rd(RVGPU_REG_ERROR_HEAD);
			k = ((eh + RING_BYTES - (next + RING_BYTES - CMDS_PER_ITER * RVGPU_CMD_SIZE) %
			      RING_BYTES) % RING_BYTES) / RVGPU_CMD_SIZE;
			fail("iter=%" PRIu32 " engine error %" PRIu32 " (%s) at ring offset 0x%" PRIx32
			     " (%s)", iter, err, err_name(err), eh,
			     k < CMDS_PER_ITER ? cmd_name[k] : "not this iteration's");
			wr(RVGPU_REG_ERROR, 0);
			errs++;
		} else if (fence_reg != iter || fence_mem != iter || done != CMDS_PER_ITER) {
			fail("iter=%" PRIu32 " engine state: RVGPU_REG_FENCE=%" PRIu32 " fence word=0x%08"
			     PRIx32 " completed +%" PRIu32 " (want %" PRIu32 ", 0x%08" PRIx32 ", +%u)", iter,
			     fence_reg, fence_mem, done, iter, iter, CMDS_PER_ITER);
			errs++;
		} else {
			/* The engine's writes, read back by DMA and by the CPU. */
			bad += verify("rb_fill", iter, page_va(&g, PG_RB_FILL), want_fill, PAGE, 0, PAGE,
				      PAGE, 0, NULL);
			bad += verify("rb_copy", iter, page_va(&g, PG_RB_COPY), want_pattern, PAGE, 0,
				      PAGE, PAGE, 0, NULL);
			for (uint32_t y = 0; y < FILL_HEIGHT; y++)
				mmio_read(got + y * FILL_WIDTH, region + (FILL_OFF + y * FILL_STRIDE) / 4,
					  FILL_WIDTH);
			bad += verify("fb_fill", iter, got, want_fill, PAGE, base + FILL_OFF, FILL_WIDTH,
				      FILL_STRIDE, 0, NULL);
			mmio_read(got, region + COPY_OFF / 4, COPY_WIDTH);
			bad += verify("fb_copy", iter, got, want_pattern, COPY_WIDTH, base + COPY_OFF,
				      COPY_WIDTH, COPY_WIDTH, 0, NULL);
		}
		for (uint32_t i = 0; i < CPU_SIZE; i += 4)
			put32(want_cpu + i, cpu_value(iter));
		mmio_read(got, cpu, CPU_SIZE);
		bad += verify("fb_cpu", iter, got, want_cpu, CPU_SIZE, base + CPU_OFF, CPU_SIZE, CPU_SIZE,
			      0, NULL);

		s.iter++;
		s.mismatches += bad;
		s.errors += errs;
		if (!bad && !errs)
			s.ok++;
		if (o->report_every && s.iter % o->report_every == 0) {
			report(&s);
			/* Now and then: are the pages still where the engine writes? */
			if (now_ms() - last_check >= 1000) {
				last_check = now_ms();
				if (guest_check(&g, pagemap_fd) != 0) {
					s.errors++;
					rc = 1;
					break;
				}
			}
		}
	}
	if (guest_check(&g, pagemap_fd) != 0)
		s.errors++;
	report(&s);
	if (s.mismatches || s.errors)
		rc = 1;
out_ring:
	/*
	 * Off: the engine must not reach these pages once this process has gone. A command already
	 * running (after a timeout) still finishes: wait (bounded) for the engine to go idle.
	 */
	wr(RVGPU_REG_RING_SIZE, 0);
	wr(RVGPU_REG_RING_BASE_LO, 0);
	wr(RVGPU_REG_RING_BASE_HI, 0);
	{
		uint64_t deadline = now_ms() + o->timeout_ms;

		while (rd(RVGPU_REG_ENGINE_STATUS) & 1) {
			if (now_ms() >= deadline) {
				fail("the engine is still busy %" PRIu64 " ms after the ring was turned off",
				     o->timeout_ms);
				rc = rc ? rc : 1;
				break;
			}
			sleep_us(1000);
		}
	}
out_command:
	if (command_changed) {
		cmd = command_orig;
		if (cmd_reg(bdf, 1, &cmd) != 0 && !rc)
			rc = 1;
	}
	return rc;
}

/* ---- self-test -------------------------------------------------------------------------- */

static int st_fails;
#define CHECK(cond, ...) do { if (!(cond)) { st_fails++; say("self-test FAIL: " __VA_ARGS__); } } while (0)

/* The engine's argument checks (src/vgpu/engine/cmd.rs), for commands this program builds. */
static int rect_ok(uint64_t fb_size, uint32_t off, uint32_t stride, uint32_t width, uint32_t height)
{
	if (!width || !height || width > stride)
		return 0;
	return (uint64_t)off + (uint64_t)stride * (height - 1) + width <= fb_size;
}

static int cmd_ok(const struct rvgpu_cmd *c, uint64_t fb_size, const uint64_t pa[NPAGES])
{
	uint32_t op = le32toh(c->opcode), h = le32toh(c->height);

	switch (op) {
	case RVGPU_CMD_FILL: {
		uint32_t off = le32toh(c->fill.fb_offset), st = le32toh(c->fill.fb_stride),
			 w = le32toh(c->fill.width);

		return !(w % 4 || off % 4 || st % 4) && rect_ok(fb_size, off, st, w, h);
	}
	case RVGPU_CMD_COPY_TO_FB:
	case RVGPU_CMD_COPY_FROM_FB: {
		uint64_t iova = le64toh(c->copy.iova);
		uint32_t is = le32toh(c->copy.iova_stride), w = le32toh(c->copy.width);
		uint64_t end = iova + (uint64_t)is * (h - 1) + w;
		int in_page = 0;

		for (int i = 0; i < NPAGES; i++)
			if (iova >= pa[i] && end <= pa[i] + PAGE)
				in_page = 1;
		return w <= is && in_page &&
		       rect_ok(fb_size, le32toh(c->copy.fb_offset), le32toh(c->copy.fb_stride), w, h);
	}
	case RVGPU_CMD_FENCE:
		return h == 0 && le64toh(c->fence.iova) % 4 == 0;
	default:
		return 0;
	}
}

static int has_sys_admin(void)
{
	char line[256];
	int found = 0;
	uint64_t cap = 0;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "CapEff:", 7) == 0) {
			cap = strtoull(line + 7, NULL, 16);
			found = 1;
		}
	fclose(f);
	return found && (cap >> 21 & 1);	/* CAP_SYS_ADMIN */
}

static int self_test(void)
{
	static const uint32_t regs[] = {
		RVGPU_REG_IRQ_STATUS, RVGPU_REG_IRQ_ENABLE, RVGPU_REG_RING_BASE_LO,
		RVGPU_REG_RING_BASE_HI, RVGPU_REG_RING_SIZE, RVGPU_REG_RING_HEAD, RVGPU_REG_RING_TAIL,
		RVGPU_REG_ERROR, RVGPU_REG_ERROR_HEAD, RVGPU_REG_FENCE, RVGPU_REG_COMPLETED,
		RVGPU_REG_VBLANK_COUNT, RVGPU_REG_ENGINE_STATUS,
	};
	static const uint32_t errs[] = {
		RVGPU_ERR_NONE, RVGPU_ERR_BAD_OPCODE, RVGPU_ERR_FB_RANGE, RVGPU_ERR_DMA_FAULT,
		RVGPU_ERR_RING, RVGPU_ERR_BAD_ARGS, RVGPU_ERR_HOST,
	};
	static uint8_t a[PAGE], b[PAGE];
	const size_t nregs = sizeof(regs) / sizeof(regs[0]);
	uint64_t fake_pa[NPAGES] = { 0x1000, 0x7f000, 0x23000, 0x100000000ull, 0x5000 };
	struct rvgpu_cmd cmds[CMDS_PER_ITER];
	char magic[5] = { 0 };
	uint32_t m = htole32(RVGPU_MAGIC), tail = 0;
	size_t first = 0;
	int pagemap_fd;

	/* The header. */
	CHECK(sizeof(struct rvgpu_cmd) == RVGPU_CMD_SIZE && RVGPU_CMD_SIZE == 32, "command size");
	CHECK(RVGPU_RING_MIN_SIZE == PAGE && (RVGPU_RING_MAX_SIZE & (RVGPU_RING_MAX_SIZE - 1)) == 0 &&
	      RVGPU_RING_MAX_SIZE >= RVGPU_RING_MIN_SIZE, "ring sizes");
	memcpy(magic, &m, 4);
	CHECK(strcmp(magic, "RVGP") == 0, "RVGPU_MAGIC spells %s", magic);
	CHECK(RVGPU_PCI_VENDOR_ID == 0x1234 && RVGPU_PCI_DEVICE_ID == 0x1111, "PCI id");
	CHECK(RVGPU_REG_FB_SIZE % 4 == 0 && RVGPU_REG_MAGIC % 4 == 0 &&
	      RVGPU_REG_FB_SIZE < RVGPU_MMIO_SIZE, "type registers");
	for (size_t i = 0; i < nregs; i++) {
		CHECK(regs[i] % 4 == 0 && regs[i] >= RVGPU_MMIO_ENGINE &&
		      regs[i] < RVGPU_MMIO_ENGINE + RVGPU_MMIO_ENGINE_SIZE,
		      "engine register 0x%x outside the engine window or misaligned", regs[i]);
		for (size_t j = i + 1; j < nregs; j++)
			CHECK(regs[i] != regs[j], "engine registers 0x%x repeated", regs[i]);
	}
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
		CHECK(errs[i] == i && strcmp(err_name(errs[i]), "unknown") != 0, "error code %zu", i);
	CHECK(RVGPU_CMD_FILL != RVGPU_CMD_COPY_TO_FB && RVGPU_CMD_COPY_TO_FB != RVGPU_CMD_COPY_FROM_FB &&
	      RVGPU_CMD_COPY_FROM_FB != RVGPU_CMD_FENCE && RVGPU_CMD_NOP == 0, "opcodes");

	/* Commands: what the engine would accept, guest sides within one page each. */
	build_cmds(cmds, 7, DEFAULT_BASE, fake_pa);
	for (unsigned i = 0; i < CMDS_PER_ITER; i++)
		CHECK(cmd_ok(&cmds[i], DEFAULT_BASE + REGION, fake_pa), "command %u of an iteration", i);
	CHECK(!cmd_ok(&cmds[0], DEFAULT_BASE + FILL_OFF + FILL_STRIDE * 3, fake_pa),
	      "the FILL rectangle leaves a short framebuffer");
	CHECK(le32toh(cmds[0].fill.value) == fill_value(7) && le32toh(cmds[4].fence.value) == 7 &&
	      le64toh(cmds[4].fence.iova) == fake_pa[PG_FENCE] &&
	      le64toh(cmds[2].copy.iova) == fake_pa[PG_RB_FILL] &&
	      le32toh(cmds[2].copy.iova_stride) * le32toh(cmds[2].height) == PAGE,
	      "command fields");
	for (unsigned it = 0; it < 1000; it++) {
		tail = (tail + CMDS_PER_ITER * RVGPU_CMD_SIZE) % RING_BYTES;
		CHECK(tail % RVGPU_CMD_SIZE == 0 && tail < RING_BYTES, "ring tail 0x%x", tail);
	}

	/* Values: distinct words in a pattern page and between iterations; poison differs. */
	expect_pattern(a, 1);
	expect_pattern(b, 2);
	for (uint32_t w = 0; w < PAGE / 4; w++) {
		CHECK(get32(a + 4 * w) != get32(b + 4 * w), "pattern word %u repeats across iterations", w);
		if (w)
			CHECK(get32(a + 4 * w) != get32(a + 4 * (w - 1)), "pattern words %u repeat", w);
	}
	CHECK(fill_value(1) != fill_value(2) && cpu_value(1) != cpu_value(2) &&
	      fill_value(3) != cpu_value(3), "per-iteration values");

	/* The verifier. */
	expect_fill(a, 5);
	memcpy(b, a, PAGE);
	CHECK(verify("x", 5, b, a, PAGE, 0, PAGE, PAGE, 1, NULL) == 0, "verify: equal buffers");
	b[1234] ^= 0x10;
	b[3000] ^= 0x01;
	CHECK(verify("x", 5, b, a, PAGE, 0, PAGE, PAGE, 1, &first) == 1 && first == 1234,
	      "verify: first at %zu", first);

	/* Pagemap: the same allocation as a real run. */
	pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (!has_sys_admin()) {
		say("self-test: pagemap skipped (no CAP_SYS_ADMIN: PFNs are hidden)");
	} else if (pagemap_fd < 0) {
		CHECK(0, "open /proc/self/pagemap: %s", strerror(errno));
	} else {
		struct guest g = { 0 };
		int kpf = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);

		if (guest_alloc(&g, pagemap_fd) != 0) {
			CHECK(0, "guest memory allocation and translation");
		} else {
			CHECK(guest_check(&g, pagemap_fd) == 0, "translation is stable");
			for (int i = 0; i < NPAGES; i++) {
				uint64_t flags;

				CHECK(g.pa[i] % PAGE == 0 && g.pa[i] != 0, "pa of %s", page_name[i]);
				say("self-test: page %s va=%p pa=0x%" PRIx64, page_name[i],
				    (void *)page_va(&g, i), g.pa[i]);
				/* Independent check: the frame is an anonymous, mapped, mlocked page. */
				if (kpf >= 0 && pread(kpf, &flags, 8, (off_t)(g.pa[i] / PAGE) * 8) == 8)
					CHECK((flags >> 11 & 1) && (flags >> 12 & 1) && (flags >> 18 & 1),
					      "kpageflags of %s's frame 0x%016" PRIx64 " (want mmap, anon, "
					      "unevictable)", page_name[i], flags);
			}
		}
		if (kpf >= 0)
			close(kpf);
		else
			say("self-test: /proc/kpageflags not readable: frame flags not checked");
	}
	if (pagemap_fd >= 0)
		close(pagemap_fd);

	if (st_fails) {
		say("self-test failed: %d check(s)", st_fails);
		return 1;
	}
	say("self-test ok");
	return 0;
}

/* ---- main ------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fputs("usage: rvgpu-load [--iterations N] [--seconds S] [--report-every N] [--timeout-ms MS]\n"
	      "                  [--device BDF] [--fb-offset OFF]\n"
	      "       rvgpu-load --self-test\n", f);
}

int main(int argc, char **argv)
{
	struct opts o = { .report_every = 100, .timeout_ms = 5000 };
	struct sigaction sa;
	int self = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL, *eq = strchr(a, '=');
		char name[32];
		uint64_t *num = NULL;

		if (strcmp(a, "--self-test") == 0) {
			self = 1;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		}
		snprintf(name, sizeof(name), "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
		if (strcmp(name, "--iterations") == 0)
			num = &o.iterations;
		else if (strcmp(name, "--seconds") == 0)
			num = &o.seconds;
		else if (strcmp(name, "--report-every") == 0)
			num = &o.report_every;
		else if (strcmp(name, "--timeout-ms") == 0)
			num = &o.timeout_ms;
		else if (strcmp(name, "--fb-offset") == 0)
			num = &o.fb_offset;
		else if (strcmp(name, "--display") == 0)
			num = &o.display;
		else if (strcmp(name, "--device") != 0) {
			fail("unknown argument '%s'", a);
			usage(stderr);
			return 2;
		}
		if (eq)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		if (!val) {
			fail("%s needs a value", name);
			return 2;
		}
		if (!num) {
			o.device = val;
		} else if (parse_u64(val, num) != 0) {
			fail("%s: bad number '%s'", name, val);
			return 2;
		}
		if (num == &o.fb_offset)
			o.have_fb_offset = 1;
	}
	if (o.timeout_ms == 0 || o.seconds > UINT64_MAX / 1000) {
		fail("bad --timeout-ms or --seconds");
		return 2;
	}
	if (sysconf(_SC_PAGESIZE) != PAGE) {
		fail("page size %ld, not %u", sysconf(_SC_PAGESIZE), PAGE);
		return 2;
	}
	if (self)
		return self_test();
	if (o.display)
		return display_steps(o.device, o.display);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: sleeps end early */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) {
		fail("sigaction: %s", strerror(errno));
		return 2;
	}
	return run(&o);
}
