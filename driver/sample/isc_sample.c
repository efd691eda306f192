// SPDX-License-Identifier: GPL-2.0
/*
 * isc_sample: a sample driver on an ISC channel.
 *
 * UID "sam0". Messages are 12 bytes, struct sam_msg { u32 id; u32 a; u32 b; }:
 * - id 0x001, read register a: the reply is the request with b = value;
 * - id 0x002, write register a with b: the reply is the request unchanged;
 * rc 0, or -EINVAL for a register index >= 256, an unknown id or a message
 * shorter than 12 bytes (the reply is then the request unchanged).
 * While bound, every period_ms (default 100) an hrtimer posts
 * { id 0x100, a = SAM_IRQ_ID, b = status counter } to the user, from hard
 * interrupt context like a device's interrupt handler would. The counter
 * restarts at 1 on each bind and advances on every tick, so a gap tells
 * the user how many posts were dropped because k2u was full.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/hrtimer.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/spinlock.h>
#include <linux/version.h>

#include "isc.h"

#define SAM_UID		0x306d6173U	/* "sam0" as a little-endian u32 */
#define SAM_NREGS	256
#define SAM_READ	0x001
#define SAM_WRITE	0x002
#define SAM_IRQ		0x100
#define SAM_IRQ_ID	1

struct sam_msg {
	u32 id;
	u32 a;
	u32 b;
};

static unsigned int period_ms = 100;
module_param(period_ms, uint, 0444);
MODULE_PARM_DESC(period_ms, "interval of the irq status posts, in ms (default 100)");

static struct {
	spinlock_t lock;		/* h, status, regs; taken from hard IRQ context */
	struct isc_handle *h;		/* our reference while bound */
	u32 status;
	u32 regs[SAM_NREGS];
	struct hrtimer timer;
	unsigned long posted;
	unsigned long dropped;
} sam;

static ktime_t sam_period(void)
{
	return ms_to_ktime(max(period_ms, 1U));
}

static enum hrtimer_restart sam_tick(struct hrtimer *t)
{
	struct sam_msg msg = { .id = SAM_IRQ, .a = SAM_IRQ_ID };
	unsigned long fl;
	int ret;

	spin_lock_irqsave(&sam.lock, fl);
	if (!sam.h) {
		/* Unbound meanwhile: unbind() clears h before cancelling the timer. */
		spin_unlock_irqrestore(&sam.lock, fl);
		return HRTIMER_NORESTART;
	}
	msg.b = ++sam.status;
	/* isc_post() never sleeps: fine in hard IRQ context and under our lock. */
	ret = isc_post(sam.h, &msg, sizeof(msg));
	if (ret == 0)
		sam.posted++;
	else
		sam.dropped++;
	spin_unlock_irqrestore(&sam.lock, fl);
	hrtimer_forward_now(t, sam_period());
	return HRTIMER_RESTART;
}

static void sam_bound(void *arg, struct isc_handle *h)
{
	unsigned long fl;

	spin_lock_irqsave(&sam.lock, fl);
	sam.h = isc_get(h);
	sam.status = 0;
	spin_unlock_irqrestore(&sam.lock, fl);
	hrtimer_start(&sam.timer, sam_period(), HRTIMER_MODE_REL);
	pr_debug("bound\n");
}

static void sam_unbind(void *arg)
{
	struct isc_handle *h;
	unsigned long fl;

	spin_lock_irqsave(&sam.lock, fl);
	h = sam.h;
	sam.h = NULL;
	spin_unlock_irqrestore(&sam.lock, fl);
	/* Waits for a running tick; with h cleared, the timer does not restart. */
	hrtimer_cancel(&sam.timer);
	isc_put(h);
	pr_debug("unbound\n");
}

static int sam_got(void *arg, void *buf, u32 *len, u32 msz)
{
	struct sam_msg msg;

	if (*len < sizeof(msg))
		return -EINVAL;
	memcpy(&msg, buf, sizeof(msg));
	if (msg.id != SAM_READ && msg.id != SAM_WRITE)
		return -EINVAL;
	if (msg.a >= SAM_NREGS)
		return -EINVAL;

	spin_lock_irq(&sam.lock);
	if (msg.id == SAM_READ)
		msg.b = sam.regs[msg.a];
	else
		sam.regs[msg.a] = msg.b;
	spin_unlock_irq(&sam.lock);

	memcpy(buf, &msg, sizeof(msg));
	*len = sizeof(msg);
	return 0;
}

static const struct isc_ops sam_ops = {
	.bound = sam_bound,
	.unbind = sam_unbind,
	.got = sam_got,
};

static int __init sam_init(void)
{
	spin_lock_init(&sam.lock);
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
	hrtimer_setup(&sam.timer, sam_tick, CLOCK_MONOTONIC, HRTIMER_MODE_REL);
#else
	hrtimer_init(&sam.timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL);
	sam.timer.function = sam_tick;
#endif
	return isc_register(SAM_UID, &sam_ops, NULL);
}

static void __exit sam_exit(void)
{
	/* Runs unbind() if bound, which stops the timer. */
	isc_unregister(SAM_UID);
	hrtimer_cancel(&sam.timer);
	pr_info("%lu irq posts, %lu dropped\n", sam.posted, sam.dropped);
}

module_init(sam_init);
module_exit(sam_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ISC sample driver: registers and irq status over the \"sam0\" channel");
