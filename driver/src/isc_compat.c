// SPDX-License-Identifier: GPL-2.0
/*
 * isc_compat: the original ISC driver API (include/compat/isc.h) on top of
 * the project's (include/isc.h).
 *
 * Each isc_compat_register() allocates a shim holding the driver's
 * notifier ops and argument and registers it with the project's API under
 * the driver's module, so isc.ko pins that module around every callback.
 * The trampolines reorder the arguments; got() keeps *len (an in-place reply
 * of the request's length). The project's core already guarantees that
 * bound() returns before the binding's first got() and that nothing of a
 * registration runs after isc_unregister() returns, so the shim only
 * translates.
 *
 * Locking: compat_lock protects the shim list and each shim's state. It is
 * never held across a call into the core or a driver callback: a got() may
 * call isc_register()/isc_unregister() while another thread's
 * isc_unregister() waits for that got().
 */

#define pr_fmt(fmt) "isc: " fmt

#include <linux/list.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>

#include "isc.h"
/* After the project's header: the declarations, without the renaming macros. */
#include "compat/isc.h"
#include "isc_compat.h"

enum compat_state {
	COMPAT_REGISTERING,	/* listed to reserve the UID; core registration under way */
	COMPAT_REGISTERED,
	COMPAT_UNREGISTERING,	/* claimed by isc_compat_unregister() or the notifier */
};

struct isc_compat {
	struct list_head node;		/* in compat_list, under compat_lock */
	u32 uid;
	enum compat_state state;	/* under compat_lock */
	const struct isc_notifier_ops *ops;
	void *arg;
	struct module *owner;
};

static LIST_HEAD(compat_list);
static DEFINE_MUTEX(compat_lock);

static struct isc_compat *compat_find(u32 uid)
{
	struct isc_compat *c;

	lockdep_assert_held(&compat_lock);
	list_for_each_entry(c, &compat_list, node)
		if (c->uid == uid)
			return c;
	return NULL;
}

static void compat_bound(void *arg, struct isc_handle *h)
{
	struct isc_compat *c = arg;

	if (c->ops->bound)
		c->ops->bound(h, c->arg);
}

static void compat_unbind(void *arg)
{
	struct isc_compat *c = arg;

	if (c->ops->unbind)
		c->ops->unbind(c->arg);
}

static int compat_got(void *arg, void *msg, u32 *len, u32 msz)
{
	struct isc_compat *c = arg;

	/* The original accepted a NULL got; its users' calls then failed. */
	if (!c->ops->got)
		return -EPERM;
	/*
	 * *len stays: the reply is the message rewritten in place, of the
	 * request's length. c is not touched after the call: the driver may
	 * have unregistered itself, freeing it.
	 */
	return c->ops->got(msg, *len, c->arg);
}

static const struct isc_ops compat_ops = {
	.bound = compat_bound,
	.unbind = compat_unbind,
	.got = compat_got,
};

/**
 * isc_compat_register() - isc_register() of the original API
 * @uid:   channel UID
 * @ops:   the driver's callbacks; must outlive the registration
 * @arg:   passed to every callback
 * @owner: the module holding the callbacks (THIS_MODULE, by the macro)
 *
 * Return: 0, -EINVAL (NULL @ops), -ENOMEM, -EPERM if @uid is registered
 * (the original replaced a registration without bound(); this never does),
 * or another error of the project's isc_register().
 */
int isc_compat_register(u32 uid, const struct isc_notifier_ops *ops, void *arg,
			struct module *owner)
{
	struct isc_compat *c;
	int ret;

	if (!ops)
		return -EINVAL;
	c = kzalloc(sizeof(*c), GFP_KERNEL);
	if (!c)
		return -ENOMEM;
	c->uid = uid;
	c->ops = ops;
	c->arg = arg;
	c->owner = owner;
	c->state = COMPAT_REGISTERING;

	mutex_lock(&compat_lock);
	if (compat_find(uid)) {
		mutex_unlock(&compat_lock);
		kfree(c);
		return -EPERM;
	}
	list_add_tail(&c->node, &compat_list);
	mutex_unlock(&compat_lock);

	/* May call bound() before returning; c is complete. */
	ret = __isc_register(uid, &compat_ops, c, owner);

	mutex_lock(&compat_lock);
	if (ret)
		list_del(&c->node);
	else
		c->state = COMPAT_REGISTERED;
	mutex_unlock(&compat_lock);
	if (ret) {
		kfree(c);
		/* Registered natively by another driver. */
		return ret == -EEXIST ? -EPERM : ret;
	}
	return 0;
}
EXPORT_SYMBOL_GPL(isc_compat_register);

/**
 * isc_compat_unregister() - isc_unregister() of the original API
 * @uid: channel UID
 *
 * Calls unbind() if bound (inside this call); after it returns no callback
 * of the registration runs, except the got() that called it, which may
 * finish.
 *
 * Return: 0, -EINVAL if @uid is not registered through this API (or is
 * being unregistered), -EDEADLK (see the project's isc_unregister(); the
 * registration stays).
 */
int isc_compat_unregister(u32 uid)
{
	struct isc_compat *c;
	int ret;

	mutex_lock(&compat_lock);
	c = compat_find(uid);
	if (!c || c->state != COMPAT_REGISTERED) {
		mutex_unlock(&compat_lock);
		return -EINVAL;
	}
	c->state = COMPAT_UNREGISTERING;
	mutex_unlock(&compat_lock);

	ret = isc_unregister(uid);
	if (ret == -EDEADLK) {
		mutex_lock(&compat_lock);
		c->state = COMPAT_REGISTERED;
		mutex_unlock(&compat_lock);
		return ret;
	}
	/* 0, or -ENOENT if the core's module backstop removed it already. */
	mutex_lock(&compat_lock);
	list_del(&c->node);
	mutex_unlock(&compat_lock);
	kfree(c);
	return 0;
}
EXPORT_SYMBOL_GPL(isc_compat_unregister);

/**
 * isc_compat_post() - isc_post() with the original's error codes
 * @isc: channel handle
 * @msg: message bytes
 * @len: message length
 *
 * Return: as the project's isc_post(), with -EINVAL for a message longer
 * than the user's message size (-EMSGSIZE there).
 */
int isc_compat_post(struct isc_handle *isc, const void *msg, u32 len)
{
	int ret = isc_post(isc, msg, len);

	return ret == -EMSGSIZE ? -EINVAL : ret;
}
EXPORT_SYMBOL_GPL(isc_compat_post);

/*
 * A module going with compat registrations left (its exit forgot them, or
 * its init failed): free the shims. This runs after the core's own module
 * backstop (lower priority), which has already removed every registration
 * of the module without calling into it, so no callback runs and the UIDs
 * are not touched again (another module may have registered them since).
 */
static int compat_module_notify(struct notifier_block *nb, unsigned long state, void *data)
{
	struct module *mod = data;
	struct isc_compat *c, *found;

	if (state != MODULE_STATE_GOING)
		return NOTIFY_DONE;
	for (;;) {
		found = NULL;
		mutex_lock(&compat_lock);
		list_for_each_entry(c, &compat_list, node) {
			if (c->owner == mod && c->state == COMPAT_REGISTERED) {
				list_del(&c->node);
				found = c;
				break;
			}
		}
		mutex_unlock(&compat_lock);
		if (!found)
			break;
		pr_warn("module %s left uid %08x registered (compat API); removed\n",
			mod->name, found->uid);
		kfree(found);
	}
	return NOTIFY_OK;
}

/* After the core's backstop (priority 0), which removes the registrations. */
static struct notifier_block compat_module_nb = {
	.notifier_call = compat_module_notify,
	.priority = -1,
};

int isc_compat_init(void)
{
	return register_module_notifier(&compat_module_nb);
}

void isc_compat_exit(void)
{
	unregister_module_notifier(&compat_module_nb);
}
