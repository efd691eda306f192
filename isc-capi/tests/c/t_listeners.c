// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * add_listener / rm_listener: argument errors, identity by (ops, arg),
 * order, the synchronous bound, bound/unbind alternation, posts (content,
 * length, zero length, private copies), listeners added or removed from a
 * callback, and events with no listener being drained.
 */
#include "ctest.h"

#include <pthread.h>

#define UID isc_fourcc('l', 's', 'n', '0')
#define MAX_LOG 4096

/* What the listeners saw, in order: "<tag><event>" entries. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[MAX_LOG];
static size_t log_len;
static atomic_int got_count;

static void log_event(const char *tag, char what)
{
	size_t n = strlen(tag);

	pthread_mutex_lock(&log_lock);
	CHECK(log_len + n + 2 < MAX_LOG);
	memcpy(log_buf + log_len, tag, n);
	log_len += n;
	log_buf[log_len++] = what;
	log_buf[log_len++] = ' ';
	log_buf[log_len] = 0;
	pthread_mutex_unlock(&log_lock);
}

static void log_reset(void)
{
	pthread_mutex_lock(&log_lock);
	log_len = 0;
	log_buf[0] = 0;
	atomic_store(&got_count, 0);
	pthread_mutex_unlock(&log_lock);
}

static size_t log_size(void)
{
	pthread_mutex_lock(&log_lock);
	size_t n = log_len;
	pthread_mutex_unlock(&log_lock);
	return n;
}

static int log_is(const char *expected)
{
	pthread_mutex_lock(&log_lock);
	int same = strcmp(log_buf, expected) == 0;
	if (!same)
		fprintf(stderr, "log: \"%s\", expected \"%s\"\n", log_buf, expected);
	pthread_mutex_unlock(&log_lock);
	return same;
}

static void on_bound(void *arg)
{
	log_event(arg, 'B');
}

static void on_unbind(void *arg)
{
	log_event(arg, 'U');
}

static int32_t on_got(void *msg, uint32_t len, void *arg)
{
	uint32_t index;

	CHECK(msg != NULL);
	CHECK(post_matches(msg, len, &index));
	/* The message is a private copy: scribbling on it harms nobody. */
	memset(msg, 0x5a, len);
	log_event(arg, 'G');
	atomic_fetch_add(&got_count, 1);
	return 0;
}

static const struct isc_listener_ops ops = {
	.bound = on_bound,
	.unbind = on_unbind,
	.got = on_got,
};
static const struct isc_listener_ops got_only = { .got = on_got };
static const struct isc_listener_ops none = { 0 };

static struct isc_handle *isc;
static char A[] = "a", B[] = "b", C[] = "c";

static void argument_errors(void)
{
	CHECK_ERR(isc->add_listener(NULL, &ops, A), EINVAL);
	CHECK_ERR(isc->add_listener(isc, NULL, A), EINVAL);
	CHECK_ERR(isc->add_listener(isc, &none, A), EINVAL);
	CHECK_ERR(isc->rm_listener(NULL, &ops, A), EINVAL);
	CHECK_ERR(isc->rm_listener(isc, NULL, A), EINVAL);
	/* Unknown pair, with an empty list (the original returned 0). */
	CHECK_ERR(isc->rm_listener(isc, &ops, A), ENOENT);
}

/* Identity is (ops, arg); a duplicate is refused without a second bound. */
static void identity(void)
{
	log_reset();
	CHECK_OK(isc->add_listener(isc, &ops, A));
	CHECK(log_is("aB "));
	CHECK_ERR(isc->add_listener(isc, &ops, A), EEXIST);
	CHECK(log_is("aB "));
	/* Same ops, other arg; same arg, other ops: distinct listeners. */
	CHECK_OK(isc->add_listener(isc, &ops, B));
	CHECK_OK(isc->add_listener(isc, &got_only, A));
	CHECK(log_is("aB bB "));
	CHECK_ERR(isc->rm_listener(isc, &got_only, B), ENOENT);
	CHECK_OK(isc->rm_listener(isc, &got_only, A));
	CHECK_ERR(isc->rm_listener(isc, &got_only, A), ENOENT);
	CHECK_OK(isc->rm_listener(isc, &ops, B));
	CHECK_OK(isc->rm_listener(isc, &ops, A));
}

/* Listeners are called in the order added; bound/unbind alternate. */
static void order_and_alternation(void)
{
	log_reset();
	CHECK_OK(isc->add_listener(isc, &ops, A));
	CHECK_OK(isc->add_listener(isc, &ops, B));
	CHECK_OK(isc->add_listener(isc, &ops, C));
	CHECK(log_is("aB bB cB "));
	drv_post_all(UID, 2, 12);
	WAIT_FOR(atomic_load(&got_count) == 6);
	CHECK(log_is("aB bB cB aG bG cG aG bG cG "));

	log_reset();
	drv_unregister(UID);
	WAIT_FOR(log_size() == 9);
	CHECK(log_is("aU bU cU "));
	drv_register(UID);
	WAIT_FOR(log_size() == 18);
	CHECK(log_is("aU bU cU aB bB cB "));
	CHECK_OK(isc->rm_listener(isc, &ops, B));
	drv_unregister(UID);
	drv_register(UID);
	WAIT_FOR(log_size() == 30);
	CHECK(log_is("aU bU cU aB bB cB aU cU aB cB "));
	CHECK_OK(isc->rm_listener(isc, &ops, A));
	CHECK_OK(isc->rm_listener(isc, &ops, C));
}

/* Added while unbound: no bound until the driver comes. */
static void added_while_unbound(void)
{
	/* A listener tells when the UNBOUND has been dispatched. */
	log_reset();
	CHECK_OK(isc->add_listener(isc, &ops, A));
	drv_unregister(UID);
	WAIT_FOR(log_size() == 6);
	CHECK(log_is("aB aU "));
	CHECK_OK(isc->rm_listener(isc, &ops, A));
	log_reset();
	CHECK_OK(isc->add_listener(isc, &ops, A));
	CHECK(log_is(""));
	drv_register(UID);
	WAIT_FOR(log_size() == 3);
	CHECK(log_is("aB "));
	CHECK_OK(isc->rm_listener(isc, &ops, A));
}

/* Posts of every length up to msz, including 0 (a valid pointer). */
static uint32_t lengths_seen[65];
static atomic_int lengths_count;

static int32_t record_len(void *msg, uint32_t len, void *arg)
{
	(void)arg;
	CHECK(msg != NULL);
	CHECK(len <= 64);
	CHECK(post_matches(msg, len, NULL));
	CHECK(atomic_load(&lengths_count) < 65);
	lengths_seen[atomic_load(&lengths_count)] = len;
	atomic_fetch_add(&lengths_count, 1);
	return 0;
}

static void lengths(void)
{
	static const struct isc_listener_ops rec = { .got = record_len };

	CHECK_OK(isc->add_listener(isc, &rec, NULL));
	for (uint32_t len = 0; len <= 64; len++)
		drv_post_all(UID, 1, len);
	WAIT_FOR(atomic_load(&lengths_count) == 65);
	for (uint32_t len = 0; len <= 64; len++)
		CHECK(lengths_seen[len] == len);
	CHECK_OK(isc->rm_listener(isc, &rec, NULL));
}

/* From a callback: a listener added gets later events only; one removed
 * gets nothing more, not even the rest of the current event. */
static int32_t adder_got(void *msg, uint32_t len, void *arg)
{
	on_got(msg, len, arg);
	int rc = isc->add_listener(isc, &ops, B);
	CHECK(rc == 0 || errno == EEXIST);
	return 0;
}

static int32_t remover_got(void *msg, uint32_t len, void *arg)
{
	static int first = 1;

	on_got(msg, len, arg);
	if (first) {
		/* c comes after us in this event, a came before. */
		CHECK_OK(isc->rm_listener(isc, &ops, C));
		CHECK_OK(isc->rm_listener(isc, &ops, A));
		first = 0;
	}
	return 0;
}

static void changes_from_callbacks(void)
{
	static const struct isc_listener_ops adder = { .got = adder_got };
	static const struct isc_listener_ops remover = { .got = remover_got };

	log_reset();
	CHECK_OK(isc->add_listener(isc, &adder, A));
	drv_post_all(UID, 1, 8);
	/* a got it; b was added during the event (and told bound). */
	WAIT_FOR(atomic_load(&got_count) == 1);
	CHECK(log_is("aG bB "));
	drv_post_all(UID, 1, 8);
	WAIT_FOR(atomic_load(&got_count) == 3);
	CHECK(log_is("aG bB aG bG "));
	CHECK_OK(isc->rm_listener(isc, &adder, A));
	CHECK_OK(isc->rm_listener(isc, &ops, B));

	log_reset();
	CHECK_OK(isc->add_listener(isc, &ops, A));
	CHECK_OK(isc->add_listener(isc, &remover, B));
	CHECK_OK(isc->add_listener(isc, &ops, C));
	CHECK(log_is("aB cB "));
	drv_post_all(UID, 2, 8);
	/* The second post reaches b only. */
	WAIT_FOR(atomic_load(&got_count) == 3);
	CHECK(log_is("aB cB aG bG bG "));
	CHECK_OK(isc->rm_listener(isc, &remover, B));
}

/* Events with no listener are consumed and dropped: the driver can keep
 * posting far more than the ring holds, and a listener added later gets
 * only new posts. */
static void drained_without_listeners(void)
{
	uint32_t total = 0;
	double end = now_s() + 20.0;

	while (total < 200 && now_s() < end) {
		uint32_t n = drv_post(UID, 4, 8);
		total += n;
		if (n < 4)
			sleep_ms(1);
	}
	CHECK(total >= 200);
	/* A listener added now gets the posts that follow. */
	log_reset();
	CHECK_OK(isc->add_listener(isc, &got_only, A));
	drv_post_all(UID, 1, 8);
	WAIT_FOR(atomic_load(&got_count) >= 1);
	CHECK_OK(isc->rm_listener(isc, &got_only, A));
}

int main(void)
{
	struct isc_attr s = { 16, 4 }, r = { 64, 4 };

	drv_register(UID);
	CHECK_OK(open_again(UID, &s, &r, &isc));
	argument_errors();
	identity();
	order_and_alternation();
	added_while_unbound();
	lengths();
	changes_from_callbacks();
	drained_without_listeners();
	isc->close(isc);
	drv_unregister(UID);
	ctl_done();
	printf("PASS\n");
	return 0;
}
