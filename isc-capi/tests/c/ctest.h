/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Helpers of the libisc C tests: checks, and the control driver of the
 * test host (UID "ictl", 16-byte {op, uid, a, b} calls, see c_api.rs).
 */
#ifndef ISC_CTEST_H
#define ISC_CTEST_H

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <isc.h>
#include <isc_uid_uapi.h>

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s (errno %d)\n", \
				__FILE__, __LINE__, #cond, errno);             \
			exit(1);                                               \
		}                                                              \
	} while (0)

/* -1 with this errno. */
#define CHECK_ERR(expr, err)                                    \
	do {                                                    \
		errno = 0;                                      \
		int rc_ = (expr);                               \
		if (rc_ != -1 || errno != (err)) {              \
			fprintf(stderr, "%s:%d: %s: rc %d errno %d, expected -1 errno %d\n", \
				__FILE__, __LINE__, #expr, rc_, errno, (err)); \
			exit(1);                                \
		}                                               \
	} while (0)

#define CHECK_OK(expr) CHECK((expr) == 0)

/* The control channel's UID: ISC_TEST_CTL, four characters (one per test
 * program, as a UID is open on one handle at a time). */
static inline uint32_t ctl_uid(void)
{
	const char *s = getenv("ISC_TEST_CTL");

	if (!s || strlen(s) != 4) {
		fprintf(stderr, "ISC_TEST_CTL must name the control UID\n");
		exit(2);
	}
	return isc_fourcc(s[0], s[1], s[2], s[3]);
}
enum { CTL_REGISTER = 1, CTL_UNREGISTER = 2, CTL_POST = 3, CTL_STATS = 4 };

struct ctl_msg {
	uint32_t op, uid, a, b;
};

static inline int light(void)
{
	return getenv("ISC_TEST_LIGHT") != NULL;
}

static inline void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Longest wait for something that must happen (only a hang reaches it). */
#define WAIT_S 30.0

static inline double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits up to WAIT_S seconds for a condition. */
#define WAIT_FOR(cond)                                                 \
	do {                                                           \
		double end_ = now_s() + WAIT_S;                          \
		while (!(cond) && now_s() < end_)                      \
			sleep_ms(1);                                   \
		CHECK(cond);                                           \
	} while (0)

/*
 * open_isc, retrying while the UID is still held by a handle just closed:
 * the simulated host tears a closed channel down asynchronously.
 */
static inline int open_again(uint32_t uid, struct isc_attr *s, struct isc_attr *r,
			     struct isc_handle **isc)
{
	double end = now_s() + WAIT_S;
	int rc;

	while ((rc = open_isc(uid, s, r, isc)) < 0 && errno == EBUSY && now_s() < end)
		sleep_ms(1);
	return rc;
}

static struct isc_handle *ctl_handle;

/* A control call; returns the driver's rc, the reply in *out. */
static inline int32_t ctl(uint32_t op, uint32_t uid, uint32_t a, uint32_t b, struct ctl_msg *out)
{
	struct isc_attr attr = { 16, 4 };
	struct ctl_msg m = { op, uid, a, b };
	int32_t result = 0;

	if (!ctl_handle)
		CHECK_OK(open_again(ctl_uid(), &attr, &attr, &ctl_handle));
	CHECK_OK(ctl_handle->send(ctl_handle, &m, sizeof(m), &result));
	if (out)
		*out = m;
	return result;
}

static inline void ctl_done(void)
{
	if (ctl_handle)
		ctl_handle->close(ctl_handle);
	ctl_handle = NULL;
}

/* Registers a test driver for uid (replacing a leftover one). */
static inline void drv_register(uint32_t uid)
{
	int32_t rc = ctl(CTL_REGISTER, uid, 0, 0, NULL);

	if (rc == -EEXIST) {
		CHECK(ctl(CTL_UNREGISTER, uid, 0, 0, NULL) == 0);
		rc = ctl(CTL_REGISTER, uid, 0, 0, NULL);
	}
	CHECK(rc == 0);
}

static inline void drv_unregister(uint32_t uid)
{
	CHECK(ctl(CTL_UNREGISTER, uid, 0, 0, NULL) == 0);
}

/* Has the driver of uid post count messages of len bytes; returns how many
 * the ring took. */
static inline uint32_t drv_post(uint32_t uid, uint32_t count, uint32_t len)
{
	struct ctl_msg m;

	CHECK(ctl(CTL_POST, uid, count, len, &m) == 0);
	return m.a;
}

/* Posts count messages of len bytes, waiting for the binding and for room
 * in the ring. */
static inline void drv_post_all(uint32_t uid, uint32_t count, uint32_t len)
{
	double end = now_s() + WAIT_S;
	uint32_t done = 0;

	while (done < count) {
		struct ctl_msg m;
		int32_t rc = ctl(CTL_POST, uid, count - done, len, &m);
		/* The driver may not have been told bound yet. */
		uint32_t n = rc == -ENOTCONN ? 0 : m.a;

		CHECK(rc == 0 || rc == -ENOTCONN);
		done += n;
		CHECK(now_s() < end);
		if (!n)
			sleep_ms(1);
	}
}

/* The driver's bound and unbind call counts. */
static inline void drv_stats(uint32_t uid, uint32_t *bound, uint32_t *unbind)
{
	struct ctl_msg m;

	CHECK(ctl(CTL_STATS, uid, 0, 0, &m) == 0);
	*bound = m.a;
	*unbind = m.b;
}

/* A call to the test driver: {rc, reply_len, delay_ms, payload}. */
struct drv_call {
	int32_t rc;
	uint32_t reply_len;
	uint32_t delay_ms;
	uint8_t payload[52];
};

/* Byte j of post i (see post_pattern in c_api.rs). */
static inline int post_matches(const uint8_t *msg, uint32_t len, uint32_t *index)
{
	uint32_t i = 0;

	if (len >= 4)
		memcpy(&i, msg, 4);
	for (uint32_t j = 4; j < len; j++)
		if (msg[j] != (uint8_t)(i + j))
			return 0;
	if (index)
		*index = i;
	return 1;
}

#endif /* ISC_CTEST_H */
