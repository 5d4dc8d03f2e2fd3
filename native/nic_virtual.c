/* The virtual NIC: an in-memory wire that needs no privileges. Its far end is an ordinary
 * application handle on a port-shaped region: what the far end sends there arrives as NIC
 * input, and what the switch transmits lands in the region's RX ring for capture. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "nic.h"
#include "ring.h"

struct nic_virtual {
    struct ms_nic nic;
    struct ms_port_shm *shm;
    size_t size;
    struct ms_ring_geom txg, rxg;  /* ours; the far end can rewrite the region's copy */
    int memfd;
    int wake_fd;        /* the far end waits on it for capture data or inject space */
    uint32_t reserved_first;
};

static struct nic_virtual *nv(struct ms_nic *n) { return (struct nic_virtual *)n; }

static void wake_far_end(struct nic_virtual *v, struct ms_ring *r)
{
    if (ms_ring_wants_wakeup(r)) {
        uint64_t one = 1;
        ssize_t w = write(v->wake_fd, &one, sizeof(one));
        (void)w; /* EAGAIN means a wake-up is already pending */
    }
}

static uint32_t v_rx_burst(struct ms_nic *n, struct ms_nic_frame *out, uint32_t max)
{
    struct nic_virtual *v = nv(n);
    uint32_t first, k = ms_tx_pending(&v->shm->tx, &v->txg, &first);
    if (k > max)
        k = max;
    for (uint32_t i = 0; i < k; i++) {
        uint32_t len = *(volatile uint32_t *)&ms_ring_slot(v->shm, &v->txg, first + i)->len;
        out[i].data = ms_ring_buf(v->shm, &v->txg, first + i);
        out[i].len = len > v->txg.buf_size ? v->txg.buf_size : len;
        out[i].flags = 0;
        out[i].gso_size = 0;   /* the far end hands over whole frames, never super-frames */
    }
    return k;
}

static void v_rx_done(struct ms_nic *n, uint32_t k)
{
    struct nic_virtual *v = nv(n);
    ms_tx_release(&v->shm->tx, k);
    wake_far_end(v, &v->shm->tx);
}

static uint32_t v_rx_mark(struct ms_nic *n)
{
    return atomic_load_explicit(&nv(n)->shm->tx.head, memory_order_acquire);
}

static int v_rx_reached(struct ms_nic *n, uint32_t mark)
{
    struct nic_virtual *v = nv(n);
    uint32_t taken = atomic_load_explicit(&v->shm->tx.tail, memory_order_acquire) -
                     v->txg.num_slots;
    return (int32_t)(taken - mark) >= 0;
}

static uint32_t v_tx_reserve(struct ms_nic *n, struct ms_txbuf *out, uint32_t max)
{
    struct nic_virtual *v = nv(n);
    uint32_t first, k = ms_rx_space(&v->shm->rx, &v->rxg, &first);
    if (k > max)
        k = max;
    for (uint32_t i = 0; i < k; i++) {
        out[i].data = ms_ring_buf(v->shm, &v->rxg, first + i);
        out[i].len = 0;
    }
    v->reserved_first = first;
    return k;
}

static uint32_t v_tx_commit(struct ms_nic *n, const struct ms_txbuf *bufs, uint32_t k)
{
    struct nic_virtual *v = nv(n);
    struct ms_ring *r = &v->shm->rx;
    if (!k)
        return 0;
    for (uint32_t i = 0; i < k; i++)
        ms_ring_slot(v->shm, &v->rxg, v->reserved_first + i)->len = bufs[i].len;
    ms_rx_publish(r, k);
    wake_far_end(v, r);
    return k;
}

static int v_arm(struct ms_nic *n)
{
    atomic_store(&nv(n)->shm->kick_wanted, 1);
    return -1;
}

static void v_destroy(struct ms_nic *n)
{
    struct nic_virtual *v = nv(n);
    munmap(v->shm, v->size);
    close(v->memfd);
    close(v->wake_fd);
    free(v);
}

static const struct ms_nic_ops virtual_ops = {
    .name = "virtual",
    .rx_burst = v_rx_burst,
    .rx_done = v_rx_done,
    .rx_mark = v_rx_mark,
    .rx_reached = v_rx_reached,
    .tx_reserve = v_tx_reserve,
    .tx_commit = v_tx_commit,
    .arm = v_arm,
    .destroy = v_destroy,
};

struct ms_nic *ms_nic_virtual_new(uint32_t slots, uint32_t buf_size, int *memfd, int *wake_fd)
{
    struct nic_virtual *v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    v->nic.ops = &virtual_ops;
    v->nic.has_host = 0;
    v->memfd = ms_shm_create("ministack-wire", slots, buf_size, &v->shm, &v->size);
    if (v->memfd < 0) {
        free(v);
        return NULL;
    }
    v->txg = v->shm->tx.geom;
    v->rxg = v->shm->rx.geom;
    atomic_store(&v->shm->kick_wanted, 1);
    v->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (v->wake_fd < 0) {
        munmap(v->shm, v->size);
        close(v->memfd);
        free(v);
        return NULL;
    }
    *memfd = v->memfd;
    *wake_fd = v->wake_fd;
    return &v->nic;
}
