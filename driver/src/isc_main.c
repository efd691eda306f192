// SPDX-License-Identifier: GPL-2.0
/*
 * ISC: /dev/isc, two-way messaging between a user application and a kernel
 * driver over a shared-memory region holding two SPSC rings.
 *
 * The user binds an fd to a channel UID (ISC_IOC_BIND), maps the region the
 * bind created (mmap offset 0), produces calls into the u2k ring and has the
 * kernel drain it with ISC_IOC_KICK; drivers registered for the UID post into
 * the k2u ring from any context, and the user waits for them with poll().
 *
 * The kernel is the u2k consumer and the k2u producer, with the algorithms of
 * isc-ring (consumer.rs, producer.rs). Everything in the region is writable
 * by the user at any time, so the kernel keeps its own copy of the geometry
 * and of the indices it owns, reads each shared word once (READ_ONCE or an
 * acquire load), validates it, and turns any inconsistency into a permanent
 * "corrupt" state of the channel (counted, reported by poll and -EIO),
 * never into a warning or an out-of-bounds access.
 *
 * Drivers: a registration (struct isc_drv) records the module that made it
 * and an access policy. Every callback runs with a reference on that module
 * (try_module_get); bound() and unbind() run under isc_lock, and a
 * registration is unlisted under isc_lock before its module's memory can go
 * (the module notifier at MODULE_STATE_GOING takes isc_lock), so a callback
 * made under isc_lock for a listed registration is safe even when the
 * module is already in its exit function (which is where unregistering
 * usually happens). got() runs without isc_lock, so a module reference it
 * could not take means "not delivered".
 *
 * Locking (lockdep sees all of it; no lock is taken while waiting):
 * - isc_lock (mutex): the registry of drivers and channels, the link
 *   between a driver and its channel, per-user byte counts. bound() and
 *   unbind() run under it.
 * - isc_handle.kick_lock (mutex): serialises the u2k drain of one channel;
 *   got() runs under it and may take isc_lock (register, unregister). No
 *   other path takes a kick_lock: isc_lock -> kick_lock never happens.
 * - isc_cb_lock (spinlock): which got() is in flight per registration
 *   (isc_drv.cb_task), whether a registration is dead, which driver a
 *   channel's got() calls go to (isc_handle.got_drv, binding), and the list
 *   of tasks waiting in isc_unregister(). Nested inside isc_lock and
 *   kick_lock; nothing is taken under it.
 * - isc_handle.post_lock (spinlock, irqsave): the k2u producer state and the
 *   connected/closed flags; isc_post() may run in any context. Nested inside
 *   isc_lock; never held together with isc_cb_lock.
 * - isc_handle.ref (kref): the fd holds one reference, drivers may hold more
 *   (isc_get/isc_put). The region is freed in release(), after the last
 *   mapping is gone; the struct when the last reference is dropped.
 *
 * isc_unregister() never waits on a lock another callback holds: it marks
 * the registration dead (no got() starts after that) and sleeps until the
 * got() in flight, if any, has returned. Such waits form a graph (a got()
 * waiting in isc_unregister() for another registration's got()); a wait
 * that would close a cycle is refused with -EDEADLK, so the graph never has
 * one and every wait ends when its got() returns.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/compat.h>
#include <linux/cred.h>
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/overflow.h>
#include <linux/poll.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/version.h>
#include <linux/vmalloc.h>
#include <linux/wait.h>

#include "isc.h"
#include "isc_compat.h"

static_assert(sizeof(struct isc_ring_info) == 64);
static_assert(sizeof(struct isc_index_line) == 64);
static_assert(sizeof(struct isc_ring_header) == ISC_SLOTS_OFFSET);
static_assert(offsetof(struct isc_ring_header, head) == 64);
static_assert(offsetof(struct isc_ring_header, tail) == 128);
static_assert(offsetof(struct isc_ring_header, flags) == 192);
static_assert(sizeof(struct isc_slot_header) == 16);
static_assert(sizeof(struct isc_bind_request) == 32);
static_assert(sizeof(struct isc_bind_response) == 32);
static_assert(sizeof(struct isc_bind_args) == 64);

/* Bits of isc_handle.corrupt. */
#define ISC_CORRUPT_U2K	0
#define ISC_CORRUPT_K2U	1

/* The kernel's own copy of one ring's geometry (never re-read from the region). */
struct isc_ring {
	struct isc_ring_header *hdr;
	u32 slot_count;		/* power of two */
	u32 msz;
	u32 stride;
	u32 ring_bytes;
};

/* A registered driver. */
struct isc_drv {
	struct list_head node;		/* in isc_drvs, under isc_lock */
	struct kref ref;		/* the list's, and a got() in flight */
	u32 uid;
	const struct isc_ops *ops;
	void *arg;
	struct module *owner;		/* pinned around every callback */
	struct isc_access access;	/* mode 0: CAP_SYS_ADMIN only */

	/* Under isc_lock. */
	bool unregistering;		/* claimed by isc_unregister() or the module notifier */
	bool unlisted;			/* removal finished (WRITE_ONCE: waited for locklessly) */
	bool unbind_owed;		/* the user closed while the module was going */
	struct isc_handle *chan;	/* bound channel */

	/* Under isc_cb_lock. */
	bool dead;			/* no got() starts any more */
	struct task_struct *cb_task;	/* the task running its got(), if any */
	unsigned int pins;		/* drains holding a module reference for it */
};

/* A task sleeping in isc_unregister() until @target's got() returns. */
struct isc_waiter {
	struct list_head node;		/* in isc_waiters, under isc_cb_lock */
	struct task_struct *task;
	struct isc_drv *target;
};

/* BIND progress of an fd, under isc_lock. */
enum isc_bind_state {
	ISC_FD_OPEN,			/* no BIND yet */
	ISC_FD_BINDING,			/* UID reserved, region being allocated */
	ISC_FD_READY,			/* bound to its UID until release */
};

/* One open /dev/isc fd; a channel once bound. */
struct isc_handle {
	struct kref ref;
	wait_queue_head_t wq;

	/*
	 * Set once by BIND with a release store, after everything below up to
	 * the locks is initialised; read with an acquire load by mmap, poll
	 * and KICK. Never cleared while the fd is open.
	 */
	int ready;
	u32 uid;
	void *region;
	u32 region_size;
	struct page **pages;		/* the region's pages (vmap'ed into region) */
	u32 nr_pages;
	struct isc_ring u2k;
	struct isc_ring k2u;
	struct dentry *dbg;
	const struct cred *cred;	/* the binder's, for policies registered later */
	bool privileged;		/* the binder had CAP_SYS_ADMIN */
	u32 charged;			/* bytes counted against the binder's user */

	/* Under isc_lock. */
	enum isc_bind_state state;
	struct list_head node;		/* in isc_chans */
	struct isc_drv *link;		/* bound driver */
	bool skip_unbind;		/* bound() was skipped: its module was going */

	/* Under isc_cb_lock. */
	struct isc_drv *got_drv;	/* where got() calls go; set after bound() returned */
	bool binding;			/* bound() in progress: KICK waits */

	/* u2k consumer, under kick_lock. */
	struct mutex kick_lock;
	void *bounce;			/* msz bytes of u2k */
	u32 u2k_tail;			/* next slot to consume; == shared tail */

	/* k2u producer, under post_lock (some read locklessly: READ_ONCE). */
	spinlock_t post_lock;
	bool connected;			/* a driver is bound: posts accepted */
	bool closed;			/* fd released: the region is gone */
	u32 k2u_head;			/* next slot to write; == shared head */
	u32 k2u_tail;			/* last shared tail read */
	u32 ctrl_first;			/* kind of the oldest pending control message */
	u32 ctrl_count;			/* pending control messages (kinds alternate) */

	unsigned long corrupt;		/* ISC_CORRUPT_* bits */

	/* Counters, shown in debugfs. */
	atomic64_t n_messages;		/* u2k messages delivered to got() */
	atomic64_t n_not_delivered;	/* u2k messages completed with -ENODEV */
	atomic64_t n_kicks;
	atomic64_t n_posts;		/* driver messages posted to k2u */
	atomic64_t n_drops;		/* posts refused with -EAGAIN */
	atomic64_t n_corrupt;		/* corruption detected */
	atomic64_t n_clamped;		/* replies longer than msz, clamped */
	atomic64_t n_ctrl;		/* control messages written */
	atomic64_t n_interrupted;	/* drains stopped by a fatal signal */
};

/* Region and bounce bytes of one user's bound channels, under isc_lock. */
struct isc_user {
	struct list_head node;		/* in isc_users */
	kuid_t uid;
	u64 bytes;
};

static DEFINE_MUTEX(isc_lock);
static LIST_HEAD(isc_drvs);
static LIST_HEAD(isc_chans);
static LIST_HEAD(isc_users);
static DEFINE_SPINLOCK(isc_cb_lock);
static LIST_HEAD(isc_waiters);
static DECLARE_WAIT_QUEUE_HEAD(isc_cb_wq);	/* got() returned; bound() returned */
/* The task in a bound() or unbind() call (under isc_lock), to refuse re-entry. */
static struct task_struct *isc_lock_cb_task;
static struct dentry *isc_dbg_root;

static unsigned short node_mode = 0600;
module_param(node_mode, ushort, 0444);
MODULE_PARM_DESC(node_mode, "permission bits of /dev/isc (default 0600; 0666 lets every user open it, BIND still checks each UID's policy)");

static unsigned long max_user_bytes = 128UL << 20;
module_param(max_user_bytes, ulong, 0644);
MODULE_PARM_DESC(max_user_bytes, "bytes of channel memory (regions and bounce buffers) one user may hold; BIND beyond it fails with EDQUOT (default 128 MiB)");

/* ---------------------------------------------------------------- rings */

static struct isc_slot_header *isc_slot(const struct isc_ring *r, u32 idx)
{
	return (struct isc_slot_header *)((u8 *)r->hdr + ISC_SLOTS_OFFSET +
					  (size_t)(idx & (r->slot_count - 1)) * r->stride);
}

static void *isc_payload(struct isc_slot_header *sh)
{
	return sh + 1;
}

/*
 * Validates one ring request exactly as isc_ring::RingConfig::new: msz and
 * num within the caps, num rounded up to a power of two, stride and ring
 * size computed with overflow checks.
 */
static int isc_ring_config(const struct isc_ring_request *req, struct isc_ring *r)
{
	u32 count, stride, bytes;

	if (req->msz == 0 || req->msz > ISC_MAX_MSZ)
		return -EINVAL;
	if (req->num == 0 || req->num > ISC_MAX_SLOTS)
		return -EINVAL;
	count = roundup_pow_of_two(req->num);
	if (count > ISC_MAX_SLOTS)
		return -EINVAL;
	if (check_add_overflow(req->msz, (u32)sizeof(struct isc_slot_header), &stride) ||
	    check_add_overflow(stride, ISC_SLOT_ALIGN - 1, &stride))
		return -E2BIG;
	stride &= ~(ISC_SLOT_ALIGN - 1);
	if (check_mul_overflow(stride, count, &bytes) ||
	    check_add_overflow(bytes, ISC_SLOTS_OFFSET, &bytes) ||
	    check_add_overflow(bytes, ISC_REGION_ALIGN - 1, &bytes))
		return -E2BIG;
	bytes &= ~(ISC_REGION_ALIGN - 1);
	if (bytes > ISC_MAX_RING_BYTES)
		return -E2BIG;

	r->slot_count = count;
	r->msz = req->msz;
	r->stride = stride;
	r->ring_bytes = bytes;
	return 0;
}

/* Writes a fresh header as isc_ring::RingConfig::init (the region is zeroed). */
static void isc_ring_init(struct isc_ring *r, void *base)
{
	struct isc_ring_info *info;

	r->hdr = base;
	info = &r->hdr->info;
	info->magic = ISC_RING_MAGIC;
	info->abi_version = ISC_ABI_VERSION;
	info->slot_count = r->slot_count;
	info->msz = r->msz;
	info->slot_stride = r->stride;
	info->features = 0;
	info->slots_offset = ISC_SLOTS_OFFSET;
	info->ring_bytes = r->ring_bytes;
}

static bool isc_is_corrupt(struct isc_handle *ch)
{
	return READ_ONCE(ch->corrupt) != 0;
}

static void isc_mark_corrupt(struct isc_handle *ch, int bit)
{
	if (!test_and_set_bit(bit, &ch->corrupt)) {
		atomic64_inc(&ch->n_corrupt);
		pr_debug("channel %08x: %s ring corrupted by user\n", ch->uid,
			 bit == ISC_CORRUPT_U2K ? "u2k" : "k2u");
	}
	wake_up_interruptible_poll(&ch->wq, EPOLLERR | EPOLLHUP);
}

/*
 * Writes one k2u slot (producer side of isc-ring: reserve, write, commit).
 * Does not publish. Returns 0, -EAGAIN when full, -EIO if the user's tail is
 * inconsistent.
 */
static int isc_k2u_write_locked(struct isc_handle *ch, u32 kind, const void *msg, u32 len)
{
	struct isc_ring *r = &ch->k2u;
	struct isc_slot_header *sh;
	u32 idx = ch->k2u_head;

	lockdep_assert_held(&ch->post_lock);
	if (idx - ch->k2u_tail == r->slot_count) {
		/* Pairs with the user's release store of tail: its reads of the slots are done. */
		u32 tail = smp_load_acquire(&r->hdr->tail.value);

		/* The tail may only move forward, and not past what was published. */
		if (tail - ch->k2u_tail > idx - ch->k2u_tail) {
			isc_mark_corrupt(ch, ISC_CORRUPT_K2U);
			return -EIO;
		}
		ch->k2u_tail = tail;
		if (idx - tail == r->slot_count)
			return -EAGAIN;
	}
	sh = isc_slot(r, idx);
	if (len)
		memcpy(isc_payload(sh), msg, len);
	WRITE_ONCE(sh->seq, idx);
	WRITE_ONCE(sh->len, len);
	WRITE_ONCE(sh->flags, kind & ~ISC_SLOT_COMPLETED);
	WRITE_ONCE(sh->rc, 0);
	WRITE_ONCE(ch->k2u_head, idx + 1);
	return 0;
}

/*
 * Publishes every written k2u slot with one release store of head, then
 * (smp_mb: a store followed by a load, the wake-up protocol of DESIGN.md)
 * reads the user's wake-up request. Returns true if the wait queue must be
 * woken: the user asked for it, or someone sleeps in poll (the waiter side
 * orders its poll_wait before reading head with smp_mb in isc_poll).
 */
static bool isc_k2u_publish_locked(struct isc_handle *ch)
{
	struct isc_ring_header *hdr = ch->k2u.hdr;

	lockdep_assert_held(&ch->post_lock);
	smp_store_release(&hdr->head.value, ch->k2u_head);
	smp_mb();
	return (READ_ONCE(hdr->flags.value) & ISC_CONSUMER_WAITING) ||
	       waitqueue_active(&ch->wq);
}

static void isc_wake_readers(struct isc_handle *ch)
{
	wake_up_interruptible_poll(&ch->wq, EPOLLIN | EPOLLRDNORM);
}

static u32 isc_other_kind(u32 kind)
{
	return kind == ISC_SLOT_KIND_BOUND ? ISC_SLOT_KIND_UNBOUND : ISC_SLOT_KIND_BOUND;
}

/* The k2u flags word, shared with the user, which updates it atomically too. */
static atomic_t *isc_k2u_flags(struct isc_handle *ch)
{
	return (atomic_t *)&ch->k2u.hdr->flags.value;
}

static bool isc_write_ctrl_locked(struct isc_handle *ch)
{
	bool wrote = false;

	while (ch->ctrl_count && !ch->closed && !isc_is_corrupt(ch)) {
		if (isc_k2u_write_locked(ch, ch->ctrl_first, NULL, 0))
			break;
		atomic64_inc(&ch->n_ctrl);
		ch->ctrl_first = isc_other_kind(ch->ctrl_first);
		WRITE_ONCE(ch->ctrl_count, ch->ctrl_count - 1);
		wrote = true;
	}
	return wrote;
}

/*
 * Writes pending control messages while there is room; true if any was
 * written (the caller publishes). While some remain because k2u is full,
 * PRODUCER_WAITING is set in k2u's flags: the user's release of k2u slots
 * then reports that a wake-up is needed, and the user calls KICK, which
 * flushes them. As in isc-ring's Producer::prepare_wait: set the flag,
 * full barrier, re-check the ring (pairs with the user's barrier between
 * storing tail and reading the flags), so a release racing with the flag
 * is never missed.
 */
static bool isc_flush_ctrl_locked(struct isc_handle *ch)
{
	bool wrote;

	lockdep_assert_held(&ch->post_lock);
	if (!ch->ctrl_count)
		return false;
	wrote = isc_write_ctrl_locked(ch);
	if (ch->ctrl_count && !ch->closed && !isc_is_corrupt(ch)) {
		atomic_or(ISC_PRODUCER_WAITING, isc_k2u_flags(ch));
		smp_mb__after_atomic();
		wrote |= isc_write_ctrl_locked(ch);
	}
	/* Only the kernel produces into k2u: only it sets this flag there. */
	if (!ch->ctrl_count && !ch->closed &&
	    (READ_ONCE(ch->k2u.hdr->flags.value) & ISC_PRODUCER_WAITING))
		atomic_andnot(ISC_PRODUCER_WAITING, isc_k2u_flags(ch));
	return wrote;
}

/*
 * Queues a BOUND or UNBOUND control message and writes what fits. The
 * pending ones always alternate in kind, so a first kind and a count
 * describe them; a run longer than three collapses by whole BOUND/UNBOUND
 * pairs, keeping the first and the final state.
 */
static bool isc_queue_ctrl_locked(struct isc_handle *ch, u32 kind)
{
	lockdep_assert_held(&ch->post_lock);
	if (ch->closed)
		return false;
	if (!ch->ctrl_count) {
		ch->ctrl_first = kind;
		WRITE_ONCE(ch->ctrl_count, 1);
	} else {
		u32 last = (ch->ctrl_count & 1) ? ch->ctrl_first : isc_other_kind(ch->ctrl_first);

		/* Read locklessly by poll and isc_flush_ctrl(). */
		if (last != kind)
			WRITE_ONCE(ch->ctrl_count, ch->ctrl_count < 3 ? ch->ctrl_count + 1 : 2);
	}
	return isc_flush_ctrl_locked(ch) && isc_k2u_publish_locked(ch);
}

/* Writes pending control messages, if any, from process context. */
static void isc_flush_ctrl(struct isc_handle *ch)
{
	unsigned long fl;
	bool wake = false;

	if (!READ_ONCE(ch->ctrl_count))
		return;
	spin_lock_irqsave(&ch->post_lock, fl);
	if (isc_flush_ctrl_locked(ch))
		wake = isc_k2u_publish_locked(ch);
	spin_unlock_irqrestore(&ch->post_lock, fl);
	if (wake)
		isc_wake_readers(ch);
}

/* ------------------------------------------------------------ the API */

int isc_post(struct isc_handle *h, const void *msg, u32 len)
{
	unsigned long fl;
	bool wake = false;
	int ret;

	if (!h)
		return -ENOTCONN;
	spin_lock_irqsave(&h->post_lock, fl);
	if (!h->connected || h->closed) {
		ret = -ENOTCONN;
	} else if (isc_is_corrupt(h)) {
		ret = -EIO;
	} else if (len > h->k2u.msz) {
		ret = -EMSGSIZE;
	} else {
		/* Control messages go first, in order; a post never overtakes them. */
		wake = isc_flush_ctrl_locked(h);
		if (h->ctrl_count)
			ret = isc_is_corrupt(h) ? -EIO : -EAGAIN;
		else
			ret = isc_k2u_write_locked(h, ISC_SLOT_KIND_MSG, msg, len);
		if (ret == 0)
			wake = true;
		if (wake)
			wake = isc_k2u_publish_locked(h);
	}
	spin_unlock_irqrestore(&h->post_lock, fl);

	if (ret == 0)
		atomic64_inc(&h->n_posts);
	else if (ret == -EAGAIN)
		atomic64_inc(&h->n_drops);
	if (wake)
		isc_wake_readers(h);
	return ret;
}
EXPORT_SYMBOL_GPL(isc_post);

struct isc_handle *isc_get(struct isc_handle *h)
{
	if (h)
		kref_get(&h->ref);
	return h;
}
EXPORT_SYMBOL_GPL(isc_get);

static void isc_handle_free(struct kref *ref)
{
	kfree(container_of(ref, struct isc_handle, ref));
}

void isc_put(struct isc_handle *h)
{
	if (h)
		kref_put(&h->ref, isc_handle_free);
}
EXPORT_SYMBOL_GPL(isc_put);

static void isc_drv_free(struct kref *ref)
{
	kfree(container_of(ref, struct isc_drv, ref));
}

static void isc_drv_put(struct isc_drv *drv)
{
	kref_put(&drv->ref, isc_drv_free);
}

/* The registration of @uid that is not being removed, if any. */
static struct isc_drv *isc_find_drv(u32 uid)
{
	struct isc_drv *d;

	lockdep_assert_held(&isc_lock);
	list_for_each_entry(d, &isc_drvs, node)
		if (d->uid == uid && !d->unregistering)
			return d;
	return NULL;
}

static bool isc_uid_registered(u32 uid)
{
	struct isc_drv *d;

	lockdep_assert_held(&isc_lock);
	list_for_each_entry(d, &isc_drvs, node)
		if (d->uid == uid)
			return true;
	return false;
}

/* The fd holding @uid (bound, or reserved by a BIND in progress), if any. */
static struct isc_handle *isc_find_chan(u32 uid)
{
	struct isc_handle *ch;

	lockdep_assert_held(&isc_lock);
	list_for_each_entry(ch, &isc_chans, node)
		if (ch->uid == uid)
			return ch;
	return NULL;
}

static bool isc_cred_in_group(const struct cred *cred, kgid_t gid)
{
	const struct group_info *gi = cred->group_info;
	int i;

	if (gid_eq(cred->egid, gid))
		return true;
	for (i = 0; gi && i < gi->ngroups; i++)
		if (gid_eq(gi->gid[i], gid))
			return true;
	return false;
}

/* May the holder of @cred (@privileged: with CAP_SYS_ADMIN) bind @drv's UID? */
static bool isc_may_bind(const struct isc_drv *drv, const struct cred *cred, bool privileged)
{
	umode_t mode = drv->access.mode;

	if (privileged)
		return true;
	if (uid_eq(cred->euid, drv->access.uid))
		mode >>= 6;
	else if (isc_cred_in_group(cred, drv->access.gid))
		mode >>= 3;
	return (mode & (S_IROTH | S_IWOTH)) == (S_IROTH | S_IWOTH);
}

/*
 * Is current inside a bound() or unbind() call? Only this task could have
 * stored itself there, so the lockless read is exact for this question.
 */
static bool isc_in_locked_callback(void)
{
	return READ_ONCE(isc_lock_cb_task) == current;
}

/*
 * Calls bound() under isc_lock with a reference on the driver's module; if
 * the module is going (its exit function runs, or its init failed), bound()
 * is skipped and false returned.
 */
static bool isc_call_bound(struct isc_drv *drv, struct isc_handle *ch)
{
	lockdep_assert_held(&isc_lock);
	if (!try_module_get(drv->owner))
		return false;
	WRITE_ONCE(isc_lock_cb_task, current);
	drv->ops->bound(drv->arg, ch);
	WRITE_ONCE(isc_lock_cb_task, NULL);
	module_put(drv->owner);
	return true;
}

/* Who asks for unbind(), which decides whether a going module gets it. */
enum isc_unbind_mode {
	ISC_UNBIND_NO,		/* the module is gone: never call it */
	ISC_UNBIND_IF_LIVE,	/* the user closed: only if the module can be pinned */
	ISC_UNBIND_ASKED,	/* isc_unregister(): always */
};

/*
 * Calls unbind() under isc_lock. With a reference on the module if it can
 * be taken; isc_unregister() calls it even if the module is going, since
 * that is how a module's exit function unbinds: the registration is still
 * listed, so the module notifier, which runs before the module's memory is
 * freed and waits for the registration to be unlisted, has not finished.
 * When the user closes while the module is going, unbind() is owed instead
 * and paid by the module's own isc_unregister(), if it makes one.
 */
static void isc_call_unbind(struct isc_drv *drv, enum isc_unbind_mode mode)
{
	bool pinned;

	lockdep_assert_held(&isc_lock);
	if (mode == ISC_UNBIND_NO || !drv->ops->unbind)
		return;
	pinned = try_module_get(drv->owner);
	if (!pinned && mode != ISC_UNBIND_ASKED) {
		drv->unbind_owed = true;
		return;
	}
	WRITE_ONCE(isc_lock_cb_task, current);
	drv->ops->unbind(drv->arg);
	WRITE_ONCE(isc_lock_cb_task, NULL);
	if (pinned)
		module_put(drv->owner);
}

/*
 * Binds a ready channel and a live driver: BOUND to the user, bound() to the
 * driver, then got() calls may start (a KICK meanwhile waits for them).
 */
static void isc_connect(struct isc_handle *ch, struct isc_drv *drv)
{
	unsigned long fl;
	bool wake;

	lockdep_assert_held(&isc_lock);
	drv->chan = ch;
	ch->link = drv;
	ch->skip_unbind = false;
	spin_lock(&isc_cb_lock);
	WRITE_ONCE(ch->binding, true);
	spin_unlock(&isc_cb_lock);

	/* Connected before bound(): bound() may post. */
	spin_lock_irqsave(&ch->post_lock, fl);
	WRITE_ONCE(ch->connected, true);
	wake = isc_queue_ctrl_locked(ch, ISC_SLOT_KIND_BOUND);
	spin_unlock_irqrestore(&ch->post_lock, fl);
	if (wake)
		isc_wake_readers(ch);

	if (drv->ops->bound && !isc_call_bound(drv, ch))
		ch->skip_unbind = true;

	spin_lock(&isc_cb_lock);
	ch->got_drv = drv;
	WRITE_ONCE(ch->binding, false);
	spin_unlock(&isc_cb_lock);
	wake_up_all(&isc_cb_wq);
}

/*
 * Unbinds a channel from its driver; the caller has made sure no got() can
 * be running or start (release: no KICK on a released fd; unregister: the
 * registration is dead and its got() in flight has returned, or is the
 * caller). Tells the user with UNBOUND if @tell_user, then calls unbind()
 * as @mode says (never if bound() was skipped).
 */
static void isc_disconnect(struct isc_handle *ch, struct isc_drv *drv, bool tell_user,
			   enum isc_unbind_mode mode)
{
	unsigned long fl;
	bool wake = false;

	lockdep_assert_held(&isc_lock);
	drv->chan = NULL;
	ch->link = NULL;
	spin_lock(&isc_cb_lock);
	ch->got_drv = NULL;
	spin_unlock(&isc_cb_lock);

	spin_lock_irqsave(&ch->post_lock, fl);
	WRITE_ONCE(ch->connected, false);
	if (tell_user)
		wake = isc_queue_ctrl_locked(ch, ISC_SLOT_KIND_UNBOUND);
	spin_unlock_irqrestore(&ch->post_lock, fl);
	if (wake)
		isc_wake_readers(ch);

	if (!ch->skip_unbind)
		isc_call_unbind(drv, mode);
}

int __isc_register_access(u32 uid, const struct isc_ops *ops, void *arg,
			  const struct isc_access *access, struct module *owner)
{
	struct isc_handle *ch;
	struct isc_drv *drv;

	if (!ops || !ops->got)
		return -EINVAL;
	/* From bound() or unbind(), isc_lock is held by this task. */
	if (isc_in_locked_callback())
		return -EDEADLK;
	drv = kzalloc(sizeof(*drv), GFP_KERNEL);
	if (!drv)
		return -ENOMEM;
	kref_init(&drv->ref);
	drv->uid = uid;
	drv->ops = ops;
	drv->arg = arg;
	drv->owner = owner;
	if (access)
		drv->access = *access;

	mutex_lock(&isc_lock);
	/* Also while an earlier registration of uid is still being removed. */
	if (isc_uid_registered(uid)) {
		mutex_unlock(&isc_lock);
		kfree(drv);
		return -EEXIST;
	}
	list_add_tail(&drv->node, &isc_drvs);
	ch = isc_find_chan(uid);
	if (ch && ch->state == ISC_FD_READY && isc_may_bind(drv, ch->cred, ch->privileged))
		isc_connect(ch, drv);
	mutex_unlock(&isc_lock);
	return 0;
}
EXPORT_SYMBOL_GPL(__isc_register_access);

int __isc_register(u32 uid, const struct isc_ops *ops, void *arg, struct module *owner)
{
	return __isc_register_access(uid, ops, arg, NULL, owner);
}
EXPORT_SYMBOL_GPL(__isc_register);

static struct isc_waiter *isc_find_waiter(struct task_struct *t)
{
	struct isc_waiter *w;

	lockdep_assert_held(&isc_cb_lock);
	list_for_each_entry(w, &isc_waiters, node)
		if (w->task == t)
			return w;
	return NULL;
}

/*
 * Would waiting for @drv's got() in flight close a cycle? Follows "runs the
 * got() of" and "waits in isc_unregister() for" from @drv back to current.
 * The graph has no cycle (this check keeps it so), and each task waits for
 * at most one registration, so the walk ends.
 */
static bool isc_wait_would_deadlock(struct isc_drv *drv)
{
	struct task_struct *t = drv->cb_task;
	struct isc_waiter *w;

	lockdep_assert_held(&isc_cb_lock);
	while (t) {
		if (t == current)
			return true;
		w = isc_find_waiter(t);
		if (!w)
			return false;
		t = w->target->cb_task;
	}
	return false;
}

/*
 * No got() of @drv runs; for the module notifier (@mode ISC_UNBIND_NO) also
 * no drain holds a reference on its module any more (the module's memory
 * goes once the notifier returns).
 */
static bool isc_drv_idle(struct isc_drv *drv, enum isc_unbind_mode mode)
{
	return !READ_ONCE(drv->cb_task) && (mode != ISC_UNBIND_NO || !READ_ONCE(drv->pins));
}

/*
 * Removes a registration: stops new got() calls, waits for the one in
 * flight (unless current runs it), unbinds its channel and unlists it.
 * @mode: ISC_UNBIND_ASKED from isc_unregister(), ISC_UNBIND_NO from the
 * module notifier (the module is gone).
 */
static int isc_remove(struct isc_drv *drv, enum isc_unbind_mode mode)
{
	struct isc_waiter w = { .task = current, .target = drv };
	bool wait;

	lockdep_assert_held(&isc_lock);
	spin_lock(&isc_cb_lock);
	if (drv->cb_task && drv->cb_task != current && isc_wait_would_deadlock(drv)) {
		spin_unlock(&isc_cb_lock);
		mutex_unlock(&isc_lock);
		return -EDEADLK;
	}
	/* Still listed: no new registration of its uid, no new binding to it. */
	drv->unregistering = true;
	drv->dead = true;
	wait = (drv->cb_task && drv->cb_task != current) || (mode == ISC_UNBIND_NO && drv->pins);
	if (wait)
		list_add(&w.node, &isc_waiters);
	spin_unlock(&isc_cb_lock);
	mutex_unlock(&isc_lock);

	if (wait) {
		/* Not a lock: the got() in flight may take isc_lock, register, unregister. */
		wait_event(isc_cb_wq, isc_drv_idle(drv, mode));
		spin_lock(&isc_cb_lock);
		list_del(&w.node);
		spin_unlock(&isc_cb_lock);
	}

	mutex_lock(&isc_lock);
	/* Unless the user closed meanwhile (release then ran unbind()). */
	if (drv->chan)
		isc_disconnect(drv->chan, drv, true, mode);
	else if (drv->unbind_owed)
		isc_call_unbind(drv, mode);
	list_del(&drv->node);
	WRITE_ONCE(drv->unlisted, true);
	mutex_unlock(&isc_lock);
	/* For the module notifier, which waits for removals others started. */
	wake_up_all(&isc_cb_wq);
	isc_drv_put(drv);
	return 0;
}

/* Does current run a got() (of any registration)? */
static bool isc_current_in_got(void)
{
	struct isc_drv *d;
	bool found = false;

	lockdep_assert_held(&isc_lock);
	spin_lock(&isc_cb_lock);
	list_for_each_entry(d, &isc_drvs, node) {
		if (d->cb_task == current) {
			found = true;
			break;
		}
	}
	spin_unlock(&isc_cb_lock);
	return found;
}

/* A registration of @uid that someone is removing, if any. */
static struct isc_drv *isc_find_removing(u32 uid)
{
	struct isc_drv *d;

	lockdep_assert_held(&isc_lock);
	list_for_each_entry(d, &isc_drvs, node)
		if (d->uid == uid && d->unregistering)
			return d;
	return NULL;
}

int isc_unregister(u32 uid)
{
	struct isc_drv *drv;

	/* From bound() or unbind(), isc_lock is held by this task. */
	if (isc_in_locked_callback())
		return -EDEADLK;
	mutex_lock(&isc_lock);
	drv = isc_find_drv(uid);
	if (drv)
		return isc_remove(drv, ISC_UNBIND_ASKED);
	/*
	 * Someone else is removing it: wait until that is done (its unbind()
	 * may still run), so that a module's exit function can free what
	 * unbind() uses once this returns. Not from a got(): the removal may be
	 * waiting for that very got().
	 */
	drv = isc_find_removing(uid);
	if (drv && !isc_current_in_got()) {
		kref_get(&drv->ref);
		mutex_unlock(&isc_lock);
		wait_event(isc_cb_wq, READ_ONCE(drv->unlisted));
		isc_drv_put(drv);
		return -ENOENT;
	}
	mutex_unlock(&isc_lock);
	return -ENOENT;
}
EXPORT_SYMBOL_GPL(isc_unregister);

/*
 * The backstop for a module that goes (after its exit function, or after
 * its init failed) with registrations left: they are removed without
 * calling into the module.
 */
static int isc_module_notify(struct notifier_block *nb, unsigned long state, void *data)
{
	struct module *mod = data;
	struct isc_drv *d, *found;

	if (state != MODULE_STATE_GOING)
		return NOTIFY_DONE;
	for (;;) {
		found = NULL;
		mutex_lock(&isc_lock);
		list_for_each_entry(d, &isc_drvs, node) {
			if (d->owner == mod) {
				found = d;
				break;
			}
		}
		if (!found) {
			mutex_unlock(&isc_lock);
			break;
		}
		if (!found->unregistering) {
			pr_warn("module %s left uid %08x registered; removed without calling it\n",
				mod->name, found->uid);
			/* Cannot be -EDEADLK: this task runs no got(). */
			isc_remove(found, ISC_UNBIND_NO);
			continue;
		}
		/*
		 * Someone else is removing it and may still call unbind(): the
		 * module's memory must stay until that is done.
		 */
		kref_get(&found->ref);
		mutex_unlock(&isc_lock);
		wait_event(isc_cb_wq, READ_ONCE(found->unlisted));
		isc_drv_put(found);
	}
	return NOTIFY_OK;
}

static struct notifier_block isc_module_nb = {
	.notifier_call = isc_module_notify,
};

/* -------------------------------------------------------------- debugfs */

static int isc_stats_show(struct seq_file *m, void *unused)
{
	struct isc_handle *ch = m->private;

	seq_printf(m, "uid %08x\n", ch->uid);
	seq_printf(m, "bound %d\n", READ_ONCE(ch->connected) ? 1 : 0);
	seq_printf(m, "messages %lld\n", atomic64_read(&ch->n_messages));
	seq_printf(m, "not_delivered %lld\n", atomic64_read(&ch->n_not_delivered));
	seq_printf(m, "kicks %lld\n", atomic64_read(&ch->n_kicks));
	seq_printf(m, "posts %lld\n", atomic64_read(&ch->n_posts));
	seq_printf(m, "drops %lld\n", atomic64_read(&ch->n_drops));
	seq_printf(m, "corrupt %lld\n", atomic64_read(&ch->n_corrupt));
	seq_printf(m, "clamped %lld\n", atomic64_read(&ch->n_clamped));
	seq_printf(m, "ctrl %lld\n", atomic64_read(&ch->n_ctrl));
	seq_printf(m, "ctrl_pending %u\n", READ_ONCE(ch->ctrl_count));
	seq_printf(m, "interrupted %lld\n", atomic64_read(&ch->n_interrupted));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(isc_stats);

/* ---------------------------------------------------------- memory */

static struct isc_user *isc_find_user(kuid_t uid)
{
	struct isc_user *u;

	lockdep_assert_held(&isc_lock);
	list_for_each_entry(u, &isc_users, node)
		if (uid_eq(u->uid, uid))
			return u;
	return NULL;
}

/* Counts @bytes against @uid's cap (max_user_bytes): 0, -EDQUOT or -ENOMEM. */
static int isc_charge(kuid_t uid, u32 bytes)
{
	struct isc_user *u;

	lockdep_assert_held(&isc_lock);
	u = isc_find_user(uid);
	if (!u) {
		u = kzalloc(sizeof(*u), GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
		if (!u)
			return -ENOMEM;
		u->uid = uid;
		list_add(&u->node, &isc_users);
	}
	if (u->bytes + bytes > READ_ONCE(max_user_bytes)) {
		if (!u->bytes) {
			list_del(&u->node);
			kfree(u);
		}
		return -EDQUOT;
	}
	u->bytes += bytes;
	return 0;
}

static void isc_uncharge(kuid_t uid, u32 bytes)
{
	struct isc_user *u;

	lockdep_assert_held(&isc_lock);
	u = isc_find_user(uid);
	if (!u)
		return;
	u->bytes -= min_t(u64, u->bytes, bytes);
	if (!u->bytes) {
		list_del(&u->node);
		kfree(u);
	}
}

static void isc_region_free(struct isc_handle *ch)
{
	u32 i;

	kvfree(ch->bounce);
	ch->bounce = NULL;
	if (ch->region)
		vunmap(ch->region);
	ch->region = NULL;
	for (i = 0; i < ch->nr_pages; i++)
		__free_page(ch->pages[i]);
	kvfree(ch->pages);
	ch->pages = NULL;
	ch->nr_pages = 0;
}

/*
 * Allocates the region (zeroed pages, charged to the caller's memory
 * cgroup, mapped into one contiguous kernel range that remap_vmalloc_range()
 * accepts) and the bounce buffer. No warning and no OOM kill on failure:
 * BIND returns -ENOMEM.
 */
static int isc_region_alloc(struct isc_handle *ch, u32 size)
{
	const gfp_t gfp = GFP_KERNEL_ACCOUNT | __GFP_NOWARN | __GFP_RETRY_MAYFAIL;
	u32 n = DIV_ROUND_UP(size, PAGE_SIZE);

	ch->pages = kvcalloc(n, sizeof(*ch->pages), gfp);
	if (!ch->pages)
		return -ENOMEM;
	while (ch->nr_pages < n) {
		struct page *pg = alloc_page(gfp | __GFP_ZERO);

		if (!pg)
			goto fail;
		ch->pages[ch->nr_pages++] = pg;
		if (!(ch->nr_pages & 63))
			cond_resched();
	}
	ch->region = vmap(ch->pages, n, VM_MAP | VM_USERMAP, PAGE_KERNEL);
	if (!ch->region)
		goto fail;
	ch->bounce = kvzalloc(ch->u2k.msz, gfp);
	if (!ch->bounce)
		goto fail;
	return 0;
fail:
	isc_region_free(ch);
	return -ENOMEM;
}

/* ------------------------------------------------------------------ fd */

static int isc_open(struct inode *inode, struct file *file)
{
	struct isc_handle *ch = kzalloc(sizeof(*ch), GFP_KERNEL);

	if (!ch)
		return -ENOMEM;
	kref_init(&ch->ref);
	init_waitqueue_head(&ch->wq);
	mutex_init(&ch->kick_lock);
	spin_lock_init(&ch->post_lock);
	INIT_LIST_HEAD(&ch->node);
	file->private_data = ch;
	return nonseekable_open(inode, file);
}

static int isc_release(struct inode *inode, struct file *file)
{
	struct isc_handle *ch = file->private_data;
	unsigned long fl;
	bool was_bound;

	/* No ioctl runs on this fd any more: the state is READY or OPEN. */
	mutex_lock(&isc_lock);
	was_bound = ch->state == ISC_FD_READY;
	if (was_bound) {
		if (ch->link)
			isc_disconnect(ch, ch->link, false, ISC_UNBIND_IF_LIVE);
		list_del(&ch->node);
		/* Waits for readers of the counters; frees the name for a new bind. */
		debugfs_remove(ch->dbg);
		ch->dbg = NULL;
		isc_uncharge(ch->cred->euid, ch->charged);
	}
	mutex_unlock(&isc_lock);

	if (was_bound) {
		/* From here isc_post() on a driver's reference touches nothing. */
		spin_lock_irqsave(&ch->post_lock, fl);
		ch->closed = true;
		WRITE_ONCE(ch->connected, false);
		spin_unlock_irqrestore(&ch->post_lock, fl);

		/* No mapping is left: each one holds a reference to this file. */
		isc_region_free(ch);
		put_cred(ch->cred);
		ch->cred = NULL;
	}
	isc_put(ch);
	return 0;
}

/*
 * BIND. The order of the checks is the documented precedence of errors:
 * -EBADF (fd not open for writing), -EFAULT, -EALREADY, -EPROTO, -EINVAL,
 * -E2BIG, then -EACCES (the UID's policy refuses the caller) or -EPERM (no
 * driver has registered the UID and the caller lacks CAP_SYS_ADMIN),
 * -EBUSY, -EDQUOT (the user's max_user_bytes), -ENOMEM. Nothing is
 * allocated for the region before the UID is known to be free: the UID is
 * reserved under isc_lock first.
 */
static long isc_bind(struct file *file, struct isc_handle *ch, struct isc_bind_args __user *uargs)
{
	struct isc_bind_args args;
	struct isc_ring u2k = {}, k2u = {};
	struct isc_drv *drv;
	bool privileged;
	char name[16];
	u32 size, charge;
	int ret;

	if (!(file->f_mode & FMODE_WRITE))
		return -EBADF;
	if (copy_from_user(&args, uargs, sizeof(args)))
		return -EFAULT;
	if (smp_load_acquire(&ch->ready))
		return -EALREADY;
	if (args.req.abi_version != ISC_ABI_VERSION)
		return -EPROTO;
	if (args.req.flags || args.req.reserved)
		return -EINVAL;
	ret = isc_ring_config(&args.req.u2k, &u2k);
	if (ret)
		return ret;
	ret = isc_ring_config(&args.req.k2u, &k2u);
	if (ret)
		return ret;
	/* Both rings are at most ISC_MAX_RING_BYTES: the sums fit a u32. */
	size = u2k.ring_bytes + k2u.ring_bytes;
	charge = size + u2k.msz;
	privileged = ns_capable_noaudit(&init_user_ns, CAP_SYS_ADMIN);

	mutex_lock(&isc_lock);
	if (ch->state != ISC_FD_OPEN) {
		ret = -EALREADY;
		goto unlock;
	}
	drv = isc_find_drv(args.req.uid);
	if (drv && !isc_may_bind(drv, current_cred(), privileged)) {
		ret = -EACCES;
		goto unlock;
	}
	if (!drv && !privileged) {
		ret = -EPERM;
		goto unlock;
	}
	if (isc_find_chan(args.req.uid)) {
		ret = -EBUSY;
		goto unlock;
	}
	ret = isc_charge(current_euid(), charge);
	if (ret)
		goto unlock;
	/* Reserved: another BIND of the uid gets -EBUSY, a registration waits for READY. */
	ch->uid = args.req.uid;
	ch->state = ISC_FD_BINDING;
	list_add_tail(&ch->node, &isc_chans);
	mutex_unlock(&isc_lock);

	ch->u2k = u2k;
	ch->k2u = k2u;
	ret = isc_region_alloc(ch, size);

	mutex_lock(&isc_lock);
	if (ret) {
		list_del_init(&ch->node);
		isc_uncharge(current_euid(), charge);
		ch->state = ISC_FD_OPEN;
		goto unlock;
	}
	ch->region_size = size;
	ch->charged = charge;
	ch->cred = get_current_cred();
	ch->privileged = privileged;
	isc_ring_init(&ch->u2k, ch->region);
	isc_ring_init(&ch->k2u, (u8 *)ch->region + u2k.ring_bytes);
	snprintf(name, sizeof(name), "%08x", ch->uid);
	ch->dbg = debugfs_create_file(name, 0400, isc_dbg_root, ch, &isc_stats_fops);
	ch->state = ISC_FD_READY;
	/* Pairs with the acquire loads in mmap, poll and KICK. */
	smp_store_release(&ch->ready, 1);

	/* The policy may have changed while the region was allocated. */
	drv = isc_find_drv(ch->uid);
	args.resp.bound = 0;
	if (drv && isc_may_bind(drv, ch->cred, privileged)) {
		isc_connect(ch, drv);
		args.resp.bound = 1;
	}
	mutex_unlock(&isc_lock);

	args.resp.region_size = size;
	args.resp.u2k_offset = 0;
	args.resp.k2u_offset = u2k.ring_bytes;
	args.resp.reserved = 0;
	/* The fd stays bound if this fails: a second BIND returns -EALREADY. */
	if (copy_to_user(&uargs->resp, &args.resp, sizeof(args.resp)))
		return -EFAULT;
	return 0;

unlock:
	mutex_unlock(&isc_lock);
	return ret;
}

/*
 * A drain pins the driver it delivers to once (a reference on its module and
 * one on the registration) and keeps the pin from message to message while
 * the channel's driver stays the same and alive: pinning per message would
 * cost several atomic operations each.
 */
static void isc_unpin(struct isc_drv *drv)
{
	bool dead;

	/*
	 * The module reference goes first: once pins is 0, the notifier of a
	 * module whose init failed may finish and its memory go.
	 */
	module_put(drv->owner);
	spin_lock(&isc_cb_lock);
	WRITE_ONCE(drv->pins, drv->pins - 1);
	dead = drv->dead;
	spin_unlock(&isc_cb_lock);
	if (dead)
		wake_up_all(&isc_cb_wq);
	isc_drv_put(drv);
}

/*
 * The driver the next got() goes to, pinned (in *@pinned, which holds the
 * drain's pin) and with current recorded as running its got(); NULL if the
 * channel has no live driver (the message is not delivered). Waits for a
 * bound() in progress first; -EINTR in *@err if killed meanwhile.
 */
static struct isc_drv *isc_got_begin(struct isc_handle *ch, struct isc_drv **pinned, int *err)
{
	struct isc_drv *drv, *old = NULL;

	for (;;) {
		spin_lock(&isc_cb_lock);
		if (!ch->binding)
			break;
		spin_unlock(&isc_cb_lock);
		if (wait_event_killable(isc_cb_wq, !READ_ONCE(ch->binding))) {
			*err = -EINTR;
			return NULL;
		}
	}
	drv = ch->got_drv;
	if (drv && drv->dead)
		drv = NULL;
	if (drv != *pinned) {
		old = *pinned;
		*pinned = NULL;
		if (drv && try_module_get(drv->owner)) {
			kref_get(&drv->ref);
			WRITE_ONCE(drv->pins, drv->pins + 1);
			*pinned = drv;
		} else {
			/* Its module is going: not delivered. */
			drv = NULL;
		}
	}
	if (drv)
		WRITE_ONCE(drv->cb_task, current);
	spin_unlock(&isc_cb_lock);
	if (old)
		isc_unpin(old);
	return drv;
}

static void isc_got_end(struct isc_drv *drv)
{
	bool dead;

	spin_lock(&isc_cb_lock);
	WRITE_ONCE(drv->cb_task, NULL);
	dead = drv->dead;
	spin_unlock(&isc_cb_lock);
	if (dead)
		wake_up_all(&isc_cb_wq);
}

/*
 * Drains the u2k ring (consumer side of isc-ring): one acquire load of head,
 * each slot's header read once and validated, the message copied to the
 * bounce buffer before the driver sees it, the reply and rc written back in
 * place, then one release store of tail for what was handled. A fatal
 * signal stops the drain between messages; the rest stays queued.
 */
static long isc_kick(struct isc_handle *ch)
{
	struct isc_ring *r = &ch->u2k;
	u32 head, done = 0, delivered = 0, clamped = 0;
	struct isc_drv *pinned = NULL;
	bool interrupted = false;
	long ret = 0;

	if (!smp_load_acquire(&ch->ready))
		return -ENOTCONN;
	if (mutex_lock_killable(&ch->kick_lock))
		return -EINTR;
	atomic64_inc(&ch->n_kicks);
	if (isc_is_corrupt(ch)) {
		ret = -EIO;
		goto out;
	}

	/* Pairs with the user's release store of head: the slots are written. */
	head = smp_load_acquire(&r->hdr->head.value);
	if (head - ch->u2k_tail > r->slot_count) {
		isc_mark_corrupt(ch, ISC_CORRUPT_U2K);
		ret = -EIO;
		goto out;
	}

	while (ch->u2k_tail != head) {
		u32 idx = ch->u2k_tail;
		struct isc_slot_header *sh = isc_slot(r, idx);
		struct isc_drv *drv;
		u32 seq, len, flags;
		int rc, err = 0;

		if (fatal_signal_pending(current)) {
			interrupted = true;
			break;
		}
		seq = READ_ONCE(sh->seq);
		len = READ_ONCE(sh->len);
		flags = READ_ONCE(sh->flags);
		/* A user message carries no flags: a control kind or a stray bit is corruption. */
		if (seq != idx || len > r->msz || flags != ISC_SLOT_KIND_MSG) {
			isc_mark_corrupt(ch, ISC_CORRUPT_U2K);
			ret = -EIO;
			break;
		}
		drv = isc_got_begin(ch, &pinned, &err);
		if (err) {
			interrupted = true;
			break;
		}
		if (drv) {
			u32 rlen = len;

			memcpy(ch->bounce, isc_payload(sh), len);
			rc = drv->ops->got(drv->arg, ch->bounce, &rlen, r->msz);
			isc_got_end(drv);
			if (rlen > r->msz) {
				rlen = r->msz;
				clamped++;
			}
			memcpy(isc_payload(sh), ch->bounce, rlen);
			WRITE_ONCE(sh->len, rlen);
			WRITE_ONCE(sh->rc, rc);
			WRITE_ONCE(sh->flags, flags | ISC_SLOT_COMPLETED);
			delivered++;
		} else {
			WRITE_ONCE(sh->len, 0);
			WRITE_ONCE(sh->rc, -ENODEV);
			WRITE_ONCE(sh->flags, flags | ISC_SLOT_COMPLETED | ISC_SLOT_NOT_DELIVERED);
		}
		ch->u2k_tail = idx + 1;
		done++;
		cond_resched();
	}
	if (pinned)
		isc_unpin(pinned);
	if (done) {
		/* Releases what was handled: the replies above are visible before the new tail. */
		smp_store_release(&r->hdr->tail.value, ch->u2k_tail);
	}
	atomic64_add(delivered, &ch->n_messages);
	atomic64_add(done - delivered, &ch->n_not_delivered);
	if (clamped)
		atomic64_add(clamped, &ch->n_clamped);
	if (interrupted) {
		atomic64_inc(&ch->n_interrupted);
		if (!done)
			ret = -EINTR;
	}
out:
	mutex_unlock(&ch->kick_lock);
	isc_flush_ctrl(ch);
	return ret ? ret : (long)done;
}

static long isc_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct isc_handle *ch = file->private_data;

	switch (cmd) {
	case ISC_IOC_BIND:
		return isc_bind(file, ch, (struct isc_bind_args __user *)arg);
	case ISC_IOC_KICK:
		return isc_kick(ch);
	default:
		return -ENOTTY;
	}
}

/*
 * The region is mapped shared, never executable (PROT_EXEC is refused with
 * -EPERM and mprotect cannot add it), not inherited by fork() (a child does
 * not keep the UID busy through it), not dumped and not growable.
 */
static int isc_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct isc_handle *ch = file->private_data;
	unsigned long len = vma->vm_end - vma->vm_start;

	if (!smp_load_acquire(&ch->ready))
		return -ENXIO;
	/* Offset 0 is this fd's region; nothing else exists. */
	if (vma->vm_pgoff != 0)
		return -EINVAL;
	if (len > PAGE_ALIGN((unsigned long)ch->region_size))
		return -EINVAL;
	/* Both sides must see the same pages: MAP_SHARED only. */
	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	if (vma->vm_flags & VM_EXEC)
		return -EPERM;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	vm_flags_mod(vma, VM_DONTEXPAND | VM_DONTDUMP | VM_DONTCOPY, VM_MAYEXEC);
#else
	vma->vm_flags |= VM_DONTEXPAND | VM_DONTDUMP | VM_DONTCOPY;
	vma->vm_flags &= ~VM_MAYEXEC;
#endif
	return remap_vmalloc_range(vma, ch->region, 0);
}

static __poll_t isc_poll(struct file *file, poll_table *wait)
{
	struct isc_handle *ch = file->private_data;
	__poll_t mask = 0;

	poll_wait(file, &ch->wq, wait);
	/*
	 * Orders joining the wait queue before reading the indices; pairs with
	 * the smp_mb after a post publishes head: either this sees the new
	 * head, or the post sees a waiter and wakes it.
	 */
	smp_mb();
	if (!smp_load_acquire(&ch->ready))
		return 0;
	if (isc_is_corrupt(ch))
		return EPOLLERR | EPOLLHUP;
	/*
	 * Readable: unread k2u slots, or control messages waiting for room
	 * (they go out on the next KICK or post). Nothing is changed here.
	 */
	if (READ_ONCE(ch->k2u_head) != READ_ONCE(ch->k2u.hdr->tail.value) ||
	    READ_ONCE(ch->ctrl_count))
		mask |= EPOLLIN | EPOLLRDNORM;
	return mask;
}

static const struct file_operations isc_fops = {
	.owner = THIS_MODULE,
	.open = isc_open,
	.release = isc_release,
	.unlocked_ioctl = isc_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = isc_mmap,
	.poll = isc_poll,
};

static struct miscdevice isc_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "isc",
	.fops = &isc_fops,
};

static int __init isc_init(void)
{
	int ret;

	isc_misc.mode = node_mode & 0666;
	ret = register_module_notifier(&isc_module_nb);
	if (ret)
		return ret;
	ret = isc_compat_init();
	if (ret) {
		unregister_module_notifier(&isc_module_nb);
		return ret;
	}
	isc_dbg_root = debugfs_create_dir("isc", NULL);
	ret = misc_register(&isc_misc);
	if (ret) {
		debugfs_remove_recursive(isc_dbg_root);
		isc_compat_exit();
		unregister_module_notifier(&isc_module_nb);
		return ret;
	}
	return 0;
}

static void __exit isc_exit(void)
{
	misc_deregister(&isc_misc);
	debugfs_remove_recursive(isc_dbg_root);
	isc_compat_exit();
	unregister_module_notifier(&isc_module_nb);
}

module_init(isc_init);
module_exit(isc_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ISC: shared-memory messaging between user applications and kernel drivers");
