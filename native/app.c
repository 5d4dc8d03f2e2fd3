/* The application side of a port: fill the TX ring, drain the RX ring, wait on the port's
 * eventfd when there is nothing to do. Only shared memory is touched per frame; a system
 * call happens only to ring a sleeping switch's doorbell or to sleep. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "ministack.h"
#include "app_internal.h"
#include "ring.h"

struct ms_app {
    struct ms_port_shm *shm;
    size_t size;
    struct ms_ring_geom txg, rxg;   /* validated once at open */
    int memfd, doorbell, wake_fd;
    _Atomic int closing;            /* set by ms_app_interrupt: stop waiting */
    struct ms_nm *nm;               /* a VALE port's netmap rings instead (app_netmap.c) */
};

ms_app *ms_app_open_netmap(int netmap_fd, uint64_t memsize, uint32_t offset)
{
    ms_app *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->memfd = a->doorbell = a->wake_fd = -1;
    a->nm = ms_nm_open(netmap_fd, memsize, offset);
    if (!a->nm) {
        free(a);
        return NULL;
    }
    return a;
}

ms_app *ms_app_open(int memfd, int doorbell_fd, int wake_fd)
{
    ms_app *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->memfd = a->doorbell = a->wake_fd = -1;
    if (ms_shm_map(memfd, &a->shm, &a->size) < 0)
        goto fail;
    a->txg = a->shm->tx.geom;
    a->rxg = a->shm->rx.geom;
    a->memfd = fcntl(memfd, F_DUPFD_CLOEXEC, 0);
    a->doorbell = fcntl(doorbell_fd, F_DUPFD_CLOEXEC, 0);
    a->wake_fd = fcntl(wake_fd, F_DUPFD_CLOEXEC, 0);
    if (a->memfd < 0 || a->doorbell < 0 || a->wake_fd < 0)
        goto fail;
    return a;
fail:
    ms_app_close(a);
    return NULL;
}

void ms_app_close(ms_app *a)
{
    if (!a)
        return;
    if (a->nm)
        ms_nm_close(a->nm);
    if (a->shm)
        munmap(a->shm, a->size);
    if (a->memfd >= 0)
        close(a->memfd);
    if (a->doorbell >= 0)
        close(a->doorbell);
    if (a->wake_fd >= 0)
        close(a->wake_fd);
    free(a);
}

void ms_app_interrupt(ms_app *a)
{
    atomic_store(&a->closing, 1);
    if (a->nm) {
        ms_nm_interrupt(a->nm);
        return;
    }
    uint64_t one = 1;
    ssize_t w = write(a->wake_fd, &one, sizeof(one));
    (void)w;
}

uint32_t ms_app_buf_size(ms_app *a) { return a->nm ? ms_nm_buf_size(a->nm) : a->txg.buf_size; }
uint32_t ms_app_slots(ms_app *a) { return a->nm ? ms_nm_slots(a->nm) : a->txg.num_slots; }

static void kick(ms_app *a)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&a->shm->kick_wanted, memory_order_relaxed) &&
        atomic_exchange(&a->shm->kick_wanted, 0)) {
        uint64_t one = 1;
        ssize_t w = write(a->doorbell, &one, sizeof(one));
        (void)w;
    }
}

/* A sender that finds its ring full, or a receiver that finds it empty, looks again for
 * this long before it sleeps: the switch frees (or fills) a batch in microseconds, and a
 * wake-up through the eventfd costs tens of them in a virtual machine. */
#define SPIN_NS 20000

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ms(void) { return now_ns() / 1000000; }

static int tail_moved(struct ms_ring *r, uint32_t seen)
{
    return atomic_load_explicit(&r->tail, memory_order_acquire) != seen;
}

/* Sleep until the switch moves r's tail past `seen`, or the deadline (-1: none) passes.
 * Returns 0 when woken or the tail moved, -ETIMEDOUT otherwise. */
static int wait_tail(ms_app *a, struct ms_ring *r, uint32_t seen, int64_t deadline)
{
    for (int64_t until = now_ns() + SPIN_NS; now_ns() < until;) {
        if (tail_moved(r, seen))
            return 0;
        sched_yield(); /* two cores: the switch may need this one */
    }
    atomic_store_explicit(&r->cur, seen, memory_order_relaxed);
    atomic_fetch_or(&r->flags, MS_RING_NEED_WAKEUP);
    atomic_thread_fence(memory_order_seq_cst);
    if (tail_moved(r, seen))
        return 0;
    int timeout = -1;
    if (deadline >= 0) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        timeout = left > 1000000 ? 1000000 : (int)left;
    }
    struct pollfd pfd = {.fd = a->wake_fd, .events = POLLIN};
    int rc = poll(&pfd, 1, timeout);
    uint64_t v;
    ssize_t n = read(a->wake_fd, &v, sizeof(v));
    (void)n;
    if (rc == 0 && !tail_moved(r, seen))
        return -ETIMEDOUT;
    return 0;
}

int ms_app_send(ms_app *a, const uint8_t *data, const uint32_t *lens, uint32_t n, int timeout_ms)
{
    if (a->nm)
        return ms_nm_send(a->nm, data, lens, n, timeout_ms, &a->closing);
    struct ms_ring *r = &a->shm->tx;
    const struct ms_ring_geom *g = &a->txg;
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    uint32_t sent = 0;
    size_t off = 0;
    for (uint32_t i = 0; i < n; i++)
        if (lens[i] > g->buf_size)
            return -EMSGSIZE;
    while (sent < n) {
        uint32_t head, space = ms_ring_reserve(r, g, &head);
        if (space == 0) {
            kick(a);
            if (atomic_load(&a->closing) || wait_tail(a, r, head, deadline) < 0)
                break;
            continue;
        }
        if (space > n - sent)
            space = n - sent;
        for (uint32_t j = 0; j < space; j++) {
            uint32_t len = lens[sent + j];
            memcpy(ms_ring_buf(a->shm, g, head + j), data + off, len);
            ms_ring_slot(a->shm, g, head + j)->len = len;
            off += len;
        }
        ms_ring_publish(r, space);
        kick(a);
        sent += space;
    }
    return (int)sent;
}

int ms_app_recv(ms_app *a, uint8_t *out, uint32_t *lens, uint32_t max, int timeout_ms)
{
    if (a->nm)
        return ms_nm_recv(a->nm, out, lens, max, timeout_ms, &a->closing);
    struct ms_ring *r = &a->shm->rx;
    const struct ms_ring_geom *g = &a->rxg;
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    uint32_t head, n = ms_ring_peek(r, g, &head);
    while (n == 0 && timeout_ms != 0 && !atomic_load(&a->closing)) {
        if (wait_tail(a, r, head, deadline) < 0)
            break;
        n = ms_ring_peek(r, g, &head);
    }
    if (n > max)
        n = max;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t len = ms_ring_slot(a->shm, g, head + i)->len;
        if (len > g->buf_size)
            len = g->buf_size;
        memcpy(out + (size_t)i * g->buf_size, ms_ring_buf(a->shm, g, head + i), len);
        lens[i] = len;
    }
    ms_ring_release(r, n);
    return (int)n;
}

int ms_app_wake_fd(ms_app *a) { return a->nm ? ms_nm_wake_fd(a->nm) : a->wake_fd; }

/* As wait_tail, for both rings at once and without sleeping: the caller polls wake_fd. */
int ms_app_arm(ms_app *a, int rx, int tx)
{
    if (a->nm)
        return ms_nm_arm(a->nm, rx, tx);
    int ready = 0;
    if (rx) {
        struct ms_ring *r = &a->shm->rx;
        uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
        atomic_store_explicit(&r->cur, head, memory_order_relaxed);
        atomic_fetch_or(&r->flags, MS_RING_NEED_WAKEUP);
        atomic_thread_fence(memory_order_seq_cst);
        ready |= atomic_load_explicit(&r->tail, memory_order_acquire) != head;
    }
    if (tx) {
        struct ms_ring *r = &a->shm->tx;
        uint32_t seen = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (seen != atomic_load_explicit(&r->head, memory_order_relaxed)) {
            ready = 1;   /* there is room already */
        } else {
            atomic_store_explicit(&r->cur, seen, memory_order_relaxed);
            atomic_fetch_or(&r->flags, MS_RING_NEED_WAKEUP);
            kick(a);     /* the switch must be awake to make room */
            ready |= atomic_load_explicit(&r->tail, memory_order_acquire) != seen;
        }
    }
    return ready;
}

struct ms_port_shm *ms_app_shm(ms_app *a) { return a->shm; }
const struct ms_ring_geom *ms_app_geom(ms_app *a, int rx) { return rx ? &a->rxg : &a->txg; }
void ms_app_kick(ms_app *a) { kick(a); }
