/* Port memory and rings, netmap style.
 *
 * A port is one memfd region holding a header, a TX ring and an RX ring, each ring with
 * its own fixed buffers (slot i uses buffer i). Indices are free-running uint32 counters;
 * a slot is index & (num_slots - 1).
 *
 * In both rings the application owns the slots [head, tail) and the switch the others:
 *  - TX: the application fills slots from head and advances head (release); the switch
 *    consumes [tail - num_slots, head) and advances tail (release) to hand them back.
 *    tail starts at num_slots: the whole ring is the application's.
 *  - RX: the switch fills slots at tail and advances tail (release); the application
 *    consumes [head, tail) and advances head (release).
 * head and cur are written only by the application, tail only by the switch. cur is the
 * application's wake-up point: with MS_RING_NEED_WAKEUP set, the switch signals the port's
 * eventfd once tail has moved past cur.
 *
 * The switch treats everything in the region as hostile input: it keeps its own copy of the
 * ring geometry (struct ms_ring_geom) and never reads the one in the region back, indices
 * are masked, lengths are checked against the buffer size, and frames are copied out before
 * they are parsed.
 *
 * Buffers are buf_size bytes apart plus one cache line: with a plain 2 KiB stride every
 * frame's first line falls in the same few cache sets and the rings thrash L1 and L2.
 */
#ifndef MS_RING_H
#define MS_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define MS_SHM_MAGIC 0x4d53504fu /* "MSPO" */
#define MS_SHM_VERSION 1u
#define MS_RING_NEED_WAKEUP 1u
#define MS_CACHELINE 64

struct ms_slot {
    uint32_t len;
    uint32_t flags;
};

struct ms_ring_geom {
    uint32_t num_slots;   /* a power of two */
    uint32_t buf_size;    /* usable bytes per buffer */
    uint32_t buf_stride;  /* bytes from one buffer to the next */
    uint32_t pad;
    uint64_t slots_off;   /* from the start of the region */
    uint64_t bufs_off;
};

struct ms_ring {
    struct ms_ring_geom geom;  /* for the application; the switch uses its own copy */
    _Alignas(MS_CACHELINE) _Atomic uint32_t head;
    _Atomic uint32_t cur;
    _Alignas(MS_CACHELINE) _Atomic uint32_t tail;
    _Alignas(MS_CACHELINE) _Atomic uint32_t flags;
};

struct ms_port_shm {
    uint32_t magic;
    uint32_t version;
    uint64_t size;
    /* Set by the switch before it sleeps; an application that finds it set after
     * publishing frames clears it and writes the switch's doorbell eventfd. */
    _Alignas(MS_CACHELINE) _Atomic uint32_t kick_wanted;
    struct ms_ring tx;
    struct ms_ring rx;
};

/* Allocate a port region in a new memfd. Returns the fd, or -errno. */
int ms_shm_create(const char *name, uint32_t slots, uint32_t buf_size, struct ms_port_shm **out,
                  size_t *size_out);
/* Map an existing region and validate its header. */
int ms_shm_map(int fd, struct ms_port_shm **out, size_t *size_out);

static inline struct ms_slot *ms_ring_slot(void *base, const struct ms_ring_geom *g, uint32_t idx)
{
    return (struct ms_slot *)((uint8_t *)base + g->slots_off) + (idx & (g->num_slots - 1));
}

static inline uint8_t *ms_ring_buf(void *base, const struct ms_ring_geom *g, uint32_t idx)
{
    return (uint8_t *)base + g->bufs_off + (size_t)(idx & (g->num_slots - 1)) * g->buf_stride;
}

/* Switch side of a TX ring: frames the application has published. */
static inline uint32_t ms_tx_pending(struct ms_ring *r, const struct ms_ring_geom *g,
                                     uint32_t *first)
{
    uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    uint32_t start = atomic_load_explicit(&r->tail, memory_order_relaxed) - g->num_slots;
    uint32_t n = head - start;
    *first = start;
    /* A head beyond the ring is a broken application; never trust it past num_slots. */
    return n > g->num_slots ? g->num_slots : n;
}

static inline void ms_tx_release(struct ms_ring *r, uint32_t n)
{
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    atomic_store_explicit(&r->tail, tail + n, memory_order_release);
}

/* Switch side of an RX ring: free slots it may fill starting at *first. */
static inline uint32_t ms_rx_space(struct ms_ring *r, const struct ms_ring_geom *g,
                                   uint32_t *first)
{
    uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint32_t used = tail - head;
    *first = tail;
    return used >= g->num_slots ? 0 : g->num_slots - used;
}

/* RX: hand the n slots filled from *first to the application (tail, as on TX). */
static inline void ms_rx_publish(struct ms_ring *r, uint32_t n) { ms_tx_release(r, n); }

/* The application's side, in the manner of libxdp's xsk_ring_prod__reserve/submit and
 * xsk_ring_cons__peek/release: every producer and consumer of a port (app.c, the drivers
 * in tools/, the virtual wire's far end) goes through these four.
 *
 * TX: slots free to fill, from *first (at most num_slots, whatever the indices say). */
static inline uint32_t ms_ring_reserve(struct ms_ring *r, const struct ms_ring_geom *g,
                                       uint32_t *first)
{
    uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint32_t n = atomic_load_explicit(&r->tail, memory_order_acquire) - head;
    *first = head;
    return n > g->num_slots ? g->num_slots : n;
}

/* TX: hand the n slots filled from the reserved first to the switch. */
static inline void ms_ring_publish(struct ms_ring *r, uint32_t n)
{
    uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    atomic_store_explicit(&r->head, head + n, memory_order_release);
}

/* RX: frames ready to read, from *first. */
static inline uint32_t ms_ring_peek(struct ms_ring *r, const struct ms_ring_geom *g,
                                    uint32_t *first)
{
    return ms_ring_reserve(r, g, first); /* the same indices: [head, tail) is ours */
}

/* RX: give the n slots read from the peeked first back to the switch. */
static inline void ms_ring_release(struct ms_ring *r, uint32_t n) { ms_ring_publish(r, n); }

/* True when the application asked to be woken and tail has passed its cur. Clears the
 * request so that one eventfd write serves one wait. */
static inline int ms_ring_wants_wakeup(struct ms_ring *r)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (!(atomic_load_explicit(&r->flags, memory_order_relaxed) & MS_RING_NEED_WAKEUP))
        return 0;
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint32_t cur = atomic_load_explicit(&r->cur, memory_order_relaxed);
    if ((int32_t)(tail - cur) <= 0)
        return 0;
    return atomic_fetch_and_explicit(&r->flags, ~MS_RING_NEED_WAKEUP, memory_order_relaxed) &
           MS_RING_NEED_WAKEUP;
}

#endif
