// SPDX-License-Identifier: GPL-2.0
/*
 * isc_compat_drv: a driver written against the original ISC driver API,
 * the way such drivers are (non-const notifier ops, the original callback
 * shapes, isc_get() as a statement), built unchanged against
 * driver/include/compat. It serves the sample protocol (sample_uapi.h) on
 * SAMPLE_UID(unit):
 *
 * - SAMPLE_MSG_WRITE_REG / SAMPLE_MSG_READ_REG on 256 registers, replies
 *   in place; -EINVAL for a short message, an unknown id or an offset
 *   >= 256;
 * - while bound, a kernel thread posts SAMPLE_MSG_IRQ_STAT {irq.id 0,
 *   irq.stat counting from 0 at load} every period_ms.
 *
 * It also checks the compat layer's answers: at load, the original API's
 * error codes for a NULL ops, a duplicate UID and an unknown UID (a
 * mismatch fails the load); and on SAMPLE_UID(unit + 1) a registration
 * without got() (user calls fail with -EPERM) whose bound() posts a
 * message longer than the user's size (-EINVAL expected) and then reports
 * what it got: {SAMPLE_MSG_IRQ_STAT, irq.id 0xc0, irq.stat = -rc}.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/mutex.h>

#include "isc.h"
#include "sample_uapi.h"

#define NREGS 256

static unsigned int unit = 1;
module_param(unit, uint, 0444);
MODULE_PARM_DESC(unit, "serve SAMPLE_UID(unit) (0 to 8, default 1: \"sam1\"), probes on unit + 1");

static unsigned int period_ms = 50;
module_param(period_ms, uint, 0444);
MODULE_PARM_DESC(period_ms, "interval of the irq status posts, in ms (default 50)");

static DEFINE_MUTEX(lock);		/* cur, stat */
static struct isc_handle *cur;		/* our reference while bound */
static u32 stat;
static u32 regs[NREGS];			/* got() calls are serialised */
static struct task_struct *irq_thread;

static void sam_bound(struct isc_handle *isc, void *arg)
{
	isc_get(isc);
	mutex_lock(&lock);
	cur = isc;
	mutex_unlock(&lock);
}

static void sam_unbind(void *arg)
{
	struct isc_handle *isc;

	mutex_lock(&lock);
	isc = cur;
	cur = NULL;
	mutex_unlock(&lock);
	isc_put(isc);
}

static s32 sam_got(void *msg, u32 len, void *arg)
{
	struct sample_msg *m = msg;

	if (len < sizeof(*m))
		return -EINVAL;
	if (m->id != SAMPLE_MSG_READ_REG && m->id != SAMPLE_MSG_WRITE_REG)
		return -EINVAL;
	if (m->reg.offset >= NREGS)
		return -EINVAL;
	if (m->id == SAMPLE_MSG_WRITE_REG)
		regs[m->reg.offset] = m->reg.value;
	else
		m->reg.value = regs[m->reg.offset];
	return 0;
}

static struct isc_notifier_ops sam_ops = {
	.bound = sam_bound,
	.unbind = sam_unbind,
	.got = sam_got,
};

/* SAMPLE_UID(unit + 1): no got(); bound() probes isc_post()'s codes. */
static void probe_bound(struct isc_handle *isc, void *arg)
{
	u8 big[64] = { 0 };
	struct sample_msg m = { .id = SAMPLE_MSG_IRQ_STAT };
	int ret;

	/* The user opens with a 12-byte receive size: this is too long. */
	ret = isc_post(isc, big, sizeof(big));
	m.irq.id = 0xc0;
	m.irq.stat = (u32)-ret;
	isc_post(isc, &m, sizeof(m));
}

static struct isc_notifier_ops probe_ops = {
	.bound = probe_bound,
};

/* The original API's error codes, checked at load. */
static int check_codes(void)
{
	static struct isc_notifier_ops none;
	int ret;

	ret = isc_register(SAMPLE_UID(unit), NULL, NULL);
	if (ret != -EINVAL) {
		pr_err("register(NULL ops): %d, expected -EINVAL\n", ret);
		return -EINVAL;
	}
	ret = isc_register(SAMPLE_UID(unit), &none, NULL);
	if (ret != -EPERM) {
		pr_err("register(duplicate): %d, expected -EPERM\n", ret);
		return -EINVAL;
	}
	ret = isc_unregister(isc_fourcc('n', 'o', 'n', 'e'));
	if (ret != -EINVAL) {
		pr_err("unregister(unknown): %d, expected -EINVAL\n", ret);
		return -EINVAL;
	}
	return 0;
}

static int sam_irq(void *unused)
{
	while (!kthread_should_stop()) {
		struct sample_msg m = { .id = SAMPLE_MSG_IRQ_STAT };

		msleep_interruptible(max(period_ms, 1U));
		mutex_lock(&lock);
		if (cur) {
			m.irq.id = 0;
			m.irq.stat = stat++;
			/* A full ring drops the post (-EAGAIN). */
			isc_post(cur, &m, sizeof(m));
		}
		mutex_unlock(&lock);
	}
	return 0;
}

static int __init sam_init(void)
{
	int ret;

	if (unit > 8)
		return -EINVAL;
	irq_thread = kthread_run(sam_irq, NULL, "isc_compat_irq");
	if (IS_ERR(irq_thread))
		return PTR_ERR(irq_thread);
	ret = isc_register(SAMPLE_UID(unit), &sam_ops, NULL);
	if (ret)
		goto stop;
	ret = check_codes();
	if (ret)
		goto unregister;
	ret = isc_register(SAMPLE_UID(unit + 1), &probe_ops, NULL);
	if (ret)
		goto unregister;
	return 0;

unregister:
	isc_unregister(SAMPLE_UID(unit));
stop:
	kthread_stop(irq_thread);
	return ret;
}

static void __exit sam_exit(void)
{
	isc_unregister(SAMPLE_UID(unit + 1));
	/* unbind() runs first if bound: cur is cleared before the thread stops. */
	isc_unregister(SAMPLE_UID(unit));
	kthread_stop(irq_thread);
}

module_init(sam_init);
module_exit(sam_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ISC sample protocol driver in the original ISC API's style");
