// SPDX-License-Identifier: GPL-2.0
/*
 * isc_pathways: the same echo call and the same notification over ioctl, a
 * character device, procfs, sysfs, debugfs, generic netlink and ISC, for the
 * pathways benchmark (`cargo xtask vm-bench`, docs/pathways.md). The user
 * interface is described in isc_pathways_uapi.h. Benchmark only: it is built
 * with the other modules but never loaded in production.
 *
 * Each pathway is written the way drivers use it: a pointer-and-length
 * ioctl, a message-oriented char device with a per-open reply buffer, a
 * procfs/debugfs file with write and read handlers, a sysfs attribute with
 * store/show (device-wide state, text for the event value), a generic
 * netlink family with a doit handler that replies to the sender and a
 * multicast group, and an ISC registration whose got() replies in place.
 * Every echo does the same work (pw_echo()); every notification carries the
 * same struct pw_event.
 *
 * Locking: each open file has its own mutex (pw_file.lock) around its
 * buffer; the sysfs echo buffer has pw_sysfs_lock; pw_emit_lock serialises
 * producers; pw_evt_read_lock serialises readers of the event queue and
 * pw_evt_write_lock its writers (kfifo needs one of each at most);
 * pw_isc_lock (spinlock) guards the event channel's handle. None nests
 * inside another, except that bound()/unbind() run under ISC's registry
 * lock and take only pw_isc_lock.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/fs.h>
#include <linux/kfifo.h>
#include <linux/ktime.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/poll.h>
#include <linux/proc_fs.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/sysfs.h>
#include <linux/uaccess.h>
#include <linux/version.h>
#include <linux/wait.h>
#include <net/genetlink.h>
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)
#include <linux/unaligned.h>
#else
#include <asm/unaligned.h>
#endif

#include "isc.h"
#include "isc_pathways_uapi.h"

#define PW_HDR			sizeof(struct pw_reply_hdr)
/* How long a producer waits for room before giving up. */
#define PW_FULL_TIMEOUT		(2 * HZ)

static_assert(sizeof(struct pw_reply_hdr) == 8);
static_assert(sizeof(struct pw_echo_arg) == 16);
static_assert(sizeof(struct pw_event) == 16);
static_assert(sizeof(struct pw_emit_arg) == 32);
static_assert(PW_HDR + PW_SYSFS_MAX < PAGE_SIZE);

/* ------------------------------------------------------------- the work */

/*
 * The echo every pathway performs: complement the message in place (so a
 * user can tell the reply went through the driver) and return its length.
 */
static s32 pw_echo(u8 *p, u32 len)
{
	u32 i = 0;

	for (; i + 8 <= len; i += 8)
		put_unaligned(~get_unaligned((u64 *)(p + i)), (u64 *)(p + i));
	for (; i < len; i++)
		p[i] = ~p[i];
	return (s32)len;
}

/* ------------------------------------------------- per-open echo buffer */

/*
 * One open file of the char device, the procfs or the debugfs echo file:
 * write(2) stores a request and computes its reply; read(2) returns it.
 */
struct pw_file {
	struct mutex lock;		/* everything below */
	u32 reply_len;			/* bytes of buf holding a reply, 0: none */
	u8 buf[PW_HDR + PW_MAX_MSG];	/* struct pw_reply_hdr, then the reply */
};

static int pw_file_open(struct inode *inode, struct file *file)
{
	struct pw_file *pf = kzalloc(sizeof(*pf), GFP_KERNEL);

	if (!pf)
		return -ENOMEM;
	mutex_init(&pf->lock);
	file->private_data = pf;
	return 0;
}

static int pw_file_release(struct inode *inode, struct file *file)
{
	struct pw_file *pf = file->private_data;

	mutex_destroy(&pf->lock);
	kfree(pf);
	return 0;
}

/* The request is the whole write; the file position plays no part. */
static ssize_t pw_file_write(struct file *file, const char __user *ubuf,
			     size_t count, loff_t *ppos)
{
	struct pw_file *pf = file->private_data;
	struct pw_reply_hdr hdr;

	if (count > PW_MAX_MSG)
		return -EMSGSIZE;
	if (mutex_lock_interruptible(&pf->lock))
		return -ERESTARTSYS;
	pf->reply_len = 0;
	if (copy_from_user(pf->buf + PW_HDR, ubuf, count)) {
		mutex_unlock(&pf->lock);
		return -EFAULT;
	}
	hdr.rc = pw_echo(pf->buf + PW_HDR, count);
	hdr.len = count;
	memcpy(pf->buf, &hdr, PW_HDR);
	pf->reply_len = PW_HDR + count;
	mutex_unlock(&pf->lock);
	return count;
}

/* Char device: one read returns the whole reply (message semantics). */
static ssize_t pw_dev_read(struct file *file, char __user *ubuf, size_t count,
			   loff_t *ppos)
{
	struct pw_file *pf = file->private_data;
	ssize_t ret;

	if (mutex_lock_interruptible(&pf->lock))
		return -ERESTARTSYS;
	if (!pf->reply_len) {
		ret = -ENODATA;
	} else if (count < pf->reply_len) {
		ret = -EMSGSIZE;
	} else if (copy_to_user(ubuf, pf->buf, pf->reply_len)) {
		ret = -EFAULT;
	} else {
		ret = pf->reply_len;
		pf->reply_len = 0;
	}
	mutex_unlock(&pf->lock);
	return ret;
}

/* procfs, debugfs: the reply reads like a file, from offset 0 to its end. */
static ssize_t pw_file_read(struct file *file, char __user *ubuf, size_t count,
			    loff_t *ppos)
{
	struct pw_file *pf = file->private_data;
	ssize_t ret;

	if (mutex_lock_interruptible(&pf->lock))
		return -ERESTARTSYS;
	ret = simple_read_from_buffer(ubuf, count, ppos, pf->buf, pf->reply_len);
	mutex_unlock(&pf->lock);
	return ret;
}

/* ---------------------------------------------------------------- ioctl */

static long pw_ioctl_echo(struct pw_file *pf, struct pw_echo_arg __user *uarg)
{
	struct pw_echo_arg arg;
	void __user *data;
	long ret = 0;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.len > PW_MAX_MSG)
		return -EMSGSIZE;
	data = u64_to_user_ptr(arg.data);
	if (mutex_lock_interruptible(&pf->lock))
		return -ERESTARTSYS;
	if (copy_from_user(pf->buf, data, arg.len)) {
		ret = -EFAULT;
		goto out;
	}
	arg.rc = pw_echo(pf->buf, arg.len);
	if (copy_to_user(data, pf->buf, arg.len) || put_user(arg.rc, &uarg->rc))
		ret = -EFAULT;
out:
	mutex_unlock(&pf->lock);
	return ret;
}

static long pw_emit(struct pw_emit_arg *arg);

static long pw_ioctl(struct file *file, unsigned int cmd, unsigned long uarg)
{
	struct pw_emit_arg emit;
	long ret;

	switch (cmd) {
	case PW_IOC_ECHO:
		return pw_ioctl_echo(file->private_data, (void __user *)uarg);
	case PW_IOC_EMIT:
		if (copy_from_user(&emit, (void __user *)uarg, sizeof(emit)))
			return -EFAULT;
		ret = pw_emit(&emit);
		/* Progress is reported even when the run stopped early. */
		if (copy_to_user((void __user *)uarg, &emit, sizeof(emit)))
			return -EFAULT;
		return ret;
	default:
		return -ENOTTY;
	}
}

static const struct file_operations pw_dev_fops = {
	.owner = THIS_MODULE,
	.open = pw_file_open,
	.release = pw_file_release,
	.write = pw_file_write,
	.read = pw_dev_read,
	.unlocked_ioctl = pw_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

/* ------------------------------------------------------ procfs, debugfs */

static const struct proc_ops pw_proc_ops = {
	.proc_open = pw_file_open,
	.proc_release = pw_file_release,
	.proc_write = pw_file_write,
	.proc_read = pw_file_read,
	.proc_lseek = default_llseek,
};

static const struct file_operations pw_debugfs_fops = {
	.owner = THIS_MODULE,
	.open = pw_file_open,
	.release = pw_file_release,
	.write = pw_file_write,
	.read = pw_file_read,
	.llseek = default_llseek,
};

static struct proc_dir_entry *pw_proc_dir;
static struct dentry *pw_debugfs_dir;

/* ---------------------------------------------------------------- sysfs */

static DEFINE_MUTEX(pw_sysfs_lock);
static u32 pw_sysfs_len;			/* bytes of pw_sysfs_buf */
static u8 pw_sysfs_buf[PW_HDR + PW_SYSFS_MAX];

static ssize_t echo_store(struct device *dev, struct device_attribute *attr,
			  const char *buf, size_t count)
{
	struct pw_reply_hdr hdr;

	if (count > PW_SYSFS_MAX)
		return -EMSGSIZE;
	mutex_lock(&pw_sysfs_lock);
	memcpy(pw_sysfs_buf + PW_HDR, buf, count);
	hdr.rc = pw_echo(pw_sysfs_buf + PW_HDR, count);
	hdr.len = count;
	memcpy(pw_sysfs_buf, &hdr, PW_HDR);
	pw_sysfs_len = PW_HDR + count;
	mutex_unlock(&pw_sysfs_lock);
	return count;
}

static ssize_t echo_show(struct device *dev, struct device_attribute *attr,
			 char *buf)
{
	ssize_t n;

	mutex_lock(&pw_sysfs_lock);
	n = pw_sysfs_len;
	memcpy(buf, pw_sysfs_buf, n);
	mutex_unlock(&pw_sysfs_lock);
	return n;
}

static DEVICE_ATTR_ADMIN_RW(echo);

/* The last event raised on the sysfs pathway, and the last one shown. */
static DEFINE_SPINLOCK(pw_sysfs_evt_lock);
static struct pw_event pw_sysfs_evt;
static u64 pw_sysfs_gen;			/* events raised since load */
static u64 pw_sysfs_shown;			/* seq + 1 of the last shown */
static DECLARE_WAIT_QUEUE_HEAD(pw_sysfs_shown_wq);
static struct kernfs_node *pw_sysfs_evt_kn;

static ssize_t event_show(struct device *dev, struct device_attribute *attr,
			  char *buf)
{
	struct pw_event ev;
	u64 gen;

	spin_lock(&pw_sysfs_evt_lock);
	ev = pw_sysfs_evt;
	gen = pw_sysfs_gen;
	WRITE_ONCE(pw_sysfs_shown, ev.seq + 1);
	spin_unlock(&pw_sysfs_evt_lock);
	wake_up(&pw_sysfs_shown_wq);
	return sysfs_emit(buf, "%llu %llu %llu\n", ev.seq, ev.t_ns, gen);
}

static DEVICE_ATTR_ADMIN_RO(event);

static struct attribute *pw_attrs[] = {
	&dev_attr_echo.attr,
	&dev_attr_event.attr,
	NULL,
};
ATTRIBUTE_GROUPS(pw);

static struct miscdevice pw_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "isc_pathways",
	.fops = &pw_dev_fops,
	.groups = pw_groups,
	.mode = 0600,
};

/* -------------------------------------------------------- event chardev */

static DEFINE_KFIFO(pw_evt_fifo, struct pw_event, PW_EVENT_QUEUE);
static DEFINE_MUTEX(pw_evt_read_lock);
static DEFINE_SPINLOCK(pw_evt_write_lock);
static DECLARE_WAIT_QUEUE_HEAD(pw_evt_readable_wq);
static DECLARE_WAIT_QUEUE_HEAD(pw_evt_room_wq);

static ssize_t pw_evt_read(struct file *file, char __user *ubuf, size_t count,
			   loff_t *ppos)
{
	unsigned int copied;
	int ret;

	if (count < sizeof(struct pw_event))
		return -EINVAL;
	for (;;) {
		if (mutex_lock_interruptible(&pw_evt_read_lock))
			return -ERESTARTSYS;
		if (!kfifo_is_empty(&pw_evt_fifo))
			break;
		mutex_unlock(&pw_evt_read_lock);
		if (file->f_flags & O_NONBLOCK)
			return -EAGAIN;
		if (wait_event_interruptible(pw_evt_readable_wq,
					     !kfifo_is_empty(&pw_evt_fifo)))
			return -ERESTARTSYS;
	}
	ret = kfifo_to_user(&pw_evt_fifo, ubuf, count, &copied);
	mutex_unlock(&pw_evt_read_lock);
	if (ret)
		return ret;
	wake_up(&pw_evt_room_wq);
	return copied;
}

static __poll_t pw_evt_poll(struct file *file, poll_table *wait)
{
	poll_wait(file, &pw_evt_readable_wq, wait);
	return kfifo_is_empty(&pw_evt_fifo) ? 0 : EPOLLIN | EPOLLRDNORM;
}

static const struct file_operations pw_evt_fops = {
	.owner = THIS_MODULE,
	.open = nonseekable_open,
	.read = pw_evt_read,
	.poll = pw_evt_poll,
};

static struct miscdevice pw_evt_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "isc_pathways_events",
	.fops = &pw_evt_fops,
	.mode = 0600,
};

/* ------------------------------------------------------ generic netlink */

static const struct nla_policy pw_nl_policy[PW_A_MAX + 1] = {
	[PW_A_DATA] = { .type = NLA_BINARY, .len = PW_MAX_MSG },
	[PW_A_RC] = { .type = NLA_S32 },
	[PW_A_SEQ] = { .type = NLA_U64 },
	[PW_A_T_NS] = { .type = NLA_U64 },
};

static struct genl_family pw_genl_family;

static int pw_nl_echo(struct sk_buff *skb, struct genl_info *info)
{
	const struct nlattr *req = info->attrs[PW_A_DATA];
	struct sk_buff *reply;
	struct nlattr *data;
	void *hdr;
	u32 len;
	s32 rc;

	if (!req)
		return -EINVAL;
	len = nla_len(req);
	reply = genlmsg_new(nla_total_size(len) + nla_total_size(sizeof(s32)),
			    GFP_KERNEL);
	if (!reply)
		return -ENOMEM;
	hdr = genlmsg_put_reply(reply, info, &pw_genl_family, 0, PW_CMD_ECHO);
	if (!hdr)
		goto too_small;
	data = nla_reserve(reply, PW_A_DATA, len);
	if (!data)
		goto too_small;
	memcpy(nla_data(data), nla_data(req), len);
	rc = pw_echo(nla_data(data), len);
	if (nla_put_s32(reply, PW_A_RC, rc))
		goto too_small;
	genlmsg_end(reply, hdr);
	return genlmsg_reply(reply, info);

too_small:
	nlmsg_free(reply);
	return -EMSGSIZE;
}

static const struct genl_small_ops pw_genl_ops[] = {
	{
		.cmd = PW_CMD_ECHO,
		.doit = pw_nl_echo,
		.flags = GENL_ADMIN_PERM,
	},
};

static const struct genl_multicast_group pw_genl_mcgrps[] = {
	{ .name = PW_GENL_MCGRP, .flags = GENL_MCAST_CAP_SYS_ADMIN },
};

static struct genl_family pw_genl_family = {
	.name = PW_GENL_NAME,
	.version = PW_GENL_VERSION,
	.maxattr = PW_A_MAX,
	.policy = pw_nl_policy,
	.parallel_ops = true,
	.module = THIS_MODULE,
	.small_ops = pw_genl_ops,
	.n_small_ops = ARRAY_SIZE(pw_genl_ops),
	.mcgrps = pw_genl_mcgrps,
	.n_mcgrps = ARRAY_SIZE(pw_genl_mcgrps),
};

static int pw_nl_event(const struct pw_event *ev)
{
	struct sk_buff *skb;
	void *hdr;

	skb = genlmsg_new(2 * nla_total_size_64bit(sizeof(u64)), GFP_KERNEL);
	if (!skb)
		return -ENOMEM;
	hdr = genlmsg_put(skb, 0, 0, &pw_genl_family, 0, PW_CMD_EVENT);
	if (!hdr ||
	    nla_put_u64_64bit(skb, PW_A_SEQ, ev->seq, PW_A_PAD) ||
	    nla_put_u64_64bit(skb, PW_A_T_NS, ev->t_ns, PW_A_PAD)) {
		nlmsg_free(skb);
		return -EMSGSIZE;
	}
	genlmsg_end(skb, hdr);
	return genlmsg_multicast(&pw_genl_family, skb, 0, 0, GFP_KERNEL);
}

/* ------------------------------------------------------------------ ISC */

static int pw_isc_echo_got(void *arg, void *msg, u32 *len, u32 msz)
{
	return pw_echo(msg, min(*len, msz));
}

static const struct isc_ops pw_isc_echo_ops = {
	.got = pw_isc_echo_got,
};

static DEFINE_SPINLOCK(pw_isc_lock);
static struct isc_handle *pw_isc_evt;		/* our reference while bound */

static void pw_isc_evt_bound(void *arg, struct isc_handle *h)
{
	struct isc_handle *old;

	spin_lock(&pw_isc_lock);
	old = pw_isc_evt;
	pw_isc_evt = isc_get(h);
	spin_unlock(&pw_isc_lock);
	isc_put(old);
}

static void pw_isc_evt_unbind(void *arg)
{
	struct isc_handle *h;

	spin_lock(&pw_isc_lock);
	h = pw_isc_evt;
	pw_isc_evt = NULL;
	spin_unlock(&pw_isc_lock);
	isc_put(h);
}

static int pw_isc_evt_got(void *arg, void *msg, u32 *len, u32 msz)
{
	*len = 0;
	return 0;
}

static const struct isc_ops pw_isc_evt_ops = {
	.bound = pw_isc_evt_bound,
	.unbind = pw_isc_evt_unbind,
	.got = pw_isc_evt_got,
};

/* ------------------------------------------------------------- producer */

static DEFINE_MUTEX(pw_emit_lock);

/* Raises one event on @path; -EAGAIN: the queue is full, try again. */
static int pw_raise(u32 path, u64 seq, struct isc_handle *h)
{
	struct pw_event ev = { .seq = seq };
	long left;
	int ret;

	switch (path) {
	case PW_PATH_CHARDEV:
		left = wait_event_killable_timeout(pw_evt_room_wq,
						   !kfifo_is_full(&pw_evt_fifo),
						   PW_FULL_TIMEOUT);
		if (left < 0)
			return left;
		if (!left)
			return -ETIMEDOUT;
		ev.t_ns = ktime_get_ns();
		if (!kfifo_in_spinlocked(&pw_evt_fifo, &ev, 1, &pw_evt_write_lock))
			return -EAGAIN;
		wake_up_interruptible(&pw_evt_readable_wq);
		return 0;
	case PW_PATH_SYSFS:
		/* A value has no queue: wait until the previous one was read. */
		left = wait_event_killable_timeout(pw_sysfs_shown_wq,
						   READ_ONCE(pw_sysfs_shown) >= seq,
						   PW_FULL_TIMEOUT);
		if (left < 0)
			return left;
		if (!left)
			return -ETIMEDOUT;
		ev.t_ns = ktime_get_ns();
		spin_lock(&pw_sysfs_evt_lock);
		pw_sysfs_evt = ev;
		pw_sysfs_gen++;
		spin_unlock(&pw_sysfs_evt_lock);
		sysfs_notify_dirent(pw_sysfs_evt_kn);
		return 0;
	case PW_PATH_NETLINK:
		ev.t_ns = ktime_get_ns();
		ret = pw_nl_event(&ev);
		return ret == -ENOBUFS ? -EAGAIN : ret;
	case PW_PATH_ISC:
		ev.t_ns = ktime_get_ns();
		return isc_post(h, &ev, sizeof(ev));
	default:
		return -EINVAL;
	}
}

/*
 * PW_IOC_EMIT: raises arg->count events on arg->pathway in the caller's
 * context, arg->gap_us apart; a full queue is waited out (for at most
 * PW_FULL_TIMEOUT per event) and counted in arg->retries once per event.
 * Killable.
 */
static long pw_emit(struct pw_emit_arg *arg)
{
	struct isc_handle *h = NULL;
	unsigned long deadline;
	long ret = 0;
	u64 seq;

	arg->emitted = 0;
	arg->retries = 0;
	if (arg->flags || arg->gap_us > USEC_PER_SEC ||
	    arg->pathway < PW_PATH_CHARDEV || arg->pathway > PW_PATH_ISC)
		return -EINVAL;
	if (mutex_lock_killable(&pw_emit_lock))
		return -EINTR;
	if (arg->pathway == PW_PATH_ISC) {
		spin_lock(&pw_isc_lock);
		h = isc_get(pw_isc_evt);
		spin_unlock(&pw_isc_lock);
		if (!h) {
			ret = -ENOTCONN;
			goto out;
		}
	}
	if (arg->pathway == PW_PATH_SYSFS)
		WRITE_ONCE(pw_sysfs_shown, 0);
	for (seq = 0; seq < arg->count; seq++) {
		deadline = jiffies + PW_FULL_TIMEOUT;
		ret = pw_raise(arg->pathway, seq, h);
		if (ret == -EAGAIN)
			arg->retries++;
		while (ret == -EAGAIN) {
			/*
			 * Nothing tells a netlink or ISC producer that room
			 * appeared: poll for it, yielding the CPU when asked.
			 */
			if (fatal_signal_pending(current)) {
				ret = -EINTR;
				break;
			}
			if (time_after(jiffies, deadline)) {
				ret = -ETIMEDOUT;
				break;
			}
			cond_resched();
			cpu_relax();
			ret = pw_raise(arg->pathway, seq, h);
		}
		if (ret)
			break;
		arg->emitted++;
		if (arg->gap_us && seq + 1 < arg->count)
			fsleep(arg->gap_us);
		else
			cond_resched();
	}
out:
	mutex_unlock(&pw_emit_lock);
	isc_put(h);
	return ret;
}

/* ------------------------------------------------------------ lifecycle */

static int __init pw_init(void)
{
	int ret;

	ret = misc_register(&pw_misc);
	if (ret)
		return ret;
	ret = misc_register(&pw_evt_misc);
	if (ret)
		goto err_misc;
	pw_sysfs_evt_kn = sysfs_get_dirent(pw_misc.this_device->kobj.sd, "event");
	if (!pw_sysfs_evt_kn) {
		ret = -ENOENT;
		goto err_evt_misc;
	}
	ret = genl_register_family(&pw_genl_family);
	if (ret)
		goto err_kn;
	ret = -ENOMEM;
	pw_proc_dir = proc_mkdir("isc_pathways", NULL);
	if (!pw_proc_dir)
		goto err_genl;
	if (!proc_create("echo", 0600, pw_proc_dir, &pw_proc_ops))
		goto err_proc;
	/* debugfs failures are not fatal by design; the runner notices. */
	pw_debugfs_dir = debugfs_create_dir("isc_pathways", NULL);
	debugfs_create_file("echo", 0600, pw_debugfs_dir, NULL, &pw_debugfs_fops);
	ret = isc_register(PW_UID_ECHO, &pw_isc_echo_ops, NULL);
	if (ret)
		goto err_debugfs;
	ret = isc_register(PW_UID_ECHO2, &pw_isc_echo_ops, NULL);
	if (ret)
		goto err_isc;
	ret = isc_register(PW_UID_EVENT, &pw_isc_evt_ops, NULL);
	if (ret)
		goto err_isc2;
	return 0;

err_isc2:
	isc_unregister(PW_UID_ECHO2);
err_isc:
	isc_unregister(PW_UID_ECHO);
err_debugfs:
	debugfs_remove(pw_debugfs_dir);
err_proc:
	proc_remove(pw_proc_dir);
err_genl:
	genl_unregister_family(&pw_genl_family);
err_kn:
	sysfs_put(pw_sysfs_evt_kn);
err_evt_misc:
	misc_deregister(&pw_evt_misc);
err_misc:
	misc_deregister(&pw_misc);
	return ret;
}

static void __exit pw_exit(void)
{
	isc_unregister(PW_UID_EVENT);
	isc_unregister(PW_UID_ECHO2);
	isc_unregister(PW_UID_ECHO);
	debugfs_remove(pw_debugfs_dir);
	proc_remove(pw_proc_dir);
	genl_unregister_family(&pw_genl_family);
	sysfs_put(pw_sysfs_evt_kn);
	misc_deregister(&pw_evt_misc);
	misc_deregister(&pw_misc);
}

module_init(pw_init);
module_exit(pw_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ISC pathways benchmark: echo calls and notifications over ioctl, chardev, procfs, sysfs, debugfs, generic netlink and ISC");
