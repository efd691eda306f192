// SPDX-License-Identifier: GPL-2.0
/*
 * isc_hazard: drivers that push the kernel API's contract to its limits, on
 * purpose, for driver/tests/hazard.c. Never loaded by default; the test
 * loads and removes it itself.
 *
 * Control channel, UID "hzct" (default policy: CAP_SYS_ADMIN only). A
 * request is exactly struct hz_ctl (32 bytes, native endian); the reply is
 * written in place with the same layout, rc 0 or -errno:
 * - 1 REGISTER(uid, kind, delay_ms, peer, mode, owner, group): register a
 *   hazard driver of that kind for uid. mode 0: isc_register() (the
 *   default policy); otherwise isc_register_access() with the owner uid,
 *   group gid and mode. A uid this module unregistered earlier may be
 *   registered again (its counters restart).
 * - 2 UNREGISTER(uid): isc_unregister(uid); rc is its result.
 * - 3 STATS(uid): reply kind = got() calls, delay_ms = bound() calls,
 *   peer = unbind() calls, mode = contract violations seen, owner = the
 *   last isc_unregister() result of a got(), group = the last
 *   isc_register() result of an unbind(); -ENOENT for an unknown uid.
 * - 4 RELEASE(uid): let a SLOWBOUND driver's bound() in progress return.
 *
 * Kinds (what got() does; every kind posts "started" before its work, from
 * the handle bound() received, and counts violations: a got() before
 * bound() returned, a got() or unbind() overlapping another callback):
 * - 1 SELF: isc_unregister() its own uid, then sleep delay_ms; rc is the
 *   isc_unregister() result. Meanwhile the module must not go away.
 * - 2 CROSS: wait (at most 5 s) until the peer CROSS driver's got() has
 *   started too, then isc_unregister(peer); rc is its result.
 * - 3 SLOWBOUND: bound() posts "in bound", then waits for RELEASE (at most
 *   delay_ms) before it marks the binding ready and returns; got() returns
 *   0 if it saw the binding ready, else -EPROTO (and counts a violation).
 * - 4 SLEEP: sleep delay_ms; rc is the number of this got() call (from 1).
 * - 5 NOGOT: registers ops without got(); ISC must refuse it (-EINVAL).
 * - 6 REENTER: bound() calls isc_unregister() of its own uid, unbind()
 *   calls isc_register() of peer; both must fail with -EDEADLK (STATS:
 *   owner and group hold the two results).
 *
 * A "started" post is 8 bytes: { u32 uid; u32 n } with n the got() call
 * number; "in bound" is { uid, 0 }.
 *
 * Module parameters: leak=1 makes module_exit leave the hazard drivers
 * registered, so that ISC's module notifier must remove them;
 * exit_delay_ms makes module_exit wait that long (with its module already
 * going) between unregistering "hzct" and the hazard drivers. module_exit
 * logs "exit: uid <uid> bound <n> unbind <n> violations <n>" per driver.
 *
 * Locking: hz_lock (mutex) guards the list and serialises control ops; it
 * is never taken from bound(), unbind() or a hazard got(). Each driver's
 * lock (spinlock) guards its handle and flags.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/delay.h>
#include <linux/jiffies.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uidgid.h>
#include <linux/wait.h>

#include "isc.h"

#define HZ_CTL_UID		0x74637a68U	/* "hzct" as a little-endian u32 */

#define HZ_OP_REGISTER		1
#define HZ_OP_UNREGISTER	2
#define HZ_OP_STATS		3
#define HZ_OP_RELEASE		4

#define HZ_SELF			1
#define HZ_CROSS		2
#define HZ_SLOWBOUND		3
#define HZ_SLEEP		4
#define HZ_NOGOT		5
#define HZ_REENTER		6

#define HZ_MAX_DELAY_MS		5000U

struct hz_ctl {
	u32 op;
	u32 uid;
	u32 kind;
	u32 delay_ms;
	u32 peer;
	u32 mode;
	u32 owner;
	u32 group;
};

static_assert(sizeof(struct hz_ctl) == 32);

struct hz_drv {
	struct list_head node;		/* in hz_drvs, under hz_lock */
	u32 uid;
	u32 kind;
	u32 delay_ms;
	u32 peer;
	bool registered;		/* under hz_lock */

	spinlock_t lock;		/* everything below */
	struct isc_handle *h;		/* our reference while bound */
	bool in_bound;
	bool released;			/* RELEASE came: bound() may return */
	bool ready;			/* bound() returned */
	bool in_got;
	u32 n_got;
	u32 n_bound;
	u32 n_unbind;
	u32 n_violations;
	s32 last_unregister;
	s32 last_register;
};

static bool leak;
module_param(leak, bool, 0444);
MODULE_PARM_DESC(leak, "leave the hazard drivers registered at module exit (tests ISC's module notifier)");

static unsigned int exit_delay_ms;
module_param(exit_delay_ms, uint, 0444);
MODULE_PARM_DESC(exit_delay_ms, "sleep this long in module_exit before unregistering the hazard drivers");

static DEFINE_MUTEX(hz_lock);
static LIST_HEAD(hz_drvs);
static DECLARE_WAIT_QUEUE_HEAD(hz_wq);
static atomic_t hz_cross_started = ATOMIC_INIT(0);

static const struct isc_ops hz_ops;

static void hz_violation(struct hz_drv *d, const char *what)
{
	d->n_violations++;
	pr_info("uid %08x: contract violation: %s\n", d->uid, what);
}

static void hz_post(struct hz_drv *d, u32 n)
{
	u32 msg[2] = { d->uid, n };
	struct isc_handle *h;

	spin_lock(&d->lock);
	h = isc_get(d->h);
	spin_unlock(&d->lock);
	/* A full ring or an unbound channel only loses the notice. */
	isc_post(h, msg, sizeof(msg));
	isc_put(h);
}

static void hz_bound(void *arg, struct isc_handle *h)
{
	struct hz_drv *d = arg;
	struct isc_handle *old;

	spin_lock(&d->lock);
	if (d->in_got || d->in_bound)
		hz_violation(d, "bound() overlaps another callback");
	old = d->h;
	d->h = isc_get(h);
	d->in_bound = true;
	d->ready = false;
	d->n_bound++;
	spin_unlock(&d->lock);
	isc_put(old);

	if (d->kind == HZ_REENTER) {
		int rc = isc_unregister(d->uid);

		spin_lock(&d->lock);
		d->last_unregister = rc;
		spin_unlock(&d->lock);
	}
	if (d->kind == HZ_SLOWBOUND) {
		hz_post(d, 0);
		wait_event_timeout(hz_wq, READ_ONCE(d->released), msecs_to_jiffies(d->delay_ms));
	}
	spin_lock(&d->lock);
	d->in_bound = false;
	d->ready = true;
	spin_unlock(&d->lock);
}

static void hz_unbind(void *arg)
{
	struct hz_drv *d = arg;
	struct isc_handle *h;

	spin_lock(&d->lock);
	/* A SELF driver's got() unregistered itself: that unbind() is nested in it. */
	if (d->in_bound || (d->in_got && d->kind != HZ_SELF))
		hz_violation(d, "unbind() overlaps another callback");
	h = d->h;
	d->h = NULL;
	d->ready = false;
	d->n_unbind++;
	spin_unlock(&d->lock);
	isc_put(h);
	if (d->kind == HZ_REENTER) {
		int rc = isc_register(d->peer, &hz_ops, d);

		spin_lock(&d->lock);
		d->last_register = rc;
		spin_unlock(&d->lock);
	}
}

static int hz_got(void *arg, void *msg, u32 *len, u32 msz)
{
	struct hz_drv *d = arg;
	int rc = 0;
	u32 n;

	spin_lock(&d->lock);
	if (!d->ready || d->in_bound)
		hz_violation(d, "got() before bound() returned");
	if (d->in_got)
		hz_violation(d, "got() overlaps got()");
	rc = d->ready ? 0 : -EPROTO;
	d->in_got = true;
	n = ++d->n_got;
	spin_unlock(&d->lock);

	hz_post(d, n);
	switch (d->kind) {
	case HZ_SELF:
		rc = isc_unregister(d->uid);
		spin_lock(&d->lock);
		d->last_unregister = rc;
		spin_unlock(&d->lock);
		/* Still running after our registration is gone: the module must stay. */
		msleep(d->delay_ms);
		break;
	case HZ_CROSS:
		atomic_inc(&hz_cross_started);
		wait_event_timeout(hz_wq, atomic_read(&hz_cross_started) >= 2, 5 * HZ);
		wake_up_all(&hz_wq);
		rc = isc_unregister(d->peer);
		spin_lock(&d->lock);
		d->last_unregister = rc;
		spin_unlock(&d->lock);
		break;
	case HZ_SLOWBOUND:
		break;
	case HZ_SLEEP:
		msleep(d->delay_ms);
		rc = n;
		break;
	}

	spin_lock(&d->lock);
	d->in_got = false;
	spin_unlock(&d->lock);
	*len = 0;
	return rc;
}

static const struct isc_ops hz_ops = {
	.bound = hz_bound,
	.unbind = hz_unbind,
	.got = hz_got,
};

static const struct isc_ops hz_nogot_ops = {
	.bound = hz_bound,
	.unbind = hz_unbind,
};

/* ---------------------------------------------------------- control ops */

static struct hz_drv *hz_find(u32 uid)
{
	struct hz_drv *d;

	lockdep_assert_held(&hz_lock);
	list_for_each_entry(d, &hz_drvs, node)
		if (d->uid == uid)
			return d;
	return NULL;
}

static int hz_register(const struct hz_ctl *req)
{
	struct isc_access acc;
	struct hz_drv *d = hz_find(req->uid);
	bool fresh = !d;
	int ret;

	if (req->kind < HZ_SELF || req->kind > HZ_REENTER)
		return -EINVAL;
	if (d && d->registered)
		return -EEXIST;
	if (!d) {
		d = kzalloc(sizeof(*d), GFP_KERNEL);
		if (!d)
			return -ENOMEM;
		spin_lock_init(&d->lock);
		d->uid = req->uid;
	}
	/* Not registered: no callback of ours runs for it. */
	d->kind = req->kind;
	d->delay_ms = min(req->delay_ms, HZ_MAX_DELAY_MS);
	d->peer = req->peer;
	d->n_got = d->n_bound = d->n_unbind = d->n_violations = 0;
	WRITE_ONCE(d->released, false);
	d->last_unregister = 0;
	d->last_register = 0;
	if (d->kind == HZ_CROSS)
		atomic_set(&hz_cross_started, 0);
	if (req->kind == HZ_NOGOT) {
		ret = isc_register(req->uid, &hz_nogot_ops, d);
	} else if (req->mode) {
		acc.uid = make_kuid(current_user_ns(), req->owner);
		acc.gid = make_kgid(current_user_ns(), req->group);
		acc.mode = req->mode & 0777;
		ret = isc_register_access(req->uid, &hz_ops, d, &acc);
	} else {
		ret = isc_register(req->uid, &hz_ops, d);
	}
	if (ret) {
		if (fresh)
			kfree(d);
		return ret;
	}
	d->registered = true;
	if (fresh)
		list_add_tail(&d->node, &hz_drvs);
	return 0;
}

static int hz_unregister(u32 uid)
{
	struct hz_drv *d = hz_find(uid);
	int ret = isc_unregister(uid);

	/* A SELF or CROSS got() may have unregistered it already: -ENOENT then. */
	if (d)
		d->registered = false;
	return ret;
}

static int hz_stats(struct hz_ctl *req)
{
	struct hz_drv *d = hz_find(req->uid);

	if (!d)
		return -ENOENT;
	spin_lock(&d->lock);
	req->kind = d->n_got;
	req->delay_ms = d->n_bound;
	req->peer = d->n_unbind;
	req->mode = d->n_violations;
	req->owner = (u32)d->last_unregister;
	req->group = (u32)d->last_register;
	spin_unlock(&d->lock);
	return 0;
}

static int hz_release(u32 uid)
{
	struct hz_drv *d = hz_find(uid);

	if (!d)
		return -ENOENT;
	WRITE_ONCE(d->released, true);
	wake_up_all(&hz_wq);
	return 0;
}

static int hz_ctl_got(void *arg, void *msg, u32 *len, u32 msz)
{
	struct hz_ctl req;
	int ret;

	if (*len != sizeof(req) || msz < sizeof(req))
		return -EINVAL;
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	memcpy(&req, msg, sizeof(req));

	mutex_lock(&hz_lock);
	switch (req.op) {
	case HZ_OP_REGISTER:
		ret = hz_register(&req);
		break;
	case HZ_OP_UNREGISTER:
		ret = hz_unregister(req.uid);
		break;
	case HZ_OP_STATS:
		ret = hz_stats(&req);
		break;
	case HZ_OP_RELEASE:
		ret = hz_release(req.uid);
		break;
	default:
		ret = -EINVAL;
		break;
	}
	mutex_unlock(&hz_lock);

	memcpy(msg, &req, sizeof(req));
	*len = sizeof(req);
	return ret;
}

static const struct isc_ops hz_ctl_ops = {
	.got = hz_ctl_got,
};

/* ------------------------------------------------------------- module */

static int __init hz_init(void)
{
	return isc_register(HZ_CTL_UID, &hz_ctl_ops, NULL);
}

static void __exit hz_exit(void)
{
	struct hz_drv *d, *tmp;

	isc_unregister(HZ_CTL_UID);
	if (exit_delay_ms)
		msleep(min(exit_delay_ms, HZ_MAX_DELAY_MS));
	mutex_lock(&hz_lock);
	list_for_each_entry_safe(d, tmp, &hz_drvs, node) {
		/* With leak=1 they stay: ISC removes them when this module goes. */
		if (d->registered && !leak)
			isc_unregister(d->uid);
	}
	mutex_unlock(&hz_lock);
	/*
	 * Even the leaked ones: ISC calls nothing of a going module except
	 * through an isc_unregister() of its UIDs, which nobody makes here.
	 */
	list_for_each_entry_safe(d, tmp, &hz_drvs, node) {
		pr_info("exit: uid %08x bound %u unbind %u violations %u\n", d->uid, d->n_bound,
			d->n_unbind, d->n_violations);
		/*
		 * A leaked registration never gets its unbind(): drop the handle
		 * reference bound() took, or the channel's memory leaks with it
		 * (kmemleak on the debug kernel reports it).
		 */
		isc_put(d->h);
		list_del(&d->node);
		kfree(d);
	}
}

module_init(hz_init);
module_exit(hz_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ISC hazard drivers: the kernel API's contract tested with drivers that misbehave on purpose");
