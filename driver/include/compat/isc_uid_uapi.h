/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * ISC channel UIDs, shared by applications and drivers.
 *
 * A UID is a 32-bit number, usually four ASCII characters read as a
 * little-endian u32: isc_fourcc('s', 'a', 'm', '0') is "sam0", 0x306d6173.
 * The first character is the least significant byte. Each argument is
 * evaluated once, and constant arguments give a constant expression.
 * Use ASCII characters: a byte >= 0x80 passed as a signed char
 * sign-extends into the higher bytes.
 */
#ifndef _UAPI_LINUX_ISC_UID_H_
#define _UAPI_LINUX_ISC_UID_H_

#include <linux/types.h>

#define isc_fourcc(a, b, c, d) \
	((__u32)(a) | ((__u32)(b) << 8) | ((__u32)(c) << 16) | ((__u32)(d) << 24))

#endif /* _UAPI_LINUX_ISC_UID_H_ */
