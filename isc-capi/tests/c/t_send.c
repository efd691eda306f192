// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * send: the driver's result code, the in-place reply and its length rules,
 * a NULL result, every error of the C API document (msg and *result
 * untouched), and the bounded wait.
 */
#include "ctest.h"

#define UID isc_fourcc('s', 'n', 'd', '0')

static struct isc_handle *isc;

/* A request to the test driver in a buffer with a canary tail. */
struct framed {
	struct drv_call call;
	uint8_t canary[16];
};

static void fill(struct framed *f, int32_t rc, uint32_t reply_len)
{
	memset(f, 0xcc, sizeof(*f));
	f->call.rc = rc;
	f->call.reply_len = reply_len;
	f->call.delay_ms = 0;
	for (int i = 0; i < 8; i++)
		f->call.payload[i] = (uint8_t)(0x10 + i);
}

static void canary_intact(const struct framed *f)
{
	for (size_t i = 0; i < sizeof(f->canary); i++)
		CHECK(f->canary[i] == 0xcc);
}

static void results_and_replies(void)
{
	struct framed f;
	int32_t result;

	/* rc 0: the reply (payload inverted) is copied back. */
	fill(&f, 0, 0);
	result = 99;
	CHECK_OK(isc->send(isc, &f.call, 20, &result));
	CHECK(result == 0);
	for (int i = 0; i < 8; i++)
		CHECK(f.call.payload[i] == (uint8_t)~(0x10 + i));
	/* Bytes past len are never written. */
	CHECK(f.call.payload[8] == 0xcc);
	canary_intact(&f);

	/* A non-zero rc is data; msg is unchanged. */
	for (int32_t rc = -34; rc <= 34; rc += 17) {
		if (rc == 0)
			continue;
		fill(&f, rc, 0);
		CHECK_OK(isc->send(isc, &f.call, 20, &result));
		CHECK(result == rc);
		CHECK(f.call.payload[0] == 0x10 && f.call.payload[7] == 0x17);
	}

	/* A shorter reply: only its bytes are copied, the rest stays. */
	fill(&f, 0, 14);
	CHECK_OK(isc->send(isc, &f.call, 20, &result));
	CHECK(result == 0);
	CHECK(f.call.payload[0] == (uint8_t)~0x10 && f.call.payload[1] == (uint8_t)~0x11);
	CHECK(f.call.payload[2] == 0x12 && f.call.payload[7] == 0x17);

	/* A longer reply: at most len bytes are copied. */
	fill(&f, 0, 64);
	CHECK_OK(isc->send(isc, &f.call, 20, &result));
	CHECK(f.call.payload[7] == (uint8_t)~0x17);
	CHECK(f.call.payload[8] == 0xcc);
	canary_intact(&f);

	/* result may be NULL. */
	fill(&f, 0, 0);
	CHECK_OK(isc->send(isc, &f.call, 20, NULL));
	CHECK(f.call.payload[0] == (uint8_t)~0x10);

	/* A short message: the driver returns its length. */
	uint8_t small[3] = { 1, 2, 3 };
	CHECK_OK(isc->send(isc, small, 3, &result));
	CHECK(result == 3);
	/* The full message size is allowed. */
	uint8_t full[64] = { 0 };
	CHECK_OK(isc->send(isc, full, 64, &result));
	CHECK(result == 0);
}

static void errors(void)
{
	struct framed f;
	int32_t result = 42;

	fill(&f, 0, 0);
	CHECK_ERR(isc->send(NULL, &f.call, 20, &result), EINVAL);
	CHECK_ERR(isc->send(isc, NULL, 20, &result), EINVAL);
	CHECK_ERR(isc->send(isc, &f.call, 0, &result), EINVAL);
	uint8_t big[65] = { 0 };
	CHECK_ERR(isc->send(isc, big, 65, &result), EMSGSIZE);
	CHECK(result == 42);
	CHECK(f.call.payload[0] == 0x10);

	/* No driver bound. */
	drv_unregister(UID);
	CHECK_ERR(isc->send(isc, &f.call, 20, &result), ENOTCONN);
	CHECK(result == 42 && f.call.payload[0] == 0x10);
	drv_register(UID);
	double end = now_s() + WAIT_S;
	int rc;
	while ((rc = isc->send(isc, &f.call, 20, &result)) < 0 && errno == ENOTCONN &&
	       now_s() < end)
		sleep_ms(1);
	CHECK(rc == 0 && result == 0);
}

/* The driver's got blocks longer than the library waits: ETIMEDOUT after
 * about 5 s, msg and *result untouched; the channel works afterwards. */
static void timeout(void)
{
	struct framed f;
	int32_t result = 42;

	fill(&f, 0, 0);
	f.call.delay_ms = 6500;
	double start = now_s();
	CHECK_ERR(isc->send(isc, &f.call, 20, &result), ETIMEDOUT);
	double waited = now_s() - start;
	CHECK(waited >= 4.5);
	CHECK(result == 42 && f.call.payload[0] == 0x10);
	/* The slow call completes eventually; later calls succeed. */
	sleep_ms(2500);
	fill(&f, 7, 0);
	CHECK_OK(isc->send(isc, &f.call, 20, &result));
	CHECK(result == 7);
}

int main(void)
{
	struct isc_attr s = { 64, 4 }, r = { 16, 4 };

	drv_register(UID);
	CHECK_OK(open_again(UID, &s, &r, &isc));
	results_and_replies();
	errors();
	if (!light())
		timeout();
	isc->close(isc);
	drv_unregister(UID);
	ctl_done();
	printf("PASS\n");
	return 0;
}
