/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * libisc: messaging between an application and a kernel driver over
 * shared memory, source-compatible with the original ISC library.
 *
 * An application opens a channel to the driver registered under a 32-bit
 * UID (see isc_fourcc() in <isc_uid_uapi.h>), sends it messages that the
 * driver answers synchronously and in place, and receives the driver's
 * posts through listeners called on the channel's callback thread.
 *
 * Return convention: every int function returns 0 on success and -1 on
 * failure with errno set; nothing is printed. The transport is /dev/isc,
 * or the one named by the environment variable ISC_TRANSPORT ("dev", or
 * "sim" for a simulated host serving the socket named by ISC_SIM_SOCKET).
 * Link with -lisc. Extensions live in <isc_ext.h>.
 */
#ifndef _ISC_H_
#define _ISC_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct isc_handle;

/*
 * Callbacks of a listener; any may be NULL, not all three. They run on the
 * channel's callback thread (bound also on the thread calling
 * add_listener), one event at a time, with no library lock held: they may
 * call send, add_listener, rm_listener and close on the handle.
 *
 * bound(arg):  a driver is bound to the channel; called synchronously by
 *              add_listener when it already is. bound and unbind alternate
 *              per listener, starting with bound.
 * unbind(arg): the driver went away; send fails with ENOTCONN until the
 *              next bound. Not called when the application closes.
 * got(msg, len, arg): the driver posted len bytes (len <= the receive
 *              msz). msg is the library's writable copy, valid during the
 *              call only, never NULL (also when len is 0). With several
 *              listeners the first non-zero return value is kept.
 */
struct isc_listener_ops {
	void    (*bound)(void *arg);
	void    (*unbind)(void *arg);
	int32_t (*got)(void *msg, uint32_t len, void *arg);
};

/*
 * An open channel, allocated by open_isc. Call through its members, e.g.
 * isc->send(isc, msg, len, &result). The library keeps private state after
 * these four members: never copy or allocate this structure yourself.
 */
struct isc_handle {
	/*
	 * close(isc): stops the callback thread, unbinds (the driver's unbind
	 * runs), releases everything and frees the handle; listeners are not
	 * called. NULL is ignored. Off the callback thread it waits for a
	 * callback in progress; from a callback it returns at once and no
	 * further callback of this handle runs. The handle must not be used
	 * afterwards.
	 */
	void (*close)(struct isc_handle *isc);
	/*
	 * send(isc, msg, len, result): a synchronous call. The driver handles
	 * the len bytes at msg; on return 0, *result holds its result code (a
	 * negative one is data, not a failure) and, if that code is 0, its
	 * reply is copied back into msg (at most len bytes; bytes beyond a
	 * shorter reply are left unchanged). result may be NULL. Thread-safe;
	 * callable from callbacks. Waits at most 5 s for the driver.
	 * Errors (-1, msg and *result untouched): EINVAL (NULL isc or msg,
	 * len 0, opened without a send direction), EMSGSIZE (len above the
	 * send msz), ENOTCONN (no driver bound), ETIMEDOUT, EIO (ring
	 * corrupted by the peer), EBADF (transport gone).
	 */
	int  (*send)(struct isc_handle *isc, void *msg, uint32_t len, int32_t *result);
	/*
	 * add_listener(isc, ops, arg): registers the listener (ops, arg),
	 * identified by the two pointer values. ops is kept by reference until
	 * rm_listener or close returns. Listeners are called in the order
	 * added; one added from a callback gets later events only. If the
	 * channel is bound, ops->bound(arg) runs before this returns.
	 * Errors: EINVAL (NULL isc or ops, all callbacks NULL), EEXIST (the
	 * pair is registered), ENOMEM.
	 */
	int  (*add_listener)(struct isc_handle *isc, const struct isc_listener_ops *ops, void *arg);
	/*
	 * rm_listener(isc, ops, arg): unregisters the pair. When it returns on
	 * a thread other than the callback thread, no callback of the listener
	 * runs or will run: arg may be freed. From a callback the listener gets
	 * nothing after the current callback returns.
	 * Errors: EINVAL (NULL isc or ops), ENOENT (the pair is not registered).
	 */
	int  (*rm_listener)(struct isc_handle *isc, const struct isc_listener_ops *ops, void *arg);
};

/*
 * Sizes of one direction: msz = payload bytes per message, num = queue
 * depth in messages (rounded up to a power of two).
 */
struct isc_attr {
	uint16_t msz;
	uint16_t num;
};

/*
 * open_isc(uid, s, r, isc): opens a channel to the driver registered under
 * uid, now or later, and stores a new handle in *isc. s sizes the send
 * direction (NULL: every send fails with EINVAL; msz 0: every send fails
 * with EMSGSIZE), r the receive direction (NULL: msz 4, num 8; msz below 4
 * is raised to 4). s and r are read during the call only. If a driver is
 * registered the channel is bound when this returns; otherwise it becomes
 * bound when one registers (listeners get bound). Thread-safe.
 * Errors (-1, *isc untouched): EINVAL (NULL isc, num 0), ENOENT or ENODEV
 * (no /dev/isc or transport), EBUSY (uid already open on another handle),
 * E2BIG (sizes over the limits), or the errno of a failed system call.
 */
int open_isc(uint32_t uid, struct isc_attr *s, struct isc_attr *r, struct isc_handle **isc);

#ifdef __cplusplus
}
#endif

#endif /* _ISC_H_ */
