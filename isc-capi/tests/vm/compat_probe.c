// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * The kernel compat layer seen from a user (in the VM, with
 * isc_compat_drv.ko loaded): on SAMPLE_UID(unit) (default 2) the driver
 * registered without got() and, when bound, posted a message longer than
 * our receive size, then a report of what isc_post() returned. Checks:
 * that code is -EINVAL (the original's, -EMSGSIZE in the project's API);
 * our call completes with the driver result -EPERM (no got()).
 *
 *	compat_probe [unit]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <isc.h>
#include <isc_ext.h>
#include "sample_uapi.h"

static int failures;

#define EXPECT(cond)                                                  \
	do {                                                          \
		if (cond) {                                           \
			printf("ok   %s\n", #cond);                   \
		} else {                                              \
			printf("FAIL %s (line %d)\n", #cond, __LINE__); \
			failures++;                                   \
		}                                                     \
	} while (0)

int main(int argc, char **argv)
{
	unsigned int unit = argc > 1 ? (unsigned int)strtoul(argv[1], NULL, 0) : 2;
	struct isc_attr s = { sizeof(struct sample_msg), 4 };
	struct isc_attr r = { sizeof(struct sample_msg), 8 };
	struct isc_handle *isc;
	struct isc_event ev;
	struct sample_msg m;
	int32_t result = 0;
	int rc;

	/* Pull mode: the posts made during the binding wait for us. */
	rc = isc_open(SAMPLE_UID(unit), &s, &r, ISC_OPEN_PULL, &isc);
	if (rc < 0) {
		printf("FAIL isc_open: %s\n", strerror(-rc));
		return 1;
	}
	EXPECT(isc_recv(isc, &ev, NULL, 0, 10000) == 0 && ev.type == ISC_EVENT_BOUND);
	memset(&m, 0, sizeof(m));
	rc = isc_recv(isc, &ev, &m, sizeof(m), 10000);
	EXPECT(rc == 0 && ev.type == ISC_EVENT_MESSAGE && ev.len == sizeof(m));
	EXPECT(m.id == SAMPLE_MSG_IRQ_STAT && m.irq.id == 0xc0);
	printf("isc_post of an oversized message returned %d\n", -(int)m.irq.stat);
	EXPECT(m.irq.stat == EINVAL);
	/* The oversized post itself never arrived. */
	EXPECT(isc_recv(isc, &ev, &m, sizeof(m), 0) == -EAGAIN);

	memset(&m, 0, sizeof(m));
	m.id = SAMPLE_MSG_READ_REG;
	EXPECT(isc->send(isc, &m, sizeof(m), &result) == 0);
	printf("call to a driver without got(): result %d\n", result);
	EXPECT(result == -EPERM);
	isc->close(isc);
	printf("%s: %d failures\n", failures ? "FAILED" : "OK", failures);
	return failures ? 1 : 0;
}
