/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ISC: the kernel API for drivers that talk to a user application over a
 * /dev/isc channel.
 *
 * A driver registers a UID with three callbacks. When a user process binds a
 * /dev/isc fd to the same UID (either side may come first), the channel is
 * bound: the driver's bound() receives the channel handle, the user receives
 * a BOUND control message. User messages then reach got(); the driver posts
 * messages to the user with isc_post().
 *
 * Lifetime rules:
 * - Every bound() is matched by exactly one unbind(): when the user closes
 *   the fd (or its process dies), or when the driver calls isc_unregister().
 * - The handle passed to bound() may be used until unbind() returns. A
 *   driver that posts from asynchronous contexts (timers, IRQs, workqueues)
 *   that may race with unbind() takes its own reference with isc_get() and
 *   drops it with isc_put(); a referenced handle stays valid memory, and
 *   isc_post() on it returns -ENOTCONN once the channel is no longer bound.
 * - bound() and unbind() run in process context with the ISC registry lock
 *   held: they must not call isc_register() or isc_unregister().
 * - got() runs in process context (the thread that issued ISC_IOC_KICK) and
 *   may sleep. It may register and unregister UIDs, its own included: then
 *   unbind() runs before isc_unregister() returns, inside that got() call,
 *   and later messages complete as not delivered.
 */
#ifndef _LINUX_ISC_H
#define _LINUX_ISC_H

#include <linux/types.h>
#include "uapi/isc.h"

struct isc_handle;

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
 */
struct isc_ops {
	void (*bound)(void *arg, struct isc_handle *h);
	void (*unbind)(void *arg);
	int (*got)(void *arg, void *msg, u32 *len, u32 msz);
};

/**
 * isc_register() - register a driver for @uid
 * @uid: channel UID (little-endian fourcc)
 * @ops: callbacks; must outlive the registration (@got may be NULL: user
 *       messages then complete with rc 0 and an empty reply)
 * @arg: passed to every callback
 *
 * If a user has already bound @uid, bound() is called before this returns.
 * Process context.
 *
 * Return: 0, -EEXIST if @uid is registered, -EINVAL if @ops is NULL,
 * -ENOMEM.
 */
int isc_register(u32 uid, const struct isc_ops *ops, void *arg);

/**
 * isc_unregister() - remove the driver registered for @uid
 * @uid: channel UID
 *
 * Waits for in-flight got() calls, calls unbind() if the channel was bound,
 * and queues an UNBOUND control message to the user. Process context.
 *
 * Return: 0, or -ENOENT if @uid is not registered.
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
