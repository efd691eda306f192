// SPDX-License-Identifier: GPL-2.0
/*
 * kfuzz: a randomised, seeded fuzzer of the /dev/isc interface.
 *
 * Build (static, runs in the test VM):
 *   gcc -static -O2 -Wall -Wextra -pthread -I driver/include -o kfuzz driver/tests/kfuzz.c
 *
 * Run as root with isc.ko, isc_sample.ko and isc_testdrv.ko loaded:
 *   kfuzz [-s SEED] [-n OPS] [-p PROCS] [-t SECONDS] [-w SECONDS]
 *     -s SEED     64-bit seed (default: from the clock); printed first
 *     -n OPS      operations in total, over all processes (default 20000)
 *     -p PROCS    worker processes at once (default 4)
 *     -t SECONDS  stop after this long instead (with -n as well: whichever
 *                 comes first)
 *     -w SECONDS  a worker still running this long after the start (plus
 *                 -t) is hung: its kernel stack is printed and it fails
 *                 (default: 120, or 20 less than $ISC_TIME_LIMIT, the
 *                 limit vm-test gives each program)
 *
 * Each worker process runs its own random sequence (derived from the seed
 * and its number) of: open, BIND (valid and garbage requests, bad
 * pointers), mmap (right and wrong lengths, offsets, flags), munmap (whole
 * and partial), publishing messages, KICK, poll, consuming k2u, scribbles
 * of the region (any word, the indices, slot headers, the ring info), close
 * (with and without the mapping), dup, fork (the child shares the fds, not
 * the mappings, and runs its own ops), SIGKILL of a process in the middle of
 * calls, unknown ioctls, reads of the debugfs counters, and control
 * requests to the test driver (register, unregister, post floods) on the
 * UIDs the others bind. The targets are the sample driver (sam0), echo
 * drivers of the test driver, and UIDs with no driver.
 *
 * Every call's result is checked against the errors the interface
 * documents for it; anything else, a process dying of a signal it was not
 * sent, or a hung worker is a failure. At the end a well-behaved channel to
 * the sample driver and one to an echo driver must still work. The kernel
 * log is checked by the caller (vm-test fails on any warning).
 *
 * The op sequence of each process is a function of the seed, but the
 * interleaving of the processes (and so the results that later choices
 * depend on) is not: rerunning a seed reproduces the mix of operations,
 * not the exact schedule.
 *
 * Output: "kfuzz: seed ..." first, one "ok <check>" or "FAIL <check>: ..."
 * line per check, then the op counts and rate; exit status 0 only if
 * nothing failed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "uapi/isc.h"
#include "check.h"

#define SAM0 UID("sam0")
#define TCTL UID("tctl")
#define PAGE 4096UL

/* Echo drivers registered for the run, UIDs with no driver, and the sample. */
static const uint32_t echo_uids[] = { UID("fze0"), UID("fze1"), UID("fze2"), UID("fze3"),
				       UID("fze4"), UID("fze5"), UID("fze6"), UID("fze7") };
static const uint32_t idle_uids[] = { UID("fzn0"), UID("fzn1") };
#define N_ECHO (sizeof(echo_uids) / sizeof(echo_uids[0]))
#define N_IDLE (sizeof(idle_uids) / sizeof(idle_uids[0]))

/* ------------------------------------------------------------- randomness */

static uint64_t rng_state;

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rnd(void)
{
	return splitmix(&rng_state);
}

/* Uniform in [0, n). */
static uint32_t below(uint32_t n)
{
	return n ? (uint32_t)(rnd() % n) : 0;
}

static int chance(unsigned int percent)
{
	return below(100) < percent;
}

/* ------------------------------------------------- shared counters, findings */

enum op {
	OP_OPEN, OP_BIND, OP_MMAP, OP_MUNMAP, OP_PUSH, OP_KICK, OP_POLL, OP_RECV, OP_SCRIBBLE, OP_CLOSE,
	OP_DUP, OP_FORK, OP_KILL, OP_IOCTL, OP_DEBUGFS, OP_CTL, N_OPS
};

static const char *const op_names[N_OPS] = {
	"open", "bind", "mmap", "munmap", "push", "kick", "poll", "recv", "scribble", "close",
	"dup", "fork", "kill", "ioctl", "debugfs", "ctl",
};

/* Relative weights of the operations. */
static const unsigned int op_weight[N_OPS] = {
	[OP_OPEN] = 8, [OP_BIND] = 10, [OP_MMAP] = 9, [OP_MUNMAP] = 3, [OP_PUSH] = 16, [OP_KICK] = 16,
	[OP_POLL] = 6, [OP_RECV] = 8, [OP_SCRIBBLE] = 4, [OP_CLOSE] = 6, [OP_DUP] = 2, [OP_FORK] = 1,
	[OP_KILL] = 1, [OP_IOCTL] = 2, [OP_DEBUGFS] = 2, [OP_CTL] = 3,
};

/* In memory shared by every process of the run. */
struct shared {
	unsigned long ops[N_OPS];
	unsigned long findings;
	unsigned long total;
	/* How deep the ops got: binds and mappings that worked, messages KICKs
	 * delivered, KICKs refused for corruption, k2u messages consumed. */
	unsigned long binds, maps, delivered, corrupt, received;
};

#define BUMP(field, n) __atomic_add_fetch(&sh->field, (n), __ATOMIC_RELAXED)

static struct shared *sh;
static int worker_id;

static void count_op(enum op op)
{
	__atomic_add_fetch(&sh->ops[op], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&sh->total, 1, __ATOMIC_RELAXED);
}

/* An unexpected result: printed (the first few) and counted. */
static void finding(const char *fmt, ...)
{
	unsigned long n = __atomic_add_fetch(&sh->findings, 1, __ATOMIC_RELAXED);
	va_list ap;

	if (n > 20)
		return;
	printf("FAIL kfuzz_finding: worker %d pid %d: ", worker_id, getpid());
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* errno after a failed call must be one of the (0-terminated) list. */
static void expect_errno(const char *what, long ret, int e, const int *allowed)
{
	if (ret >= 0)
		return;
	for (; *allowed; allowed++)
		if (e == *allowed)
			return;
	finding("%s: errno %d (%s)", what, e, strerror(e));
}

/* Errors a caller may see from each call, whatever else it did. */
static const int open_errs[] = { EACCES, EPERM, ENOMEM, EMFILE, 0 };
static const int bind_errs[] = { EINVAL, E2BIG, EPROTO, EBUSY, EALREADY, EFAULT, ENOMEM, EPERM, EACCES, 0 };
static const int mmap_errs[] = { EINVAL, ENXIO, EACCES, EPERM, ENOMEM, ENODEV, EAGAIN, 0 };
static const int kick_errs[] = { ENOTCONN, EIO, EINTR, 0 };
static const int ioctl_errs[] = { ENOTTY, EINVAL, EFAULT, ENOTCONN, EIO, EALREADY, EPROTO, EBUSY, E2BIG,
				  ENOMEM, EPERM, EACCES, 0 };

/* ---------------------------------------------------------------- channels */

struct ring {
	uint8_t *base;		/* NULL: not usable for structured ops */
	size_t bytes;
	uint32_t count, stride, msz;
};

struct chan {
	int fd;			/* -1: closed */
	int bound;
	uint32_t uid;
	struct isc_bind_args a;
	uint8_t *map;		/* our mapping of the whole region, or NULL */
	size_t maplen;
	struct ring u2k, k2u;
	uint32_t head;		/* next u2k index we publish */
	uint32_t ktail;		/* next k2u index we consume */
};

#define N_CHAN 6
static struct chan ch[N_CHAN];

static struct isc_ring_header *hdr(struct ring *r)
{
	return (struct isc_ring_header *)r->base;
}

static struct isc_slot_header *slot(struct ring *r, uint32_t idx)
{
	return (struct isc_slot_header *)(r->base + ISC_SLOTS_OFFSET + (size_t)(idx & (r->count - 1)) * r->stride);
}

/* Takes the geometry from the ring's info, if it is sane for the bytes we have. */
static void ring_attach(struct ring *r, uint8_t *base, size_t bytes)
{
	struct isc_ring_header *h = (struct isc_ring_header *)base;
	uint32_t count = h->info.slot_count, stride = h->info.slot_stride, msz = h->info.msz;

	r->base = NULL;
	if (bytes < ISC_SLOTS_OFFSET || !count || (count & (count - 1)) || stride < sizeof(struct isc_slot_header) ||
	    msz > stride - sizeof(struct isc_slot_header) ||
	    ISC_SLOTS_OFFSET + (uint64_t)count * stride > bytes)
		return;
	r->base = base;
	r->bytes = bytes;
	r->count = count;
	r->stride = stride;
	r->msz = msz;
}

static void forget_map(struct chan *c)
{
	c->map = NULL;
	c->maplen = 0;
	c->u2k.base = NULL;
	c->k2u.base = NULL;
}

static struct chan *pick(int (*want)(struct chan *))
{
	int i, start = below(N_CHAN);

	for (i = 0; i < N_CHAN; i++) {
		struct chan *c = &ch[(start + i) % N_CHAN];

		if (want(c))
			return c;
	}
	return NULL;
}

static int is_free(struct chan *c) { return c->fd < 0 && !c->map; }
static int is_open(struct chan *c) { return c->fd >= 0; }
static int is_bound(struct chan *c) { return c->fd >= 0 && c->bound; }
static int is_unbound(struct chan *c) { return c->fd >= 0 && !c->bound; }
static int is_mapped(struct chan *c) { return c->map != NULL; }
static int has_u2k(struct chan *c) { return c->map && c->u2k.base; }
static int has_k2u(struct chan *c) { return c->map && c->k2u.base; }

/*
 * The sample (one UID for everyone: contention), echo drivers, UIDs with
 * no driver shared by all, UIDs with no driver of this worker alone (binds
 * that mostly work), and anything.
 */
static uint32_t pick_uid(void)
{
	uint32_t r = below(100);

	if (r < 20)
		return SAM0;
	if (r < 60)
		return echo_uids[below(N_ECHO)];
	if (r < 70)
		return idle_uids[below(N_IDLE)];
	if (r < 95)
		return UID("fw00") + ((uint32_t)(worker_id % 10) << 16) + ((uint32_t)below(4) << 24);
	return (uint32_t)rnd();
}

/* ------------------------------------------------------------- operations */

static void op_open(void)
{
	struct chan *c = pick(is_free);
	int fd;

	if (!c)
		return;
	fd = open(DEV, O_RDWR | O_CLOEXEC | (chance(20) ? O_NONBLOCK : 0));
	expect_errno("open", fd, errno, open_errs);
	memset(c, 0, sizeof(*c));
	c->fd = fd;
}

static uint32_t geometry_msz(void)
{
	static const uint32_t edges[] = { 1, 12, 16, 48, 64, 100, 256, 1024, 4096 };

	return chance(50) ? 1 + below(64) : edges[below(sizeof(edges) / sizeof(edges[0]))];
}

static uint32_t geometry_num(void)
{
	static const uint32_t edges[] = { 1, 2, 3, 4, 16, 64, 256 };

	return chance(50) ? 1 + below(16) : edges[below(sizeof(edges) / sizeof(edges[0]))];
}

static void op_bind(void)
{
	struct chan *c = chance(80) ? pick(is_unbound) : pick(is_open);
	struct isc_bind_args a;
	long r;
	int e;

	if (!c)
		return;
	memset(&a, 0, sizeof(a));
	a.req.abi_version = ISC_ABI_VERSION;
	a.req.uid = pick_uid();
	a.req.u2k.msz = geometry_msz();
	a.req.u2k.num = geometry_num();
	a.req.k2u.msz = geometry_msz();
	a.req.k2u.num = geometry_num();
	if (chance(15)) {
		/* Garbage in one field, or everywhere. */
		uint32_t *w = (uint32_t *)&a.req;
		size_t n = sizeof(a.req) / 4;

		if (chance(30)) {
			size_t i;

			for (i = 0; i < n; i++)
				w[i] = chance(50) ? (uint32_t)rnd() : (uint32_t)rnd() & 0xffff;
		} else {
			w[below(n)] = (uint32_t)rnd();
		}
	}
	if (chance(3)) {
		static const uintptr_t bad[] = { 0, 1, 4096, 0xffffffffffff0000ULL };

		r = ioctl(c->fd, ISC_IOC_BIND, (void *)bad[below(4)]);
	} else {
		r = ioctl(c->fd, ISC_IOC_BIND, &a);
	}
	e = errno;
	expect_errno("bind", r, e, bind_errs);
	if (r == 0) {
		if (c->bound) {
			finding("bind succeeded on a bound fd");
			return;
		}
		/* The response is the ABI's: the offsets fit the region. */
		if (a.resp.u2k_offset != 0 || a.resp.k2u_offset >= a.resp.region_size || a.resp.region_size % PAGE ||
		    a.resp.region_size > 2ULL * ISC_MAX_RING_BYTES)
			finding("bind response size %llu k2u %llu", (unsigned long long)a.resp.region_size,
				(unsigned long long)a.resp.k2u_offset);
		c->bound = 1;
		c->a = a;
		BUMP(binds, 1);
		c->uid = a.req.uid;
	}
}

static void op_mmap(void)
{
	struct chan *c = pick(is_bound);
	size_t size, len;
	off_t off = 0;
	int prot = PROT_READ | PROT_WRITE, flags = MAP_SHARED, canonical;
	void *p;
	int e;

	if (!c)
		return;
	size = c->a.resp.region_size;
	canonical = !c->map && chance(75);
	len = size;
	if (!canonical) {
		switch (below(6)) {
		case 0: len = PAGE * (1 + below(size / PAGE + 2)); break;
		case 1: off = PAGE * (1 + below(4)); break;
		case 2: off = (off_t)1 << (20 + below(20)); break;
		case 3: flags = MAP_PRIVATE; break;
		case 4: prot = PROT_READ; len = PAGE; break;
		default: len = size + PAGE; break;
		}
	}
	p = mmap(NULL, len, prot, flags, c->fd, off);
	e = errno;
	expect_errno("mmap", p == MAP_FAILED ? -1 : 0, e, mmap_errs);
	if (p == MAP_FAILED)
		return;
	if (canonical) {
		BUMP(maps, 1);
		c->map = p;
		c->maplen = len;
		if (c->a.resp.k2u_offset >= len)
			return;
		ring_attach(&c->u2k, c->map, c->a.resp.k2u_offset);
		ring_attach(&c->k2u, c->map + c->a.resp.k2u_offset, len - c->a.resp.k2u_offset);
		if (c->u2k.base)
			c->head = __atomic_load_n(&hdr(&c->u2k)->head.value, __ATOMIC_RELAXED);
		if (c->k2u.base)
			c->ktail = __atomic_load_n(&hdr(&c->k2u)->tail.value, __ATOMIC_RELAXED);
		return;
	}
	/* A second or odd mapping that worked: read a byte of it, then drop it. */
	if (prot & PROT_READ)
		(void)*(volatile uint8_t *)p;
	munmap(p, len);
}

static void op_munmap(void)
{
	struct chan *c = pick(is_mapped);

	if (!c)
		return;
	if (chance(30) && c->maplen > PAGE) {
		/* A hole in the middle: the rest stays mapped, we forget it all. */
		size_t at = PAGE * below(c->maplen / PAGE);

		if (munmap(c->map + at, PAGE))
			finding("partial munmap: %s", strerror(errno));
	} else if (munmap(c->map, c->maplen)) {
		finding("munmap: %s", strerror(errno));
	}
	forget_map(c);
}

static void op_kick_fd(int fd);

/* A message the driver behind uid understands (most of the time). */
static uint32_t fill_message(uint32_t uid, uint8_t *p, uint32_t msz)
{
	uint32_t len = msz ? 1 + below(msz) : 0, i;

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)rnd();
	if (uid == SAM0 && msz >= 12 && chance(80)) {
		uint32_t m[3] = { chance(50) ? 1 : 2, below(300), (uint32_t)rnd() };

		memcpy(p, m, 12);
		len = 12;
	} else if (len >= 8 && uid != SAM0) {
		/*
		 * Echo: rc, a delay, payload. The echo driver sleeps up to 2 s on
		 * a random delay: keep it to a few ms now and then.
		 */
		uint32_t delay = chance(95) ? 0 : 1 + below(3);

		memcpy(p + 4, &delay, 4);
	}
	return len;
}

static void op_push(void)
{
	struct chan *c = pick(has_u2k);
	struct ring *r;
	uint32_t tail, n, i;

	if (!c)
		return;
	r = &c->u2k;
	n = 1 + (chance(30) ? below(r->count) : 0);
	for (i = 0; i < n; i++) {
		struct isc_slot_header *s;

		tail = __atomic_load_n(&hdr(r)->tail.value, __ATOMIC_ACQUIRE);
		if (c->head - tail >= r->count)
			break;
		s = slot(r, c->head);
		s->len = fill_message(c->uid, (uint8_t *)(s + 1), r->msz);
		s->seq = c->head;
		s->flags = ISC_SLOT_KIND_MSG;
		s->rc = 0;
		c->head++;
	}
	__atomic_store_n(&hdr(r)->head.value, c->head, __ATOMIC_RELEASE);
	/* The fd may be closed with the mapping still in place. */
	if (c->fd >= 0 && chance(50))
		op_kick_fd(c->fd);
}

static void op_kick(void)
{
	struct chan *c = pick(is_open);

	if (c)
		op_kick_fd(c->fd);
}

static void op_kick_fd(int fd)
{
	long n = ioctl(fd, ISC_IOC_KICK);
	int e = errno;

	if (n > 0)
		BUMP(delivered, n);
	if (n < 0 && e == EIO)
		BUMP(corrupt, 1);
	if (n < 0)
		expect_errno("kick", n, e, kick_errs);
}

static void op_poll(void)
{
	struct chan *c = pick(is_open);
	struct pollfd p;
	int n;

	if (!c)
		return;
	p.fd = c->fd;
	p.events = POLLIN | POLLOUT | POLLPRI;
	p.revents = 0;
	n = poll(&p, 1, chance(80) ? 0 : 1);
	expect_errno("poll", n, errno, (const int[]){ EINTR, 0 });
	if (n > 0 && (p.revents & POLLNVAL))
		finding("poll: POLLNVAL on an open fd");
}

static void op_recv(void)
{
	struct chan *c = pick(has_k2u);
	struct ring *r;
	uint32_t head, got = 0;

	if (!c)
		return;
	r = &c->k2u;
	head = __atomic_load_n(&hdr(r)->head.value, __ATOMIC_ACQUIRE);
	while (c->ktail != head && got < 8 && head - c->ktail <= r->count) {
		struct isc_slot_header *s = slot(r, c->ktail);
		volatile uint32_t sink = s->len + s->flags;

		(void)sink;
		s->rc = 0;
		s->flags |= ISC_SLOT_COMPLETED;
		c->ktail++;
		got++;
	}
	if (!got)
		return;
	BUMP(received, got);
	__atomic_store_n(&hdr(r)->tail.value, c->ktail, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&hdr(r)->flags.value, __ATOMIC_RELAXED) & ISC_PRODUCER_WAITING) {
		__atomic_fetch_and(&hdr(r)->flags.value, ~ISC_PRODUCER_WAITING, __ATOMIC_RELAXED);
		if (c->fd >= 0)
			op_kick_fd(c->fd);
	}
}

static void poke(uint8_t *p, uint32_t v)
{
	__atomic_store_n((uint32_t *)p, v, __ATOMIC_RELAXED);
}

static uint32_t near(uint32_t v)
{
	return chance(70) ? v + below(5) - 2 : (uint32_t)rnd();
}

static void op_scribble(void)
{
	struct chan *c = pick(is_mapped);
	struct ring *r;

	if (!c)
		return;
	r = chance(50) ? &c->u2k : &c->k2u;
	switch (r->base ? below(6) : 0) {
	case 0:
		poke(c->map + (below(c->maplen) & ~3U), (uint32_t)rnd());
		break;
	case 1:
		poke((uint8_t *)&hdr(r)->head.value, near(hdr(r)->head.value));
		break;
	case 2:
		poke((uint8_t *)&hdr(r)->tail.value, near(hdr(r)->tail.value));
		break;
	case 3: {
		struct isc_slot_header *s = slot(r, (uint32_t)rnd());
		uint32_t *f = (uint32_t *)s + below(4);

		poke((uint8_t *)f, chance(50) ? near(*f) : (uint32_t)rnd());
		break;
	}
	case 4:
		poke(r->base + 4 * below(16), (uint32_t)rnd());
		break;
	default:
		poke((uint8_t *)&hdr(r)->flags.value, (uint32_t)rnd());
		break;
	}
}

static void op_close(void)
{
	struct chan *c = pick(is_open);

	if (!c)
		return;
	if (c->map && chance(50)) {
		munmap(c->map, c->maplen);
		forget_map(c);
	}
	if (close(c->fd))
		finding("close: %s", strerror(errno));
	c->fd = -1;
	c->bound = 0;
}

static void op_dup(void)
{
	struct chan *c = pick(is_open), *d = pick(is_free);
	int fd;

	if (!c || !d)
		return;
	fd = dup(c->fd);
	if (fd < 0) {
		expect_errno("dup", fd, errno, (const int[]){ EMFILE, 0 });
		return;
	}
	/* The same file: the copy shares the binding; it has no mapping of its own. */
	*d = *c;
	d->fd = fd;
	forget_map(d);
}

static void op_ioctl(void)
{
	struct chan *c = pick(is_open);
	uint8_t buf[256];
	unsigned int dir = below(4), nr = below(8), size = below(sizeof(buf));
	unsigned long cmd;
	long r;

	if (!c)
		return;
	memset(buf, (int)rnd(), sizeof(buf));
	if (chance(20))
		cmd = _IOC(dir, 'X', nr, size);
	else
		cmd = _IOC(dir, ISC_IOC_MAGIC, nr, size);
	/* The real BIND and KICK have their own ops. */
	if (cmd == ISC_IOC_BIND || cmd == ISC_IOC_KICK)
		cmd = _IOC(_IOC_NONE, ISC_IOC_MAGIC, 99, 0);
	r = ioctl(c->fd, cmd, chance(90) ? (void *)buf : NULL);
	expect_errno("ioctl", r, errno, ioctl_errs);
}

static void op_debugfs(void)
{
	DIR *d = opendir("/sys/kernel/debug/isc");
	struct dirent *ent;
	char path[300], buf[512];
	int n = 0, want;

	if (!d)
		return;
	want = below(8);
	while ((ent = readdir(d))) {
		int fd;

		if (ent->d_name[0] == '.' || n++ < want)
			continue;
		snprintf(path, sizeof(path), "/sys/kernel/debug/isc/%s", ent->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			while (read(fd, buf, sizeof(buf)) > 0)
				;
			close(fd);
		}
		break;
	}
	closedir(d);
}

/* ---------------------------------------------- the test driver's control */

struct td_ctl {
	uint32_t op, uid, arg0, arg1;
};

/* A private, well-behaved channel (never scribbled). */
struct good {
	int fd;
	uint8_t *map;
	size_t size;
	struct ring u2k, k2u;
	uint32_t head;
};

static int good_open(struct good *g, uint32_t uid, uint32_t msz, uint32_t num)
{
	struct isc_bind_args a;

	memset(g, 0, sizeof(*g));
	memset(&a, 0, sizeof(a));
	a.req.abi_version = ISC_ABI_VERSION;
	a.req.uid = uid;
	a.req.u2k.msz = msz;
	a.req.u2k.num = num;
	a.req.k2u.msz = 16;
	a.req.k2u.num = 64;
	g->fd = open(DEV, O_RDWR | O_CLOEXEC);
	if (g->fd < 0)
		return -errno;
	if (ioctl(g->fd, ISC_IOC_BIND, &a)) {
		int e = errno;

		close(g->fd);
		return -e;
	}
	g->size = a.resp.region_size;
	g->map = mmap(NULL, g->size, PROT_READ | PROT_WRITE, MAP_SHARED, g->fd, 0);
	if (g->map == MAP_FAILED) {
		int e = errno;

		close(g->fd);
		return -e;
	}
	ring_attach(&g->u2k, g->map, a.resp.k2u_offset);
	ring_attach(&g->k2u, g->map + a.resp.k2u_offset, g->size - a.resp.k2u_offset);
	if (!g->u2k.base || !g->k2u.base)
		return -EPROTO;
	return 0;
}

static void good_close(struct good *g)
{
	if (g->map && g->map != MAP_FAILED)
		munmap(g->map, g->size);
	if (g->fd >= 0)
		close(g->fd);
	g->map = NULL;
	g->fd = -1;
}

/* One call: returns 0 and the slot's rc, reply and flags, or -1. */
static int good_call(struct good *g, const void *msg, uint32_t len, int32_t *rc, void *reply, uint32_t *flags)
{
	struct isc_slot_header *s = slot(&g->u2k, g->head);
	uint32_t idx = g->head;

	memcpy(s + 1, msg, len);
	s->seq = idx;
	s->len = len;
	s->flags = 0;
	s->rc = 0;
	g->head++;
	__atomic_store_n(&hdr(&g->u2k)->head.value, g->head, __ATOMIC_RELEASE);
	if (ioctl(g->fd, ISC_IOC_KICK) < 0)
		return -1;
	if (__atomic_load_n(&hdr(&g->u2k)->tail.value, __ATOMIC_ACQUIRE) != g->head)
		return -1;
	*rc = s->rc;
	*flags = s->flags;
	if (reply)
		memcpy(reply, s + 1, len);
	return 0;
}

static int td_request(struct good *ctl, uint32_t op, uint32_t uid, uint32_t a0, uint32_t a1, int32_t *rc)
{
	struct td_ctl q = { op, uid, a0, a1 };
	uint32_t flags;

	return good_call(ctl, &q, sizeof(q), rc, NULL, &flags);
}

static struct good ctl;		/* worker 0's control channel (tctl binds once) */

static void op_ctl(void)
{
	uint32_t uid = chance(80) ? echo_uids[below(N_ECHO)] : idle_uids[below(N_IDLE)];
	uint32_t op = 1 + below(4);
	int32_t rc;

	if (ctl.fd < 0)
		return;
	if (td_request(&ctl, op, uid, 1 + below(64), 4 + below(13), &rc)) {
		finding("control request %u failed", op);
		return;
	}
	if (rc != 0 && rc != -EEXIST && rc != -ENOENT && rc != -ENOTCONN && rc != -EINVAL && rc != -EMSGSIZE)
		finding("control op %u on %08x: rc %d", op, uid, rc);
}

/* --------------------------------------------------- processes, the loop */

/*
 * In a child: the fds are inherited (and still bound), the mappings are
 * not (the region is mapped VM_DONTCOPY): a mapping still present in the
 * child is a finding; either way the child forgets them.
 */
static void child_start(uint64_t seed)
{
	int i;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	rng_state = seed;
	for (i = 0; i < N_CHAN; i++) {
		if (ch[i].map && msync(ch[i].map, PAGE, MS_ASYNC) == 0)
			finding("a region mapping survived fork()");
		forget_map(&ch[i]);
	}
}

#define MAX_KIDS 3
static pid_t kids[MAX_KIDS];
static int n_kids;

static void one_op(int in_child);

static void reap(int block)
{
	int i;

	for (i = 0; i < n_kids;) {
		int st;
		pid_t p = waitpid(kids[i], &st, block ? 0 : WNOHANG);

		if (p == 0) {
			i++;
			continue;
		}
		if (p > 0 && WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL)
			finding("child %d died of signal %d", p, WTERMSIG(st));
		if (p > 0 && WIFEXITED(st) && WEXITSTATUS(st) != 0)
			finding("child %d exited %d", p, WEXITSTATUS(st));
		kids[i] = kids[--n_kids];
	}
}

static void op_fork(void)
{
	pid_t p;
	uint64_t child_seed = rnd();

	if (n_kids >= MAX_KIDS) {
		reap(1);
		return;
	}
	p = fork();
	if (p < 0) {
		expect_errno("fork", -1, errno, (const int[]){ EAGAIN, ENOMEM, 0 });
		return;
	}
	if (p == 0) {
		int i, n = 1 + below(40);

		child_start(child_seed);
		n_kids = 0;
		ctl.fd = -1;
		for (i = 0; i < n; i++)
			one_op(1);
		reap(1);
		_exit(0);
	}
	kids[n_kids++] = p;
}

/* A process that calls in a loop, killed at a random moment. */
static void op_kill(void)
{
	uint64_t child_seed = rnd();
	unsigned int delay_us = below(3000);
	pid_t p = fork();
	int st;

	if (p < 0)
		return;
	if (p == 0) {
		child_start(child_seed);
		n_kids = 0;
		ctl.fd = -1;
		for (;;) {
			struct chan *c = pick(has_u2k);

			if (c && c->fd >= 0 && chance(70)) {
				op_push();
				op_kick_fd(c->fd);
			} else {
				one_op(1);
			}
		}
	}
	usleep(delay_us);
	kill(p, SIGKILL);
	if (waitpid(p, &st, 0) == p && WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL)
		finding("killed child died of signal %d", WTERMSIG(st));
}

static enum op pick_op(int in_child)
{
	unsigned int total = 0, r, i;

	for (i = 0; i < N_OPS; i++)
		total += op_weight[i];
	for (;;) {
		r = below(total);
		for (i = 0; i < N_OPS; i++) {
			if (r < op_weight[i])
				break;
			r -= op_weight[i];
		}
		/* Children do not fork again; only worker 0 holds the control channel. */
		if (in_child && (i == OP_FORK || i == OP_KILL || i == OP_CTL))
			continue;
		return (enum op)i;
	}
}

static void one_op(int in_child)
{
	enum op op = pick_op(in_child);

	switch (op) {
	case OP_OPEN: op_open(); break;
	case OP_BIND: op_bind(); break;
	case OP_MMAP: op_mmap(); break;
	case OP_MUNMAP: op_munmap(); break;
	case OP_PUSH: op_push(); break;
	case OP_KICK: op_kick(); break;
	case OP_POLL: op_poll(); break;
	case OP_RECV: op_recv(); break;
	case OP_SCRIBBLE: op_scribble(); break;
	case OP_CLOSE: op_close(); break;
	case OP_DUP: op_dup(); break;
	case OP_FORK: op_fork(); break;
	case OP_KILL: op_kill(); break;
	case OP_IOCTL: op_ioctl(); break;
	case OP_DEBUGFS: op_debugfs(); break;
	case OP_CTL: op_ctl(); break;
	case N_OPS: break;
	}
	count_op(op);
}

static void worker(int id, uint64_t seed, unsigned long ops, double until)
{
	unsigned long i;
	int j;

	worker_id = id;
	/* If the run is killed (a time limit), its processes go with it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	rng_state = seed ^ (0x5851f42d4c957f2dULL * (uint64_t)(id + 1));
	for (j = 0; j < N_CHAN; j++) {
		ch[j].fd = -1;
		forget_map(&ch[j]);
	}
	ctl.fd = -1;
	if (id == 0 && good_open(&ctl, TCTL, 16, 4) != 0)
		finding("worker 0: control channel: %s", strerror(errno));
	for (i = 0; i < ops && (until == 0 || (i % 64) || now_s() < until); i++) {
		one_op(0);
		if ((i & 15) == 0)
			reap(0);
	}
	reap(1);
	_exit(0);
}

/*
 * The test driver's echo UIDs: registered before the run; after it, every
 * fuzz UID is unregistered (the control op may have registered the idle
 * ones, or unregistered echo ones).
 */
static int setup_echoes(int reg)
{
	struct good c;
	int32_t rc;
	unsigned int i;
	int err = good_open(&c, TCTL, 16, 4), bad = 0;

	if (err)
		return err;
	for (i = 0; i < N_ECHO + (reg ? 0 : N_IDLE); i++) {
		uint32_t uid = i < N_ECHO ? echo_uids[i] : idle_uids[i - N_ECHO];

		if (td_request(&c, reg ? 1 : 2, uid, 0, 0, &rc))
			bad++;
		else if (reg ? (rc != 0 && rc != -EEXIST) : (rc != 0 && rc != -ENOENT))
			bad++;
	}
	good_close(&c);
	return bad ? -EPROTO : 0;
}

/* A fresh, well-behaved channel to the sample: registers written and read back. */
static void check_sample_after(void)
{
	struct good g;
	int err = good_open(&g, SAM0, 12, 16), i, wrong = 0;

	if (err) {
		check(0, "kfuzz_sample_after", "bind sam0: %s", strerror(-err));
		return;
	}
	for (i = 0; i < 20; i++) {
		uint32_t w[3] = { 2, (uint32_t)i, 0xc0de0000u + i }, r[3];
		int32_t rc;
		uint32_t flags;

		if (good_call(&g, w, 12, &rc, r, &flags) || rc != 0)
			wrong++;
		w[0] = 1;
		w[2] = 0;
		if (good_call(&g, w, 12, &rc, r, &flags) || rc != 0 || r[2] != 0xc0de0000u + i)
			wrong++;
	}
	check(wrong == 0, "kfuzz_sample_after", "%d wrong calls", wrong);
	good_close(&g);
}

/* An echo driver registered now, and a call through it. */
static void check_echo_after(void)
{
	struct good ctlc, g;
	uint32_t uid = UID("fzok");
	int32_t rc = -1;
	int err = good_open(&ctlc, TCTL, 16, 4), ok = 0;

	if (err) {
		check(0, "kfuzz_echo_after", "bind tctl: %s", strerror(-err));
		return;
	}
	if (td_request(&ctlc, 1, uid, 0, 0, &rc) == 0 && rc == 0 && good_open(&g, uid, 64, 4) == 0) {
		struct {
			int32_t rc;
			uint32_t delay;
			char p[8];
		} m = { 42, 0, "abcdefgh" }, r;
		uint32_t flags;

		ok = good_call(&g, &m, sizeof(m), &rc, &r, &flags) == 0 && rc == 42 &&
		     memcmp(r.p, "hgfedcba", 8) == 0;
		good_close(&g);
	}
	check(ok, "kfuzz_echo_after", "echo call through a fresh driver failed (rc %d)", rc);
	td_request(&ctlc, 2, uid, 0, 0, &rc);
	good_close(&ctlc);
}

/* Prints where every other process of our process group is in the kernel. */
static void dump_group(void)
{
	DIR *d = opendir("/proc");
	struct dirent *ent;
	pid_t me = getpid(), group = getpgrp();

	if (!d)
		return;
	while ((ent = readdir(d))) {
		char path[64], buf[4096], *rp;
		pid_t pid = atoi(ent->d_name), pgrp = 0;
		char state = '?';
		FILE *f;
		size_t n;

		if (pid <= 0 || pid == me)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		f = fopen(path, "r");
		if (!f)
			continue;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = 0;
		rp = strrchr(buf, ')');
		if (!rp || sscanf(rp + 1, " %c %*d %d", &state, &pgrp) != 2 || pgrp != group)
			continue;
		printf("kfuzz: pid %d state %c, kernel stack:\n", pid, state);
		snprintf(path, sizeof(path), "/proc/%d/stack", pid);
		f = fopen(path, "r");
		if (f) {
			while (fgets(buf, sizeof(buf), f))
				printf("kfuzz:   %s", buf);
			fclose(f);
		}
	}
	closedir(d);
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [-s SEED] [-n OPS] [-p PROCS] [-t SECONDS] [-w SECONDS]\n", argv0);
	exit(2);
}

int main(int argc, char **argv)
{
	uint64_t seed = 0;
	unsigned long ops = 20000;
	int procs = 4, opt, i, hung = 0, seeded = 0;
	double secs = 0, watchdog = 120, started, elapsed, limit;
	pid_t pids[64];

	if (getenv("ISC_TIME_LIMIT") && atof(getenv("ISC_TIME_LIMIT")) > 40)
		watchdog = atof(getenv("ISC_TIME_LIMIT")) - 20;
	while ((opt = getopt(argc, argv, "s:n:p:t:w:")) != -1) {
		switch (opt) {
		case 's': seed = strtoull(optarg, NULL, 0); seeded = 1; break;
		case 'n': ops = strtoul(optarg, NULL, 0); break;
		case 'p': procs = atoi(optarg); break;
		case 't': secs = atof(optarg); break;
		case 'w': watchdog = atof(optarg); break;
		default: usage(argv[0]);
		}
	}
	if (procs < 1 || procs > 64)
		usage(argv[0]);
	if (!seeded) {
		uint64_t t = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(now_s() * 1e9);

		seed = splitmix(&t);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	/* Our own process group: a hang report lists all of our processes. */
	setpgid(0, 0);
	printf("kfuzz: seed %#llx, %d processes, %lu ops%s (reproduce: kfuzz -s %#llx -n %lu -p %d)\n",
	       (unsigned long long)seed, procs, ops, secs > 0 ? " or the time limit" : "",
	       (unsigned long long)seed, ops, procs);

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		printf("FAIL kfuzz_setup: %s\n", strerror(errno));
		return 1;
	}
	i = setup_echoes(1);
	check(i == 0, "kfuzz_setup", "registering the echo drivers: %s", strerror(-i));

	started = now_s();
	for (i = 0; i < procs; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			worker(i, seed, ops / procs + (i < (int)(ops % procs)), secs > 0 ? started + secs : 0);
	}
	/* Workers hang only if the kernel does: allow far more than they need. */
	limit = started + (secs > 0 ? secs : 0) + watchdog;
	for (i = 0; i < procs; i++) {
		int st = 0;
		pid_t p;

		while ((p = waitpid(pids[i], &st, WNOHANG)) == 0 && now_s() < limit)
			usleep(20000);
		if (p == 0) {
			printf("FAIL kfuzz_worker_hung: worker %d (pid %d) still running after %.0f s\n", i, pids[i],
			       now_s() - started);
			n_fail++;
			if (!hung++)
				dump_group();
			kill(pids[i], SIGKILL);
			waitpid(pids[i], &st, 0);
		} else if (WIFSIGNALED(st)) {
			finding("worker %d died of signal %d", i, WTERMSIG(st));
		}
	}
	elapsed = now_s() - started;
	check(!hung, "kfuzz_workers_finished", "%d hung", hung);
	check(sh->findings == 0, "kfuzz_no_unexpected_results", "%lu findings", sh->findings);
	check(sh->total >= (secs > 0 ? 1 : ops), "kfuzz_ops_done", "%lu of %lu ops", sh->total, ops);

	check_sample_after();
	check_echo_after();
	i = setup_echoes(0);
	check(i == 0, "kfuzz_teardown", "unregistering the echo drivers: %s", strerror(-i));

	printf("kfuzz: ops");
	for (i = 0; i < N_OPS; i++)
		printf(" %s %lu", op_names[i], sh->ops[i]);
	printf("\n");
	printf("kfuzz: reached %lu binds, %lu mappings, %lu messages delivered by KICK, %lu KICKs refused "
	       "as corrupt, %lu k2u messages consumed\n",
	       sh->binds, sh->maps, sh->delivered, sh->corrupt, sh->received);
	check(sh->binds > 0 && sh->maps > 0 && sh->delivered > 0 && sh->received > 0, "kfuzz_reached_the_rings",
	      "the ops never got past bind/mmap");
	printf("kfuzz: seed %#llx: %lu ops by %d processes (and their children) in %.1f s, %.0f ops/s\n",
	       (unsigned long long)seed, sh->total, procs, elapsed, sh->total / (elapsed > 0 ? elapsed : 1));
	printf("kfuzz: %d ok, %d failed\n", n_ok, n_fail);
	return n_fail ? 1 : 0;
}
