/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * libisc extensions: functions the original ISC library did not have.
 * Kept apart from <isc.h> so that header stays exactly the original's.
 *
 * Unlike <isc.h>, every int function here returns a negative errno on
 * failure (0 or a non-negative value on success) and leaves errno alone.
 */
#ifndef _ISC_EXT_H_
#define _ISC_EXT_H_

#include <stdint.h>
#include "isc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* isc_open flags. */
/*
 * No callback thread: events are not dispatched to listeners but queued
 * for isc_recv, and isc_fd tells when one arrives. add_listener fails
 * with EINVAL on such a handle.
 */
#define ISC_OPEN_PULL 0x1u

/*
 * isc_abi_version(): the version of the shared-memory ABI this library
 * speaks (the kernel module refuses other versions).
 */
uint32_t isc_abi_version(void);

/*
 * isc_open(uid, s, r, flags, isc): open_isc with const sizes, flags
 * (0 or ISC_OPEN_PULL) and the error returned instead of stored in errno.
 * Returns 0 and stores the handle in *isc, or a negative errno (the same
 * codes as open_isc; -EINVAL also for unknown flags) and leaves *isc
 * alone. Close the handle with isc->close(isc).
 */
int isc_open(uint32_t uid, const struct isc_attr *s, const struct isc_attr *r,
	     uint32_t flags, struct isc_handle **isc);

/*
 * isc_call(isc, req, len, reply, cap, result, reply_len): a synchronous
 * call like isc->send that returns the reply separately, whatever the
 * driver's result code. Sends the len bytes at req; on success stores the
 * driver's result code in *result, copies at most cap bytes of its reply
 * to reply and stores the reply's full length in *reply_len (larger than
 * cap if the reply was cut). reply may be req. result and reply_len may be
 * NULL; reply may be NULL if cap is 0.
 * Returns 0, or a negative errno: -EINVAL (NULL isc or req, len 0, NULL
 * reply with cap > 0, no send direction), -EMSGSIZE, -ENOTCONN,
 * -ETIMEDOUT, -EIO, -EBADF, as isc->send.
 */
int isc_call(struct isc_handle *isc, const void *req, uint32_t len, void *reply,
	     uint32_t cap, int32_t *result, uint32_t *reply_len);

/*
 * isc_fd(isc): the channel's file descriptor for poll/epoll (the /dev/isc
 * fd, or an eventfd on the simulated transport), owned by the handle and
 * valid until close: do not close it. Meant for handles opened with
 * ISC_OPEN_PULL: once isc_recv with timeout 0 has returned -EAGAIN, the
 * fd becomes readable when the next event arrives (it may also wake
 * spuriously); then call isc_recv until -EAGAIN again. On a handle with a
 * callback thread, that thread consumes the events.
 * Returns the fd, or -EINVAL (NULL isc), -EBADF.
 */
int isc_fd(struct isc_handle *isc);

/* isc_event types. */
#define ISC_EVENT_BOUND   1u /* a driver bound the channel */
#define ISC_EVENT_UNBOUND 2u /* the driver went away */
#define ISC_EVENT_MESSAGE 3u /* the driver posted a message */

/* An event returned by isc_recv. */
struct isc_event {
	uint32_t type; /* ISC_EVENT_* */
	uint32_t len;  /* ISC_EVENT_MESSAGE: the message's length, else 0 */
};

/*
 * isc_recv(isc, ev, buf, cap, timeout_ms): takes the next event of a
 * handle opened with ISC_OPEN_PULL, waiting up to timeout_ms milliseconds
 * (0: do not wait; negative: wait until one arrives). Stores it in *ev and
 * copies at most cap bytes of a message to buf (ev->len is the full
 * length). A BOUND event is queued whenever a binding forms, including the
 * one existing when the channel was opened.
 * Returns 0, or -EAGAIN (no event within the time), -EINVAL (NULL isc or
 * ev, NULL buf with cap > 0, a handle with a callback thread), -EIO,
 * -EBADF.
 */
int isc_recv(struct isc_handle *isc, struct isc_event *ev, void *buf, uint32_t cap,
	     int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* _ISC_EXT_H_ */
