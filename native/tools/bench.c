/* Benchmark drivers. Traffic is generated and drained here, in C, so the figures measure
 * the switch and not the Python interpreter. Each driver is one thread that both fills the
 * source ring and drains the destination ring: with the switch thread that makes two busy
 * threads, one per core (a third would halve everything on this 2-core machine). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ring.h"
#include "app_internal.h"
#include "bench.h"
#include "filter.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A measurement's time: a tenth of it to warm up, then `seconds` counted. */
struct window {
    double warm_end, start, end;
    uint64_t at_start;  /* the count when counting began */
    int warming;
};

static void window_open(struct window *w, double seconds)
{
    double t0 = now_s();
    w->warm_end = t0 + seconds * 0.1;
    w->start = t0;
    w->end = w->warm_end + seconds;
    w->at_start = 0;
    w->warming = 1;
}

/* 0 once the time is up; `count` is what has arrived so far. */
static int window_tick(struct window *w, uint64_t count)
{
    double t = now_s();
    if (w->warming && t >= w->warm_end) {
        w->warming = 0;
        w->start = t;
        w->at_start = count;
    }
    return t < w->end;
}

static void window_close(struct window *w, uint64_t count, uint64_t sent,
                         struct ms_bench_result *res)
{
    double t = now_s() - w->start;
    res->frames = count - w->at_start;
    res->sent = sent;
    res->seconds = t;
    res->mpps = (double)res->frames / t / 1e6;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* --- baseline: a plain copy-only SPSC ring in a memfd between two threads ------------ */

struct baseline {
    struct ms_port_shm *shm;
    uint32_t frame_len, batch;
    _Atomic int stop;
    uint64_t produced, consumed;
    uint64_t sum;
};

static void *baseline_producer(void *arg)
{
    struct baseline *b = arg;
    struct ms_ring *r = &b->shm->tx;
    const struct ms_ring_geom *g = &r->geom;
    uint8_t frame[2048];
    memset(frame, 0xab, sizeof(frame));
    uint64_t n = 0;
    while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
        uint32_t head, space = ms_ring_reserve(r, g, &head);
        if (space > b->batch)
            space = b->batch;
        if (!space) {
            cpu_relax();
            continue;
        }
        for (uint32_t j = 0; j < space; j++) {
            memcpy(ms_ring_buf(b->shm, g, head + j), frame, b->frame_len);
            ms_ring_slot(b->shm, g, head + j)->len = b->frame_len;
        }
        ms_ring_publish(r, space);
        n += space;
    }
    b->produced = n;
    return NULL;
}

static void *baseline_consumer(void *arg)
{
    struct baseline *b = arg;
    struct ms_ring *r = &b->shm->tx;
    const struct ms_ring_geom *g = &r->geom;
    uint64_t n = 0, sum = 0;
    uint8_t out[2048];
    while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
        uint32_t first, k = ms_tx_pending(r, g, &first);
        if (!k) {
            cpu_relax();
            continue;
        }
        /* Copy each frame out, as the switch copies it to its destination. */
        for (uint32_t j = 0; j < k; j++) {
            uint32_t len = ms_ring_slot(b->shm, g, first + j)->len;
            memcpy(out, ms_ring_buf(b->shm, g, first + j), len);
            sum += out[len - 1];
        }
        ms_tx_release(r, k);
        n += k;
    }
    b->consumed = n;
    b->sum = sum;
    return NULL;
}

int ms_bench_baseline(uint32_t frame_len, uint32_t batch, double seconds, struct ms_bench_result *res)
{
    struct baseline b = {.frame_len = frame_len, .batch = batch ? batch : 1};
    size_t size;
    if (frame_len > 2048)
        return -EINVAL;
    int fd = ms_shm_create("ministack-baseline", 1024, 2048, &b.shm, &size);
    if (fd < 0)
        return fd;
    pthread_t p, c;
    double t0 = now_s();
    pthread_create(&c, NULL, baseline_consumer, &b);
    pthread_create(&p, NULL, baseline_producer, &b);
    struct timespec d = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&d, NULL);
    atomic_store(&b.stop, 1);
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    double t = now_s() - t0;
    munmap(b.shm, size);
    close(fd);
    res->frames = b.consumed;
    res->sent = b.produced;
    res->seconds = t;
    res->mpps = (double)b.consumed / t / 1e6;
    return 0;
}

/* --- the driver both the switch rows and the same-work ring run ------------------------ */

/* The precomposed frames a driver sends, cycled (lens[i] bytes each, back to back). */
struct cycle {
    const uint8_t *frames;
    const uint32_t *lens;
    uint32_t n, i;
    size_t off;
};

static inline const uint8_t *cycle_next(struct cycle *c, uint32_t *len)
{
    const uint8_t *f = c->frames + c->off;
    *len = c->lens[c->i];
    c->off += *len;
    if (++c->i == c->n)
        c->i = 0, c->off = 0;
    return f;
}

/* Copy up to max frames of c into the TX ring of shm without waiting; returns how many. */
static inline uint32_t fill_ring(struct ms_port_shm *shm, const struct ms_ring_geom *g,
                                 struct cycle *c, uint32_t max)
{
    uint32_t head, k = ms_ring_reserve(&shm->tx, g, &head);
    if (k > max)
        k = max;
    for (uint32_t j = 0; j < k; j++) {
        uint32_t len;
        const uint8_t *f = cycle_next(c, &len);
        memcpy(ms_ring_buf(shm, g, head + j), f, len);
        ms_ring_slot(shm, g, head + j)->len = len;
    }
    if (k)
        ms_ring_publish(&shm->tx, k);
    return k;
}

/* Take every frame waiting in the RX ring of shm unread; returns how many. */
static inline uint32_t empty_ring(struct ms_port_shm *shm, const struct ms_ring_geom *g)
{
    uint32_t first, m = ms_ring_peek(&shm->rx, g, &first);
    if (m)
        ms_ring_release(&shm->rx, m);
    return m;
}

static inline uint32_t queue_frames(ms_app *a, struct cycle *c, uint32_t max)
{
    uint32_t k = fill_ring(ms_app_shm(a), ms_app_geom(a, 0), c, max);
    if (k)
        ms_app_kick(a);
    return k;
}

static inline uint32_t drain_frames(ms_app *a)
{
    return empty_ring(ms_app_shm(a), ms_app_geom(a, 1));
}

/* Where the driver puts frames and where it takes them from: a port or the wire (their
 * ms_app handles, which ring the switch's doorbell), or the same-work ring's two rings. */
struct ends {
    struct ms_port_shm *in, *out;
    const struct ms_ring_geom *in_g, *out_g;
    ms_app *kick;  /* NULL: nobody sleeps on the other side */
};

/* Fill `in` and drain `out` for the window; then let the other side finish what is in
 * flight, so that later runs start from empty rings. */
static void drive(const struct ends *e, struct cycle *c, uint32_t batch, double seconds,
                  struct ms_bench_result *res)
{
    uint64_t sent = 0, got = 0;
    struct window win;
    window_open(&win, seconds);
    for (uint64_t iter = 0;; iter++) {
        if ((iter & 255) == 0 && !window_tick(&win, got))
            break;
        uint32_t k = fill_ring(e->in, e->in_g, c, batch);
        if (k && e->kick)
            ms_app_kick(e->kick);
        sent += k;
        uint32_t m = empty_ring(e->out, e->out_g);
        got += m;
        if (!m && !k)
            cpu_relax();
    }
    window_close(&win, got, sent, res);
    double until = now_s() + 0.2;
    while (now_s() < until) {
        uint32_t first, pending = e->in_g->num_slots - ms_ring_reserve(&e->in->tx, e->in_g, &first);
        if (!empty_ring(e->out, e->out_g) && !pending)
            break;
        sched_yield();
    }
}

/* Both the switch rows and the same-work ring place their two busy threads alike: the
 * driver on CPU 0, the switch thread or the ring's stage on CPU 1. Returns 0 when the
 * machine has no CPU 1 (then nothing is pinned); *was gets the caller's affinity back. */
static int pin_driver(cpu_set_t *was)
{
    cpu_set_t set;
    pthread_getaffinity_np(pthread_self(), sizeof(*was), was);
    if (!CPU_ISSET(0, was) || !CPU_ISSET(1, was))
        return 0;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

static void pin_self(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* --- the same-work ring: what the switch does per frame, and nothing else -------------- */

/* The stage between the driver's two rings: for each frame, copy it out of the first ring
 * into the second (as the switch copies a port's frame to the wire), parse Ethernet, IPv4
 * and UDP, and probe a small open-addressed hash of (address, port) for its tuple. */
struct stage {
    struct ms_port_shm *in, *out;     /* in's tx: from the driver; out's rx: back to it */
    struct ms_ring_geom txg, rxg;
    const uint64_t *keys;             /* 0: empty */
    uint32_t mask;
    int by_src;                       /* probe the source tuple (port->wire) or the destination */
    int cpu;                          /* -1: not pinned */
    _Atomic int stop;
    uint64_t probes, hits, dropped;
};

static inline uint64_t tuple_key(uint32_t ip, uint16_t port)
{
    return ((uint64_t)ip << 24 | (uint64_t)17 << 16 | port) | 1ull << 63;
}

static inline uint32_t tuple_hash(uint64_t key, uint32_t mask)
{
    return (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 40) & mask;
}

/* The tuple of an Ethernet/IPv4/UDP frame (0 for anything else), read within len. */
static inline uint64_t stage_parse(const uint8_t *f, uint32_t len, int by_src)
{
    if (len < 14 + 20 + 8 || f[12] != 0x08 || f[13] != 0x00)
        return 0;
    const uint8_t *ip = f + 14;
    uint32_t ihl = (uint32_t)(ip[0] & 0x0f) * 4;
    if ((ip[0] >> 4) != 4 || ihl < 20 || 14 + ihl + 8 > len || ip[9] != 17)
        return 0;
    const uint8_t *a = ip + (by_src ? 12 : 16), *udp = ip + ihl + (by_src ? 0 : 2);
    uint32_t addr = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
    return tuple_key(addr, (uint16_t)(udp[0] << 8 | udp[1]));
}

static inline int stage_probe(const struct stage *s, uint64_t key)
{
    for (uint32_t h = tuple_hash(key, s->mask);; h = (h + 1) & s->mask) {
        if (s->keys[h] == key)
            return 1;
        if (!s->keys[h])
            return 0;
    }
}

/* The stage's table: every frame's tuple, then made-up ones up to `entries`, at most half
 * full, so that the probes all hit, as the switch's lookups of bound tuples do. NULL when
 * out of memory; *mask is its size less one. */
static uint64_t *stage_keys(const uint8_t *frames, const uint32_t *lens, uint32_t nframes,
                            uint32_t entries, int by_src, uint32_t *mask)
{
    uint32_t size = 16;
    while (size < 2 * (entries > nframes ? entries : nframes))
        size <<= 1;
    uint64_t *keys = calloc(size, sizeof(*keys));
    if (!keys)
        return NULL;
    uint32_t used = 0;
    size_t off = 0;
    for (uint32_t i = 0; i < nframes + entries && used < size / 2; i++) {
        uint64_t k = i < nframes ? stage_parse(frames + off, lens[i], by_src)
                                 : tuple_key(0xc6336400u + i, (uint16_t)i);
        if (i < nframes)
            off += lens[i];
        if (!k)
            continue;
        uint32_t h = tuple_hash(k, size - 1);
        while (keys[h] && keys[h] != k)
            h = (h + 1) & (size - 1);
        used += !keys[h];
        keys[h] = k;
        if (i >= nframes && used >= entries)
            break;
    }
    *mask = size - 1;
    return keys;
}

static void *stage_loop(void *arg)
{
    struct stage *s = arg;
    if (s->cpu >= 0)
        pin_self(s->cpu);
    uint8_t scratch[2048];
    uint64_t probes = 0, hits = 0, dropped = 0;
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        uint32_t first, n = ms_tx_pending(&s->in->tx, &s->txg, &first);
        if (!n) {
            cpu_relax();
            continue;
        }
        if (n > MS_BATCH)
            n = MS_BATCH;
        uint32_t out, space = ms_rx_space(&s->out->rx, &s->rxg, &out), w = 0;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t len = *(volatile uint32_t *)&ms_ring_slot(s->in, &s->txg, first + i)->len;
            if (len > s->txg.buf_size)
                continue;
            uint8_t *dst = w < space ? ms_ring_buf(s->out, &s->rxg, out + w) : scratch;
            memcpy(dst, ms_ring_buf(s->in, &s->txg, first + i), len);
            hits += (uint64_t)stage_probe(s, stage_parse(dst, len, s->by_src));
            probes++;
            if (w < space)
                ms_ring_slot(s->out, &s->rxg, out + w++)->len = len;
            else
                dropped++;
        }
        ms_tx_release(&s->in->tx, n);
        ms_rx_publish(&s->out->rx, w);
    }
    s->probes = probes;
    s->hits = hits;
    s->dropped = dropped;
    return NULL;
}

int ms_bench_same_work(const uint8_t *frames, const uint32_t *lens, uint32_t nframes,
                       uint32_t entries, int by_src, uint32_t in_slots, uint32_t out_slots,
                       uint32_t batch, double seconds, struct ms_bench_result *res)
{
    if (!nframes || !batch || entries > (1u << 20) || !in_slots || (in_slots & (in_slots - 1)) ||
        !out_slots || (out_slots & (out_slots - 1)))
        return -EINVAL;
    struct stage s = {.by_src = by_src};
    uint64_t *keys = stage_keys(frames, lens, nframes, entries, by_src, &s.mask);
    if (!keys)
        return -ENOMEM;
    s.keys = keys;
    /* Rings of the row's sizes: the frames come from a port (1,024 slots) or the wire
     * (4,096), and go to the other. */
    size_t in_size = 0, out_size = 0;
    int in_fd = ms_shm_create("ministack-ring-in", in_slots, 2048, &s.in, &in_size);
    int out_fd = in_fd < 0 ? in_fd
                           : ms_shm_create("ministack-ring-out", out_slots, 2048, &s.out,
                                           &out_size);
    int rc = out_fd < 0 ? out_fd : 0;
    if (!rc) {
        s.txg = s.in->tx.geom;
        s.rxg = s.out->rx.geom;
        cpu_set_t was;
        int pinned = pin_driver(&was);
        s.cpu = pinned ? 1 : -1;
        pthread_t t;
        rc = -pthread_create(&t, NULL, stage_loop, &s);
        if (!rc) {
            struct ends e = {s.in, s.out, &s.txg, &s.rxg, NULL};
            struct cycle c = {frames, lens, nframes, 0, 0};
            drive(&e, &c, batch, seconds, res);
            atomic_store(&s.stop, 1);
            pthread_join(t, NULL);
            res->probes = s.probes;
            res->hits = s.hits;
        }
        if (pinned)
            pthread_setaffinity_np(pthread_self(), sizeof(was), &was);
    }
    if (in_fd >= 0) {
        munmap(s.in, in_size);
        close(in_fd);
    }
    if (out_fd >= 0 && in_fd >= 0) {
        munmap(s.out, out_size);
        close(out_fd);
    }
    free(keys);
    return rc;
}

/* --- what each piece of the work costs, on one core ------------------------------------ */

/* Nanoseconds per frame of the pieces of a row's work, each run alone on this thread over
 * frames in cache: the copy, the copy and the parser, the copy and the parser and the
 * filter (TX, with the frames' source tuples bound by port 0) or the demultiplexer (RX),
 * and the same-work ring's stage (copy, its parse, its probe). Each is the fastest of many
 * short rounds within `seconds`: a round the hypervisor interrupted only reads slower, so
 * the minimum is the cost. No cross-core traffic: what the switch adds to that is the
 * difference between a row and these. */
/* flatten: the parser, filter and table inlined, as in the switch's loops (forward.c). */
__attribute__((flatten)) int ms_bench_cost(const uint8_t *frames, const uint32_t *lens,
                                           uint32_t nframes, uint32_t entries, int tx,
                                           double seconds, double *ns)
{
    if (!nframes || nframes > 4096)
        return -EINVAL;
    struct ms_table *t = ms_table_new(entries + nframes + 16);
    uint8_t *copy = malloc(2048);
    size_t *offs = calloc(nframes, sizeof(*offs));
    struct stage st = {.by_src = tx};
    uint64_t *keys = stage_keys(frames, lens, nframes, entries, tx, &st.mask);
    st.keys = keys;
    int rc = t && copy && offs && keys ? 0 : -ENOMEM;
    struct ms_parsed pp;
    uint8_t mac[6] = {0};
    for (uint32_t i = 0, off = 0; !rc && i < nframes; off += lens[i++]) {
        offs[i] = off;
        if (lens[i] > 2048) {
            rc = -EINVAL;
            break;
        }
        ms_parse(frames + off, lens[i], &pp);
        memcpy(mac, pp.src_mac, 6);
        ms_table_add(t, 0, pp.family, pp.proto, tx ? pp.src_ip : pp.dst_ip,
                     tx ? pp.sport : pp.dport);
    }
    for (uint32_t i = 0; !rc && i < entries; i++) {
        uint8_t ip[16] = {198, 51, (uint8_t)(i >> 8), (uint8_t)i};
        ms_table_add(t, 0, 4, 17, ip, (uint16_t)(1000 + i));
    }
    volatile uint64_t sink = 0;
    for (int stage = 0; !rc && stage < MS_BENCH_COST_STAGES; stage++) {
        double best = 1e30, end = now_s() + seconds / MS_BENCH_COST_STAGES;
        while (now_s() < end) {
            double t0 = now_s();
            uint64_t acc = 0;
            for (int round = 0; round < 16; round++)
                for (uint32_t i = 0; i < nframes; i++) {
                    uint32_t len = lens[i];
                    memcpy(copy, frames + offs[i], len);
                    int ft;
                    switch (stage) {
                    case 0:
                        acc += copy[len - 1];
                        break;
                    case 1:
                        ms_parse(copy, len, &pp);
                        acc += pp.sport;
                        break;
                    case 2:
                        ms_parse(copy, len, &pp);
                        acc += (uint64_t)(tx ? ms_filter_tx(&pp, 0, 1500, mac, t, NULL, 0, &ft)
                                             : ms_demux(&pp, t, NULL, 0));
                        break;
                    default:
                        acc += (uint64_t)stage_probe(&st, stage_parse(copy, len, tx));
                    }
                }
            double per = (now_s() - t0) / (16.0 * nframes);
            if (per < best)
                best = per;
            sink += acc;
        }
        ns[stage] = best * 1e9;
    }
    (void)sink;
    ms_table_free(t);
    free(copy);
    free(offs);
    free(keys);
    return rc;
}

/* --- through the switch ------------------------------------------------------------- */

int ms_bench_loop_cost(const uint8_t *frames, const uint32_t *lens, uint32_t nframes,
                       const uint8_t *mac, const uint8_t *ip4, const uint16_t *ports,
                       uint32_t nports, int tx, double seconds, double *ns)
{
    if (!nframes || !nports)
        return -EINVAL;
    struct ms_config cfg = {.max_bindings = nports + 16};
    memcpy(cfg.mac, mac, 6);
    ms_switch *sw;
    int rc = ms_switch_create(&cfg, &sw);
    if (rc < 0)
        return rc;
    int id = -1;
    if ((rc = ms_switch_add_address(sw, 4, ip4)) < 0 || (rc = ms_switch_attach_virtual(sw)) < 0 ||
        (rc = id = ms_port_create(sw, "bench", 1500)) < 0)
        goto out;
    for (uint32_t i = 0; i < nports; i++)
        if ((rc = ms_bind(sw, id, 4, ip4, 17, ports[i], 0)) != MS_BIND_OK) {
            rc = rc < 0 ? rc : -EINVAL; /* refused: not a row this driver can run */
            goto out;
        }
    ms_app *port = ms_switch_app(sw, id), *wire = ms_switch_wire(sw);
    rc = port && wire ? 0 : -ENOMEM;
    if (!rc) {
        ms_app *in = tx ? port : wire, *out = tx ? wire : port;
        struct cycle c = {frames, lens, nframes, 0, 0};
        double best = 1e9, until = now_s() + seconds;
        while (now_s() < until) {
            uint32_t k = fill_ring(ms_app_shm(in), ms_app_geom(in, 0), &c, MS_BATCH);
            double t0 = now_s();
            int n = ms_switch_poll(sw);
            double t = now_s() - t0;
            if (n < 0) {
                rc = n;
                break;
            }
            if (n > 0 && (uint32_t)n == k && t / n < best)
                best = t / n;
            drain_frames(out);
        }
        *ns = best * 1e9;
    }
    ms_app_close(port);
    ms_app_close(wire);
out:
    ms_switch_destroy(sw);
    return rc < 0 ? rc : 0;
}

int ms_bench_run(ms_switch *sw, int src, int dst, const uint8_t *frames, const uint32_t *lens,
                 uint32_t nframes, uint32_t batch, double seconds, struct ms_bench_result *res)
{
    if (!nframes || !batch)
        return -EINVAL;
    ms_app *in = src >= 0 ? ms_switch_app(sw, src) : ms_switch_wire(sw);
    ms_app *out = dst >= 0 ? ms_switch_app(sw, dst) : ms_switch_wire(sw);
    if (!in || !out) {
        ms_app_close(in);
        ms_app_close(out);
        return -ENOMEM;
    }
    cpu_set_t was;
    int pinned = pin_driver(&was);
    if (pinned)
        ms_switch_pin(sw, 1);
    struct ends e = {ms_app_shm(in), ms_app_shm(out), ms_app_geom(in, 0), ms_app_geom(out, 1),
                     in};
    struct cycle c = {frames, lens, nframes, 0, 0};
    drive(&e, &c, batch, seconds, res);
    if (pinned)
        pthread_setaffinity_np(pthread_self(), sizeof(was), &was);
    ms_app_close(in);
    ms_app_close(out);
    return 0;
}

/* --- a wire sink for measuring a Python sender -------------------------------------- */

struct ms_bench_sink {
    pthread_t thread;
    ms_app *wire;
    int nap_ns;
    _Atomic int stop;
    _Atomic uint64_t frames;
};

static void *sink_loop(void *arg)
{
    struct ms_bench_sink *s = arg;
    if (!s->nap_ns) { /* a busy sink shares CPU 0 with the sender (see bench.py) */
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(0, &set);
        pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    }
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        uint32_t m = drain_frames(s->wire);
        if (m) {
            atomic_fetch_add_explicit(&s->frames, m, memory_order_relaxed);
        } else if (s->nap_ns) {
            /* A Python sender needs the other core: poll gently. */
            struct timespec d = {0, s->nap_ns};
            nanosleep(&d, NULL);
        } else {
            sched_yield();
        }
    }
    return NULL;
}

struct ms_bench_sink *ms_bench_sink_start(ms_switch *sw, int nap_ns)
{
    struct ms_bench_sink *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->wire = ms_switch_wire(sw);
    s->nap_ns = nap_ns;
    if (!s->wire || pthread_create(&s->thread, NULL, sink_loop, s) != 0) {
        ms_app_close(s->wire);
        free(s);
        return NULL;
    }
    return s;
}

uint64_t ms_bench_sink_stop(struct ms_bench_sink *s)
{
    if (!s)
        return 0;
    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    uint64_t n = atomic_load(&s->frames);
    ms_app_close(s->wire);
    free(s);
    return n;
}

/* --- a TAP-style application on ms_framefd ------------------------------------------ */

/* What is on the far side of the descriptor the driver reads or writes: the switch and
 * the wire (ms_framefd), or a bare peer thread (the baseline). */
struct tap_far {
    uint32_t (*drained)(struct tap_far *);           /* frames that arrived there */
    uint32_t (*inject)(struct tap_far *, struct cycle *, uint32_t max);
    ms_app *wire;
    _Atomic uint64_t count;   /* the bare peer's frames; it publishes, the driver reads */
    uint64_t seen;
};

/* The application's side, as a stack written against a TAP device drives one: one
 * write() per frame sent (to_port 0; the far side drains) or one read() per frame
 * received (to_port 1; the far side injects). */
static void tap_drive(int fd, int to_port, struct cycle *c, struct tap_far *far,
                      double seconds, struct ms_bench_result *res)
{
    static uint8_t buf[65536];
    uint64_t sent = 0, got = 0;
    struct window win;
    window_open(&win, seconds);
    while (window_tick(&win, got)) {
        if (!to_port) {
            for (int j = 0; j < 64; j++) {
                uint32_t len;
                const uint8_t *fr = cycle_next(c, &len);
                if (write(fd, fr, len) == (ssize_t)len)
                    sent++;
            }
            got += far->drained(far);
            continue;
        }
        uint32_t k = far->inject(far, c, MS_BATCH);
        sent += k;
        int n = 0;
        while (n < 256 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
            n++;
        got += (uint64_t)n;
        if (!n && !k) {
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            poll(&pfd, 1, 1);
        }
    }
    window_close(&win, got, sent, res);
}

static uint32_t wire_drained(struct tap_far *f) { return drain_frames(f->wire); }
static uint32_t wire_inject(struct tap_far *f, struct cycle *c, uint32_t max)
{
    return queue_frames(f->wire, c, max);
}

/* Frames per second through a port's frame descriptor. One driver thread; the
 * descriptor's pump and the switch are the other two, and both sleep when idle. */
int ms_bench_framefd(ms_switch *sw, int port, int to_port, const uint8_t *frames,
                     const uint32_t *lens, uint32_t nframes, double seconds,
                     struct ms_bench_result *res)
{
    if (!nframes)
        return -EINVAL;
    ms_app *p = ms_switch_app(sw, port), *wire = ms_switch_wire(sw);
    ms_framefd *f = p ? ms_framefd_open(p) : NULL;
    if (!p || !wire || !f) {
        ms_framefd_close(f);
        ms_app_close(p);
        ms_app_close(wire);
        return -ENOMEM;
    }
    struct cycle c = {frames, lens, nframes, 0, 0};
    struct tap_far far = {.drained = wire_drained, .inject = wire_inject, .wire = wire};
    tap_drive(ms_framefd_fd(f), to_port, &c, &far, seconds, res);
    ms_framefd_close(f);
    ms_app_close(p);
    ms_app_close(wire);
    return 0;
}

/* The baseline: the same driver on a bare SOCK_SEQPACKET pair whose other end a thread
 * serves as ms_framefd's pump does (recvmmsg / sendmmsg in batches of 64, poll when it
 * cannot move), with no port and no switch. What one syscall per frame costs here. */
struct bare_peer {
    struct tap_far far;
    int fd, to_port;
    const uint8_t *frame;
    uint32_t len;
    _Atomic int stop;
};

static void *bare_peer_loop(void *arg)
{
    struct bare_peer *b = arg;
    static uint8_t bufs[64][2048];
    struct iovec iov[64];
    struct mmsghdr m[64];
    while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
        for (int i = 0; i < 64; i++) {
            iov[i].iov_base = b->to_port ? (void *)b->frame : bufs[i];
            iov[i].iov_len = b->to_port ? b->len : sizeof(bufs[i]);
            memset(&m[i], 0, sizeof(m[i]));
            m[i].msg_hdr.msg_iov = &iov[i];
            m[i].msg_hdr.msg_iovlen = 1;
        }
        int r = b->to_port ? sendmmsg(b->fd, m, 64, MSG_DONTWAIT | MSG_NOSIGNAL)
                           : recvmmsg(b->fd, m, 64, MSG_DONTWAIT, NULL);
        if (r > 0) {
            atomic_fetch_add_explicit(&b->far.count, (uint64_t)r, memory_order_release);
            continue;
        }
        struct pollfd p = {.fd = b->fd, .events = b->to_port ? POLLOUT : POLLIN};
        poll(&p, 1, 10);
    }
    return NULL;
}

static uint32_t bare_drained(struct tap_far *f)
{
    uint64_t now = atomic_load_explicit(&f->count, memory_order_acquire);
    uint32_t d = (uint32_t)(now - f->seen);
    f->seen = now;
    return d;
}

static uint32_t bare_inject(struct tap_far *f, struct cycle *c, uint32_t max)
{
    (void)c, (void)max;
    return bare_drained(f);  /* the peer sends on its own; count what it sent */
}

int ms_bench_framefd_bare(int to_port, const uint8_t *frame, uint32_t len, double seconds,
                          struct ms_bench_result *res)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    struct bare_peer b = {.far = {.drained = bare_drained, .inject = bare_inject},
                          .fd = sv[1], .to_port = to_port, .frame = frame, .len = len};
    pthread_t t;
    if (pthread_create(&t, NULL, bare_peer_loop, &b) != 0) {
        close(sv[0]);
        close(sv[1]);
        return -EAGAIN;
    }
    struct cycle c = {frame, &len, 1, 0, 0};
    tap_drive(sv[0], to_port, &c, &b.far, seconds, res);
    atomic_store(&b.stop, 1);
    pthread_join(t, NULL);
    close(sv[0]);
    close(sv[1]);
    return 0;
}
