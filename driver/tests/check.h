/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What every C test of /dev/isc shares: the device path, UIDs from four
 * characters, and the "ok <name>" / "FAIL <name>: <detail>" lines the VM
 * report counts. Each test is one .c file including this header.
 */
#ifndef ISC_TESTS_CHECK_H
#define ISC_TESTS_CHECK_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define DEV "/dev/isc"
#define UID(s) ((uint32_t)(s)[0] | (uint32_t)(s)[1] << 8 | (uint32_t)(s)[2] << 16 | (uint32_t)(s)[3] << 24)

static int n_ok, n_fail;

/* One line per check; flushed, so that a crash right after keeps it. */
static inline void check(int cond, const char *name, const char *fmt, ...)
{
	va_list ap;

	if (cond) {
		printf("ok %s\n", name);
		n_ok++;
	} else {
		printf("FAIL %s: ", name);
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		printf("\n");
		n_fail++;
	}
	fflush(stdout);
}

/* Expects a call that returned @ret to have failed with errno @want. */
static inline void check_errno(long ret, int want, const char *name)
{
	int e = errno;

	check(ret == -1 && e == want, name, "got ret %ld errno %d (%s), want errno %d (%s)",
	      ret, ret == -1 ? e : 0, ret == -1 ? strerror(e) : "-", want, strerror(want));
}

static inline void msleep(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Monotonic seconds. */
static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
