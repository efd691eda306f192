// SPDX-License-Identifier: GPL-2.0
/*
 * hazard: the kernel API's contract with driver authors, checked with
 * drivers that misbehave on purpose (driver/hazard/isc_hazard.c).
 *
 * Build (static, runs in a minimal VM):
 *   gcc -static -O2 -Wall -Wextra -pthread -I driver/include -o hazard driver/tests/hazard.c
 *
 * Run as root with isc.ko loaded (node_mode=0666) and isc_testdrv.ko loaded
 * (enable=1); isc_hazard.ko must not be loaded, this program loads and
 * removes it:
 *   hazard /path/to/isc_hazard.ko [/path/to/isc_testdrv.ko]
 *
 * One check per line, "ok <name>" or "FAIL <name>: <detail>", then
 * "hazard: <n> ok, <m> failed"; exits 0 only if nothing failed. Each group
 * reproduces one way a driver or a user could break the module:
 *  1 rmmod while a got() that unregistered its own UID still runs;
 *  2 two got()s unregistering each other's UID at the same moment;
 *  3 a KICK while the driver's bound() is still running;
 *  4 SIGKILL during a long drain; isc_unregister() during a long drain;
 *  5 memory: cgroup charge, memory.max, the per-user cap;
 *  6 mmap: PROT_EXEC, fork;
 *  7 access: a non-root user binds what the policy allows, nothing else;
 *    the test driver's safeguards.
 * Nothing here passes or fails on elapsed time: waits have generous
 * deadlines only so that a hang shows up as a failure.
 * The kernel log must be checked separately (vm-test does).
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
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <grp.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>

#include "uapi/isc.h"
#include "check.h"
#include "chan.h"

#define NOBODY 65534

/* The hazard module's control protocol (see driver/hazard/isc_hazard.c). */
#define HZ_OP_REGISTER 1
#define HZ_OP_UNREGISTER 2
#define HZ_OP_STATS 3
#define HZ_OP_RELEASE 4
#define HZ_SELF 1
#define HZ_CROSS 2
#define HZ_SLOWBOUND 3
#define HZ_SLEEP 4
#define HZ_NOGOT 5
#define HZ_REENTER 6

struct hz_ctl {
	uint32_t op, uid, kind, delay_ms, peer, mode, owner, group;
};

struct hz_stats {
	uint32_t got, bound, unbind, violations;
	int32_t last_unregister;
	int32_t last_register;
};

/* ------------------------------------------------------------ a channel */

static int chan_map(struct chan *c)
{
	c->size = ring_bytes(c->args.req.u2k.msz, c->args.req.u2k.num) +
		  ring_bytes(c->args.req.k2u.msz, c->args.req.k2u.num);
	c->map = mmap(NULL, c->size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
	if (c->map == MAP_FAILED) {
		c->map = NULL;
		return errno;
	}
	ring_attach(&c->u2k, c->map);
	ring_attach(&c->k2u, c->map + ring_bytes(c->args.req.u2k.msz, c->args.req.u2k.num));
	return 0;
}

/* Opens, binds and maps a channel; returns 0 or an errno. */
static int chan_open(struct chan *c, uint32_t uid, uint32_t msz, uint32_t num)
{
	int e;

	memset(c, 0, sizeof(*c));
	c->args = req(uid, msz, num, 16, 64);
	c->fd = open(DEV, O_RDWR | O_CLOEXEC);
	if (c->fd < 0)
		return errno;
	if (ioctl(c->fd, ISC_IOC_BIND, &c->args)) {
		e = errno;
		close(c->fd);
		c->fd = -1;
		return e;
	}
	e = chan_map(c);
	if (e) {
		close(c->fd);
		c->fd = -1;
	}
	return e;
}

static uint32_t u2k_tail(struct chan *c)
{
	return __atomic_load_n(&c->u2k.hdr->tail.value, __ATOMIC_ACQUIRE);
}

/* One call: push, KICK, completion. Returns the KICK result; rc and flags of the slot. */
static long call(struct chan *c, const void *msg, uint32_t len, int32_t *rc, uint32_t *flags, void *reply)
{
	uint32_t idx = push(c, msg, len);
	long n = ioctl(c->fd, ISC_IOC_KICK);
	struct isc_slot_header *s = slot(&c->u2k, idx);

	if (n < 0)
		return -errno;
	*rc = s->rc;
	*flags = s->flags;
	if (reply && s->len <= c->u2k.msz)
		memcpy(reply, s + 1, s->len);
	return n;
}

/*
 * Waits (deadline @ms) for the next k2u message; returns 1 with its kind and
 * its first two words, 0 on timeout. Releases the slot.
 */
static int recv_k2u(struct chan *c, uint32_t *kind, uint32_t w[2], unsigned int ms)
{
	for (unsigned int waited = 0;; waited += 5) {
		uint32_t head = __atomic_load_n(&c->k2u.hdr->head.value, __ATOMIC_ACQUIRE);

		if (head != c->k2u_tail) {
			struct isc_slot_header *s = slot(&c->k2u, c->k2u_tail);

			*kind = s->flags & ISC_SLOT_KIND_MASK;
			w[0] = w[1] = 0;
			if (s->len >= 8)
				memcpy(w, s + 1, 8);
			c->k2u_tail++;
			__atomic_store_n(&c->k2u.hdr->tail.value, c->k2u_tail, __ATOMIC_RELEASE);
			return 1;
		}
		if (waited >= ms)
			return 0;
		msleep(5);
	}
}

/* Waits for a message from the driver (not a control message) with word 1 == @n. */
static int wait_post(struct chan *c, uint32_t n, unsigned int ms)
{
	uint32_t kind, w[2];

	while (recv_k2u(c, &kind, w, ms))
		if (kind == ISC_SLOT_KIND_MSG && w[1] == n)
			return 1;
	return 0;
}

static int wait_kind(struct chan *c, uint32_t want, unsigned int ms)
{
	uint32_t kind, w[2];

	while (recv_k2u(c, &kind, w, ms))
		if (kind == want)
			return 1;
	return 0;
}

/* ---------------------------------------------------- the hazard module */

static struct chan ctl;

static int hz(struct hz_ctl *r)
{
	int32_t rc;
	uint32_t flags;
	long n = call(&ctl, r, sizeof(*r), &rc, &flags, r);

	if (n != 1 || (flags & ISC_SLOT_NOT_DELIVERED))
		return -10000 - (int)(n < 0 ? -n : n);
	return rc;
}

static int hz_register(const char *uid, uint32_t kind, uint32_t delay_ms, const char *peer, uint32_t mode,
		       uint32_t owner, uint32_t group)
{
	struct hz_ctl r = { HZ_OP_REGISTER, UID(uid), kind, delay_ms, peer ? UID(peer) : 0, mode, owner, group };

	return hz(&r);
}

static int hz_unregister(const char *uid)
{
	struct hz_ctl r = { .op = HZ_OP_UNREGISTER, .uid = UID(uid) };

	return hz(&r);
}

static int hz_release(const char *uid)
{
	struct hz_ctl r = { .op = HZ_OP_RELEASE, .uid = UID(uid) };

	return hz(&r);
}

static struct hz_stats hz_stats(const char *uid)
{
	struct hz_ctl r = { .op = HZ_OP_STATS, .uid = UID(uid) };
	struct hz_stats st = { 99, 99, 99, 99, 99, 99 };

	if (hz(&r) == 0) {
		st.got = r.kind;
		st.bound = r.delay_ms;
		st.unbind = r.peer;
		st.violations = r.mode;
		st.last_unregister = (int32_t)r.owner;
		st.last_register = (int32_t)r.group;
	}
	return st;
}

static int load_module(const char *ko, const char *params)
{
	int fd = open(ko, O_RDONLY | O_CLOEXEC), r, e;

	if (fd < 0)
		return errno;
	r = syscall(SYS_finit_module, fd, params, 0);
	e = errno;
	close(fd);
	return r ? e : 0;
}

static int unload_module(const char *name)
{
	return syscall(SYS_delete_module, name, O_NONBLOCK) ? errno : 0;
}

static int module_loaded(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/module/%s", name);
	return access(path, F_OK) == 0;
}

/* Forks a child that KICKs @fd once and exits with 0 if the KICK returned >= 0. */
static pid_t kick_in_child(int fd)
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(ioctl(fd, ISC_IOC_KICK) >= 0 ? 0 : 1);
	return pid;
}

/* Waits for @pid at most @ms; returns its wait status, or -1 if it did not end. */
static int wait_child(pid_t pid, unsigned int ms)
{
	int status;

	for (unsigned int waited = 0;; waited += 10) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return status;
		if (r < 0 || waited >= ms)
			return -1;
		msleep(10);
	}
}

static uint32_t msg8[2];

/* ------------------------------------------------------------- scenarios */

/* bound() and unbind() run under ISC's registry lock: (un)registering from them is refused. */
static void test_reenter_from_bound(void)
{
	struct chan c;
	struct hz_stats st;
	int e;

	check(hz_register("hzr1", HZ_REENTER, 0, "hzr2", 0, 0, 0) == 0, "reenter_register", "");
	e = chan_open(&c, UID("hzr1"), 16, 8);
	check(e == 0, "reenter_bind", "%s", strerror(e));
	if (!e)
		chan_close(&c);
	st = hz_stats("hzr1");
	check(st.bound == 1 && st.unbind == 1 && st.last_unregister == -EDEADLK && st.last_register == -EDEADLK,
	      "unregister_register_from_bound_unbind_edeadlk", "bound %u unbind %u unregister %d register %d",
	      st.bound, st.unbind, st.last_unregister, st.last_register);
	check(hz_unregister("hzr1") == 0 && hz_unregister("hzr2") == -ENOENT, "reenter_changed_nothing", "");
}

/* 1: rmmod while a got() that unregistered its own UID is still running. */
static void test_self_unregister_rmmod(void)
{
	struct chan c;
	struct hz_stats st;
	int32_t rc;
	uint32_t flags;
	pid_t pid;
	int e, status;

	check(hz_register("hzs1", HZ_SELF, 1500, NULL, 0, 0, 0) == 0, "self_register", "");
	e = chan_open(&c, UID("hzs1"), 16, 8);
	if (e) {
		check(0, "self_bind", "%s", strerror(e));
		return;
	}
	check(wait_kind(&c, ISC_SLOT_KIND_BOUND, 5000), "self_bound", "");
	push(&c, msg8, 8);
	pid = kick_in_child(c.fd);
	check(wait_post(&c, 1, 5000), "self_got_started", "");
	/* The got() has unregistered its UID and sleeps: its module must stay. */
	msleep(100);
	e = unload_module("isc_hazard");
	check(e == EWOULDBLOCK || e == EBUSY, "rmmod_refused_while_got_runs", "rmmod: %s", e ? strerror(e) : "succeeded");
	status = wait_child(pid, 20000);
	check(status == 0, "self_kick_completes", "status %d", status);
	check((slot(&c.u2k, 0)->flags & ISC_SLOT_COMPLETED) && !(slot(&c.u2k, 0)->flags & ISC_SLOT_NOT_DELIVERED) &&
		      slot(&c.u2k, 0)->rc == 0,
	      "self_unregister_returned_0", "flags %#x rc %d", slot(&c.u2k, 0)->flags, slot(&c.u2k, 0)->rc);
	check(wait_kind(&c, ISC_SLOT_KIND_UNBOUND, 5000), "self_unbound_msg", "");
	st = hz_stats("hzs1");
	check(st.got == 1 && st.bound == 1 && st.unbind == 1 && st.violations == 0, "self_callbacks_in_order",
	      "got %u bound %u unbind %u violations %u", st.got, st.bound, st.unbind, st.violations);
	e = (int)call(&c, msg8, 8, &rc, &flags, NULL);
	check(e == 1 && rc == -ENODEV && (flags & ISC_SLOT_NOT_DELIVERED), "self_after_unregister_not_delivered",
	      "n %d rc %d flags %#x", e, rc, flags);
	check(module_loaded("isc_hazard"), "module_still_loaded", "");
	chan_close(&c);
}

/* 2: two drivers whose got() each unregisters the other, both in flight. */
static void test_cross_unregister(void)
{
	struct chan a, b;
	struct hz_stats sa, sb;
	int32_t ra, rb;
	pid_t pa, pb;
	int sta, stb, e;

	check(hz_register("hzxa", HZ_CROSS, 0, "hzxb", 0, 0, 0) == 0 &&
		      hz_register("hzxb", HZ_CROSS, 0, "hzxa", 0, 0, 0) == 0,
	      "cross_register", "");
	e = chan_open(&a, UID("hzxa"), 16, 8);
	if (!e)
		e = chan_open(&b, UID("hzxb"), 16, 8);
	if (e) {
		check(0, "cross_bind", "%s", strerror(e));
		return;
	}
	push(&a, msg8, 8);
	push(&b, msg8, 8);
	pa = kick_in_child(a.fd);
	pb = kick_in_child(b.fd);
	sta = wait_child(pa, 30000);
	stb = wait_child(pb, 30000);
	check(sta == 0 && stb == 0, "cross_unregister_completes", "status %d %d (-1: hung)", sta, stb);
	if (sta != 0 || stb != 0)
		return;
	ra = slot(&a.u2k, 0)->rc;
	rb = slot(&b.u2k, 0)->rc;
	/* Both were in flight: one waited for the other, whose wait would have closed the cycle. */
	check((ra == 0 && rb == -EDEADLK) || (ra == -EDEADLK && rb == 0), "cross_one_wins_one_edeadlk",
	      "rc %d %d", ra, rb);
	sa = hz_stats("hzxa");
	sb = hz_stats("hzxb");
	check(sa.violations == 0 && sb.violations == 0, "cross_no_violation", "%u %u", sa.violations, sb.violations);
	/* The loser (its peer's unregister won) was unbound once; the winner is still bound. */
	check((ra == 0 && sb.unbind == 1 && sa.unbind == 0) || (rb == 0 && sa.unbind == 1 && sb.unbind == 0),
	      "cross_exactly_the_target_unbound", "unbind %u %u", sa.unbind, sb.unbind);
	chan_close(&a);
	chan_close(&b);
	hz_unregister("hzxa");
	hz_unregister("hzxb");
}

static void *bind_thread(void *arg)
{
	struct chan *c = arg;

	return (void *)(long)(ioctl(c->fd, ISC_IOC_BIND, &c->args) ? errno : 0);
}

/* The "kicks" counter of a channel, from debugfs; -1 if unreadable. */
static long debugfs_kicks(uint32_t uid)
{
	char path[64], line[64];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/kernel/debug/isc/%08x", uid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "kicks %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* 3: a KICK issued while bound() runs waits for it. */
static void test_bound_before_got(void)
{
	struct chan c;
	struct hz_stats st;
	pthread_t t;
	void *res;
	pid_t pid;
	long kicks = -1;
	int status;

	check(hz_register("hzb1", HZ_SLOWBOUND, 20000, NULL, 0, 0, 0) == 0, "slowbound_register", "");
	memset(&c, 0, sizeof(c));
	c.args = req(UID("hzb1"), 16, 8, 16, 64);
	c.fd = open(DEV, O_RDWR | O_CLOEXEC);
	pthread_create(&t, NULL, bind_thread, &c);
	/* The region exists (and maps) once BIND has allocated it, before bound() is called. */
	for (int i = 0; i < 2000 && chan_map(&c); i++)
		msleep(5);
	check(c.map != NULL, "slowbound_mapped_during_bind", "");
	if (!c.map)
		return;
	check(wait_post(&c, 0, 10000), "slowbound_in_bound", "");
	push(&c, msg8, 8);
	pid = kick_in_child(c.fd);
	/* The KICK has started (it counts itself before draining): bound() still runs. */
	for (int i = 0; i < 2000 && (kicks = debugfs_kicks(UID("hzb1"))) < 1; i++)
		msleep(5);
	check(kicks == 1, "slowbound_kick_started", "kicks %ld", kicks);
	msleep(200);
	check(!(slot(&c.u2k, 0)->flags & ISC_SLOT_COMPLETED), "slowbound_kick_waits_for_bound", "flags %#x",
	      slot(&c.u2k, 0)->flags);
	check(hz_release("hzb1") == 0, "slowbound_release", "");
	pthread_join(t, &res);
	check(res == NULL, "slowbound_bind", "%s", strerror((int)(long)res));
	status = wait_child(pid, 20000);
	check(status == 0, "slowbound_kick_completes", "status %d", status);
	check(slot(&c.u2k, 0)->rc == 0 && !(slot(&c.u2k, 0)->flags & ISC_SLOT_NOT_DELIVERED),
	      "got_saw_bound_finished", "rc %d flags %#x", slot(&c.u2k, 0)->rc, slot(&c.u2k, 0)->flags);
	st = hz_stats("hzb1");
	check(st.violations == 0 && st.got == 1, "slowbound_no_violation", "violations %u got %u", st.violations,
	      st.got);
	chan_close(&c);
	hz_unregister("hzb1");
}

/* 4a: SIGKILL stops a drain after the message in flight; the rest stays queued. */
static void test_kill_drain(void)
{
	struct chan c;
	struct hz_stats st;
	int32_t rc;
	uint32_t flags, tail;
	pid_t pid;
	int e, status, queued = 1;
	long n;

	check(hz_register("hzk1", HZ_SLEEP, 1000, NULL, 0, 0, 0) == 0, "kill_register", "");
	e = chan_open(&c, UID("hzk1"), 16, 8);
	if (e) {
		check(0, "kill_bind", "%s", strerror(e));
		return;
	}
	for (int i = 0; i < 8; i++)
		push(&c, msg8, 8);
	pid = kick_in_child(c.fd);
	check(wait_post(&c, 1, 10000), "kill_got_started", "");
	kill(pid, SIGKILL);
	status = wait_child(pid, 20000);
	check(status != -1 && WIFSIGNALED(status), "kill_ends_kick", "status %d", status);
	tail = u2k_tail(&c);
	for (int i = 1; i < 8; i++)
		queued &= !(slot(&c.u2k, i)->flags & ISC_SLOT_COMPLETED);
	check(tail == 1 && (slot(&c.u2k, 0)->flags & ISC_SLOT_COMPLETED) && slot(&c.u2k, 0)->rc == 1 && queued,
	      "kill_publishes_handled_keeps_rest", "tail %u slot0 flags %#x rc %d rest queued %d", tail,
	      slot(&c.u2k, 0)->flags, slot(&c.u2k, 0)->rc, queued);
	st = hz_stats("hzk1");
	check(st.got == 1, "kill_one_got_only", "got %u", st.got);
	/* The rest is still there: with the driver gone it completes as not delivered. */
	check(hz_unregister("hzk1") == 0, "kill_unregister", "");
	n = ioctl(c.fd, ISC_IOC_KICK);
	rc = slot(&c.u2k, 7)->rc;
	flags = slot(&c.u2k, 7)->flags;
	check(n == 7 && u2k_tail(&c) == 8 && rc == -ENODEV && (flags & ISC_SLOT_NOT_DELIVERED),
	      "kill_rest_not_delivered", "n %ld tail %u rc %d flags %#x", n, u2k_tail(&c), rc, flags);
	chan_close(&c);
}

/* 4b: isc_unregister() during a long drain waits only for the got() in flight. */
static void test_unregister_mid_drain(void)
{
	struct chan c;
	struct hz_stats st;
	pid_t pid;
	int e, status, rest = 1;

	check(hz_register("hzk2", HZ_SLEEP, 1000, NULL, 0, 0, 0) == 0, "middrain_register", "");
	e = chan_open(&c, UID("hzk2"), 16, 8);
	if (e) {
		check(0, "middrain_bind", "%s", strerror(e));
		return;
	}
	for (int i = 0; i < 8; i++)
		push(&c, msg8, 8);
	pid = kick_in_child(c.fd);
	check(wait_post(&c, 1, 10000), "middrain_got_started", "");
	e = hz_unregister("hzk2");
	st = hz_stats("hzk2");
	check(e == 0 && st.got == 1 && st.unbind == 1, "unregister_waits_for_one_got", "rc %d got %u unbind %u", e,
	      st.got, st.unbind);
	status = wait_child(pid, 20000);
	check(status == 0, "middrain_kick_completes", "status %d", status);
	for (int i = 1; i < 8; i++)
		rest &= (slot(&c.u2k, i)->flags & ISC_SLOT_NOT_DELIVERED) && slot(&c.u2k, i)->rc == -ENODEV;
	check(u2k_tail(&c) == 8 && slot(&c.u2k, 0)->rc == 1 && rest, "middrain_rest_not_delivered",
	      "tail %u rc0 %d rest %d", u2k_tail(&c), slot(&c.u2k, 0)->rc, rest);
	chan_close(&c);
}

/* ------------------------------------------------------------ memory */

#define CG "/sys/fs/cgroup"

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), r;

	if (fd < 0)
		return errno;
	r = write(fd, s, strlen(s)) < 0 ? errno : 0;
	close(fd);
	return r;
}

static long long read_ll(const char *path)
{
	char buf[64] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? atoll(buf) : -1;
}

/* A cgroup with the memory controller and @max; 0 or an errno. */
static int cgroup_make(const char *name, const char *max)
{
	char path[128];

	if (access(CG "/cgroup.controllers", F_OK) && mount("none", CG, "cgroup2", 0, NULL))
		return errno;
	write_file(CG "/cgroup.subtree_control", "+memory");
	snprintf(path, sizeof(path), CG "/%s", name);
	if (mkdir(path, 0755) && errno != EEXIST)
		return errno;
	snprintf(path, sizeof(path), CG "/%s/memory.max", name);
	return write_file(path, max);
}

static int cgroup_enter(const char *name)
{
	char path[128], pid[32];

	snprintf(path, sizeof(path), CG "/%s/cgroup.procs", name);
	snprintf(pid, sizeof(pid), "%d", getpid());
	return write_file(path, pid);
}

static long long cgroup_current(const char *name, const char *file)
{
	char path[128];

	snprintf(path, sizeof(path), CG "/%s/%s", name, file);
	return read_ll(path);
}

/* Runs @fn in a child; its checks print themselves, its failures come back as the exit status. */
static void in_child(void (*fn)(void))
{
	pid_t pid;
	int status;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		n_ok = n_fail = 0;
		fn();
		fflush(stdout);
		_exit(n_fail > 100 ? 100 : n_fail);
	}
	status = wait_child(pid, 60000);
	if (status == -1 || !WIFEXITED(status)) {
		check(0, "child_finished", "status %d", status);
		return;
	}
	/* Its "ok" lines were printed by the child; count failures here too. */
	n_fail += WEXITSTATUS(status);
}

/* A channel of about 31 MiB: two rings of 1024 slots of 16000 bytes. */
#define BIG_MSZ 16000
#define BIG_NUM 1024

/*
 * memory.current moves in per-CPU batches of up to 64 pages (charges are
 * cached per CPU), so two readings may be off by that much per CPU.
 */
static long long charge_slack(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_CONF);

	return (cpus > 0 ? cpus : 1) * 64 * 4096LL;
}

static void child_cgroup(void)
{
	struct chan a, b;
	long long before, after, closed, slack = charge_slack();
	uint64_t size = 2 * ring_bytes(BIG_MSZ, BIG_NUM);
	int e;

	e = cgroup_enter("isc-hz");
	check(e == 0, "cgroup_enter", "%s", strerror(e));
	before = cgroup_current("isc-hz", "memory.current");
	memset(&a, 0, sizeof(a));
	a.args = req(UID("hzm1"), BIG_MSZ, BIG_NUM, BIG_MSZ, BIG_NUM);
	a.fd = open(DEV, O_RDWR | O_CLOEXEC);
	e = ioctl(a.fd, ISC_IOC_BIND, &a.args) ? errno : 0;
	after = cgroup_current("isc-hz", "memory.current");
	check(e == 0 && after - before + slack >= (long long)size && after - before <= (long long)size + 4 * slack,
	      "region_charged_to_cgroup", "bind %s, memory.current %lld -> %lld, region %llu, slack %lld",
	      strerror(e), before, after, (unsigned long long)size, slack);
	/* A second one does not fit under memory.max = 48M: refused, and nobody is killed. */
	memset(&b, 0, sizeof(b));
	b.args = req(UID("hzm2"), BIG_MSZ, BIG_NUM, BIG_MSZ, BIG_NUM);
	b.fd = open(DEV, O_RDWR | O_CLOEXEC);
	e = ioctl(b.fd, ISC_IOC_BIND, &b.args) ? errno : 0;
	check(e == ENOMEM, "memory_max_refuses_second_region", "bind: %s", e ? strerror(e) : "succeeded");
	close(b.fd);
	close(a.fd);
	closed = cgroup_current("isc-hz", "memory.current");
	check(after - closed + slack >= (long long)size, "close_uncharges", "memory.current %lld -> %lld", after,
	      closed);
}

static void child_busy_allocates_nothing(void)
{
	struct chan c;
	long long peak;
	int e;

	e = cgroup_enter("isc-hz-busy");
	check(e == 0, "cgroup_busy_enter", "%s", strerror(e));
	memset(&c, 0, sizeof(c));
	/* hzct is bound by the parent: EBUSY, decided before any region is allocated. */
	c.args = req(UID("hzct"), BIG_MSZ, BIG_NUM, BIG_MSZ, BIG_NUM);
	c.fd = open(DEV, O_RDWR | O_CLOEXEC);
	e = ioctl(c.fd, ISC_IOC_BIND, &c.args) ? errno : 0;
	peak = cgroup_current("isc-hz-busy", "memory.peak");
	check(e == EBUSY && peak >= 0 && peak < (long long)ring_bytes(BIG_MSZ, BIG_NUM), "ebusy_allocates_nothing",
	      "bind %s, memory.peak %lld", strerror(e), peak);
	close(c.fd);
}

static void test_memory(void)
{
	char old[32] = "";
	struct chan c;
	int e, fd;
	ssize_t n;

	check(hz_register("hzm1", HZ_SLEEP, 0, NULL, 0, 0, 0) == 0, "mem_register", "");
	e = cgroup_make("isc-hz", "48M");
	if (e) {
		check(0, "cgroup_setup", "%s", strerror(e));
	} else {
		in_child(child_cgroup);
		e = cgroup_make("isc-hz-busy", "max");
		if (!e)
			in_child(child_busy_allocates_nothing);
		else
			check(0, "cgroup_busy_setup", "%s", strerror(e));
	}

	/* The per-user cap: 4 MiB, then a bind of about 8 MiB is refused with EDQUOT. */
	fd = open("/sys/module/isc/parameters/max_user_bytes", O_RDWR | O_CLOEXEC);
	n = fd < 0 ? -1 : read(fd, old, sizeof(old) - 1);
	check(n > 0, "cap_param_readable", "%s", strerror(errno));
	if (n <= 0)
		return;
	check(write_file("/sys/module/isc/parameters/max_user_bytes", "4194304") == 0, "cap_param_set", "");
	e = chan_open(&c, UID("hzm1"), 8000, 1024);
	check(e == EDQUOT, "per_user_cap_edquot", "bind: %s", e ? strerror(e) : "succeeded");
	if (!e)
		chan_close(&c);
	e = chan_open(&c, UID("hzm1"), 16, 8);
	check(e == 0, "per_user_cap_small_fits", "bind: %s", strerror(e));
	if (!e)
		chan_close(&c);
	check(write_file("/sys/module/isc/parameters/max_user_bytes", old) == 0, "cap_param_restored", "");
	close(fd);
	hz_unregister("hzm1");
}

/* ------------------------------------------------------------- mmap */

static void test_mmap(void)
{
	struct chan c, d;
	void *p;
	int e, up[2], down[2];
	char ch = 0;
	pid_t pid;

	check(hz_register("hzf1", HZ_SLEEP, 0, NULL, 0, 0, 0) == 0, "mmap_register", "");
	e = chan_open(&c, UID("hzf1"), 16, 8);
	if (e) {
		check(0, "mmap_bind", "%s", strerror(e));
		return;
	}
	p = mmap(NULL, c.size, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_SHARED, c.fd, 0);
	check(p == MAP_FAILED && errno == EPERM, "prot_exec_refused", "%s", p == MAP_FAILED ? strerror(errno) : "mapped");
	if (p != MAP_FAILED)
		munmap(p, c.size);
	e = mprotect(c.map, c.size, PROT_READ | PROT_EXEC) ? errno : 0;
	check(e == EACCES, "mprotect_exec_refused", "%s", e ? strerror(e) : "allowed");

	/* fork: the child does not get the mapping; once it drops its fd copy, the UID is free. */
	if (pipe(up) || pipe(down)) {
		check(0, "pipe", "%s", strerror(errno));
		return;
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		char r;

		close(c.fd);
		/* msync on an address range with no mapping fails with ENOMEM. */
		r = msync(c.map, c.size, MS_ASYNC) && errno == ENOMEM ? 'y' : 'n';
		if (write(up[1], &r, 1) != 1)
			_exit(2);
		if (read(down[0], &r, 1) < 0)
			_exit(3);
		_exit(0);
	}
	if (read(up[0], &ch, 1) != 1)
		ch = '?';
	check(ch == 'y', "fork_child_has_no_mapping", "child saw '%c'", ch);
	chan_close(&c);
	e = chan_open(&d, UID("hzf1"), 16, 8);
	check(e == 0, "uid_free_after_parent_close", "bind: %s", strerror(e));
	if (!e)
		chan_close(&d);
	if (write(down[1], "x", 1) != 1)
		check(0, "pipe_write", "%s", strerror(errno));
	wait_child(pid, 10000);
	close(up[0]);
	close(up[1]);
	close(down[0]);
	close(down[1]);
	hz_unregister("hzf1");
}

/* ------------------------------------------------------------ access */

static int bind_errno(uint32_t uid, int oflags)
{
	struct isc_bind_args a = req(uid, 16, 8, 16, 8);
	int fd = open(DEV, oflags | O_CLOEXEC), e;

	if (fd < 0)
		return 1000 + errno;
	e = ioctl(fd, ISC_IOC_BIND, &a) ? errno : 0;
	close(fd);
	return e;
}

static void child_nobody(void)
{
	struct chan c;
	int32_t rc;
	uint32_t flags;
	long n;
	int e;

	if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY)) {
		check(0, "drop_privileges", "%s", strerror(errno));
		return;
	}
	check(geteuid() == NOBODY, "running_as_nobody", "euid %d", (int)geteuid());
	e = chan_open(&c, UID("hzp1"), 16, 8);
	check(e == 0, "nobody_binds_allowed_other_rw", "bind: %s", strerror(e));
	if (!e) {
		n = call(&c, msg8, 8, &rc, &flags, NULL);
		check(n == 1 && rc == 1 && !(flags & ISC_SLOT_NOT_DELIVERED), "nobody_calls_allowed_uid",
		      "n %ld rc %d flags %#x", n, rc, flags);
		chan_close(&c);
	}
	e = chan_open(&c, UID("hzp3"), 16, 8);
	check(e == 0, "nobody_binds_as_owner", "bind: %s", strerror(e));
	if (!e)
		chan_close(&c);
	e = bind_errno(UID("hzp2"), O_RDWR);
	check(e == EACCES, "nobody_refused_default_policy", "bind: %s", strerror(e));
	e = bind_errno(UID("hzp4"), O_RDWR);
	check(e == EACCES, "nobody_refused_group_only", "bind: %s", strerror(e));
	e = bind_errno(UID("hzct"), O_RDWR);
	check(e == EACCES || e == EBUSY, "nobody_refused_hazard_control", "bind: %s", strerror(e));
	e = bind_errno(UID("tctl"), O_RDWR);
	check(e == EACCES, "nobody_refused_testdrv_control", "bind: %s", strerror(e));
	/* No driver has registered it: binding would squat the UID. */
	e = bind_errno(UID("hzq9"), O_RDWR);
	check(e == EPERM, "nobody_cannot_squat", "bind: %s", strerror(e));
	e = bind_errno(UID("hzp1"), O_RDONLY);
	check(e == EBADF, "nobody_rdonly_fd_cannot_bind", "bind: %s", strerror(e));
}

/*
 * A policy registered while a user holds the UID is checked against that
 * user: a non-root binder whose UID is re-registered root-only stays
 * unbound, and is bound again when a policy that allows it comes.
 */
static int pipe_up[2], pipe_down[2];

static void step_up(char what)
{
	if (write(pipe_up[1], &what, 1) != 1)
		_exit(90);
}

static char step_wait(int fd)
{
	char c = '?';

	if (read(fd, &c, 1) != 1)
		return '?';
	return c;
}

static void child_nobody_rebind(void)
{
	struct chan c;
	int32_t rc;
	uint32_t flags;
	long n;
	int e;

	if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY)) {
		check(0, "rebind_drop_privileges", "%s", strerror(errno));
		step_up('x');
		return;
	}
	e = chan_open(&c, UID("hzp5"), 16, 8);
	check(e == 0 && wait_kind(&c, ISC_SLOT_KIND_BOUND, 5000), "rebind_nobody_bound", "%s", strerror(e));
	step_up('b');
	/* The parent re-registers hzp5 root-only. */
	step_wait(pipe_down[0]);
	n = call(&c, msg8, 8, &rc, &flags, NULL);
	check(n == 1 && rc == -ENODEV && (flags & ISC_SLOT_NOT_DELIVERED), "stricter_policy_leaves_holder_unbound",
	      "n %ld rc %d flags %#x", n, rc, flags);
	step_up('c');
	/* The parent re-registers hzp5 open to others again. */
	step_wait(pipe_down[0]);
	n = call(&c, msg8, 8, &rc, &flags, NULL);
	check(n == 1 && rc == 1 && !(flags & ISC_SLOT_NOT_DELIVERED), "allowing_policy_binds_holder_again",
	      "n %ld rc %d flags %#x", n, rc, flags);
	chan_close(&c);
}

static void test_policy_recheck(void)
{
	pid_t pid;
	int status;

	if (pipe(pipe_up) || pipe(pipe_down)) {
		check(0, "rebind_pipe", "%s", strerror(errno));
		return;
	}
	check(hz_register("hzp5", HZ_SLEEP, 0, NULL, 0606, 0, 0) == 0, "rebind_register", "");
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		n_ok = n_fail = 0;
		child_nobody_rebind();
		fflush(stdout);
		_exit(n_fail > 100 ? 100 : n_fail);
	}
	if (step_wait(pipe_up[0]) == 'b') {
		check(hz_unregister("hzp5") == 0 && hz_register("hzp5", HZ_SLEEP, 0, NULL, 0, 0, 0) == 0,
		      "rebind_reregister_root_only", "");
		if (write(pipe_down[1], "1", 1) != 1)
			check(0, "rebind_pipe_write", "");
		step_wait(pipe_up[0]);
		check(hz_unregister("hzp5") == 0 && hz_register("hzp5", HZ_SLEEP, 0, NULL, 0606, 0, 0) == 0,
		      "rebind_reregister_open", "");
		if (write(pipe_down[1], "2", 1) != 1)
			check(0, "rebind_pipe_write", "");
	}
	status = wait_child(pid, 30000);
	if (status == -1 || !WIFEXITED(status))
		check(0, "rebind_child_finished", "status %d", status);
	else
		n_fail += WEXITSTATUS(status);
	hz_unregister("hzp5");
	close(pipe_up[0]);
	close(pipe_up[1]);
	close(pipe_down[0]);
	close(pipe_down[1]);
}

/* Drops CAP_SYS_ADMIN (keeping uid 0) and sends one REGISTER to the test driver's bound control fd. */
static int fd_tctl;

static void child_no_cap_sys_admin(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	struct chan c;
	uint32_t msg[4] = { 1, UID("hzz1"), 0, 0 }, flags;
	int32_t rc;
	long n;
	int e;

	memset(&c, 0, sizeof(c));
	if (syscall(SYS_capget, &h, d)) {
		check(0, "capget", "%s", strerror(errno));
		return;
	}
	d[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective &= ~CAP_TO_MASK(CAP_SYS_ADMIN);
	d[CAP_TO_INDEX(CAP_SYS_ADMIN)].permitted &= ~CAP_TO_MASK(CAP_SYS_ADMIN);
	if (syscall(SYS_capset, &h, d)) {
		check(0, "capset", "%s", strerror(errno));
		return;
	}
	/* Bound by the parent; the mapping is not inherited, map it again. */
	c.fd = fd_tctl;
	c.args = req(UID("tctl"), 16, 8, 16, 64);
	e = chan_map(&c);
	if (e) {
		check(0, "tctl_map", "%s", strerror(e));
		return;
	}
	c.u2k_head = __atomic_load_n(&c.u2k.hdr->head.value, __ATOMIC_ACQUIRE);
	n = call(&c, msg, sizeof(msg), &rc, &flags, NULL);
	check(n == 1 && rc == -EPERM, "testdrv_control_needs_cap_sys_admin", "n %ld rc %d", n, rc);
	/* And without CAP_SYS_ADMIN, euid 0 alone binds nothing of the default policy. */
	e = bind_errno(UID("hzp2"), O_RDWR);
	check(e == EACCES, "euid0_without_cap_refused", "bind: %s", strerror(e));
}

static void test_access(const char *testdrv_ko)
{
	struct isc_bind_args a = req(UID("tctl"), 16, 8, 16, 64);
	int e;

	check(hz_register("hzp1", HZ_SLEEP, 0, NULL, 0606, 0, 0) == 0 &&
		      hz_register("hzp2", HZ_SLEEP, 0, NULL, 0, 0, 0) == 0 &&
		      hz_register("hzp3", HZ_SLEEP, 0, NULL, 0600, NOBODY, 0) == 0 &&
		      hz_register("hzp4", HZ_SLEEP, 0, NULL, 0660, 0, 0) == 0,
	      "access_register", "");
	e = bind_errno(UID("hzp1"), O_RDONLY);
	check(e == EBADF, "rdonly_fd_cannot_bind", "bind: %s", strerror(e));
	in_child(child_nobody);
	test_policy_recheck();

	fd_tctl = open(DEV, O_RDWR);
	e = ioctl(fd_tctl, ISC_IOC_BIND, &a) ? errno : 0;
	check(e == 0, "tctl_bind_as_root", "%s", strerror(e));
	if (!e)
		in_child(child_no_cap_sys_admin);
	close(fd_tctl);

	if (testdrv_ko) {
		e = unload_module("isc_testdrv");
		check(e == 0, "testdrv_unload", "%s", strerror(e));
		e = load_module(testdrv_ko, "");
		check(e == EPERM, "testdrv_refuses_without_enable", "%s", e ? strerror(e) : "loaded");
		if (!e)
			unload_module("isc_testdrv");
		e = load_module(testdrv_ko, "enable=1");
		check(e == 0, "testdrv_loads_with_enable", "%s", strerror(e));
	}
	for (const char *const *u = (const char *const[]){ "hzp1", "hzp2", "hzp3", "hzp4", NULL }; *u; u++)
		hz_unregister(*u);
}

/* "exit: uid <uid> bound <n> unbind <n> ..." of the hazard module's exit, from the kernel log. */
static int exit_counts(const char *uid, unsigned int *bound, unsigned int *unbind)
{
	char buf[1024], want[64];
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC), found = 0;
	ssize_t n;

	if (fd < 0)
		return 0;
	snprintf(want, sizeof(want), "exit: uid %08x bound ", UID(uid));
	while ((n = read(fd, buf, sizeof(buf) - 1)) >= 0 || errno == EPIPE) {
		char *p;

		if (n < 0)
			continue;
		buf[n] = 0;
		p = strstr(buf, want);
		if (p && sscanf(p + strlen(want), "%u unbind %u", bound, unbind) == 2)
			found = 1;
	}
	close(fd);
	return found;
}

static int module_state_is(const char *name, const char *state)
{
	char path[128], buf[32] = "";
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/module/%s/initstate", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 && strncmp(buf, state, strlen(state)) == 0;
}

/*
 * While the driver's module is going (its exit function runs), ISC calls
 * into it only through its own isc_unregister(): a message completes as not
 * delivered, a new binding gets no bound(); the exit function's unregister
 * still gets its unbind().
 */
static void test_going_module(const char *ko)
{
	struct chan c, d;
	unsigned int bound = 99, unbind = 99;
	int32_t rc;
	uint32_t flags;
	pid_t pid;
	long n;
	int e, going = 0, status;

	e = load_module(ko, "exit_delay_ms=3000");
	check(e == 0, "going_load", "%s", strerror(e));
	if (e)
		return;
	e = chan_open(&ctl, UID("hzct"), 32, 8);
	check(e == 0, "going_ctl_bind", "%s", strerror(e));
	if (e)
		return;
	check(hz_register("hzg1", HZ_SLEEP, 0, NULL, 0, 0, 0) == 0 &&
		      hz_register("hzg2", HZ_SLEEP, 0, NULL, 0, 0, 0) == 0,
	      "going_register", "");
	e = chan_open(&c, UID("hzg1"), 16, 8);
	check(e == 0 && wait_kind(&c, ISC_SLOT_KIND_BOUND, 5000), "going_bind", "%s", strerror(e));
	if (e)
		return;
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(unload_module("isc_hazard"));
	for (int i = 0; i < 1000 && !(going = module_state_is("isc_hazard", "going")); i++)
		msleep(5);
	check(going, "going_state_seen", "");
	n = call(&c, msg8, 8, &rc, &flags, NULL);
	check(n == 1 && rc == -ENODEV && (flags & ISC_SLOT_NOT_DELIVERED), "going_module_not_delivered",
	      "n %ld rc %d flags %#x", n, rc, flags);
	e = chan_open(&d, UID("hzg2"), 16, 8);
	check(e == 0, "going_bind_succeeds", "%s", strerror(e));
	status = wait_child(pid, 30000);
	check(status == 0, "going_rmmod_completes", "status %d", status);
	check(exit_counts("hzg1", &bound, &unbind) && bound == 1 && unbind == 1, "going_exit_unregister_unbinds",
	      "bound %u unbind %u", bound, unbind);
	bound = unbind = 99;
	check(exit_counts("hzg2", &bound, &unbind) && bound == 0 && unbind == 0, "going_no_bound_no_unbind",
	      "bound %u unbind %u", bound, unbind);
	check(wait_kind(&c, ISC_SLOT_KIND_UNBOUND, 5000), "going_unbound_msg", "");
	chan_close(&c);
	if (!e)
		chan_close(&d);
	chan_close(&ctl);
}

/* The module notifier removes what a module leaves registered, without calling it. */
static void test_leaked_registration(const char *ko)
{
	struct chan c;
	int32_t rc;
	uint32_t flags;
	long n;
	int e;

	e = load_module(ko, "leak=1");
	check(e == 0, "leak_load", "%s", strerror(e));
	if (e)
		return;
	e = chan_open(&ctl, UID("hzct"), 32, 8);
	check(e == 0, "leak_ctl_bind", "%s", strerror(e));
	if (e)
		return;
	check(hz_register("hzl1", HZ_SLEEP, 0, NULL, 0, 0, 0) == 0, "leak_register", "");
	e = chan_open(&c, UID("hzl1"), 16, 8);
	check(e == 0, "leak_bind", "%s", strerror(e));
	if (e)
		return;
	check(wait_kind(&c, ISC_SLOT_KIND_BOUND, 5000), "leak_bound", "");
	e = unload_module("isc_hazard");
	check(e == 0, "leak_rmmod", "%s", strerror(e));
	check(wait_kind(&c, ISC_SLOT_KIND_UNBOUND, 5000), "leak_removed_unbound_msg", "");
	n = call(&c, msg8, 8, &rc, &flags, NULL);
	check(n == 1 && rc == -ENODEV && (flags & ISC_SLOT_NOT_DELIVERED), "leak_call_not_delivered",
	      "n %ld rc %d flags %#x", n, rc, flags);
	chan_close(&c);
	chan_close(&ctl);
}

int main(int argc, char **argv)
{
	const char *ko = argc > 1 ? argv[1] : NULL;
	const char *testdrv_ko = argc > 2 ? argv[2] : NULL;
	int e;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!ko) {
		fprintf(stderr, "usage: %s /path/to/isc_hazard.ko [/path/to/isc_testdrv.ko]\n", argv[0]);
		return 2;
	}
	e = load_module(ko, "");
	check(e == 0, "hazard_load", "%s", strerror(e));
	if (e)
		goto out;
	e = chan_open(&ctl, UID("hzct"), 32, 8);
	check(e == 0, "hazard_ctl_bind", "%s", strerror(e));
	if (e)
		goto out;

	check(hz_register("hzn1", HZ_NOGOT, 0, NULL, 0, 0, 0) == -EINVAL, "register_without_got_refused", "");
	test_reenter_from_bound();
	test_self_unregister_rmmod();
	test_cross_unregister();
	test_bound_before_got();
	test_kill_drain();
	test_unregister_mid_drain();
	test_memory();
	test_mmap();
	test_access(testdrv_ko);

	/* rmmod with a user bound to the control channel: module_exit unregisters, the user is told. */
	e = unload_module("isc_hazard");
	check(e == 0, "rmmod_with_user_bound", "%s", strerror(e));
	check(wait_kind(&ctl, ISC_SLOT_KIND_UNBOUND, 5000), "rmmod_user_told_unbound", "");
	chan_close(&ctl);
	test_going_module(ko);
	test_leaked_registration(ko);
out:
	printf("hazard: %d ok, %d failed\n", n_ok, n_fail);
	return n_fail ? 1 : 0;
}
