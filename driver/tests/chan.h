/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A bare user-side channel for the C tests: the BIND request, the ABI's
 * region size rule computed independently of the kernel, the mapped rings
 * and the u2k producer's push. How a test opens, calls and reads k2u is
 * its own business (hostile and hazard check different things there).
 */
#ifndef ISC_TESTS_CHAN_H
#define ISC_TESTS_CHAN_H

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "uapi/isc.h"

static inline struct isc_bind_args req(uint32_t uid, uint32_t umsz, uint32_t unum, uint32_t kmsz,
				       uint32_t knum)
{
	struct isc_bind_args a;

	memset(&a, 0, sizeof(a));
	a.req.abi_version = ISC_ABI_VERSION;
	a.req.uid = uid;
	a.req.u2k.msz = umsz;
	a.req.u2k.num = unum;
	a.req.k2u.msz = kmsz;
	a.req.k2u.num = knum;
	return a;
}

/* The ring size rule of the ABI, computed independently of the kernel. */
static inline uint64_t ring_bytes(uint32_t msz, uint32_t num)
{
	uint64_t count = 1, stride;

	while (count < num)
		count <<= 1;
	stride = (msz + 16 + 7) / 8 * 8; /* slots packed at 8 bytes (ABI 3) */
	return (256 + stride * count + 4095) / 4096 * 4096;
}

struct ring {
	struct isc_ring_header *hdr;
	uint8_t *base;
	uint32_t count, msz, stride;
};

struct chan {
	int fd;
	uint8_t *map;
	size_t size;
	struct isc_bind_args args;
	struct ring u2k, k2u;
	uint32_t u2k_head;	/* the user is the u2k producer */
	uint32_t k2u_tail;	/* and the k2u consumer */
};

/* Takes the geometry from the ring's info, as the kernel wrote it. */
static inline void ring_attach(struct ring *r, uint8_t *base)
{
	r->base = base;
	r->hdr = (struct isc_ring_header *)base;
	r->count = r->hdr->info.slot_count;
	r->msz = r->hdr->info.msz;
	r->stride = r->hdr->info.slot_stride;
}

static inline struct isc_slot_header *slot(struct ring *r, uint32_t idx)
{
	return (struct isc_slot_header *)(r->base + ISC_SLOTS_OFFSET + (size_t)(idx & (r->count - 1)) * r->stride);
}

static inline void chan_close(struct chan *c)
{
	if (c->map && c->map != MAP_FAILED)
		munmap(c->map, c->size);
	if (c->fd >= 0)
		close(c->fd);
	c->map = NULL;
	c->fd = -1;
}

/* Writes and publishes one u2k message; returns its index. */
static inline uint32_t push(struct chan *c, const void *msg, uint32_t len)
{
	uint32_t idx = c->u2k_head;
	struct isc_slot_header *s = slot(&c->u2k, idx);

	memcpy(s + 1, msg, len);
	s->seq = idx;
	s->len = len;
	s->flags = 0;
	s->rc = 0;
	c->u2k_head = idx + 1;
	__atomic_store_n(&c->u2k.hdr->head.value, c->u2k_head, __ATOMIC_RELEASE);
	return idx;
}

#endif
