/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * ISC: the shared-memory ABI of /dev/isc.
 *
 * This is the C description of the layout that isc-ring/src/abi.rs defines
 * for Rust. Both must agree on every size, offset and value; the test
 * isc-ring/tests/uapi_header.rs compiles a program against this header and
 * compares everything with the Rust definitions.
 *
 * A bound channel maps one region (mmap offset 0 of its fd) holding two
 * rings: u2k (user produces, kernel consumes) at u2k_offset and k2u (kernel
 * produces, user consumes) at k2u_offset. A ring is a struct isc_ring_header
 * followed, at info.slots_offset, by info.slot_count slots of
 * info.slot_stride bytes, each a struct isc_slot_header and info.msz payload
 * bytes, packed: the stride is 16 + msz rounded up to ISC_SLOT_ALIGN. Indices
 * are free-running u32s masked by slot_count - 1.
 *
 * Usable from the kernel and from userspace C (needs only linux/types.h and
 * linux/ioctl.h).
 */
#ifndef _UAPI_LINUX_ISC_H
#define _UAPI_LINUX_ISC_H

#include <linux/types.h>
#include <linux/ioctl.h>

/* "ISCR" read as a little-endian u32: marks an initialised ring header. */
#define ISC_RING_MAGIC		0x52435349U
/* Version of the layout and of the device protocol (3: slots packed at 8 bytes). */
#define ISC_ABI_VERSION		3U

/* Hard caps of a ring. */
#define ISC_MAX_MSZ		(64U * 1024U)
#define ISC_MAX_SLOTS		(64U * 1024U)
#define ISC_MAX_RING_BYTES	(16U * 1024U * 1024U)
/* Rings start on, and are sized in, multiples of this. */
#define ISC_REGION_ALIGN	4096U
/* Slot strides are a multiple of this (slots are packed, not line-sized). */
#define ISC_SLOT_ALIGN		8U
/* Offset of slot 0 from its ring header (sizeof(struct isc_ring_header)). */
#define ISC_SLOTS_OFFSET	256U

/* Ring flags (struct isc_ring_header.flags): wake-up requests. */
#define ISC_CONSUMER_WAITING	(1U << 0)
#define ISC_PRODUCER_WAITING	(1U << 1)

/* Slot flags (struct isc_slot_header.flags). */
#define ISC_SLOT_KIND_MASK	0xffU
#define ISC_SLOT_KIND_MSG	0U
#define ISC_SLOT_KIND_BOUND	1U
#define ISC_SLOT_KIND_UNBOUND	2U
#define ISC_SLOT_COMPLETED	(1U << 8)
#define ISC_SLOT_NOT_DELIVERED	(1U << 9)

/* Read-mostly ring parameters, written once when the ring is created. */
struct isc_ring_info {
	__u32 magic;		/* ISC_RING_MAGIC */
	__u32 abi_version;	/* ISC_ABI_VERSION */
	__u32 slot_count;	/* a power of two */
	__u32 msz;		/* payload bytes per slot */
	__u32 slot_stride;	/* bytes between slots */
	__u32 features;		/* 0 */
	__u32 slots_offset;	/* ISC_SLOTS_OFFSET */
	__u32 ring_bytes;	/* header and slots, a multiple of ISC_REGION_ALIGN */
	__u32 reserved[8];
} __attribute__((aligned(64)));

/* One shared index or flag word alone on its cache line. */
struct isc_index_line {
	__u32 value;
	__u32 pad[15];
} __attribute__((aligned(64)));

/* Header at the start of each ring. */
struct isc_ring_header {
	struct isc_ring_info info;
	struct isc_index_line head;	/* written by the producer only */
	struct isc_index_line tail;	/* written by the consumer only */
	struct isc_index_line flags;	/* ISC_*_WAITING */
};

/* Header of each slot, followed by msz payload bytes. */
struct isc_slot_header {
	__u32 seq;	/* free-running index of the message */
	__u32 len;	/* message length, then reply length */
	__u32 flags;	/* ISC_SLOT_* */
	__s32 rc;	/* result code, written on completion */
};

/* Size request of one ring. */
struct isc_ring_request {
	__u32 msz;	/* 1..=ISC_MAX_MSZ */
	__u32 num;	/* 1..=ISC_MAX_SLOTS, rounded up to a power of two */
};

/* Input of ISC_IOC_BIND. */
struct isc_bind_request {
	__u32 abi_version;	/* ISC_ABI_VERSION */
	__u32 uid;		/* channel UID, a little-endian fourcc */
	struct isc_ring_request u2k;
	struct isc_ring_request k2u;
	__u32 flags;		/* 0 */
	__u32 reserved;		/* 0 */
};

/* Output of ISC_IOC_BIND. */
struct isc_bind_response {
	__aligned_u64 region_size;	/* bytes to map at offset 0 */
	__aligned_u64 u2k_offset;
	__aligned_u64 k2u_offset;
	__u32 bound;		/* 1: a driver is registered, BOUND is queued in k2u */
	__u32 reserved;
};

/* Argument of ISC_IOC_BIND: request in, response out. */
struct isc_bind_args {
	struct isc_bind_request req;
	struct isc_bind_response resp;
};

#define ISC_IOC_MAGIC		0xBE
#define ISC_IOC_NR_BIND		1
#define ISC_IOC_NR_KICK		2

/* Bind this fd to a channel and create its region. */
#define ISC_IOC_BIND	_IOWR(ISC_IOC_MAGIC, ISC_IOC_NR_BIND, struct isc_bind_args)
/* Drain the u2k ring in the caller's context; returns the count processed. */
#define ISC_IOC_KICK	_IO(ISC_IOC_MAGIC, ISC_IOC_NR_KICK)

#endif /* _UAPI_LINUX_ISC_H */
