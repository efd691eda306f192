/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ISC: the kernel API for drivers that talk to a user application over a
 * /dev/isc channel. docs/driver-guide.md walks through it with the sample
 * driver (driver/sample/isc_sample.c).
 *
 * A driver registers a UID with three callbacks. When a user process binds a
 * /dev/isc fd to the same UID (either side may come first), the channel is
 * bound: the driver's bound() receives the channel handle, the user receives
 * a BOUND control message. User messages then reach got(); the driver posts
 * messages to the user with isc_post().
 *
 * Module lifetime: isc_register() is a macro that records the calling module
 * (THIS_MODULE). ISC holds a reference on that module around every callback
 * it makes (one reference for a whole drain of several messages), so the
 * module cannot be removed while one of its callbacks runs, whatever the
 * callback does (unregistering its own UID included): rmmod fails with
 * "in use". No reference is held between callbacks: unregistering in
 * module_exit works, and rmmod of a driver with a bound user succeeds (the
 * user is told UNBOUND). While the module is going away (its exit function
 * runs), ISC calls into it only through its own isc_unregister() calls
 * (which still run unbind()): a message that would reach got() completes as
 * not delivered, a new binding gets no bound() (and no unbind()). A
 * registration its module leaves behind is removed when the module goes,
 * with a log line and without calling into it.
 *
 * Ordering, for one binding of a registration to a channel:
 * - bound() returns before the first got() starts (a KICK issued meanwhile
 *   waits for it);
 * - got() calls are serialised, and never overlap bound() or unbind()
 *   (other than the unbind() a got() causes by unregistering its own UID);
 * - every bound() is matched by exactly one unbind(): when the user closes
 *   the fd (or its process dies), or when the driver calls isc_unregister();
 * - after isc_unregister() returns, no callback of that registration runs or
 *   will run, except the got() that called it, which may finish. If got()
 *   unregisters its own UID, unbind() runs inside that isc_unregister() call.
 *
 * Handles: the handle passed to bound() may be used until unbind() returns.
 * A driver that posts from asynchronous contexts (timers, IRQs, workqueues)
 * that may race with unbind() takes its own reference with isc_get() and
 * drops it with isc_put(); a referenced handle stays valid memory, and
 * isc_post() on it returns -ENOTCONN once the channel is no longer bound.
 *
 * Calling isc_register()/isc_unregister() from callbacks:
 * - bound() and unbind() run in process context with the ISC registry lock
 *   held: isc_register() and isc_unregister() called from them return
 *   -EDEADLK and do nothing. They should not block for long.
 * - got() runs in process context (the thread that issued ISC_IOC_KICK),
 *   holds no ISC lock that isc_register()/isc_unregister() take, and may
 *   sleep. It may register and unregister any UID, its own or another
 *   driver's. isc_unregister() of another driver waits for that driver's
 *   got() in flight; if that got() is itself waiting, directly or through
 *   other isc_unregister() calls, for the caller's got() (two drivers each
 *   unregistering the other at the same moment), the call that would close
 *   the cycle returns -EDEADLK instead and changes nothing.
 * - A got() that sleeps delays only its own channel; a fatal signal to the
 *   KICKing thread stops the drain after the current message.
 *
 * Access: the user's BIND is checked against the access policy the driver
 * declares with isc_register_access(); without one (isc_register()), only
 * CAP_SYS_ADMIN may bind the UID. Binding a UID that no driver has
 * registered needs CAP_SYS_ADMIN too, so that nobody can hold a UID before
 * its driver loads.
 */
#ifndef _LINUX_ISC_H
#define _LINUX_ISC_H

#include <linux/module.h>
#include <linux/types.h>
#include <linux/uidgid.h>
#include "uapi/isc.h"

struct isc_handle;

/**
 * struct isc_access - who may bind a UID
 * @uid:  owner user
 * @gid:  owner group
 * @mode: permission bits as for a file (0660, 0606, ...): the owner class
 *        applies if the binder's effective uid is @uid, else the group class
 *        if its effective gid or a supplementary group is @gid, else the
 *        other class. A class may bind if it has both the read and the
 *        write bit (binding a channel is opening it for reading and writing).
 *
 * CAP_SYS_ADMIN may always bind. Mode 0 means CAP_SYS_ADMIN only, the
 * default of isc_register(). The policy is checked at BIND, and again
 * against the binder's credentials of that BIND when a driver registers a
 * UID a user already holds: a binding the new policy refuses is not made
 * (the user stays unbound until the UID is registered again or closed).
 */
struct isc_access {
	kuid_t uid;
	kgid_t gid;
	umode_t mode;
};

/**
 * struct isc_ops - callbacks of a driver registered with isc_register()
 * @bound:  the channel became bound; @h is its handle (see the lifetime
 *          rules above). Process context. May call isc_post().
 * @unbind: the channel is no longer bound (user closed, or the driver
 *          unregistered). Process context. After it returns, the handle
 *          from bound() must not be used without a reference of its own.
 * @got:    a user message: @msg is a bounce buffer of @msz bytes holding
 *          *@len bytes of message. Write the reply in place and set *@len
 *          to its length (larger than @msz is clamped and counted). The
 *          return value is the result code the user receives. Process
 *          context, may sleep. Calls on one channel are serialised.
 *          Required.
 */
struct isc_ops {
	void (*bound)(void *arg, struct isc_handle *h);
	void (*unbind)(void *arg);
	int (*got)(void *arg, void *msg, u32 *len, u32 msz);
};

/**
 * isc_register() - register a driver for @uid (a macro: records THIS_MODULE)
 * @uid: channel UID (little-endian fourcc)
 * @ops: callbacks; must outlive the registration. @got is required;
 *       @bound and @unbind may be NULL.
 * @arg: passed to every callback
 *
 * If a user has already bound @uid, bound() is called before this returns.
 * Only CAP_SYS_ADMIN may bind @uid (see isc_register_access()). Process
 * context; not from bound() or unbind().
 *
 * Return: 0, -EEXIST if @uid is registered, -EINVAL if @ops or @ops->got is
 * NULL, -ENOMEM, -EDEADLK if called from bound() or unbind().
 */
#define isc_register(uid, ops, arg) __isc_register((uid), (ops), (arg), THIS_MODULE)

/**
 * isc_register_access() - isc_register() with an access policy for @uid
 * @uid:    channel UID
 * @ops:    callbacks, as for isc_register()
 * @arg:    passed to every callback
 * @access: who may bind @uid; copied, need not outlive the call. NULL is
 *          the default of isc_register(): CAP_SYS_ADMIN only.
 *
 * Return: as isc_register().
 */
#define isc_register_access(uid, ops, arg, access) \
	__isc_register_access((uid), (ops), (arg), (access), THIS_MODULE)

/* The functions behind the macros; @owner is the module holding the callbacks. */
int __isc_register(u32 uid, const struct isc_ops *ops, void *arg, struct module *owner);
int __isc_register_access(u32 uid, const struct isc_ops *ops, void *arg,
			  const struct isc_access *access, struct module *owner);

/**
 * isc_unregister() - remove the driver registered for @uid
 * @uid: channel UID
 *
 * Stops new got() calls, waits for the one in flight (unless the caller is
 * that got()), calls unbind() if the channel was bound, and queues an
 * UNBOUND control message to the user; messages the user sends afterwards
 * complete as not delivered (-ENODEV). Process context; not from bound() or
 * unbind().
 *
 * Return: 0; -ENOENT if @uid is not registered (or is being unregistered);
 * -EDEADLK, and nothing changed, if called from bound() or unbind(), or if
 * the call would wait for a got() that waits for the caller (see "Calling
 * isc_register()/isc_unregister() from callbacks" above).
 */
int isc_unregister(u32 uid);

/**
 * isc_post() - post a message to the user
 * @h:   channel handle
 * @msg: message bytes
 * @len: message length, at most the channel's k2u msz
 *
 * Any context (process, softirq, hard IRQ); never sleeps or blocks.
 *
 * Return: 0, -EAGAIN if the k2u ring is full (the message is dropped and
 * counted), -EMSGSIZE if @len exceeds msz, -ENOTCONN if the channel is not
 * bound, -EIO if the user corrupted the ring.
 */
int isc_post(struct isc_handle *h, const void *msg, u32 len);

/**
 * isc_get() - take a reference on a channel handle
 * @h: handle (NULL is allowed and returned as is)
 *
 * Return: @h.
 */
struct isc_handle *isc_get(struct isc_handle *h);

/**
 * isc_put() - drop a reference taken with isc_get()
 * @h: handle (NULL is allowed)
 *
 * Any context.
 */
void isc_put(struct isc_handle *h);

#endif /* _LINUX_ISC_H */
