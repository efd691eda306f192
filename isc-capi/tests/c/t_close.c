// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * close: from each kind of callback (dispatched got, bound and unbind, and
 * the synchronous bound of add_listener) without deadlock, without touching
 * freed memory and without calling the remaining listeners; off the
 * callback thread it waits for a callback in progress and nothing runs
 * afterwards; the driver is unbound each time.
 */
#include "ctest.h"

#define UID isc_fourcc('c', 'l', 's', '0')

static struct isc_handle *isc;
static atomic_int closed_in, after_close, calls;

/* Closes the handle from inside a callback, once. */
static void close_here(void)
{
	atomic_fetch_add(&calls, 1);
	if (atomic_load(&closed_in)) {
		/* Called again after closing. */
		atomic_fetch_add(&after_close, 1);
		return;
	}
	isc->close(isc);
	atomic_store(&closed_in, 1);
}

static void closing_bound(void *arg)
{
	(void)arg;
	close_here();
}

static void closing_unbind(void *arg)
{
	(void)arg;
	close_here();
}

static int32_t closing_got(void *msg, uint32_t len, void *arg)
{
	(void)msg;
	(void)len;
	(void)arg;
	close_here();
	return 0;
}

/* A listener after the closing one: must see nothing of that event. */
static void later_bound(void *arg)
{
	(void)arg;
	atomic_fetch_add(&after_close, 1);
}

static int32_t later_got(void *msg, uint32_t len, void *arg)
{
	(void)msg;
	(void)len;
	(void)arg;
	atomic_fetch_add(&after_close, 1);
	return 0;
}

static const struct isc_listener_ops later = {
	.bound = later_bound,
	.unbind = later_bound,
	.got = later_got,
};

static void reset(void)
{
	atomic_store(&closed_in, 0);
	atomic_store(&after_close, 0);
	atomic_store(&calls, 0);
}

/* The channel is gone: the driver was unbound, and the UID opens again. */
static void check_closed(uint32_t unbinds)
{
	uint32_t b, u;
	struct isc_attr a = { 16, 4 };

	WAIT_FOR((drv_stats(UID, &b, &u), u == unbinds));
	sleep_ms(20);
	CHECK(atomic_load(&after_close) == 0);
	CHECK(atomic_load(&calls) == 1);
	CHECK_OK(open_again(UID, &a, &a, &isc));
	isc->close(isc);
}

static void from_got(void)
{
	static const struct isc_listener_ops ops = { .got = closing_got };
	struct isc_attr a = { 16, 4 };
	uint32_t b, u;

	reset();
	WAIT_FOR((drv_stats(UID, &b, &u), b == u));
	CHECK_OK(open_again(UID, &a, &a, &isc));
	CHECK_OK(isc->add_listener(isc, &ops, NULL));
	CHECK_OK(isc->add_listener(isc, &later, NULL));
	/* later's synchronous bound does not count. */
	atomic_store(&after_close, 0);
	/*
	 * Both fit in the ring with the BOUND: one POST command. The first
	 * post's listener may close the channel before the second is posted.
	 */
	double end = now_s() + WAIT_S;
	for (;;) {
		struct ctl_msg m;
		int32_t rc = ctl(CTL_POST, UID, 2, 8, &m);

		/* The driver may not have been told bound yet. */
		CHECK(rc == 0 || rc == -ENOTCONN);
		if (rc == 0 && m.a >= 1)
			break;
		CHECK(now_s() < end);
		sleep_ms(1);
	}
	WAIT_FOR(atomic_load(&closed_in));
	check_closed(u + 1);
}

static void from_dispatched_bound(void)
{
	static const struct isc_listener_ops ops = { .bound = closing_bound };
	struct isc_attr a = { 16, 4 };

	reset();
	drv_unregister(UID);
	CHECK_OK(open_again(UID, &a, &a, &isc));
	CHECK_OK(isc->add_listener(isc, &ops, NULL));
	CHECK_OK(isc->add_listener(isc, &later, NULL));
	CHECK(atomic_load(&calls) == 0);
	drv_register(UID);
	WAIT_FOR(atomic_load(&closed_in));
	check_closed(1);
}

static void from_unbind(void)
{
	static const struct isc_listener_ops ops = { .unbind = closing_unbind };
	struct isc_attr a = { 16, 4 };

	reset();
	CHECK_OK(open_again(UID, &a, &a, &isc));
	CHECK_OK(isc->add_listener(isc, &ops, NULL));
	CHECK_OK(isc->add_listener(isc, &later, NULL));
	atomic_store(&after_close, 0);
	drv_unregister(UID);
	WAIT_FOR(atomic_load(&closed_in));
	drv_register(UID);
	/* The driver's unbind ran once, for its unregistration. */
	sleep_ms(20);
	CHECK(atomic_load(&after_close) == 0);
	CHECK(atomic_load(&calls) == 1);
	CHECK_OK(open_again(UID, &a, &a, &isc));
	isc->close(isc);
}

/* The synchronous bound of add_listener closes the handle: add_listener
 * still returns 0 and touches nothing afterwards. */
static void from_synchronous_bound(void)
{
	static const struct isc_listener_ops ops = { .bound = closing_bound };
	struct isc_attr a = { 16, 4 };
	uint32_t b, u;

	reset();
	/* Every earlier binding has ended. */
	WAIT_FOR((drv_stats(UID, &b, &u), b == u));
	CHECK_OK(open_again(UID, &a, &a, &isc));
	struct isc_handle *h = isc;
	CHECK_OK(h->add_listener(h, &ops, NULL));
	CHECK(atomic_load(&closed_in) == 1);
	check_closed(u + 1);
}

/* Off the callback thread, close waits for the callback in progress; no
 * callback starts afterwards. */
static atomic_int in_callback, slow_calls;

static int32_t slow_got(void *msg, uint32_t len, void *arg)
{
	(void)msg;
	(void)len;
	(void)arg;
	atomic_store(&in_callback, 1);
	atomic_fetch_add(&slow_calls, 1);
	sleep_ms(30);
	atomic_store(&in_callback, 0);
	return 0;
}

static void off_thread_while_busy(void)
{
	static const struct isc_listener_ops ops = { .got = slow_got };
	struct isc_attr a = { 16, 8 };

	CHECK_OK(open_again(UID, &a, &a, &isc));
	CHECK_OK(isc->add_listener(isc, &ops, NULL));
	/* Six posts and the BOUND fit in the ring at once. */
	drv_post_all(UID, 6, 8);
	WAIT_FOR(atomic_load(&in_callback));
	isc->close(isc);
	CHECK(atomic_load(&in_callback) == 0);
	int seen = atomic_load(&slow_calls);
	CHECK(seen >= 1 && seen < 6);
	sleep_ms(100);
	CHECK(atomic_load(&slow_calls) == seen);
}

int main(void)
{
	drv_register(UID);
	from_got();
	from_dispatched_bound();
	from_unbind();
	from_synchronous_bound();
	off_thread_while_busy();
	drv_unregister(UID);
	ctl_done();
	printf("PASS\n");
	return 0;
}
