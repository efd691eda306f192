/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * isc_pathways: the user-visible interface of the pathways benchmark module.
 *
 * The module offers the same two operations over every classic user<->kernel
 * pathway and over ISC, so that one user program can compare them:
 *
 * Echo call: the user sends N bytes (N <= PW_MAX_MSG); the driver answers
 * with the same N bytes, each complemented (~b), and the result code N.
 *   - ioctl PW_IOC_ECHO on /dev/isc_pathways (struct pw_echo_arg): the reply
 *     overwrites the request buffer, the result code is written to ->rc;
 *   - write(2) then read(2) on /dev/isc_pathways: write the N request bytes,
 *     read struct pw_reply_hdr followed by the N reply bytes;
 *   - the same write-then-read on /proc/isc_pathways/echo, on
 *     <debugfs>/isc_pathways/echo, and on the sysfs attribute
 *     /sys/class/misc/isc_pathways/echo (pwrite/pread at offset 0). The
 *     sysfs attribute holds one reply for the whole device, and a sysfs
 *     read returns at most PAGE_SIZE - 1 bytes, so there N <= PW_SYSFS_MAX;
 *     larger writes fail with EMSGSIZE;
 *   - generic netlink: family PW_GENL_NAME, command PW_CMD_ECHO with
 *     attribute PW_A_DATA; the reply (same command) carries PW_A_DATA and
 *     PW_A_RC (s32);
 *   - ISC: a channel bound to UID PW_UID_ECHO or PW_UID_ECHO2; the reply is
 *     written in place.
 *
 * Notification: the driver tells the user about event number `seq`, raised
 * at CLOCK_MONOTONIC time `t_ns` (struct pw_event). A user thread triggers a
 * series of events with PW_IOC_EMIT (which runs the producer in its own
 * context, until done) while another thread receives them:
 *   - PW_PATH_CHARDEV: read(2) (blocking, or after poll) on
 *     /dev/isc_pathways_events returns whole struct pw_event records, as
 *     many as fit; a full queue (PW_EVENT_QUEUE records) makes the producer
 *     wait for the reader;
 *   - PW_PATH_SYSFS: the attribute /sys/class/misc/isc_pathways/event shows
 *     "<seq> <t_ns> <gen>\n" and is notified (sysfs_notify) on every event;
 *     poll for POLLPRI, then re-read it from offset 0. <gen> counts the
 *     events raised since the module loaded: it tells a new event from one
 *     read before (with a coarse clock, two runs' first events can show the
 *     same seq and t_ns). The producer raises the
 *     next event only after the attribute was read (a sysfs value has no
 *     queue: events in between would be lost);
 *   - PW_PATH_NETLINK: multicast group PW_GENL_MCGRP of the family, command
 *     PW_CMD_EVENT with PW_A_SEQ and PW_A_T_NS (u64). A listener that sets
 *     NETLINK_BROADCAST_ERROR lets the producer see a full receive queue
 *     (ENOBUFS): it then sends the event again until it is taken;
 *   - PW_PATH_ISC: isc_post() of struct pw_event on the channel bound to
 *     UID PW_UID_EVENT; on a full ring the producer posts again until
 *     there is room.
 *
 * The module is for benchmarks only. Every node is root-only.
 */
#ifndef _UAPI_ISC_PATHWAYS_H
#define _UAPI_ISC_PATHWAYS_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define PW_MAX_MSG		4096U
/* sysfs: header + payload must stay below PAGE_SIZE (4 KiB pages). */
#define PW_SYSFS_MAX		(4096U - 1U - 8U)
#define PW_EVENT_QUEUE		256U

/*
 * Little-endian fourccs: "pwec", "pwe2" (a second echo channel, so that two
 * ISC clients can be bound at once) and "pwev".
 */
#define PW_UID_ECHO		0x63657770U
#define PW_UID_ECHO2		0x32657770U
#define PW_UID_EVENT		0x76657770U

#define PW_GENL_NAME		"isc_pathways"
#define PW_GENL_VERSION		1
#define PW_GENL_MCGRP		"events"

enum {
	PW_CMD_UNSPEC,
	PW_CMD_ECHO,
	PW_CMD_EVENT,
};

enum {
	PW_A_UNSPEC,
	PW_A_DATA,	/* binary, at most PW_MAX_MSG bytes */
	PW_A_RC,	/* s32 */
	PW_A_SEQ,	/* u64 */
	PW_A_T_NS,	/* u64 */
	PW_A_PAD,
	__PW_A_MAX,
};
#define PW_A_MAX		(__PW_A_MAX - 1)

/* Notification pathways, for struct pw_emit_arg.pathway. */
enum {
	PW_PATH_CHARDEV = 1,
	PW_PATH_SYSFS = 2,
	PW_PATH_NETLINK = 3,
	PW_PATH_ISC = 4,
};

/* The reply of the file-based echo pathways precedes the reply bytes. */
struct pw_reply_hdr {
	__s32 rc;
	__u32 len;
};

struct pw_echo_arg {
	__u64 data;	/* in: user pointer to len bytes; out: the reply */
	__u32 len;	/* in: at most PW_MAX_MSG */
	__s32 rc;	/* out: result code */
};

struct pw_event {
	__u64 seq;
	__u64 t_ns;	/* CLOCK_MONOTONIC when the driver raised it */
};

struct pw_emit_arg {
	__u32 pathway;	/* in: PW_PATH_* */
	__u32 count;	/* in: events to raise, seq 0 .. count - 1 */
	__u32 gap_us;	/* in: pause between events (0: none), at most 1 s */
	__u32 flags;	/* in: must be 0 */
	__u64 emitted;	/* out: events delivered to the pathway */
	__u64 retries;	/* out: events that found the queue full */
};

#define PW_IOC_MAGIC		0xBE
#define PW_IOC_ECHO		_IOWR(PW_IOC_MAGIC, 0x80, struct pw_echo_arg)
#define PW_IOC_EMIT		_IOWR(PW_IOC_MAGIC, 0x81, struct pw_emit_arg)

#endif /* _UAPI_ISC_PATHWAYS_H */
