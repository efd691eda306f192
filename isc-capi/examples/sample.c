// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * The ISC sample in C: talks the sample protocol to the driver of
 * SAMPLE_UID(unit) through libisc. Writes 32 registers with pseudo-random
 * values, reads each back and compares, prints the driver's irq status
 * posts as they arrive, and ends with a summary line.
 *
 *	sample [irqs [unit]]
 *
 * waits for up to `irqs` irq posts (default 5, at most 10 s) before
 * closing; unit is the digit of the UID (default 0: "sam0"). Exit status
 * 0 when every register read back what was written and the irq posts came.
 *
 * Build: cc -Wall -Werror sample.c $(pkg-config --cflags --libs isc)
 * (it is also valid C++: c++ -x c++ ... builds it the same way).
 * Run: against /dev/isc with isc_sample.ko loaded, or with ISC_TRANSPORT=sim
 * against `isc-sim-server <socket> sam0=sample` (ISC_SIM_SOCKET=<socket>).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <isc.h>
#include "sample_uapi.h"

#define REGISTERS 32

/* Counted by the listener, read by main. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t more_irqs = PTHREAD_COND_INITIALIZER;
static unsigned int irqs;

static void on_bound(void *arg)
{
	(void)arg;
	printf("bound to %s\n", (const char *)arg);
}

static void on_unbind(void *arg)
{
	printf("%s unbound\n", (const char *)arg);
}

static int32_t on_got(void *msg, uint32_t len, void *arg)
{
	struct sample_msg m;

	(void)arg;
	if (len < sizeof(m))
		return -EINVAL;
	memcpy(&m, msg, sizeof(m));
	if (m.id != SAMPLE_MSG_IRQ_STAT)
		return -EINVAL;
	printf("irq %u status %u\n", m.irq.id, m.irq.stat);
	pthread_mutex_lock(&lock);
	irqs++;
	pthread_cond_signal(&more_irqs);
	pthread_mutex_unlock(&lock);
	return 0;
}

static const struct isc_listener_ops listener = {
	.bound = on_bound,
	.unbind = on_unbind,
	.got = on_got,
};

/* One call; returns 0 when both the library and the driver succeeded. */
static int call(struct isc_handle *isc, struct sample_msg *m)
{
	int32_t result;

	if (isc->send(isc, m, sizeof(*m), &result) < 0) {
		fprintf(stderr, "send: %s\n", strerror(errno));
		return -1;
	}
	if (result < 0) {
		fprintf(stderr, "driver: %s\n", strerror(-result));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	unsigned int want = argc > 1 ? (unsigned int)strtoul(argv[1], NULL, 0) : 5;
	unsigned int unit = argc > 2 ? (unsigned int)strtoul(argv[2], NULL, 0) : 0;
	struct isc_attr sizes = { sizeof(struct sample_msg), 16 };
	struct isc_attr posts = { sizeof(struct sample_msg), 64 };
	static char name[] = "sam0";
	uint32_t values[REGISTERS], x = (uint32_t)time(NULL) | 1;
	struct isc_handle *isc;
	unsigned int mismatches = 0, seen;
	struct timespec until;
	int ok;

	if (unit > 9) {
		fprintf(stderr, "usage: %s [irqs [unit]]: unit is a digit\n", argv[0]);
		return 2;
	}
	name[3] = (char)('0' + unit);
	if (open_isc(SAMPLE_UID(unit), &sizes, &posts, &isc) < 0) {
		fprintf(stderr, "open_isc(%s): %s\n", name, strerror(errno));
		return 1;
	}
	if (isc->add_listener(isc, &listener, name) < 0) {
		fprintf(stderr, "add_listener: %s\n", strerror(errno));
		isc->close(isc);
		return 1;
	}
	for (int i = 0; i < REGISTERS; i++) {
		struct sample_msg m;

		memset(&m, 0, sizeof(m));
		m.id = SAMPLE_MSG_WRITE_REG;
		/* xorshift32 */
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		values[i] = x;
		m.reg.offset = (uint32_t)i;
		m.reg.value = x;
		if (call(isc, &m) < 0)
			goto fail;
	}
	for (int i = 0; i < REGISTERS; i++) {
		struct sample_msg m;

		memset(&m, 0, sizeof(m));
		m.id = SAMPLE_MSG_READ_REG;
		m.reg.offset = (uint32_t)i;
		if (call(isc, &m) < 0)
			goto fail;
		if (m.reg.value != values[i]) {
			fprintf(stderr, "register %d: wrote %#010x, read %#010x\n", i,
				values[i], m.reg.value);
			mismatches++;
		}
	}

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&lock);
	while (irqs < want && pthread_cond_timedwait(&more_irqs, &lock, &until) == 0)
		;
	seen = irqs;
	pthread_mutex_unlock(&lock);

	isc->rm_listener(isc, &listener, name);
	isc->close(isc);
	ok = mismatches == 0 && seen >= want;
	printf("%s: %d registers written and read back, %u mismatches, %u irq posts\n",
	       ok ? "OK" : "FAILED", REGISTERS, mismatches, seen);
	return ok ? 0 : 1;

fail:
	isc->close(isc);
	printf("FAILED\n");
	return 1;
}
