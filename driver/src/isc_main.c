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
 * Locking:
 * - isc_lock (mutex): the registry of drivers and bound channels, and the
 *   link between a driver and its channel. bound() and unbind() run under it.
 * - isc_handle.kick_lock (mutex): serialises the u2k drain; got() runs under
 *   it. isc_unregister() takes it (without isc_lock) to wait for in-flight
 *   got() calls. isc_lock is never held while taking a kick_lock.
 * - isc_handle.post_lock (spinlock, irqsave): the k2u producer state and the
 *   connected/closed flags; isc_post() may run in any context.
 * - isc_handle.ref (kref): the fd holds one reference, drivers may hold more
 *   (isc_get/isc_put). The region is freed in release(), after the last
 *   mapping is gone; the struct when the last reference is dropped.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/compat.h>
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
	u32 uid;
	bool dying;			/* isc_unregister() in progress */
	const struct isc_ops *ops;
	void *arg;
	struct isc_handle *chan;	/* bound channel, under isc_lock */
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
	struct isc_ring u2k;
	struct isc_ring k2u;
	struct dentry *dbg;
	struct list_head node;		/* in isc_chans, under isc_lock */
	struct isc_drv *link;		/* bound driver, under isc_lock */

	/* u2k consumer, under kick_lock. */
	struct mutex kick_lock;
	/*
	 * The driver whose got() KICK calls. Read under kick_lock; set under
	 * isc_lock; cleared under kick_lock by isc_unregister() (which is how
	 * it waits for in-flight calls) or by release (no KICK can run then).
	 */
	struct isc_drv *got_drv;
	struct task_struct *kick_task;	/* holder of kick_lock, while it calls got() */
	void *bounce;			/* msz bytes of u2k */
	u32 u2k_tail;			/* next slot to consume; == shared tail */

	/* k2u producer, under post_lock. */
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
};

static DEFINE_MUTEX(isc_lock);
static LIST_HEAD(isc_drvs);
static LIST_HEAD(isc_chans);
static struct dentry *isc_dbg_root;

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
	ch->k2u_head = idx + 1;
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
		ch->ctrl_count--;
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
		ch->ctrl_count = 1;
	} else {
		u32 last = (ch->ctrl_count & 1) ? ch->ctrl_first : isc_other_kind(ch->ctrl_first);

		if (last != kind) {
			ch->ctrl_count++;
			if (ch->ctrl_count > 3)
				ch->ctrl_count -= 2;
		}
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

static struct isc_drv *isc_find_drv(u32 uid)
{
	struct isc_drv *d;

	lockdep_assert_held(&isc_lock);
	list_for_each_entry(d, &isc_drvs, node)
		if (d->uid == uid)
			return d;
	return NULL;
}

static struct isc_handle *isc_find_chan(u32 uid)
{
	struct isc_handle *ch;

	lockdep_assert_held(&isc_lock);
	list_for_each_entry(ch, &isc_chans, node)
		if (ch->uid == uid)
			return ch;
	return NULL;
}

/* Binds a ready channel and a live driver: BOUND to the user, bound() to the driver. */
static void isc_connect(struct isc_handle *ch, struct isc_drv *drv)
{
	unsigned long fl;
	bool wake;

	lockdep_assert_held(&isc_lock);
	drv->chan = ch;
	ch->link = drv;
	/*
	 * From NULL to drv: nothing to wait for, KICK picks it up on its next
	 * message. Release: the driver's state is visible to that got() call.
	 */
	smp_store_release(&ch->got_drv, drv);

	spin_lock_irqsave(&ch->post_lock, fl);
	ch->connected = true;
	wake = isc_queue_ctrl_locked(ch, ISC_SLOT_KIND_BOUND);
	spin_unlock_irqrestore(&ch->post_lock, fl);
	if (wake)
		isc_wake_readers(ch);

	if (drv->ops->bound)
		drv->ops->bound(drv->arg, ch);
}

/*
 * Unbinds a channel from its driver; the caller has made sure no got() can
 * be running or start (release: no KICK on a released fd; unregister:
 * got_drv was cleared under kick_lock). Tells the user with UNBOUND if
 * @tell_user, then calls unbind().
 */
static void isc_disconnect(struct isc_handle *ch, struct isc_drv *drv, bool tell_user)
{
	unsigned long fl;
	bool wake = false;

	lockdep_assert_held(&isc_lock);
	drv->chan = NULL;
	ch->link = NULL;
	WRITE_ONCE(ch->got_drv, NULL);

	spin_lock_irqsave(&ch->post_lock, fl);
	ch->connected = false;
	if (tell_user)
		wake = isc_queue_ctrl_locked(ch, ISC_SLOT_KIND_UNBOUND);
	spin_unlock_irqrestore(&ch->post_lock, fl);
	if (wake)
		isc_wake_readers(ch);

	if (drv->ops->unbind)
		drv->ops->unbind(drv->arg);
}

int isc_register(u32 uid, const struct isc_ops *ops, void *arg)
{
	struct isc_handle *ch;
	struct isc_drv *drv;

	if (!ops || !ops->got)
		return -EINVAL;
	drv = kzalloc(sizeof(*drv), GFP_KERNEL);
	if (!drv)
		return -ENOMEM;
	drv->uid = uid;
	drv->ops = ops;
	drv->arg = arg;

	mutex_lock(&isc_lock);
	if (isc_find_drv(uid)) {
		mutex_unlock(&isc_lock);
		kfree(drv);
		return -EEXIST;
	}
	list_add_tail(&drv->node, &isc_drvs);
	ch = isc_find_chan(uid);
	if (ch)
		isc_connect(ch, drv);
	mutex_unlock(&isc_lock);
	return 0;
}
EXPORT_SYMBOL_GPL(isc_register);

int isc_unregister(u32 uid)
{
	struct isc_handle *ch;
	struct isc_drv *drv;

	mutex_lock(&isc_lock);
	drv = isc_find_drv(uid);
	if (!drv || drv->dying) {
		mutex_unlock(&isc_lock);
		return -ENOENT;
	}
	/* Still listed: no new registration of uid, no new binding to drv. */
	drv->dying = true;
	ch = isc_get(drv->chan);
	mutex_unlock(&isc_lock);

	if (ch && READ_ONCE(ch->kick_task) == current) {
		/*
		 * Called from this driver's own got() on this channel: that call
		 * is the only one in flight and we are in it; stop the next ones.
		 */
		WRITE_ONCE(ch->got_drv, NULL);
	} else if (ch) {
		/*
		 * Wait for a got() in flight and stop new ones. isc_lock is not
		 * held: a got() may itself register or unregister other UIDs.
		 * Nested: the caller may be a got() of another channel.
		 */
		mutex_lock_nested(&ch->kick_lock, SINGLE_DEPTH_NESTING);
		WRITE_ONCE(ch->got_drv, NULL);
		mutex_unlock(&ch->kick_lock);
	}

	mutex_lock(&isc_lock);
	/* Unless the user closed meanwhile (release then ran unbind()). */
	if (drv->chan)
		isc_disconnect(drv->chan, drv, true);
	list_del(&drv->node);
	mutex_unlock(&isc_lock);

	isc_put(ch);
	kfree(drv);
	return 0;
}
EXPORT_SYMBOL_GPL(isc_unregister);

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
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(isc_stats);

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

	if (ch->ready) {
		mutex_lock(&isc_lock);
		if (ch->link)
			isc_disconnect(ch, ch->link, false);
		list_del(&ch->node);
		/* Waits for readers of the counters; frees the name for a new bind. */
		debugfs_remove(ch->dbg);
		ch->dbg = NULL;
		mutex_unlock(&isc_lock);

		/* From here isc_post() on a driver's reference touches nothing. */
		spin_lock_irqsave(&ch->post_lock, fl);
		ch->closed = true;
		ch->connected = false;
		spin_unlock_irqrestore(&ch->post_lock, fl);

		/* No mapping is left: each one holds a reference to this file. */
		vfree(ch->region);
		ch->region = NULL;
		kvfree(ch->bounce);
		ch->bounce = NULL;
	}
	isc_put(ch);
	return 0;
}

static long isc_bind(struct isc_handle *ch, struct isc_bind_args __user *uargs)
{
	struct isc_bind_args args;
	struct isc_ring u2k = {}, k2u = {};
	struct isc_drv *drv;
	void *region, *bounce;
	char name[16];
	u32 size;
	int ret;

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
	/* Both rings are at most ISC_MAX_RING_BYTES: the sum fits a u32. */
	size = u2k.ring_bytes + k2u.ring_bytes;

	region = vmalloc_user(size);
	bounce = kvmalloc(u2k.msz, GFP_KERNEL);
	if (!region || !bounce) {
		vfree(region);
		kvfree(bounce);
		return -ENOMEM;
	}

	mutex_lock(&isc_lock);
	if (ch->ready) {
		ret = -EALREADY;
		goto fail;
	}
	if (isc_find_chan(args.req.uid)) {
		ret = -EBUSY;
		goto fail;
	}
	ch->uid = args.req.uid;
	ch->region = region;
	ch->region_size = size;
	ch->bounce = bounce;
	ch->u2k = u2k;
	ch->k2u = k2u;
	isc_ring_init(&ch->u2k, region);
	isc_ring_init(&ch->k2u, (u8 *)region + u2k.ring_bytes);
	list_add_tail(&ch->node, &isc_chans);
	snprintf(name, sizeof(name), "%08x", ch->uid);
	ch->dbg = debugfs_create_file(name, 0400, isc_dbg_root, ch, &isc_stats_fops);
	/* Pairs with the acquire loads in mmap, poll and KICK. */
	smp_store_release(&ch->ready, 1);

	drv = isc_find_drv(ch->uid);
	args.resp.bound = 0;
	if (drv && !drv->dying) {
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

fail:
	mutex_unlock(&isc_lock);
	vfree(region);
	kvfree(bounce);
	return ret;
}

/*
 * Drains the u2k ring (consumer side of isc-ring): one acquire load of head,
 * each slot's header read once and validated, the message copied to the
 * bounce buffer before the driver sees it, the reply and rc written back in
 * place, then one release store of tail for the whole batch.
 */
static long isc_kick(struct isc_handle *ch)
{
	struct isc_ring *r = &ch->u2k;
	u32 head, done = 0, delivered = 0, clamped = 0;
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
		u32 seq = READ_ONCE(sh->seq);
		u32 len = READ_ONCE(sh->len);
		u32 flags = READ_ONCE(sh->flags);
		struct isc_drv *drv;
		int rc;

		/* A user message carries no flags: a control kind or a stray bit is corruption. */
		if (seq != idx || len > r->msz || flags != ISC_SLOT_KIND_MSG) {
			isc_mark_corrupt(ch, ISC_CORRUPT_U2K);
			ret = -EIO;
			break;
		}
		/* Pairs with the release store in isc_connect(). */
		drv = smp_load_acquire(&ch->got_drv);
		if (drv) {
			u32 rlen = len;

			memcpy(ch->bounce, isc_payload(sh), len);
			WRITE_ONCE(ch->kick_task, current);
			rc = drv->ops->got(drv->arg, ch->bounce, &rlen, r->msz);
			WRITE_ONCE(ch->kick_task, NULL);
			/* drv may be gone now (got() unregistered it): not used below. */
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
	if (done) {
		/* Releases the batch: the replies above are visible before the new tail. */
		smp_store_release(&r->hdr->tail.value, ch->u2k_tail);
	}
	atomic64_add(delivered, &ch->n_messages);
	atomic64_add(done - delivered, &ch->n_not_delivered);
	if (clamped)
		atomic64_add(clamped, &ch->n_clamped);
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
		return isc_bind(ch, (struct isc_bind_args __user *)arg);
	case ISC_IOC_KICK:
		return isc_kick(ch);
	default:
		return -ENOTTY;
	}
}

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
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	vm_flags_set(vma, VM_DONTEXPAND | VM_DONTDUMP);
#else
	vma->vm_flags |= VM_DONTEXPAND | VM_DONTDUMP;
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
	.mode = 0600,
};

static int __init isc_init(void)
{
	int ret;

	isc_dbg_root = debugfs_create_dir("isc", NULL);
	ret = misc_register(&isc_misc);
	if (ret) {
		debugfs_remove_recursive(isc_dbg_root);
		return ret;
	}
	return 0;
}

static void __exit isc_exit(void)
{
	misc_deregister(&isc_misc);
	debugfs_remove_recursive(isc_dbg_root);
}

module_init(isc_init);
module_exit(isc_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ISC: shared-memory messaging between user applications and kernel drivers");
