/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * The sample protocol, shared by the sample application and the sample
 * drivers: 12-byte messages in host byte order.
 *
 * SAMPLE_MSG_WRITE_REG {id, reg.offset, reg.value}: the driver stores
 *	reg.value in register reg.offset; the reply is the request, rc 0.
 * SAMPLE_MSG_READ_REG {id, reg.offset, -}: the driver fills reg.value,
 *	rc 0.
 * SAMPLE_MSG_IRQ_STAT {id, irq.id, irq.stat}: posted by the driver while
 *	bound, irq.stat growing by one per post.
 * An unknown id or a short message: rc -EINVAL, message unchanged.
 */
#ifndef _UAPI_LINUX_SAMPLE_H_
#define _UAPI_LINUX_SAMPLE_H_

#include <linux/types.h>
#include "isc_uid_uapi.h"

/* UID of sample channel n (a digit): SAMPLE_UID(0) is "sam0". */
#define SAMPLE_UID(n) isc_fourcc('s', 'a', 'm', (n) + '0')

#define SAMPLE_MSG_READ_REG	0x001
#define SAMPLE_MSG_WRITE_REG	0x002
#define SAMPLE_MSG_IRQ_STAT	0x100

struct sample_msg {
	__u32 id;
	union {
		struct {
			__u32 offset;
			__u32 value;
		} reg;
		struct {
			__u32 id;
			__u32 stat;
		} irq;
	};
};

#endif /* _UAPI_LINUX_SAMPLE_H_ */
