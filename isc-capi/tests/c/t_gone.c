// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * The transport goes away under an open handle (the simulated host shuts
 * down between "ready" and the line on stdin): calls fail, with EBADF once
 * the library has noticed (ENOTCONN before, when the host's unbinding came
 * first), nothing hangs, close releases everything.
 */
#include "ctest.h"

#define UID isc_fourcc('g', 'o', 'n', '0')

static atomic_int unbinds;

static void on_unbind(void *arg)
{
	(void)arg;
	atomic_fetch_add(&unbinds, 1);
}

static const struct isc_listener_ops ops = { .unbind = on_unbind };

int main(void)
{
	struct isc_attr a = { 16, 4 };
	struct isc_handle *isc;
	uint8_t msg[3] = { 'a', 'b', 'c' };
	int32_t result = 0;
	char line[16];

	CHECK_OK(open_isc(UID, &a, &a, &isc));
	CHECK_OK(isc->add_listener(isc, &ops, NULL));
	/* The echo driver answers rc = the message's length. */
	CHECK_OK(isc->send(isc, msg, 3, &result));
	/* rc != 0: the reply is not copied back. */
	CHECK(result == 3 && msg[0] == 'a');
	printf("ready\n");
	fflush(stdout);
	CHECK(fgets(line, sizeof(line), stdin) != NULL);

	double end = now_s() + WAIT_S;
	int rc;
	for (;;) {
		errno = 0;
		rc = isc->send(isc, msg, 3, &result);
		CHECK(rc == -1);
		if (errno == EBADF || now_s() > end)
			break;
		CHECK(errno == ENOTCONN);
		sleep_ms(5);
	}
	CHECK(errno == EBADF);
	isc->close(isc);
	printf("PASS (%d unbind callbacks)\n", atomic_load(&unbinds));
	return 0;
}
