// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * open_isc: every argument rule and error of the C API document, binding
 * before and after the driver registers, and open/close cycles (leaks are
 * the sanitizers' business).
 */
#include "ctest.h"

#define UID_A isc_fourcc('o', 'p', 'n', 'a')
#define UID_B isc_fourcc('o', 'p', 'n', 'b')

/* A function pointer of the original's type still takes open_isc. */
static int (*const original_open)(uint32_t, struct isc_attr *, struct isc_attr *,
				  struct isc_handle **) = open_isc;

static atomic_int bound_calls, unbind_calls;
static atomic_uint got_len;

static void on_bound(void *arg)
{
	(void)arg;
	atomic_fetch_add(&bound_calls, 1);
}

static void on_unbind(void *arg)
{
	(void)arg;
	atomic_fetch_add(&unbind_calls, 1);
}

static int32_t on_got(void *msg, uint32_t len, void *arg)
{
	(void)msg;
	(void)arg;
	atomic_store(&got_len, len);
	return 0;
}

static const struct isc_listener_ops ops = {
	.bound = on_bound,
	.unbind = on_unbind,
	.got = on_got,
};

static void argument_errors(void)
{
	struct isc_attr good = { 16, 4 }, zero_num = { 16, 0 }, huge = { 65535, 65535 };
	struct isc_handle *sentinel = (struct isc_handle *)&good;
	struct isc_handle *isc = sentinel;

	CHECK_ERR(open_isc(UID_A, &good, &good, NULL), EINVAL);
	CHECK_ERR(open_isc(UID_A, &zero_num, &good, &isc), EINVAL);
	CHECK_ERR(open_isc(UID_A, &good, &zero_num, &isc), EINVAL);
	/* 65535 slots of 64 KiB: over the 16 MiB ring limit. */
	CHECK_ERR(open_isc(UID_A, &huge, &good, &isc), E2BIG);
	CHECK_ERR(open_isc(UID_A, &good, &huge, &isc), E2BIG);
	/* *isc is left alone on failure. */
	CHECK(isc == sentinel);

	/* The UID is open on another handle. */
	struct isc_handle *first;
	CHECK_OK(open_isc(UID_A, &good, &good, &first));
	CHECK_ERR(original_open(UID_A, &good, &good, &isc), EBUSY);
	CHECK(isc == sentinel);
	first->close(first);
	/* Closing frees the UID. */
	CHECK_OK(open_again(UID_A, &good, &good, &isc));
	isc->close(isc);
}

static void transport_errors(void)
{
	struct isc_attr a = { 16, 4 };
	struct isc_handle *isc = NULL;
	char *saved = strdup(getenv("ISC_SIM_SOCKET"));

	CHECK(saved);
	setenv("ISC_SIM_SOCKET", "/nonexistent/isc.sock", 1);
	CHECK_ERR(open_isc(UID_A, &a, &a, &isc), ENOENT);
	setenv("ISC_SIM_SOCKET", saved, 1);
	setenv("ISC_TRANSPORT", "carrier-pigeon", 1);
	CHECK_ERR(open_isc(UID_A, &a, &a, &isc), ENOENT);
	setenv("ISC_TRANSPORT", "sim", 1);
	CHECK(isc == NULL);
	free(saved);
}

/* Opened before the driver registers: send fails with ENOTCONN, then the
 * listener is told bound when the driver arrives, unbind when it goes. */
static void bind_later(void)
{
	struct isc_attr a = { 16, 4 };
	struct isc_handle *isc;
	struct drv_call m = { 0 };
	int32_t result = 77;

	CHECK_OK(open_again(UID_B, &a, &a, &isc));
	CHECK_ERR(isc->send(isc, &m, 16, &result), ENOTCONN);
	CHECK(result == 77);
	atomic_store(&bound_calls, 0);
	atomic_store(&unbind_calls, 0);
	CHECK_OK(isc->add_listener(isc, &ops, NULL));
	CHECK(atomic_load(&bound_calls) == 0);

	drv_register(UID_B);
	WAIT_FOR(atomic_load(&bound_calls) == 1);
	CHECK_OK(isc->send(isc, &m, 16, &result));
	CHECK(result == 0);
	drv_unregister(UID_B);
	WAIT_FOR(atomic_load(&unbind_calls) == 1);
	CHECK_ERR(isc->send(isc, &m, 16, &result), ENOTCONN);
	/* And again. */
	drv_register(UID_B);
	WAIT_FOR(atomic_load(&bound_calls) == 2);
	CHECK_OK(isc->send(isc, &m, 16, &result));
	CHECK(atomic_load(&unbind_calls) == 1);
	CHECK_OK(isc->rm_listener(isc, &ops, NULL));
	isc->close(isc);
	drv_unregister(UID_B);
}

/* Driver first: bound when open_isc returns; add_listener reports it
 * synchronously, and the queued BOUND is not reported a second time. */
static void bound_at_open(void)
{
	struct isc_attr a = { 16, 4 };
	struct isc_handle *isc;
	struct drv_call m = { 0 };
	int32_t result = 77;
	uint32_t b, u;

	drv_register(UID_B);
	CHECK_OK(open_again(UID_B, &a, &a, &isc));
	CHECK_OK(isc->send(isc, &m, 16, &result));
	CHECK(result == 0);
	atomic_store(&bound_calls, 0);
	CHECK_OK(isc->add_listener(isc, &ops, NULL));
	CHECK(atomic_load(&bound_calls) == 1);
	/* Let the queued BOUND go through the dispatcher. */
	drv_post_all(UID_B, 1, 8);
	WAIT_FOR(atomic_load(&got_len) == 8);
	CHECK(atomic_load(&bound_calls) == 1);
	/* A local close calls no listener, and the driver's unbind runs. */
	atomic_store(&unbind_calls, 0);
	isc->close(isc);
	WAIT_FOR((drv_stats(UID_B, &b, &u), u == 1));
	CHECK(b == 1);
	CHECK(atomic_load(&unbind_calls) == 0);
	drv_unregister(UID_B);
}

/* s == NULL: no send direction; s->msz == 0: every send is too long;
 * r == NULL or r->msz < 4: notifications and 4-byte posts still arrive. */
static void direction_rules(void)
{
	struct isc_attr s0 = { 0, 4 }, r1 = { 1, 2 };
	struct isc_handle *isc;
	uint8_t buf[8] = { 0 };
	int32_t result = 5;

	drv_register(UID_B);
	CHECK_OK(open_again(UID_B, NULL, NULL, &isc));
	CHECK_ERR(isc->send(isc, buf, 1, &result), EINVAL);
	atomic_store(&bound_calls, 0);
	atomic_store(&unbind_calls, 0);
	CHECK_OK(isc->add_listener(isc, &ops, NULL));
	CHECK(atomic_load(&bound_calls) == 1);
	atomic_store(&got_len, 0);
	drv_post_all(UID_B, 1, 4);
	WAIT_FOR(atomic_load(&got_len) == 4);
	drv_unregister(UID_B);
	WAIT_FOR(atomic_load(&unbind_calls) == 1);
	isc->close(isc);

	drv_register(UID_B);
	CHECK_OK(open_again(UID_B, &s0, &r1, &isc));
	CHECK_ERR(isc->send(isc, buf, 1, &result), EMSGSIZE);
	CHECK(result == 5);
	CHECK_OK(isc->add_listener(isc, &ops, NULL));
	atomic_store(&got_len, 0);
	drv_post_all(UID_B, 1, 4);
	WAIT_FOR(atomic_load(&got_len) == 4);
	isc->close(isc);
	drv_unregister(UID_B);
}

static void cycles(void)
{
	int n = light() ? 10 : 100;
	struct isc_attr a = { 12, 2 };

	/* "ehlo" posts the moment it is bound, racing the set-up. */
	for (int i = 0; i < n; i++) {
		struct isc_handle *isc;

		CHECK_OK(open_again(isc_fourcc('e', 'h', 'l', 'o'), &a, &a, &isc));
		if (i % 2)
			CHECK_OK(isc->add_listener(isc, &ops, NULL));
		isc->close(isc);
	}
	/* close(NULL) is ignored. */
	struct isc_handle *isc;
	CHECK_OK(open_again(UID_A, &a, &a, &isc));
	isc->close(NULL);
	isc->close(isc);
}

int main(void)
{
	CHECK(isc_fourcc('s', 'a', 'm', '0') == 0x306d6173);
	argument_errors();
	transport_errors();
	bind_later();
	bound_at_open();
	direction_rules();
	cycles();
	ctl_done();
	printf("PASS\n");
	return 0;
}
