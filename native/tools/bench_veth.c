/* Benchmark drivers for a veth pair into a peer namespace: bare AF_PACKET senders and
 * receivers (the baseline) and the same peer-side traffic against a switch. The peer-side
 * thread enters the namespace with setns(), which moves only that thread. The bare
 * endpoints are the AF_PACKET backend itself, driven without a switch. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nic.h"
#include "app_internal.h"
#include "bench.h"

struct endpoint {
    int cpu;              /* the CPU this end runs on */
    const char *ns;       /* NULL: this namespace */
    const char *ifname;
    int send;
    const uint8_t *frames;
    const uint32_t *lens;
    const size_t *offs;
    uint32_t nframes;
    _Atomic int *stop;
    _Atomic int ready;
    uint64_t count;
    char err[256];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Both runs place their threads alike: the peer end (and the veth softirq it drives) on
 * CPU 0, the host end (the bare receiver or sender, or the switch) on CPU 1, so the
 * comparison does not depend on where the scheduler happens to put them. */
static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void *endpoint_loop(void *arg)
{
    struct endpoint *e = arg;
    pin(e->cpu);
    if (e->ns) {
        char path[256];
        snprintf(path, sizeof(path), "/run/netns/%s", e->ns);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
            snprintf(e->err, sizeof(e->err), "cannot enter namespace %s: %s", e->ns,
                     strerror(errno));
            if (fd >= 0)
                close(fd);
            atomic_store(&e->ready, -1);
            return NULL;
        }
        close(fd);
    }
    struct ms_nic *nic = ms_nic_afpacket_new(e->ifname, 2048, e->err, sizeof(e->err));
    if (!nic) {
        atomic_store(&e->ready, -1);
        return NULL;
    }
    atomic_store(&e->ready, 1);
    struct ms_txbuf tb[MS_BATCH];
    struct ms_nic_frame fr[MS_BATCH];
    uint32_t fi = 0;
    while (!atomic_load_explicit(e->stop, memory_order_relaxed)) {
        if (e->send) {
            uint32_t k = nic->ops->tx_reserve(nic, tb, MS_BATCH);
            for (uint32_t i = 0; i < k; i++) {
                memcpy(tb[i].data, e->frames + e->offs[fi], e->lens[fi]);
                tb[i].len = e->lens[fi];
                fi = fi + 1 == e->nframes ? 0 : fi + 1;
            }
            e->count += nic->ops->tx_commit(nic, tb, k);
        } else {
            uint32_t n = nic->ops->rx_burst(nic, fr, MS_BATCH);
            e->count += n;
            nic->ops->rx_done(nic, n);
            if (!n)
                sched_yield();
        }
    }
    nic->ops->destroy(nic);
    return NULL;
}

static int start(struct endpoint *e, pthread_t *t)
{
    if (pthread_create(t, NULL, endpoint_loop, e) != 0)
        return -EAGAIN;
    while (!atomic_load(&e->ready))
        sched_yield();
    return atomic_load(&e->ready) < 0 ? -EINVAL : 0;
}

static size_t *offsets(const uint32_t *lens, uint32_t n)
{
    size_t *offs = malloc(n * sizeof(*offs));
    for (uint32_t i = 0, o = 0; offs && i < n; o += lens[i], i++)
        offs[i] = o;
    return offs;
}

static void sleep_s(double s)
{
    struct timespec d = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&d, NULL);
}

int ms_bench_veth_baseline(const char *host_if, const char *ns, const char *peer_if,
                           int to_host, const uint8_t *frames, const uint32_t *lens,
                           uint32_t nframes, double seconds, struct ms_bench_result *res,
                           char *err, size_t errlen)
{
    _Atomic int stop = 0;
    size_t *offs = offsets(lens, nframes);
    struct endpoint rx = {.ns = to_host ? NULL : ns, .ifname = to_host ? host_if : peer_if,
                          .cpu = to_host ? 1 : 0, .stop = &stop};
    struct endpoint tx = {.ns = to_host ? ns : NULL, .ifname = to_host ? peer_if : host_if,
                          .cpu = to_host ? 0 : 1,
                          .send = 1, .frames = frames, .lens = lens, .offs = offs,
                          .nframes = nframes, .stop = &stop};
    pthread_t rt, tt;
    int rc = start(&rx, &rt);
    if (rc < 0) {
        snprintf(err, errlen, "%s", rx.err);
        free(offs);
        return rc;
    }
    if ((rc = start(&tx, &tt)) < 0) {
        snprintf(err, errlen, "%s", tx.err);
        atomic_store(&stop, 1);
        pthread_join(rt, NULL);
        free(offs);
        return rc;
    }
    sleep_s(seconds * 0.1);
    uint64_t c0 = rx.count;
    double t0 = now_s();
    sleep_s(seconds);
    uint64_t c1 = rx.count;
    double t = now_s() - t0;
    atomic_store(&stop, 1);
    pthread_join(tt, NULL);
    pthread_join(rt, NULL);
    free(offs);
    res->frames = c1 - c0;
    res->sent = tx.count;
    res->seconds = t;
    res->mpps = (double)res->frames / t / 1e6;
    return 0;
}

int ms_bench_veth_switch(ms_switch *sw, int port, const char *ns, const char *peer_if,
                         int to_port, const uint8_t *frames, const uint32_t *lens,
                         uint32_t nframes, double seconds, struct ms_bench_result *res,
                         char *err, size_t errlen)
{
    _Atomic int stop = 0;
    size_t *offs = offsets(lens, nframes);
    ms_app *app = ms_switch_app(sw, port);
    if (!offs || !app) {
        free(offs);
        ms_app_close(app);
        snprintf(err, errlen, "no port %d", port);
        return -EINVAL;
    }
    /* The switch takes CPU 1, as the bare host end does. The port's driver is light (it
     * naps when idle) and goes where it disturbs least: beside the switch when it drains
     * (the peer's sender and its softirq fill CPU 0), beside the peer's receiver when it
     * fills the port. */
    ms_switch_pin(sw, 1);
    cpu_set_t before;
    pthread_getaffinity_np(pthread_self(), sizeof(before), &before);
    pin(to_port ? 1 : 0);
    struct endpoint peer = {.ns = ns, .ifname = peer_if, .send = to_port, .frames = frames,
                            .lens = lens, .offs = offs, .nframes = nframes, .stop = &stop};
    pthread_t pt;
    int rc = start(&peer, &pt);
    if (rc < 0) {
        snprintf(err, errlen, "%s", peer.err);
        free(offs);
        ms_app_close(app);
        pthread_setaffinity_np(pthread_self(), sizeof(before), &before);
        return rc;
    }
    struct ms_port_shm *shm = ms_app_shm(app);
    const struct ms_ring_geom *txg = ms_app_geom(app, 0);
    uint64_t got = 0, c0 = 0, sent = 0;
    uint32_t fi = 0;
    double t0 = now_s(), t_start = t0, warm = seconds * 0.1, t_end = t0 + warm + seconds;
    int warming = 1;
    for (uint64_t iter = 0;; iter++) {
        if ((iter & 63) == 0) {
            double t = now_s();
            if (warming && t >= t0 + warm) {
                warming = 0;
                t_start = t;
                c0 = to_port ? got : peer.count;
            }
            if (t >= t_end)
                break;
        }
        int idle = 1;
        if (to_port) { /* drain the port */
            uint32_t h, m = ms_ring_peek(&shm->rx, ms_app_geom(app, 1), &h);
            if (m) {
                ms_ring_release(&shm->rx, m);
                got += m;
                idle = 0;
            }
        } else { /* keep the port's TX ring full */
            uint32_t h, k = ms_ring_reserve(&shm->tx, txg, &h);
            if (k > MS_BATCH)
                k = MS_BATCH;
            for (uint32_t j = 0; j < k; j++) {
                memcpy(ms_ring_buf(shm, txg, h + j), frames + offs[fi], lens[fi]);
                ms_ring_slot(shm, txg, h + j)->len = lens[fi];
                fi = fi + 1 == nframes ? 0 : fi + 1;
            }
            if (k) {
                ms_ring_publish(&shm->tx, k);
                ms_app_kick(app);
                sent += k;
                idle = 0;
            }
        }
        if (idle && to_port) {
            sched_yield(); /* share CPU 1 with the switch turn by turn: a nap here let
                            * the port's ring overflow */
        } else if (idle) {
            /* Filling: a full 1,024-slot ring lasts longer than this nap. */
            struct timespec d = {0, 50000};
            nanosleep(&d, NULL);
        }
    }
    double t = now_s() - t_start;
    uint64_t c1 = to_port ? got : peer.count;
    atomic_store(&stop, 1);
    pthread_join(pt, NULL);
    free(offs);
    ms_app_close(app);
    pthread_setaffinity_np(pthread_self(), sizeof(before), &before);
    res->frames = c1 - c0;
    res->sent = to_port ? peer.count : sent;
    res->seconds = t;
    res->mpps = (double)res->frames / t / 1e6;
    return 0;
}

int ms_bench_veth_app(ms_app *app, const char *ns, const char *peer_if, int to_port,
                      const uint8_t *frames, const uint32_t *lens, uint32_t nframes,
                      double seconds, struct ms_bench_result *res, char *err, size_t errlen)
{
    _Atomic int stop = 0;
    size_t *offs = offsets(lens, nframes);
    uint32_t size = ms_app_buf_size(app);
    uint8_t *buf = malloc((size_t)MS_BATCH * size);      /* received frames */
    uint8_t *packed = malloc((size_t)MS_BATCH * size);   /* the batch to send */
    uint32_t *blens = malloc(MS_BATCH * sizeof(*blens));
    if (!offs || !buf || !packed || !blens) {
        free(offs), free(buf), free(packed), free(blens);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    /* Composed once, back to back as ms_app_send takes them: its copy into the ring is
     * the port's own work, as an application's is. */
    size_t off = 0;
    for (uint32_t j = 0, fi = 0; j < MS_BATCH; j++, fi = fi + 1 == nframes ? 0 : fi + 1) {
        memcpy(packed + off, frames + offs[fi], lens[fi]);
        off += blens[j] = lens[fi];
    }
    cpu_set_t before;
    pthread_getaffinity_np(pthread_self(), sizeof(before), &before);
    pin(1);   /* as the switch rows: the peer end on CPU 0, this port's end on CPU 1 */
    struct endpoint peer = {.cpu = 0, .ns = ns, .ifname = peer_if, .send = to_port,
                            .frames = frames, .lens = lens, .offs = offs, .nframes = nframes,
                            .stop = &stop};
    pthread_t pt;
    int rc = start(&peer, &pt);
    if (rc < 0) {
        snprintf(err, errlen, "%s", peer.err);
        free(offs), free(buf), free(blens), free(packed);
        pthread_setaffinity_np(pthread_self(), sizeof(before), &before);
        return rc;
    }
    uint64_t got = 0, c0 = 0, sent = 0;
    double t0 = now_s(), t_start = t0, warm = seconds * 0.1, t_end = t0 + warm + seconds;
    int warming = 1;
    for (;;) {
        double t = now_s();
        if (warming && t >= t0 + warm) {
            warming = 0;
            t_start = t;
            c0 = to_port ? got : peer.count;
        }
        if (t >= t_end)
            break;
        if (to_port) {
            int n = ms_app_recv(app, buf, blens, MS_BATCH, 10);
            got += n > 0 ? (uint64_t)n : 0;
        } else {
            int n = ms_app_send(app, packed, blens, MS_BATCH, 10);
            sent += n > 0 ? (uint64_t)n : 0;
        }
    }
    double t = now_s() - t_start;
    uint64_t c1 = to_port ? got : peer.count;
    atomic_store(&stop, 1);
    pthread_join(pt, NULL);
    free(offs), free(buf), free(blens), free(packed);
    pthread_setaffinity_np(pthread_self(), sizeof(before), &before);
    res->frames = c1 - c0;
    res->sent = to_port ? peer.count : sent;
    res->seconds = t;
    res->mpps = (double)res->frames / t / 1e6;
    return 0;
}
