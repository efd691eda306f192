// SPDX-License-Identifier: GPL-2.0
/*
 * hostile: a hostile user of /dev/isc.
 *
 * Build (static, runs in a minimal VM):
 *   make -C driver tests
 * which runs
 *   gcc -static -O2 -Wall -Wextra -pthread -I driver/include -o driver/tests/hostile driver/tests/hostile.c
 * Binary: driver/tests/hostile
 *
 * Run as root with isc.ko and isc_sample.ko loaded:
 *   driver/tests/hostile [/path/to/isc_sample.ko]
 * With the path of isc_sample.ko, it also unloads and reloads the sample
 * module to check the UNBOUND/BOUND control messages (the module must be
 * loaded when the test starts, and is loaded again when it ends).
 *
 * Sends malformed ioctls and mmaps, scribbles the shared region, closes fds
 * in the middle of calls, then checks that a well-behaved channel to the
 * sample driver still works. Prints one line per check, "ok <name>" or
 * "FAIL <name>: <detail>", then "hostile: <n> ok, <m> failed"; exits 0 only
 * if nothing failed. The kernel log must be checked separately for
 * WARN/BUG/Oops.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "uapi/isc.h"
#include "check.h"
#include "chan.h"

#define SAM0 UID("sam0")

static int open_dev(void)
{
	int fd = open(DEV, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		printf("FAIL open %s: %s\n", DEV, strerror(errno));
		n_fail++;
		printf("hostile: %d ok, %d failed\n", n_ok, n_fail);
		exit(1);
	}
	return fd;
}

/* ------------------------------------------------------------ a channel */

/* Opens, binds and maps a channel; returns 0 or an errno. */
static int chan_open(struct chan *c, struct isc_bind_args a)
{
	memset(c, 0, sizeof(*c));
	c->fd = open_dev();
	c->args = a;
	if (ioctl(c->fd, ISC_IOC_BIND, &c->args)) {
		int e = errno;

		close(c->fd);
		c->fd = -1;
		return e;
	}
	c->size = c->args.resp.region_size;
	c->map = mmap(NULL, c->size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
	if (c->map == MAP_FAILED) {
		int e = errno;

		close(c->fd);
		c->fd = -1;
		return e;
	}
	ring_attach(&c->u2k, c->map + c->args.resp.u2k_offset);
	ring_attach(&c->k2u, c->map + c->args.resp.k2u_offset);
	return 0;
}

/* One call: push, KICK, read the completion in place. Returns the KICK result. */
static long call(struct chan *c, const void *msg, uint32_t len, int32_t *rc, void *reply, uint32_t *rlen,
		 uint32_t *flags)
{
	uint32_t idx = push(c, msg, len);
	long n = ioctl(c->fd, ISC_IOC_KICK);
	struct isc_slot_header *s = slot(&c->u2k, idx);

	if (n < 0)
		return n;
	if (__atomic_load_n(&c->u2k.hdr->tail.value, __ATOMIC_ACQUIRE) != c->u2k_head)
		return -1000;
	*rc = s->rc;
	*flags = s->flags;
	*rlen = s->len;
	if (reply && *rlen <= c->u2k.msz)
		memcpy(reply, s + 1, *rlen);
	return n;
}

/* Next unread k2u message, if any: copies it and releases the slot (no wake-up). */
static int recv_k2u_raw(struct chan *c, uint32_t *flags, void *buf, uint32_t *len)
{
	uint32_t head = __atomic_load_n(&c->k2u.hdr->head.value, __ATOMIC_ACQUIRE);
	struct isc_slot_header *s;

	if (head == c->k2u_tail)
		return 0;
	s = slot(&c->k2u, c->k2u_tail);
	if (s->seq != c->k2u_tail)
		return -1;
	*flags = s->flags;
	*len = s->len;
	if (buf && s->len <= c->k2u.msz)
		memcpy(buf, s + 1, s->len);
	s->rc = 0;
	s->flags |= ISC_SLOT_COMPLETED;
	c->k2u_tail++;
	__atomic_store_n(&c->k2u.hdr->tail.value, c->k2u_tail, __ATOMIC_RELEASE);
	return 1;
}

/*
 * As recv_k2u_raw, then the consumer's side of the wake-up protocol: after
 * releasing, a full fence, and if the kernel asked for it (PRODUCER_WAITING:
 * it holds control messages for lack of room), clear it and KICK.
 */
static int recv_k2u(struct chan *c, uint32_t *flags, void *buf, uint32_t *len)
{
	int r = recv_k2u_raw(c, flags, buf, len);

	if (r == 1) {
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (__atomic_load_n(&c->k2u.hdr->flags.value, __ATOMIC_RELAXED) & ISC_PRODUCER_WAITING) {
			__atomic_fetch_and(&c->k2u.hdr->flags.value, ~ISC_PRODUCER_WAITING, __ATOMIC_RELAXED);
			ioctl(c->fd, ISC_IOC_KICK);
		}
	}
	return r;
}

static short poll_fd(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, timeout_ms) < 0)
		return -1;
	return p.revents;
}

/* Waits (bounded) for a k2u message whose kind is `kind`, skipping others. */
static int wait_kind(struct chan *c, uint32_t kind, int max_ms)
{
	uint32_t flags, len;
	uint8_t buf[64];
	int waited = 0;

	for (;;) {
		int r = recv_k2u(c, &flags, buf, &len);

		if (r < 0)
			return -1;
		if (r > 0) {
			if ((flags & ISC_SLOT_KIND_MASK) == kind)
				return 1;
			continue;
		}
		if (waited >= max_ms)
			return 0;
		poll_fd(c->fd, 100);
		waited += 100;
	}
}

struct sam_msg {
	uint32_t id, a, b;
};

/* ---------------------------------------------------------------- tests */

static void test_unbound_fd(void)
{
	int fd = open_dev();
	void *p;

	check_errno(ioctl(fd, ISC_IOC_KICK), ENOTCONN, "kick_before_bind");
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	check_errno(p == MAP_FAILED ? -1 : 0, ENXIO, "mmap_before_bind");
	check_errno(ioctl(fd, _IO(ISC_IOC_MAGIC, 99)), ENOTTY, "unknown_ioctl_nr");
	check_errno(ioctl(fd, _IOWR('X', 1, struct isc_bind_args)), ENOTTY, "unknown_ioctl_type");
	check_errno(ioctl(fd, _IOWR(ISC_IOC_MAGIC, ISC_IOC_NR_BIND, struct isc_bind_request)), ENOTTY,
		    "bind_wrong_size");
	check_errno(ioctl(fd, _IOW(ISC_IOC_MAGIC, ISC_IOC_NR_KICK, int), 0), ENOTTY, "kick_wrong_dir");
	check(poll_fd(fd, 0) == 0, "poll_before_bind", "revents %d", poll_fd(fd, 0));
	close(fd);
}

static void bind_expect(struct isc_bind_args a, int want, const char *name)
{
	int fd = open_dev();

	check_errno(ioctl(fd, ISC_IOC_BIND, &a), want, name);
	close(fd);
}

static void test_bad_bind(void)
{
	uint32_t u = UID("hst0");
	struct isc_bind_args a;
	int fd;

	a = req(u, 16, 4, 16, 4);
	a.req.abi_version = ISC_ABI_VERSION + 1;
	bind_expect(a, EPROTO, "bind_bad_version");
	/* Version 1 (slots padded to 64 bytes) is a different layout: refused. */
	a.req.abi_version = 1;
	bind_expect(a, EPROTO, "bind_old_version");
	a.req.abi_version = 0;
	bind_expect(a, EPROTO, "bind_version_zero");
	a = req(u, 16, 4, 16, 4);
	a.req.flags = 1;
	bind_expect(a, EINVAL, "bind_flags");
	a = req(u, 16, 4, 16, 4);
	a.req.reserved = 0x80000000;
	bind_expect(a, EINVAL, "bind_reserved");
	bind_expect(req(u, 0, 4, 16, 4), EINVAL, "bind_u2k_msz_zero");
	bind_expect(req(u, 16, 0, 16, 4), EINVAL, "bind_u2k_num_zero");
	bind_expect(req(u, 16, 4, 0, 4), EINVAL, "bind_k2u_msz_zero");
	bind_expect(req(u, 16, 4, 16, 0), EINVAL, "bind_k2u_num_zero");
	bind_expect(req(u, ISC_MAX_MSZ + 1, 4, 16, 4), EINVAL, "bind_msz_over_cap");
	bind_expect(req(u, 16, ISC_MAX_SLOTS + 1, 16, 4), EINVAL, "bind_num_over_cap");
	bind_expect(req(u, 0xffffffffu, 4, 16, 4), EINVAL, "bind_msz_u32_max");
	bind_expect(req(u, 16, 4, 16, 0xffffffffu), EINVAL, "bind_num_u32_max");
	bind_expect(req(u, 0xfffffff0u, 0x80000000u, 16, 4), EINVAL, "bind_huge_both");
	bind_expect(req(u, ISC_MAX_MSZ, ISC_MAX_SLOTS, 16, 4), E2BIG, "bind_ring_too_big");
	bind_expect(req(u, 16, 4, ISC_MAX_MSZ, 256), E2BIG, "bind_k2u_too_big");
	/* 256-byte slots: 65536 of them plus the header are just over 16 MiB. */
	bind_expect(req(u, 240, ISC_MAX_SLOTS, 16, 4), E2BIG, "bind_just_over_cap");
	{
		/* 192-byte slots: 12 MiB + 4 KiB, within the cap. */
		struct isc_bind_args big = req(u, 176, ISC_MAX_SLOTS, 1, ISC_MAX_SLOTS);

		fd = open_dev();
		check(ioctl(fd, ISC_IOC_BIND, &big) == 0 &&
			      big.resp.region_size == ring_bytes(176, ISC_MAX_SLOTS) + ring_bytes(1, ISC_MAX_SLOTS),
		      "bind_largest_slot_counts", "%s size %llu", strerror(errno),
		      (unsigned long long)big.resp.region_size);
		close(fd);
	}

	fd = open_dev();
	check_errno(ioctl(fd, ISC_IOC_BIND, NULL), EFAULT, "bind_null_arg");
	check_errno(ioctl(fd, ISC_IOC_BIND, (void *)8), EFAULT, "bind_bad_pointer");
	close(fd);

	/* A request the kernel can read but whose response it cannot write. */
	{
		void *ro = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct isc_bind_args good = req(UID("hstr"), 16, 4, 16, 4);

		memcpy(ro, &good, sizeof(good));
		mprotect(ro, 4096, PROT_READ);
		fd = open_dev();
		check_errno(ioctl(fd, ISC_IOC_BIND, ro), EFAULT, "bind_readonly_response");
		good = req(UID("hstr"), 16, 4, 16, 4);
		check_errno(ioctl(fd, ISC_IOC_BIND, &good), EALREADY, "bind_after_efault_is_bound");
		close(fd);
		munmap(ro, 4096);
	}
}

static void test_bind_and_mmap(void)
{
	struct isc_bind_args a = req(UID("hst1"), 100, 5, 64, 200);
	struct chan c;
	int fd2, err;
	void *p;
	uint64_t ub = ring_bytes(100, 5), kb = ring_bytes(64, 200);
	long n;

	err = chan_open(&c, a);
	check(err == 0, "bind_ok", "errno %d", err);
	if (err)
		return;
	check(c.args.resp.region_size == ub + kb && c.args.resp.u2k_offset == 0 &&
		      c.args.resp.k2u_offset == ub && c.args.resp.bound == 0 && c.args.resp.reserved == 0,
	      "bind_response", "size %llu u2k %llu k2u %llu bound %u", (unsigned long long)c.args.resp.region_size,
	      (unsigned long long)c.args.resp.u2k_offset, (unsigned long long)c.args.resp.k2u_offset,
	      c.args.resp.bound);
	check(c.u2k.hdr->info.magic == ISC_RING_MAGIC && c.u2k.hdr->info.abi_version == ISC_ABI_VERSION &&
		      c.u2k.count == 8 && c.u2k.msz == 100 && c.u2k.stride == 120 &&
		      c.u2k.hdr->info.slots_offset == 256 && c.u2k.hdr->info.ring_bytes == ub &&
		      c.u2k.hdr->info.features == 0 && c.u2k.hdr->head.value == 0 && c.u2k.hdr->tail.value == 0 &&
		      c.u2k.hdr->flags.value == 0,
	      "u2k_header", "count %u msz %u stride %u", c.u2k.count, c.u2k.msz, c.u2k.stride);
	/* 64-byte messages take 80 bytes each: 256 slots and the header fit in 6 pages, not 9. */
	check(c.k2u.hdr->info.magic == ISC_RING_MAGIC && c.k2u.count == 256 && c.k2u.msz == 64 &&
		      c.k2u.stride == 80 && c.k2u.hdr->info.ring_bytes == kb && kb == 6 * 4096,
	      "k2u_header", "count %u msz %u stride %u", c.k2u.count, c.k2u.msz, c.k2u.stride);

	check_errno(ioctl(c.fd, ISC_IOC_BIND, &a), EALREADY, "double_bind");
	a = req(UID("hsx1"), 16, 4, 16, 4);
	check_errno(ioctl(c.fd, ISC_IOC_BIND, &a), EALREADY, "double_bind_other_uid");
	fd2 = open_dev();
	a = req(UID("hst1"), 16, 4, 16, 4);
	check_errno(ioctl(fd2, ISC_IOC_BIND, &a), EBUSY, "bind_uid_busy");
	close(fd2);

	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, c.fd, 4096);
	check_errno(p == MAP_FAILED ? -1 : 0, EINVAL, "mmap_offset_nonzero");
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, c.fd, 1ULL << 40);
	check_errno(p == MAP_FAILED ? -1 : 0, EINVAL, "mmap_offset_huge");
	p = mmap(NULL, c.size + 4096, PROT_READ | PROT_WRITE, MAP_SHARED, c.fd, 0);
	check_errno(p == MAP_FAILED ? -1 : 0, EINVAL, "mmap_too_long");
	p = mmap(NULL, c.size, PROT_READ | PROT_WRITE, MAP_PRIVATE, c.fd, 0);
	check_errno(p == MAP_FAILED ? -1 : 0, EINVAL, "mmap_private");
	p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, c.fd, 0);
	check(p != MAP_FAILED && ((struct isc_ring_header *)p)->info.magic == ISC_RING_MAGIC, "mmap_second_partial",
	      "%s", strerror(errno));
	if (p != MAP_FAILED) {
		void *q = mremap(p, 4096, 8192, MREMAP_MAYMOVE);

		check_errno(q == MAP_FAILED ? -1 : 0, EFAULT, "mremap_grow_refused");
		munmap(p, 4096);
	}

	/* No driver for hst1: a call completes as not delivered. */
	{
		struct sam_msg m = { 1, 2, 3 };
		int32_t rc;
		uint32_t rlen, flags;

		n = call(&c, &m, sizeof(m), &rc, NULL, &rlen, &flags);
		check(n == 1 && rc == -ENODEV && rlen == 0 &&
			      flags == (ISC_SLOT_COMPLETED | ISC_SLOT_NOT_DELIVERED),
		      "kick_no_driver", "n %ld rc %d len %u flags %#x", n, rc, rlen, flags);
		n = ioctl(c.fd, ISC_IOC_KICK);
		check(n == 0, "kick_empty", "n %ld errno %d", n, errno);
		check(poll_fd(c.fd, 0) == 0, "poll_empty_k2u", "revents %d", poll_fd(c.fd, 0));
	}
	chan_close(&c);
}

/* Opens a fresh channel on uid, scribbles with fn, expects KICK -EIO and poll ERR|HUP. */
static void scribble_case_on(uint32_t uid, const char *name, void (*fn)(struct chan *))
{
	struct chan c;
	char label[96];
	long n;
	short ev;
	int err = chan_open(&c, req(uid, 32, 4, 32, 4));

	snprintf(label, sizeof(label), "scribble_%s_bind", name);
	check(err == 0, label, "errno %d", err);
	if (err)
		return;
	fn(&c);
	n = ioctl(c.fd, ISC_IOC_KICK);
	snprintf(label, sizeof(label), "scribble_%s_kick_eio", name);
	check_errno(n, EIO, label);
	n = ioctl(c.fd, ISC_IOC_KICK);
	snprintf(label, sizeof(label), "scribble_%s_stays_corrupt", name);
	check_errno(n, EIO, label);
	ev = poll_fd(c.fd, 0);
	snprintf(label, sizeof(label), "scribble_%s_poll_err", name);
	check((ev & (POLLERR | POLLHUP)) == (POLLERR | POLLHUP), label, "revents %#x", ev);
	chan_close(&c);
}

/* On a channel with no driver (messages complete as not delivered). */
static void scribble_case(const char *name, void (*fn)(struct chan *))
{
	scribble_case_on(UID("hsc0"), name, fn);
}

static void s_head_far(struct chan *c)
{
	c->u2k.hdr->head.value = 5; /* 4 slots */
}

static void s_head_back(struct chan *c)
{
	c->u2k.hdr->head.value = 0xffffffffu;
}

static void s_len(struct chan *c)
{
	struct sam_msg m = { 0 };

	push(c, &m, sizeof(m));
	slot(&c->u2k, 0)->len = 33;
}

static void s_len_huge(struct chan *c)
{
	struct sam_msg m = { 0 };

	push(c, &m, sizeof(m));
	slot(&c->u2k, 0)->len = 0xfffffff0u;
}

static void s_seq(struct chan *c)
{
	struct sam_msg m = { 0 };

	push(c, &m, sizeof(m));
	slot(&c->u2k, 0)->seq = 4;
}

static void s_flags(struct chan *c)
{
	struct sam_msg m = { 0 };

	push(c, &m, sizeof(m));
	slot(&c->u2k, 0)->flags = ISC_SLOT_KIND_BOUND;
}

static void s_second_slot(struct chan *c)
{
	struct sam_msg m = { 0 };

	push(c, &m, sizeof(m));
	push(c, &m, sizeof(m));
	slot(&c->u2k, 1)->seq = 17;
}

/* Geometry in the shared header is ignored by the kernel: a call still works. */
static void test_scribble_info(void)
{
	struct chan c;
	struct sam_msg m = { 1, 2, 3 };
	int32_t rc;
	uint32_t rlen, flags;
	long n;
	int err = chan_open(&c, req(UID("hsc1"), 32, 4, 32, 4));

	if (err) {
		check(0, "scribble_info_bind", "errno %d", err);
		return;
	}
	c.u2k.hdr->info.slot_count = 0xffffffffu;
	c.u2k.hdr->info.msz = 0xffffffffu;
	c.u2k.hdr->info.slot_stride = 0x7fffffffu;
	c.u2k.hdr->info.slots_offset = 0xfffff000u;
	c.k2u.hdr->info.slot_count = 0;
	c.k2u.hdr->head.value = 0x12345678;
	c.u2k.hdr->flags.value = 0xffffffffu;
	c.k2u.hdr->flags.value = 0xffffffffu;
	n = call(&c, &m, sizeof(m), &rc, NULL, &rlen, &flags);
	check(n == 1 && rc == -ENODEV, "scribble_info_ignored", "n %ld rc %d", n, rc);
	/* The kernel owns the k2u head: the scribbled one does not make the fd readable. */
	check(poll_fd(c.fd, 0) == 0, "poll_ignores_scribbled_head", "revents %#x", poll_fd(c.fd, 0));
	chan_close(&c);
}

/* A user that completes its own messages and moves tail: the kernel notices nothing wrong. */
static void test_tail_rewrite(void)
{
	struct chan c;
	struct sam_msg m = { 0 };
	long n;
	int err = chan_open(&c, req(UID("hsc2"), 32, 4, 32, 4));

	if (err) {
		check(0, "tail_rewrite_bind", "errno %d", err);
		return;
	}
	push(&c, &m, sizeof(m));
	c.u2k.hdr->tail.value = 0xdeadbeef; /* the kernel owns tail; it keeps its own copy */
	n = ioctl(c.fd, ISC_IOC_KICK);
	check(n == 1 && c.u2k.hdr->tail.value == 1, "u2k_tail_rewritten", "n %ld tail %u", n,
	      c.u2k.hdr->tail.value);
	chan_close(&c);
}

/* ------------------------------------------------------ the sample driver */

static void test_sample(const char *prefix)
{
	struct chan c;
	struct sam_msg m, r;
	int32_t rc;
	uint32_t rlen, flags, len;
	long n;
	char name[96];
	int err = chan_open(&c, req(SAM0, 12, 16, 12, 64));

	snprintf(name, sizeof(name), "%s_bind", prefix);
	check(err == 0 && c.args.resp.bound == 1, name, "errno %d bound %u", err, c.args.resp.bound);
	if (err)
		return;
	snprintf(name, sizeof(name), "%s_bound_msg", prefix);
	{
		uint8_t buf[16];
		int got = recv_k2u(&c, &flags, buf, &len);

		check(got == 1 && (flags & ISC_SLOT_KIND_MASK) == ISC_SLOT_KIND_BOUND && len == 0, name,
		      "got %d flags %#x len %u", got, flags, len);
	}

	m = (struct sam_msg){ 2, 7, 0xdeadbeef };
	n = call(&c, &m, sizeof(m), &rc, &r, &rlen, &flags);
	snprintf(name, sizeof(name), "%s_write_reg", prefix);
	check(n == 1 && rc == 0 && rlen == 12 && flags == ISC_SLOT_COMPLETED, name,
	      "n %ld rc %d len %u flags %#x", n, rc, rlen, flags);
	m = (struct sam_msg){ 1, 7, 0 };
	n = call(&c, &m, sizeof(m), &rc, &r, &rlen, &flags);
	snprintf(name, sizeof(name), "%s_read_reg", prefix);
	check(n == 1 && rc == 0 && rlen == 12 && r.id == 1 && r.a == 7 && r.b == 0xdeadbeef, name,
	      "n %ld rc %d len %u b %#x", n, rc, rlen, r.b);
	m = (struct sam_msg){ 1, 256, 0 };
	n = call(&c, &m, sizeof(m), &rc, &r, &rlen, &flags);
	snprintf(name, sizeof(name), "%s_read_out_of_range", prefix);
	check(n == 1 && rc == -EINVAL, name, "n %ld rc %d", n, rc);
	n = call(&c, &m, 4, &rc, &r, &rlen, &flags);
	snprintf(name, sizeof(name), "%s_short_message", prefix);
	check(n == 1 && rc == -EINVAL, name, "n %ld rc %d", n, rc);

	/* A batch: several messages, one KICK. */
	{
		uint32_t first = c.u2k_head, i;
		int good = 1;

		for (i = 0; i < 10; i++) {
			m = (struct sam_msg){ 2, i, 100 + i };
			push(&c, &m, sizeof(m));
		}
		n = ioctl(c.fd, ISC_IOC_KICK);
		for (i = 0; i < 10; i++) {
			struct isc_slot_header *s = slot(&c.u2k, first + i);

			if (s->rc != 0 || !(s->flags & ISC_SLOT_COMPLETED))
				good = 0;
		}
		snprintf(name, sizeof(name), "%s_batch", prefix);
		check(n == 10 && good && c.u2k.hdr->tail.value == c.u2k_head, name, "n %ld good %d", n, good);
	}

	/* The counters in debugfs, when it is mounted: 14 messages delivered on this channel. */
	{
		char path[64], text[512];
		FILE *f;
		size_t got;

		snprintf(path, sizeof(path), "/sys/kernel/debug/isc/%08x", SAM0);
		f = fopen(path, "r");
		snprintf(name, sizeof(name), "%s_debugfs_counters", prefix);
		/* The counters are part of the module's interface: debugfs must be mounted. */
		got = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
		text[got] = 0;
		check(f && strstr(text, "\nmessages 14\n") && strstr(text, "\nkicks 5\n") &&
			      strstr(text, "\ncorrupt 0\n"),
		      name, "%s: %s", path, f ? text : strerror(errno));
		if (f)
			fclose(f);
	}

	/* The irq status posts arrive and wake poll. */
	{
		uint8_t buf[16];
		struct sam_msg *p = (struct sam_msg *)buf;
		int got = 0, tries;
		short ev = 0;

		for (tries = 0; tries < 50 && !got; tries++) {
			ev = poll_fd(c.fd, 100);
			got = recv_k2u(&c, &flags, buf, &len);
		}
		snprintf(name, sizeof(name), "%s_irq_post", prefix);
		check(got == 1 && (ev & POLLIN) && (flags & ISC_SLOT_KIND_MASK) == ISC_SLOT_KIND_MSG && len == 12 &&
			      p->id == 0x100 && p->a == 1 && p->b >= 1,
		      name, "got %d ev %#x flags %#x len %u id %#x b %u", got, ev, flags, len, p->id, p->b);
	}
	chan_close(&c);
}

/* ------------------------------------------- concurrency and close races */

/*
 * The closer sets phase to 1 just before close() and to 2 just after it
 * returned: a KICK that started in phase 0 and returned in phase 2 was in
 * the kernel for the whole close().
 */
struct racer {
	int fd;
	volatile int stop;
	long kicks, errors, spanned;
	int phase;
};

static int load_phase(struct racer *r)
{
	return __atomic_load_n(&r->phase, __ATOMIC_SEQ_CST);
}

static void set_phase(struct racer *r, int phase)
{
	__atomic_store_n(&r->phase, phase, __ATOMIC_SEQ_CST);
}

static void *kicker(void *arg)
{
	struct racer *r = arg;

	while (!r->stop) {
		int before = load_phase(r);
		long n = ioctl(r->fd, ISC_IOC_KICK);
		int e = errno;

		if (n >= 0 && before == 0 && load_phase(r) == 2)
			r->spanned++;
		if (n < 0 && e != EBADF && e != ENOTCONN)
			r->errors++;
		__atomic_store_n(&r->kicks, r->kicks + 1, __ATOMIC_RELAXED);
		if (n < 0 && e == EBADF)
			break;
	}
	return NULL;
}

static void *poller(void *arg)
{
	struct racer *r = arg;

	while (!r->stop) {
		struct pollfd p = { .fd = r->fd, .events = POLLIN };

		if (poll(&p, 1, 5) < 0)
			r->errors++;
		if (p.revents & POLLNVAL)
			break;
	}
	return NULL;
}

static void test_close_races(void)
{
	int i, crashed = 0, okbinds = 0, idle = 0;
	long errors = 0, spanned = 0;

	/* Close the fd while other threads KICK and poll on it; the sample posts meanwhile. */
	for (i = 0; i < 60; i++) {
		struct chan c;
		struct racer r = { 0 };
		pthread_t t1, t2;
		struct sam_msg m = { 2, 1, (uint32_t)i };
		int err = chan_open(&c, req(SAM0, 12, 4, 12, 1));

		if (err) {
			crashed++;
			continue;
		}
		okbinds++;
		r.fd = c.fd;
		pthread_create(&t1, NULL, kicker, &r);
		pthread_create(&t2, NULL, poller, &r);
		push(&c, &m, sizeof(m));
		if (i & 1)
			usleep(1000);
		/* The kicker is running (bounded wait: it may not have been scheduled yet). */
		{
			int spins;

			for (spins = 0; spins < 5000 && !__atomic_load_n(&r.kicks, __ATOMIC_RELAXED); spins++)
				usleep(1000);
		}
		if (!__atomic_load_n(&r.kicks, __ATOMIC_RELAXED))
			idle++;
		set_phase(&r, 1);
		munmap(c.map, c.size);
		close(c.fd);
		set_phase(&r, 2);
		r.stop = 1;
		pthread_join(t1, NULL);
		pthread_join(t2, NULL);
		errors += r.errors;
		spanned += r.spanned;
	}
	check(crashed == 0 && okbinds == 60 && idle == 0, "close_while_kicking",
	      "bind failures %d, rounds without a KICK before the close %d", crashed, idle);
	check(errors == 0, "close_while_kicking_errors", "unexpected errors %ld", errors);
	/* How often a fast KICK happened to span the whole close (test_slow_kick_close makes sure of one). */
	printf("info close_while_kicking: %ld KICKs spanned a close() in 60 rounds\n", spanned);

	/* Close with the mapping still alive: the region stays valid and the UID busy until munmap. */
	{
		struct chan c;
		int err = chan_open(&c, req(SAM0, 12, 4, 12, 4)), fd2, e2;
		struct isc_bind_args a = req(SAM0, 12, 4, 12, 4);

		if (err) {
			check(0, "close_keeps_mapping", "bind errno %d", err);
			return;
		}
		close(c.fd);
		c.fd = -1;
		c.u2k.hdr->head.value = 3; /* still our memory */
		fd2 = open_dev();
		e2 = ioctl(fd2, ISC_IOC_BIND, &a) ? errno : 0;
		check(e2 == EBUSY && c.k2u.hdr->info.magic == ISC_RING_MAGIC, "close_keeps_mapping",
		      "bind errno %d", e2);
		munmap(c.map, c.size);
		c.map = NULL;
		a = req(SAM0, 12, 4, 12, 4);
		e2 = ioctl(fd2, ISC_IOC_BIND, &a) ? errno : 0;
		check(e2 == 0 && a.resp.bound == 1, "munmap_releases_uid", "bind errno %d", e2);
		close(fd2);
	}
}

/* -------------------------------- the test driver (isc_testdrv, UID tctl) */

#define TCTL UID("tctl")

struct td_ctl {
	uint32_t op, uid, arg0, arg1;
};

/* One control request on ctl; returns its rc (or -1000 - errno if the call failed). */
static int32_t td(struct chan *ctl, uint32_t op, uint32_t uid, struct td_ctl *out)
{
	struct td_ctl q = { op, uid, 0, 0 }, r = { 0 };
	int32_t rc;
	uint32_t rlen, flags;
	long n = call(ctl, &q, sizeof(q), &rc, &r, &rlen, &flags);

	if (n != 1)
		return -1000 - errno;
	if (out)
		*out = r;
	return rc;
}

struct slow_kick {
	struct racer *r;
	int started, start_phase, end_phase;
	long n;
};

static void *slow_kicker(void *arg)
{
	struct slow_kick *k = arg;

	k->start_phase = load_phase(k->r);
	__atomic_store_n(&k->started, 1, __ATOMIC_SEQ_CST);
	k->n = ioctl(k->r->fd, ISC_IOC_KICK);
	k->end_phase = load_phase(k->r);
	return NULL;
}

/*
 * close() while a KICK is inside a driver's got() (the test driver's echo
 * sleeps 300 ms): the KICK completes the message in place, the channel
 * unbinds once the KICK and the mapping are gone. A round where the close
 * missed the KICK (the closer ran late) is retried.
 */
static void test_slow_kick_close(void)
{
	struct chan ctl, c;
	struct td_ctl st;
	uint32_t uid = UID("hslw");
	int err = chan_open(&ctl, req(TCTL, 16, 4, 16, 4)), round, spanned = 0, reply_ok = 0;
	int32_t rc;

	if (err) {
		check(0, "slow_kick_ctl_bind", "errno %d (is isc_testdrv loaded?)", err);
		return;
	}
	rc = td(&ctl, 1, uid, NULL);
	check(rc == 0, "slow_kick_register", "rc %d", rc);
	for (round = 0; round < 10 && !spanned; round++) {
		struct racer r = { 0 };
		struct slow_kick k = { .r = &r };
		struct {
			int32_t rc;
			uint32_t delay_ms;
			char payload[8];
		} m = { 7, 300, "slowkick" };
		struct isc_slot_header *s;
		pthread_t t;
		uint32_t idx;
		int spins;

		err = chan_open(&c, req(uid, 64, 4, 16, 4));
		if (err) {
			check(0, "slow_kick_bind", "errno %d", err);
			break;
		}
		idx = push(&c, &m, sizeof(m));
		r.fd = c.fd;
		pthread_create(&t, NULL, slow_kicker, &k);
		for (spins = 0; spins < 5000 && !__atomic_load_n(&k.started, __ATOMIC_SEQ_CST); spins++)
			usleep(1000);
		usleep(20000);
		set_phase(&r, 1);
		close(c.fd);
		set_phase(&r, 2);
		c.fd = -1;
		pthread_join(t, NULL);
		s = slot(&c.u2k, idx);
		if (k.n == 1 && k.start_phase == 0 && k.end_phase == 2) {
			spanned = 1;
			reply_ok = s->rc == 7 && s->len == sizeof(m) && (s->flags & ISC_SLOT_COMPLETED) &&
				   memcmp((char *)(s + 1) + 8, "kcikwols", 8) == 0;
		}
		chan_close(&c);
	}
	check(spanned, "kick_spans_close", "no KICK was in the driver across close() in %d rounds", round);
	check(reply_ok, "kick_spans_close_reply", "the message was not completed in place");
	/* Every bind was matched by an unbind once the KICK and the mapping were gone. */
	rc = td(&ctl, 4, uid, &st);
	check(rc == 0 && st.arg0 == (uint32_t)round && st.arg1 == (uint32_t)round, "slow_kick_unbound_after_close",
	      "rc %d bound %u unbind %u rounds %d", rc, st.arg0, st.arg1, round);
	rc = td(&ctl, 2, uid, NULL);
	check(rc == 0, "slow_kick_unregister", "rc %d", rc);
	chan_close(&ctl);
}

/* Exit while bound, mapped and with calls pending: the kernel cleans up. */
static void test_exit_while_bound(void)
{
	int i, good = 0;

	for (i = 0; i < 20; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			struct chan c;
			struct sam_msg m = { 2, 3, 4 };

			if (chan_open(&c, req(SAM0, 12, 4, 12, 1)))
				_exit(2);
			push(&c, &m, sizeof(m));
			if (i & 1)
				ioctl(c.fd, ISC_IOC_KICK);
			_exit(0);
		}
		if (pid > 0) {
			int st = 0;

			waitpid(pid, &st, 0);
			if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
				good++;
		}
	}
	check(good == 20, "exit_while_bound", "%d of 20 children bound", good);
}

/* The k2u ring full: posts drop, the channel keeps working. */
static void test_k2u_full(void)
{
	struct chan c;
	struct sam_msg m = { 1, 0, 0 }, r;
	int32_t rc;
	uint32_t rlen, flags, len;
	int err = chan_open(&c, req(SAM0, 12, 2, 12, 2)), got, i;
	long n;
	short ev;

	if (err) {
		check(0, "k2u_full_bind", "errno %d", err);
		return;
	}
	/* BOUND plus one post fill the ring; wait for it to stay full a few ticks. */
	for (i = 0; i < 50; i++) {
		if (__atomic_load_n(&c.k2u.hdr->head.value, __ATOMIC_ACQUIRE) == 2)
			break;
		usleep(50000);
	}
	usleep(300000);
	check(c.k2u.hdr->head.value == 2, "k2u_full_no_overrun", "head %u", c.k2u.hdr->head.value);
	n = call(&c, &m, sizeof(m), &rc, &r, &rlen, &flags);
	check(n == 1 && rc == 0, "k2u_full_calls_work", "n %ld rc %d", n, rc);
	got = recv_k2u(&c, &flags, NULL, &len) + recv_k2u(&c, &flags, NULL, &len);
	ev = 0;
	for (i = 0; i < 50 && !(ev & POLLIN); i++)
		ev = poll_fd(c.fd, 100);
	check(got == 2 && (ev & POLLIN), "k2u_resumes_after_drain", "got %d ev %#x", got, ev);

	/* Now a hostile tail: ahead of what the kernel published. */
	c.k2u.hdr->tail.value = c.k2u_tail + 1000;
	for (i = 0; i < 50; i++) {
		/* poll returns at once (head != the scribbled tail): sleep between looks. */
		ev = poll_fd(c.fd, 0);
		if (ev & POLLERR)
			break;
		usleep(100000);
	}
	check((ev & (POLLERR | POLLHUP)) == (POLLERR | POLLHUP), "k2u_bad_tail_detected", "revents %#x", ev);
	check_errno(ioctl(c.fd, ISC_IOC_KICK), EIO, "k2u_bad_tail_kick_eio");
	chan_close(&c);
}

struct flood {
	struct chan *c;
	volatile int stop;
	long posts, bad, ctrl;
	uint32_t last_b;
};

/* Consumes k2u as the user's dispatcher would: poll, read, release, wake the kernel if asked. */
static void *flood_consumer(void *arg)
{
	struct flood *f = arg;
	uint8_t buf[16];
	struct sam_msg *p = (struct sam_msg *)buf;
	uint32_t flags, len;

	while (!f->stop) {
		int r = recv_k2u(f->c, &flags, buf, &len);

		if (r < 0) {
			f->bad++;
			break;
		}
		if (r == 0) {
			poll_fd(f->c->fd, 10);
			continue;
		}
		if ((flags & ISC_SLOT_KIND_MASK) != ISC_SLOT_KIND_MSG) {
			f->ctrl++;
			continue;
		}
		/* Posts arrive in order; the counter only grows (gaps are drops). */
		if (len != 12 || p->id != 0x100 || p->a != 1 || p->b <= f->last_b)
			f->bad++;
		f->last_b = p->b;
		__atomic_store_n(&f->posts, f->posts + 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void test_flood(void)
{
	struct chan c;
	struct flood f = { 0 };
	pthread_t t;
	uint32_t i, wrong = 0, extra = 0;
	double deadline;
	int err = chan_open(&c, req(SAM0, 12, 4, 12, 4));

	if (err) {
		check(0, "flood_bind", "errno %d", err);
		return;
	}
	f.c = &c;
	pthread_create(&t, NULL, flood_consumer, &f);
	for (i = 0; i < 3000; i++) {
		struct sam_msg m = { 2, i % 256, i * 2654435761u }, r;
		int32_t rc;
		uint32_t rlen, flags;
		long n = call(&c, &m, sizeof(m), &rc, &r, &rlen, &flags);

		if (n < 0 || rc != 0) {
			wrong++;
			continue;
		}
		m.id = 1;
		m.b = 0;
		n = call(&c, &m, sizeof(m), &rc, &r, &rlen, &flags);
		if (n < 0 || rc != 0 || rlen != 12 || r.b != i * 2654435761u)
			wrong++;
	}
	/*
	 * Posts must have arrived while the calls ran: if none has yet (a fast
	 * machine, a slow timer), keep calling until a few have, for at most
	 * 20 s (a hang guard: the sample posts every period_ms).
	 */
	deadline = now_s() + 20;
	while (__atomic_load_n(&f.posts, __ATOMIC_RELAXED) < 3 && now_s() < deadline) {
		struct sam_msg m = { 1, extra % 256, 0 }, r;
		int32_t rc;
		uint32_t rlen, flags;

		if (call(&c, &m, sizeof(m), &rc, &r, &rlen, &flags) < 0 || rc != 0)
			wrong++;
		extra++;
	}
	f.stop = 1;
	pthread_join(t, NULL);
	check(wrong == 0 && c.u2k.hdr->tail.value == 6000 + extra, "flood_calls", "%u wrong replies, tail %u",
	      wrong, c.u2k.hdr->tail.value);
	check(f.bad == 0 && f.ctrl == 1 && f.posts >= 3, "flood_posts_in_order",
	      "%ld bad, %ld control, %ld posts (want >= 3)", f.bad, f.ctrl, f.posts);
	check(!(poll_fd(c.fd, 0) & (POLLERR | POLLHUP)), "flood_not_corrupt", "revents %#x", poll_fd(c.fd, 0));
	chan_close(&c);
}

static void test_nonblocking_poll(void)
{
	struct chan c;
	int err = chan_open(&c, req(SAM0, 12, 4, 12, 64));
	short ev;

	if (err) {
		check(0, "nonblock_bind", "errno %d", err);
		return;
	}
	fcntl(c.fd, F_SETFL, O_NONBLOCK);
	ev = poll_fd(c.fd, 0);
	check(ev == POLLIN, "nonblock_poll_bound_pending", "revents %#x", ev);
	/* Polling again consumes nothing: the BOUND message is still first in line. */
	ev = poll_fd(c.fd, 0);
	{
		uint32_t flags = 0, len = 0;
		int got = recv_k2u(&c, &flags, NULL, &len);

		check(ev == POLLIN && got == 1 && (flags & ISC_SLOT_KIND_MASK) == ISC_SLOT_KIND_BOUND,
		      "poll_has_no_side_effects", "revents %#x got %d flags %#x", ev, got, flags);
	}
	chan_close(&c);
}

/* Unload and reload the sample: UNBOUND then BOUND, also through a full k2u. */
static void test_reload(const char *ko)
{
	struct chan c, d;
	struct sam_msg m = { 1, 0, 0 };
	int32_t rc;
	uint32_t rlen, flags;
	long n;
	int fd, err, r;

	err = chan_open(&c, req(SAM0, 12, 4, 12, 64));
	if (err) {
		check(0, "reload_bind", "errno %d", err);
		return;
	}
	r = wait_kind(&c, ISC_SLOT_KIND_BOUND, 2000);
	check(r == 1, "reload_bound_msg", "r %d", r);
	r = syscall(SYS_delete_module, "isc_sample", O_NONBLOCK);
	check(r == 0, "rmmod_sample_while_bound", "%s", strerror(errno));
	r = wait_kind(&c, ISC_SLOT_KIND_UNBOUND, 2000);
	check(r == 1, "unbound_msg", "r %d", r);
	n = call(&c, &m, sizeof(m), &rc, NULL, &rlen, &flags);
	check(n == 1 && rc == -ENODEV && (flags & ISC_SLOT_NOT_DELIVERED), "call_after_unregister", "n %ld rc %d",
	      n, rc);
	fd = open(ko, O_RDONLY | O_CLOEXEC);
	r = fd < 0 ? -1 : syscall(SYS_finit_module, fd, "period_ms=20", 0);
	check(r == 0, "insmod_sample_again", "%s", strerror(errno));
	if (fd >= 0)
		close(fd);
	r = wait_kind(&c, ISC_SLOT_KIND_BOUND, 2000);
	check(r == 1, "bound_again_msg", "r %d", r);
	n = call(&c, &m, sizeof(m), &rc, NULL, &rlen, &flags);
	check(n == 1 && rc == 0, "call_after_reregister", "n %ld rc %d", n, rc);
	chan_close(&c);

	/* Control messages survive a full k2u: they wait and arrive in order. */
	err = chan_open(&d, req(SAM0, 12, 4, 12, 1));
	if (err) {
		check(0, "reload_full_bind", "errno %d", err);
		return;
	}
	/* k2u holds BOUND, unread. The sample's posts are dropped. */
	r = syscall(SYS_delete_module, "isc_sample", O_NONBLOCK);
	check(r == 0, "rmmod_sample_k2u_full", "%s", strerror(errno));
	fd = open(ko, O_RDONLY | O_CLOEXEC);
	r = fd < 0 ? -1 : syscall(SYS_finit_module, fd, "", 0);
	check(r == 0, "insmod_sample_k2u_full", "%s", strerror(errno));
	if (fd >= 0)
		close(fd);
	{
		uint32_t kinds[3] = { 9, 9, 9 }, len, fl = d.k2u.hdr->flags.value;
		short ev;
		int i;

		check((fl & ISC_PRODUCER_WAITING) && d.k2u.hdr->head.value == 1, "ctrl_pending_sets_producer_waiting",
		      "flags %#x head %u", fl, d.k2u.hdr->head.value);
		/* Release the slot without the wake-up: poll reports the pending message, changes nothing. */
		r = recv_k2u_raw(&d, &flags, NULL, &len);
		kinds[0] = r == 1 ? (flags & ISC_SLOT_KIND_MASK) : 99;
		ev = poll_fd(d.fd, 0);
		check(ev == POLLIN && d.k2u.hdr->head.value == 1, "poll_reports_pending_ctrl", "revents %#x head %u", ev,
		      d.k2u.hdr->head.value);
		/* The KICK is the doorbell: it writes the next pending message. */
		n = ioctl(d.fd, ISC_IOC_KICK);
		check(n == 0 && d.k2u.hdr->head.value == 2, "kick_flushes_pending_ctrl", "n %ld head %u", n,
		      d.k2u.hdr->head.value);
		for (i = 1; i < 3; i++) {
			int got = 0, tries;

			for (tries = 0; tries < 30 && got != 1; tries++) {
				got = recv_k2u(&d, &flags, NULL, &len);
				if (got != 1)
					usleep(100000);
			}
			kinds[i] = got == 1 ? (flags & ISC_SLOT_KIND_MASK) : 99;
		}
		check(kinds[0] == ISC_SLOT_KIND_BOUND && kinds[1] == ISC_SLOT_KIND_UNBOUND &&
			      kinds[2] == ISC_SLOT_KIND_BOUND,
		      "ctrl_pending_in_order", "kinds %u %u %u", kinds[0], kinds[1], kinds[2]);
		fl = d.k2u.hdr->flags.value;
		check(!(fl & ISC_PRODUCER_WAITING), "producer_waiting_cleared", "flags %#x", fl);
	}
	chan_close(&d);
}

static void test_many_fds(void)
{
	int fds[64], i, ok = 1;
	struct isc_bind_args a;

	for (i = 0; i < 64; i++) {
		fds[i] = open_dev();
		a = req(UID("m000") + i, 64, 64, 64, 64);
		if (ioctl(fds[i], ISC_IOC_BIND, &a))
			ok = 0;
	}
	for (i = 0; i < 64; i++)
		close(fds[i]);
	check(ok, "many_channels", "a bind failed");
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);

	test_unbound_fd();
	test_bad_bind();
	test_bind_and_mmap();
	scribble_case("head_far", s_head_far);
	scribble_case("head_back", s_head_back);
	scribble_case("len", s_len);
	scribble_case("len_huge", s_len_huge);
	scribble_case("seq", s_seq);
	scribble_case("flags", s_flags);
	scribble_case("second_slot", s_second_slot);
	/* The same on the sample's channel, where messages reach a driver. */
	scribble_case_on(SAM0, "bound_head_far", s_head_far);
	scribble_case_on(SAM0, "bound_len", s_len);
	scribble_case_on(SAM0, "bound_len_huge", s_len_huge);
	scribble_case_on(SAM0, "bound_seq", s_seq);
	scribble_case_on(SAM0, "bound_flags", s_flags);
	scribble_case_on(SAM0, "bound_second_slot", s_second_slot);
	test_scribble_info();
	test_tail_rewrite();
	test_many_fds();
	test_sample("sample");
	test_close_races();
	test_slow_kick_close();
	test_exit_while_bound();
	test_k2u_full();
	test_nonblocking_poll();
	test_flood();
	if (argc > 1)
		test_reload(argv[1]);
	/* After all of that, a well-behaved channel still works. */
	test_sample("sample_after");

	printf("hostile: %d ok, %d failed\n", n_ok, n_fail);
	return n_fail ? 1 : 0;
}
