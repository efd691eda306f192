// SPDX-License-Identifier: GPL-2.0
/*
 * isc_testdrv: the conformance test driver, steered over an ISC channel.
 *
 * The facade's conformance suite runs unchanged on the simulated transport
 * and on /dev/isc; the driver side it needs (register, unregister, post a
 * flood, report bind counts) is this module on the device, and isc::testdrv
 * on the simulated host. Both speak the same protocol.
 *
 * Control channel, UID "tctl". A request is exactly 16 bytes,
 * struct td_ctl { u32 op; u32 uid; u32 arg0; u32 arg1; } (native endian);
 * the reply is written in place with the same layout, rc 0 or -errno:
 * - 1 REGISTER(uid): register an echo driver for uid; -EEXIST if uid is
 *   registered (by us or by another driver).
 * - 2 UNREGISTER(uid): unregister our echo driver of uid, after its
 *   running got() calls; -ENOENT if we have none.
 * - 3 POST(uid, arg0 = count, arg1 = len): post up to count messages of
 *   len bytes (4 <= len <= the channel's k2u msz, else -EINVAL) to the
 *   channel bound to uid, stopping at the first full ring; reply
 *   arg0 = posted, arg1 = 1 if it stopped on a full ring. Message i (from
 *   0) holds i (little endian) in bytes 0..4 and (i + j) & 0xff in byte j.
 *   -ENOTCONN if the echo driver of uid is not bound (or does not exist).
 *   The kernel API does not tell drivers the k2u msz: a len above it shows
 *   as isc_post()'s -EMSGSIZE on the first post, so with count 0 only
 *   4 <= len <= ISC_MAX_MSZ is checked.
 * - 4 STATS(uid): reply arg0 = bound() calls, arg1 = unbind() calls since
 *   REGISTER; -ENOENT if we have no echo driver for uid.
 * - any other op, or a request that is not 16 bytes: -EINVAL (the message
 *   is then left unchanged).
 *
 * Echo driver: a message shorter than 8 bytes is answered with rc = its
 * length and the message unchanged. Otherwise it is
 * { s32 rc; u32 delay_ms; u8 payload[]; } (little endian): sleep
 * min(delay_ms, 2000) ms, reverse the payload in place, return rc.
 *
 * It lets whoever drives "tctl" register drivers for arbitrary UIDs, so it
 * refuses to load without the module parameter enable=1, and the control
 * channel answers only callers with CAP_SYS_ADMIN (-EPERM otherwise; its
 * UID has the default policy, so binding it needs CAP_SYS_ADMIN too).
 *
 * Locking: td_lock (mutex) guards the list of echo drivers and serialises
 * the control ops; it is taken only by the control got() and module exit,
 * never from bound()/unbind() (those run under the ISC registry lock, which
 * isc_register()/isc_unregister() take while we hold td_lock). Each echo
 * driver's lock (spinlock) guards its handle and counters.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/delay.h>
#include <linux/list.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/version.h>
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)
#include <linux/unaligned.h>
#else
#include <asm/unaligned.h>
#endif

#include "isc.h"

#define TD_CTL_UID		0x6c746374U	/* "tctl" as a little-endian u32 */

#define TD_OP_REGISTER		1
#define TD_OP_UNREGISTER	2
#define TD_OP_POST		3
#define TD_OP_STATS		4

#define TD_ECHO_HDR		8	/* s32 rc; u32 delay_ms */
#define TD_ECHO_MAX_DELAY_MS	2000U
#define TD_POST_MIN		4

struct td_ctl {
	u32 op;
	u32 uid;
	u32 arg0;
	u32 arg1;
};

static_assert(sizeof(struct td_ctl) == 16);

/* An echo driver registered by REGISTER. */
struct td_echo {
	struct list_head node;		/* in td_echoes, under td_lock */
	u32 uid;
	spinlock_t lock;		/* h, n_bound, n_unbind */
	struct isc_handle *h;		/* our reference while bound */
	u32 n_bound;
	u32 n_unbind;
};

static DEFINE_MUTEX(td_lock);
static LIST_HEAD(td_echoes);

static bool enable;
module_param(enable, bool, 0444);
MODULE_PARM_DESC(enable, "must be 1: this test driver registers drivers for any UID on request");

/* ------------------------------------------------------------ echo driver */

static void td_echo_bound(void *arg, struct isc_handle *h)
{
	struct td_echo *e = arg;
	struct isc_handle *old;

	spin_lock(&e->lock);
	old = e->h;
	e->h = isc_get(h);
	e->n_bound++;
	spin_unlock(&e->lock);
	/* Every bound() is matched by an unbind(): old is always NULL. */
	isc_put(old);
}

static void td_echo_unbind(void *arg)
{
	struct td_echo *e = arg;
	struct isc_handle *h;

	spin_lock(&e->lock);
	h = e->h;
	e->h = NULL;
	e->n_unbind++;
	spin_unlock(&e->lock);
	isc_put(h);
}

static void td_reverse(u8 *p, u32 n)
{
	u32 i, j;

	if (!n)
		return;
	for (i = 0, j = n - 1; i < j; i++, j--)
		swap(p[i], p[j]);
}

static int td_echo_got(void *arg, void *msg, u32 *len, u32 msz)
{
	u8 *b = msg;
	u32 n = min(*len, msz);
	u32 delay;
	s32 rc;

	if (n < TD_ECHO_HDR)
		return n;
	rc = (s32)get_unaligned_le32(b);
	delay = min(get_unaligned_le32(b + 4), TD_ECHO_MAX_DELAY_MS);
	if (delay)
		msleep(delay);
	td_reverse(b + TD_ECHO_HDR, n - TD_ECHO_HDR);
	return rc;
}

static const struct isc_ops td_echo_ops = {
	.bound = td_echo_bound,
	.unbind = td_echo_unbind,
	.got = td_echo_got,
};

/* ---------------------------------------------------------- control ops */

static struct td_echo *td_find(u32 uid)
{
	struct td_echo *e;

	lockdep_assert_held(&td_lock);
	list_for_each_entry(e, &td_echoes, node)
		if (e->uid == uid)
			return e;
	return NULL;
}

static int td_register(u32 uid)
{
	struct td_echo *e;
	int ret;

	if (td_find(uid))
		return -EEXIST;
	e = kzalloc(sizeof(*e), GFP_KERNEL);
	if (!e)
		return -ENOMEM;
	e->uid = uid;
	spin_lock_init(&e->lock);
	/* bound() may run inside this call, if a user has bound uid already. */
	ret = isc_register(uid, &td_echo_ops, e);
	if (ret) {
		kfree(e);
		return ret;
	}
	list_add_tail(&e->node, &td_echoes);
	return 0;
}

/* Unregisters and frees @e: waits for its got() calls; unbind() runs inside. */
static int td_unregister_echo(struct td_echo *e)
{
	int ret = isc_unregister(e->uid);

	/*
	 * Only this module unregisters its UIDs, so this succeeded, and ISC
	 * holds no pointer to e any more; unbind() has dropped our handle.
	 */
	WARN_ON_ONCE(ret);
	list_del(&e->node);
	WARN_ON_ONCE(e->h);
	kfree(e);
	return ret;
}

static int td_unregister(u32 uid)
{
	struct td_echo *e = td_find(uid);

	if (!e)
		return -ENOENT;
	return td_unregister_echo(e) ? -ENOENT : 0;
}

static void td_fill(u8 *m, u32 i, u32 len)
{
	u32 j;

	put_unaligned_le32(i, m);
	for (j = TD_POST_MIN; j < len; j++)
		m[j] = (u8)(i + j);
}

static int td_post(struct td_ctl *req)
{
	struct td_echo *e = td_find(req->uid);
	struct isc_handle *h = NULL;
	u32 count = req->arg0, len = req->arg1, posted = 0, full = 0;
	u8 *m;
	int ret;

	if (e) {
		/* Our own reference: the channel may unbind while we post. */
		spin_lock(&e->lock);
		h = isc_get(e->h);
		spin_unlock(&e->lock);
	}
	if (!h)
		return -ENOTCONN;
	if (len < TD_POST_MIN || len > ISC_MAX_MSZ) {
		ret = -EINVAL;
		goto out;
	}
	m = kvmalloc(len, GFP_KERNEL);
	if (!m) {
		ret = -ENOMEM;
		goto out;
	}
	ret = 0;
	while (posted < count) {
		int r;

		td_fill(m, posted, len);
		r = isc_post(h, m, len);
		/* -EMSGSIZE comes first, before any post: len is above k2u msz. */
		if (r == -EMSGSIZE)
			ret = -EINVAL;
		if (r == -EAGAIN)
			full = 1;
		/* Any other error (unbound meanwhile, corrupt) ends the flood too. */
		if (r)
			break;
		posted++;
		if (!(posted & 255))
			cond_resched();
	}
	kvfree(m);
	if (!ret) {
		req->arg0 = posted;
		req->arg1 = full;
	}
out:
	isc_put(h);
	return ret;
}

static int td_stats(struct td_ctl *req)
{
	struct td_echo *e = td_find(req->uid);

	if (!e)
		return -ENOENT;
	spin_lock(&e->lock);
	req->arg0 = e->n_bound;
	req->arg1 = e->n_unbind;
	spin_unlock(&e->lock);
	return 0;
}

static int td_ctl_got(void *arg, void *msg, u32 *len, u32 msz)
{
	struct td_ctl req;
	int ret;

	if (*len != sizeof(req) || msz < sizeof(req))
		return -EINVAL;
	/* got() runs in the KICKing task: this is the caller's capability. */
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	memcpy(&req, msg, sizeof(req));

	mutex_lock(&td_lock);
	switch (req.op) {
	case TD_OP_REGISTER:
		ret = td_register(req.uid);
		break;
	case TD_OP_UNREGISTER:
		ret = td_unregister(req.uid);
		break;
	case TD_OP_POST:
		ret = td_post(&req);
		break;
	case TD_OP_STATS:
		ret = td_stats(&req);
		break;
	default:
		ret = -EINVAL;
		break;
	}
	mutex_unlock(&td_lock);

	memcpy(msg, &req, sizeof(req));
	*len = sizeof(req);
	return ret;
}

static const struct isc_ops td_ctl_ops = {
	.got = td_ctl_got,
};

/* ------------------------------------------------------------- module */

static int __init td_init(void)
{
	if (!enable) {
		pr_info("not loaded: a test driver, load it with enable=1\n");
		return -EPERM;
	}
	return isc_register(TD_CTL_UID, &td_ctl_ops, NULL);
}

static void __exit td_exit(void)
{
	struct td_echo *e, *tmp;

	/* Waits for a control got() in flight; none starts after it. */
	isc_unregister(TD_CTL_UID);
	mutex_lock(&td_lock);
	list_for_each_entry_safe(e, tmp, &td_echoes, node)
		td_unregister_echo(e);
	mutex_unlock(&td_lock);
}

module_init(td_init);
module_exit(td_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ISC conformance test driver: echo drivers steered over the \"tctl\" channel");
