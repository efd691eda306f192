// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * The extensions of isc_ext.h: the ABI version, isc_open's errno return
 * and flags, isc_call's reply length, and pull mode (isc_fd with poll,
 * isc_recv).
 */
#include "ctest.h"

#include <poll.h>

#include <isc_ext.h>

#define UID isc_fourcc('e', 'x', 't', '0')

/* isc_open, retrying while a handle just closed still holds the UID. */
static int open_ext(const struct isc_attr *s, const struct isc_attr *r, uint32_t flags,
		    struct isc_handle **isc)
{
	double end = now_s() + WAIT_S;
	int rc;

	while ((rc = isc_open(UID, s, r, flags, isc)) == -EBUSY && now_s() < end)
		sleep_ms(1);
	return rc;
}

static void version_and_open(void)
{
	struct isc_attr a = { 16, 4 }, zero = { 16, 0 };
	struct isc_handle *isc = NULL;

	CHECK(isc_abi_version() >= 1);
	errno = 1234;
	CHECK(isc_open(UID, &a, &a, 0, NULL) == -EINVAL);
	CHECK(isc_open(UID, &a, &a, 0x80, &isc) == -EINVAL);
	CHECK(isc_open(UID, &zero, &a, 0, &isc) == -EINVAL);
	CHECK(isc_open(UID, &a, &zero, 0, &isc) == -EINVAL);
	CHECK(errno == 1234);
	CHECK(isc == NULL);

	CHECK(open_ext(&a, &a, 0, &isc) == 0);
	struct isc_handle *other = NULL;
	CHECK(isc_open(UID, &a, &a, 0, &other) == -EBUSY);
	CHECK(other == NULL);
	isc->close(isc);
}

static void call(void)
{
	struct isc_attr s = { 64, 4 }, r = { 16, 4 };
	struct isc_handle *isc;
	struct drv_call m = { 0 };
	uint8_t reply[64];
	int32_t result = 0;
	uint32_t reply_len = 0;

	CHECK(open_ext(&s, &r, 0, &isc) == 0);
	for (int i = 0; i < 8; i++)
		m.payload[i] = (uint8_t)i;

	/* The reply length as the driver set it, whatever the rc. */
	m.rc = -7;
	m.reply_len = 40;
	memset(reply, 0xee, sizeof(reply));
	CHECK(isc_call(isc, &m, 20, reply, sizeof(reply), &result, &reply_len) == 0);
	CHECK(result == -7 && reply_len == 40);
	CHECK(reply[12] == (uint8_t)~0 && reply[19] == (uint8_t)~7);
	CHECK(reply[20] == 0 && reply[39] == 0 && reply[40] == 0xee);
	/* The request is untouched. */
	CHECK(m.payload[0] == 0 && m.payload[7] == 7);

	/* A reply larger than cap is cut; reply_len says how long it was. */
	memset(reply, 0xee, sizeof(reply));
	CHECK(isc_call(isc, &m, 20, reply, 16, &result, &reply_len) == 0);
	CHECK(reply_len == 40 && reply[15] == (uint8_t)~3 && reply[16] == 0xee);

	/* reply may be the request; NULL result and reply_len are accepted. */
	m.rc = 0;
	m.reply_len = 0;
	CHECK(isc_call(isc, &m, 20, &m, sizeof(m), NULL, NULL) == 0);
	CHECK(m.payload[0] == (uint8_t)~0 && m.payload[7] == (uint8_t)~7);
	/* No reply buffer at all. */
	CHECK(isc_call(isc, &m, 20, NULL, 0, &result, &reply_len) == 0);
	CHECK(reply_len == 20);

	/* Errors, as negative errnos; errno untouched. */
	errno = 1234;
	CHECK(isc_call(NULL, &m, 20, reply, 64, &result, &reply_len) == -EINVAL);
	CHECK(isc_call(isc, NULL, 20, reply, 64, &result, &reply_len) == -EINVAL);
	CHECK(isc_call(isc, &m, 0, reply, 64, &result, &reply_len) == -EINVAL);
	CHECK(isc_call(isc, &m, 20, NULL, 64, &result, &reply_len) == -EINVAL);
	uint8_t big[65] = { 0 };
	CHECK(isc_call(isc, big, 65, reply, 64, &result, &reply_len) == -EMSGSIZE);
	CHECK(errno == 1234);
	isc->close(isc);

	/* No send direction. */
	CHECK(open_ext(NULL, NULL, 0, &isc) == 0);
	CHECK(isc_call(isc, &m, 20, reply, 64, &result, &reply_len) == -EINVAL);
	CHECK(isc_fd(isc) >= 0);
	isc->close(isc);
	CHECK(isc_fd(NULL) == -EINVAL);
}

/* Waits for the fd to become readable, then takes one event. */
static void recv_after_poll(struct isc_handle *isc, struct isc_event *ev, void *buf, uint32_t cap)
{
	double end = now_s() + WAIT_S;

	for (;;) {
		int rc = isc_recv(isc, ev, buf, cap, 0);
		if (rc == 0)
			return;
		CHECK(rc == -EAGAIN);
		CHECK(now_s() < end);
		struct pollfd p = { .fd = isc_fd(isc), .events = POLLIN };
		CHECK(p.fd >= 0);
		CHECK(poll(&p, 1, 1000) >= 0);
	}
}

static void pull(void)
{
	struct isc_attr s = { 16, 4 }, r = { 32, 8 };
	struct isc_handle *isc;
	struct isc_event ev;
	uint8_t buf[32];

	CHECK(open_ext(&s, &r, ISC_OPEN_PULL, &isc) == 0);

	/* The binding that existed at open is reported. */
	recv_after_poll(isc, &ev, buf, sizeof(buf));
	CHECK(ev.type == ISC_EVENT_BOUND && ev.len == 0);
	/* Nothing else queued. */
	CHECK(isc_recv(isc, &ev, buf, sizeof(buf), 0) == -EAGAIN);
	CHECK(isc_recv(isc, &ev, buf, sizeof(buf), 20) == -EAGAIN);

	drv_post_all(UID, 3, 24);
	for (uint32_t i = 0; i < 3; i++) {
		uint32_t index;
		memset(buf, 0, sizeof(buf));
		recv_after_poll(isc, &ev, buf, 8);
		CHECK(ev.type == ISC_EVENT_MESSAGE && ev.len == 24);
		/* Cut to cap: the pattern holds for the first 8 bytes. */
		CHECK(post_matches(buf, 8, &index) && index == i);
		CHECK(buf[8] == 0);
	}
	/* A blocking recv. */
	drv_post_all(UID, 1, 32);
	CHECK(isc_recv(isc, &ev, buf, sizeof(buf), -1) == 0);
	CHECK(ev.type == ISC_EVENT_MESSAGE && ev.len == 32 && post_matches(buf, 32, NULL));

	drv_unregister(UID);
	CHECK(isc_recv(isc, &ev, buf, sizeof(buf), 30000) == 0);
	CHECK(ev.type == ISC_EVENT_UNBOUND);
	drv_register(UID);
	CHECK(isc_recv(isc, &ev, NULL, 0, 30000) == 0);
	CHECK(ev.type == ISC_EVENT_BOUND);

	CHECK(isc_recv(NULL, &ev, buf, 1, 0) == -EINVAL);
	CHECK(isc_recv(isc, NULL, buf, 1, 0) == -EINVAL);
	CHECK(isc_recv(isc, &ev, NULL, 1, 0) == -EINVAL);
	isc->close(isc);
}

static int32_t count_got(void *msg, uint32_t len, void *arg)
{
	(void)msg;
	(void)len;
	(void)arg;
	return 0;
}

static void mode_mismatch(void)
{
	static const struct isc_listener_ops ops = { .got = count_got };
	struct isc_attr a = { 16, 4 };
	struct isc_handle *isc;
	struct isc_event ev;

	CHECK(open_ext(&a, &a, ISC_OPEN_PULL, &isc) == 0);
	CHECK_ERR(isc->add_listener(isc, &ops, NULL), EINVAL);
	isc->close(isc);
	CHECK_OK(open_again(UID, &a, &a, &isc));
	CHECK(isc_recv(isc, &ev, NULL, 0, 0) == -EINVAL);
	isc->close(isc);
}

int main(void)
{
	drv_register(UID);
	version_and_open();
	call();
	pull();
	mode_mismatch();
	drv_unregister(UID);
	ctl_done();
	printf("PASS\n");
	return 0;
}
