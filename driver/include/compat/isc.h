/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ISC compatibility header: lets a driver written for the original ISC
 * driver's API build unchanged against this project's isc.ko.
 *
 * Put this directory first on the driver's include path (before the
 * driver's own include directory, which may hold the original isc.h):
 *
 *	ccflags-y := -I<project>/driver/include/compat -I<driver>/include
 *	make ... KBUILD_EXTRA_SYMBOLS=<project>/driver/Module.symvers
 *
 * The callbacks keep the original's shapes; a shim in isc.ko adapts them to
 * the project's API (driver/include/isc.h):
 * - isc_register() captures the calling module (THIS_MODULE): isc.ko holds
 *   a reference on it around every callback, so the module cannot go while
 *   one runs, and removes what it leaves registered when it goes.
 * - bound(isc, arg) runs before the binding's first got(); got(msg, len,
 *   arg) replies in place with the request's length; a NULL got makes
 *   every user call fail with -EPERM.
 * - isc_register(): 0, -EINVAL (NULL ops), -ENOMEM, -EPERM (the UID is
 *   registered already; never replaced). isc_unregister(): 0, -EINVAL
 *   (UID not registered here), -EDEADLK (two got()s unregistering each
 *   other's UIDs; nothing changed). Both return -EDEADLK, doing nothing,
 *   when called from bound() or unbind().
 * - isc_post(): 0, -EINVAL (longer than the user's message size), -EAGAIN
 *   (ring full; no warning), -ENOTCONN (not bound), -EIO (the user
 *   corrupted the ring). Any context, never sleeps.
 * - isc_get() returns the handle (the original returned nothing).
 *
 * Not bridged: bound() and unbind() run with the registry lock held, so
 * they cannot register or unregister (got() may); a driver cannot be
 * removed while a callback runs; exports are GPL-only.
 */
#ifndef _ISC_H_
#define _ISC_H_

#include <linux/module.h>
#include <linux/types.h>

struct isc_handle;

struct isc_notifier_ops {
	void (*bound)(struct isc_handle *isc, void *arg);
	void (*unbind)(void *arg);
	s32  (*got)(void *msg, u32 len, void *arg);
};

int isc_compat_register(u32 uid, const struct isc_notifier_ops *ops, void *arg,
			struct module *owner);
int isc_compat_unregister(u32 uid);
int isc_compat_post(struct isc_handle *isc, const void *msg, u32 len);
struct isc_handle *isc_get(struct isc_handle *h);
void isc_put(struct isc_handle *h);

/*
 * The original's names. Not defined when the project's own header is
 * included first (the shim in isc.ko, which calls the project's API).
 */
#ifndef _LINUX_ISC_H
#define isc_register(uid, ops, arg) isc_compat_register((uid), (ops), (arg), THIS_MODULE)
#define isc_unregister(uid) isc_compat_unregister(uid)
#define isc_post(isc, msg, len) isc_compat_post((isc), (msg), (len))
#endif

#endif /* _ISC_H_ */
