// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Threads: concurrent sends are serialised and each gets its own reply;
 * send from a callback; listeners added and removed from several threads
 * while the driver posts and binds and unbinds: rm_listener is a barrier
 * (the remover frees the listener's memory at once), bound and unbind
 * alternate per listener, nothing deadlocks.
 */
#include "ctest.h"

#include <pthread.h>
#include <sched.h>

#define UID isc_fourcc('t', 'h', 'r', '0')
#define SENDERS 4
#define RACERS 3

static struct isc_handle *isc;
static atomic_int failures;
static atomic_int stop;

#define FAIL_IF(cond)                                                         \
	do {                                                                  \
		if (cond) {                                                   \
			fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond); \
			atomic_fetch_add(&failures, 1);                       \
		}                                                             \
	} while (0)

static void *sender(void *arg)
{
	uint32_t id = (uint32_t)(uintptr_t)arg;
	int n = light() ? 100 : 2000;

	for (int i = 0; i < n; i++) {
		struct drv_call m = { 0 };
		int32_t result = -1;
		uint32_t tag[2] = { id, (uint32_t)i };

		memcpy(m.payload, tag, sizeof(tag));
		m.rc = (i % 2) ? (int32_t)(id * 100000 + (uint32_t)i) : 0;
		if (isc->send(isc, &m, 20, &result) != 0) {
			FAIL_IF(1);
			continue;
		}
		FAIL_IF(result != m.rc);
		uint32_t back[2];
		memcpy(back, m.payload, sizeof(back));
		if (m.rc == 0) {
			/* The reply is our own request's, inverted. */
			FAIL_IF(back[0] != ~id || back[1] != ~(uint32_t)i);
		} else {
			FAIL_IF(back[0] != id || back[1] != (uint32_t)i);
		}
	}
	return NULL;
}

static void concurrent_sends(void)
{
	pthread_t t[SENDERS];

	for (uintptr_t i = 0; i < SENDERS; i++)
		CHECK_OK(pthread_create(&t[i], NULL, sender, (void *)i));
	for (int i = 0; i < SENDERS; i++)
		CHECK_OK(pthread_join(t[i], NULL));
	CHECK(atomic_load(&failures) == 0);
}

/* A listener that calls send from its got. */
static atomic_int nested_ok;

static int32_t nested_got(void *msg, uint32_t len, void *arg)
{
	struct drv_call m = { .rc = 5 };
	int32_t result = 0;

	(void)msg;
	(void)len;
	(void)arg;
	if (isc->send(isc, &m, 12, &result) == 0 && result == 5)
		atomic_fetch_add(&nested_ok, 1);
	return 0;
}

static void send_from_callback(void)
{
	static const struct isc_listener_ops ops = { .got = nested_got };

	CHECK_OK(isc->add_listener(isc, &ops, NULL));
	drv_post_all(UID, 3, 8);
	WAIT_FOR(atomic_load(&nested_ok) == 3);
	CHECK_OK(isc->rm_listener(isc, &ops, NULL));
}

/* Listener records, freed by the remover as soon as rm_listener returns. */
#define LIVE 0x4c495645u
#define DEAD 0x44454144u

struct rec {
	uint32_t magic;
	int bound; /* 0 or 1: alternation */
	unsigned int events;
};

static void spin_check(struct rec *r)
{
	/* Stay a while (100 us) inside the callback, watching for a free. */
	double end = now_s() + 100e-6;

	do {
		FAIL_IF(r->magic != LIVE);
		if (r->magic != LIVE)
			break;
	} while (now_s() < end);
}

static void race_bound(void *arg)
{
	struct rec *r = arg;

	spin_check(r);
	FAIL_IF(r->bound != 0);
	r->bound = 1;
	r->events++;
}

static void race_unbind(void *arg)
{
	struct rec *r = arg;

	spin_check(r);
	FAIL_IF(r->bound != 1);
	r->bound = 0;
	r->events++;
}

static int32_t race_got(void *msg, uint32_t len, void *arg)
{
	struct rec *r = arg;

	(void)msg;
	(void)len;
	spin_check(r);
	r->events++;
	return 0;
}

static const struct isc_listener_ops race_ops = {
	.bound = race_bound,
	.unbind = race_unbind,
	.got = race_got,
};

static atomic_uint total_events;

static void *racer(void *arg)
{
	int n = light() ? 40 : 400;

	(void)arg;
	for (int i = 0; i < n; i++) {
		struct rec *r = calloc(1, sizeof(*r));

		CHECK(r);
		r->magic = LIVE;
		if (isc->add_listener(isc, &race_ops, r) != 0)
			FAIL_IF(1);
		for (int j = 0; j < i % 7; j++)
			sched_yield();
		if (isc->rm_listener(isc, &race_ops, r) != 0)
			FAIL_IF(1);
		/* The barrier: nothing runs on r any more. */
		atomic_fetch_add(&total_events, r->events);
		r->magic = DEAD;
		free(r);
	}
	return NULL;
}

static void *poster(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		int32_t rc = ctl(CTL_POST, UID, 4, 8, NULL);
		FAIL_IF(rc != 0 && rc != -ENOTCONN);
		sleep_ms(1);
	}
	return NULL;
}

static void *flapper(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		drv_unregister(UID);
		sleep_ms(2);
		drv_register(UID);
		sleep_ms(5);
	}
	return NULL;
}

static void add_remove_races(void)
{
	pthread_t racers[RACERS], post, flap;

	CHECK_OK(pthread_create(&post, NULL, poster, NULL));
	CHECK_OK(pthread_create(&flap, NULL, flapper, NULL));
	for (int i = 0; i < RACERS; i++)
		CHECK_OK(pthread_create(&racers[i], NULL, racer, NULL));
	for (int i = 0; i < RACERS; i++)
		CHECK_OK(pthread_join(racers[i], NULL));
	atomic_store(&stop, 1);
	CHECK_OK(pthread_join(post, NULL));
	CHECK_OK(pthread_join(flap, NULL));
	CHECK(atomic_load(&failures) == 0);
	/* The races did happen with events flowing (valgrind runs one thread
	 * at a time, in long slices: there they may not overlap). */
	CHECK(light() || atomic_load(&total_events) > 0);
	printf("add/remove races: %u callbacks seen by short-lived listeners\n",
	       atomic_load(&total_events));
}

int main(void)
{
	struct isc_attr s = { 64, 8 }, r = { 16, 8 };

	drv_register(UID);
	CHECK_OK(open_again(UID, &s, &r, &isc));
	concurrent_sends();
	send_from_callback();
	add_remove_races();
	isc->close(isc);
	drv_unregister(UID);
	ctl_done();
	printf("PASS\n");
	return 0;
}
