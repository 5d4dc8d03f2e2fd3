/* The switch: control operations and the switch loop.
 *
 * One native thread runs the loop. Each round it takes up to MS_BATCH frames from every
 * port's TX ring (filter, then wire or hairpin) and up to MS_BATCH frames from the NIC
 * (demux to a port, else host or no-binding). A round runs under the control lock, so
 * bind/unbind/port changes, explain() and counter reads never see a half-done round and the
 * loop never sees a half-done change; a control call waits at most one round. The loop
 * spins briefly when idle, then sleeps on an eventfd doorbell that applications ring.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "answer.h"
#include "filter.h"
#include "framelog.h"
#include "neigh.h"
#include "nic.h"
#include "offload.h"
#include "ring.h"

#define DEFAULT_SLOTS 1024
#define DEFAULT_BUF 2048
#define DEFAULT_WIRE_SLOTS 4096
#define DEFAULT_MAX_BINDINGS 16384
#define SPIN_NS 50000        /* keep polling this long after the last frame */
/* A real NIC hands frames over in bursts (an AF_PACKET block retires every millisecond):
 * sleeping between bursts would add a wake-up to each, so poll across the gap. */
#define SPIN_NS_REAL 2000000
#define SLEEP_MS 1000        /* idle wake-up, for nothing but liveness */
#define PREFETCH 8           /* frames ahead: enough to cover a cross-core cache miss */

enum { DIR_TX = 0, DIR_RX = 1 };
/* The other end of a recorded frame (struct ms_frame_record.peer_name), beside port ids. */
enum { PEER_NIC = -1, PEER_HOST = -2, PEER_SWITCH = -3, PEER_NONE = -4 };
enum { TAP_GONE = -3 };  /* a tap whose port has closed */

struct ms_swport {
    int active;
    char name[MS_NAME_MAX];
    uint32_t mtu;
    int memfd;
    int wake_fd;
    struct ms_port_shm *shm;
    size_t shm_size;
    struct ms_ring_geom txg, rxg;   /* ours: the owner can rewrite the region's copy */
    struct ms_port_stats ctr;
    /* RX slots filled this batch and not yet published */
    uint32_t rx_first, rx_space, rx_pending;
    int rx_touched;
    int taps;                       /* open taps on this port */
};

struct ms_switch {
    struct ms_config cfg;
    pthread_mutex_t mu;
    _Atomic int ctl_waiting;
    _Atomic int running;
    int started;
    pthread_t thread;
    int doorbell;
    struct ms_table *table;
    struct ms_nic *nic;
    int wire_memfd, wire_wake_fd;
    uint32_t naddrs;
    struct {
        uint8_t family;
        uint8_t ip[16];
    } addrs[MS_MAX_ADDRS];
    int nports;               /* highest port id in use + 1 */
    struct ms_swport *ports[MS_MAX_PORTS];
    struct ms_nic_stats nic_ctr;
    struct ms_framelog log;       /* every drop */
    int touched[MS_MAX_PORTS];
    int ntouched;
    uint8_t *scratch;         /* a frame's copy when the wire has no free buffer */
    struct ms_frags *frags;
    struct ms_neigh *neigh;
    int64_t now;              /* CLOCK_MONOTONIC at the start of the round */
    int ntaps;                /* open taps whose target is still there: 0 on the fast path */
    int nic_taps, all_taps;
    /* The taps themselves, cold: only control calls and recording touch them. */
    struct ms_framelog taplog;    /* every frame of a tapped port */
    int tap_target[MS_MAX_TAPS];  /* a port id, MS_TAP_NIC, MS_TAP_ALL or TAP_GONE */
    uint8_t tap_open[MS_MAX_TAPS];
};

/* --- the control lock --------------------------------------------------------------- */

static void ctl_lock(ms_switch *sw)
{
    atomic_fetch_add(&sw->ctl_waiting, 1);
    pthread_mutex_lock(&sw->mu);
    atomic_fetch_sub(&sw->ctl_waiting, 1);
}

static void ctl_unlock(ms_switch *sw) { pthread_mutex_unlock(&sw->mu); }

static void ring_doorbell(int fd)
{
    uint64_t one = 1;
    ssize_t w = write(fd, &one, sizeof(one));
    (void)w; /* EAGAIN: the counter is saturated, a wake-up is pending anyway */
}

static struct ms_swport *port_get(ms_switch *sw, int id)
{
    if (id < 0 || id >= sw->nports || !sw->ports[id] || !sw->ports[id]->active)
        return NULL;
    return sw->ports[id];
}

/* --- the datapath ------------------------------------------------------------------- */

static const char *end_name(const ms_switch *sw, int id)
{
    static const char *const special[] = {"", "switch", "host", "nic"}; /* PEER_NONE.. */
    return id >= 0 ? sw->ports[id]->name : special[id - PEER_NONE];
}

static int tapped(const ms_switch *sw, int id)
{
    return id >= 0 ? sw->ports[id]->taps : id == PEER_NIC ? sw->nic_taps : 0;
}

/* Record a frame for `ministack capture` when either of its ends is tapped. Out of line:
 * the loops pay one test of sw->ntaps per frame while nobody captures. */
static __attribute__((noinline, cold)) void tap(ms_switch *sw, int port, int peer, int dir,
                                                int reason, const uint8_t *f, uint32_t len)
{
    if (sw->all_taps || tapped(sw, port) || tapped(sw, peer))
        ms_framelog_add(&sw->taplog, port, end_name(sw, port), dir, reason,
                        end_name(sw, peer), f, len);
}

static inline void maybe_tap(ms_switch *sw, int port, int peer, int dir, int reason,
                             const uint8_t *f, uint32_t len)
{
    if (__builtin_expect(sw->ntaps != 0, 0))
        tap(sw, port, peer, dir, reason, f, len);
}

static void drop(ms_switch *sw, int port, int dir, int reason, const uint8_t *f, uint32_t len)
{
    struct ms_swport *p = port >= 0 ? sw->ports[port] : NULL;
    if (p)
        p->ctr.drops[reason]++;
    else
        sw->nic_ctr.drops[reason]++;
    ms_framelog_add(&sw->log, port, end_name(sw, port), dir, reason, "", f, len);
    maybe_tap(sw, port, PEER_NONE, dir, reason, f, len);
}

/* Copy a frame from `from` (a port id or a PEER_) into port `to`'s RX ring; published at
 * the end of the batch. */
static void deliver(ms_switch *sw, int from, int to, const uint8_t *f, uint32_t len)
{
    struct ms_swport *p = sw->ports[to];
    const struct ms_ring_geom *g = &p->rxg;
    if (!p->rx_touched) {
        p->rx_touched = 1;
        p->rx_pending = 0;
        p->rx_space = ms_rx_space(&p->shm->rx, g, &p->rx_first);
        sw->touched[sw->ntouched++] = to;
    }
    if (p->rx_pending == p->rx_space || len > g->buf_size) {
        drop(sw, to, DIR_RX, MS_R_RING_FULL, f, len);
        return;
    }
    uint32_t idx = p->rx_first + p->rx_pending++;
    memcpy(ms_ring_buf(p->shm, g, idx), f, len);
    ms_ring_slot(p->shm, g, idx)->len = len;
    p->ctr.rx.frames++;
    p->ctr.rx.bytes += len;
    maybe_tap(sw, to, from, DIR_RX, MS_R_OK, f, len);
}

static void flush_deliveries(ms_switch *sw)
{
    for (int i = 0; i < sw->ntouched; i++) {
        struct ms_swport *p = sw->ports[sw->touched[i]];
        p->rx_touched = 0;
        if (!p->rx_pending)
            continue;
        ms_rx_publish(&p->shm->rx, p->rx_pending);
        if (ms_ring_wants_wakeup(&p->shm->rx))
            ring_doorbell(p->wake_fd);
    }
    sw->ntouched = 0;
}

static int is_local(const ms_switch *sw, const struct ms_parsed *pp)
{
    for (uint32_t i = 0; i < sw->naddrs; i++)
        if (sw->addrs[i].family == pp->family && ms_ip_eq(pp->family, sw->addrs[i].ip, pp->dst_ip))
            return 1;
    return 0;
}

/* Verdict on a frame port `port` sends: its reason, and where a forwarded frame goes
 * (*to: a port id for hairpin delivery, -1 for the wire). */
static int classify_tx(ms_switch *sw, int port, const uint8_t *f, uint32_t len,
                       struct ms_parsed *pp, int *to, int64_t now)
{
    ms_parse(f, len, pp);
    *to = -1;
    int frag_to;
    int reason = ms_filter_tx(pp, port, sw->ports[port]->mtu, sw->cfg.mac, sw->table,
                              sw->frags, now, &frag_to);
    if (reason == MS_R_OK) {
        if (frag_to != -2)
            *to = frag_to;
        else if (is_local(sw, pp))
            *to = ms_demux(pp, sw->table, NULL, 0);
    }
    return reason;
}

/* Port a frame from the NIC goes to, or -1 for the host / no-binding. */
static int classify_rx(ms_switch *sw, const uint8_t *f, uint32_t len, struct ms_parsed *pp,
                       int64_t now)
{
    ms_parse(f, len, pp);
    return ms_demux(pp, sw->table, sw->frags, now);
}

/* Where the neighbour a port solicited is: the host's own addresses are the NIC's MAC
 * (a port reaches them through the switch), the rest the neighbour table's. */
static int neighbour_mac(ms_switch *sw, const struct ms_parsed *pp, int resolve, uint8_t mac[6])
{
    int family = pp->nd == MS_ND_NS ? 6 : 4;
    struct ms_parsed probe;
    probe.family = (uint8_t)family;
    memcpy(probe.dst_ip, pp->nd_target, 16);
    if (is_local(sw, &probe)) {
        memcpy(mac, sw->cfg.mac, 6);
        return 1;
    }
    /* explain() does not start a resolution (resolve 0): it only reads the table. */
    return sw->neigh && ms_neigh_lookup(sw->neigh, family, pp->nd_target, mac, resolve);
}

/* A frame the switch handles itself (verdict local): answer a solicitation for a known
 * neighbour; probes, announcements, router solicitations and MLD reports stop here. */
static void handle_local(ms_switch *sw, int id, uint32_t len, const struct ms_parsed *pp)
{
    struct ms_swport *p = sw->ports[id];
    p->ctr.local.frames++;
    p->ctr.local.bytes += len;
    uint8_t mac[6], ans[MS_ANSWER_MAX];
    if (!ms_answer_wanted(pp) || !neighbour_mac(sw, pp, 1, mac))
        return;
    deliver(sw, PEER_SWITCH, id, ans, ms_answer(pp, mac, ans));
    p->ctr.answers++;
}

/* A fragment the switch let through: remember its datagram (a first fragment), or count
 * one that followed. Kept out of the loops, which rarely see a fragment. */
static __attribute__((noinline)) void follow_tx(ms_switch *sw, int from,
                                                const struct ms_parsed *pp, int to)
{
    if (pp->frag == MS_FRAG_FIRST)
        ms_frags_add(sw->frags, from, pp, to, sw->now);
    else
        ms_frags_followed(sw->frags);
}

static __attribute__((noinline)) void follow_rx(ms_switch *sw, const struct ms_parsed *pp,
                                                int to)
{
    follow_tx(sw, MS_FRAG_FROM_NIC, pp, to);
}

/* A frame from the NIC for port `to` that the NIC marked (partial checksum) or that is
 * larger than the port's MTU (a super-frame): completed, or cut, then delivered. */
static void deliver_offloaded(ms_switch *sw, int to, const struct ms_nic_frame *fr,
                              const struct ms_parsed *pp)
{
    struct ms_swport *p = sw->ports[to];
    if (fr->len > p->mtu + 14) {
        struct ms_segmenter s;
        if (ms_seg_init(&s, fr->data, pp, p->mtu, fr->gso_size) < 0) {
            drop(sw, to, DIR_RX, MS_R_OVERSIZE, fr->data, fr->len);
            return;
        }
        for (uint32_t n; (n = ms_seg_next(&s, sw->scratch));)
            deliver(sw, PEER_NIC, to, sw->scratch, n);
        sw->nic_ctr.segmented++;
        return;
    }
    memcpy(sw->scratch, fr->data, fr->len);
    int done = fr->flags & MS_NIC_F_CSUM_PARTIAL
                   ? ms_csum_finish(sw->scratch, fr->len, fr->csum_start, fr->csum_offset)
                   : ms_csum_repair(sw->scratch, fr->len, pp) == 1;
    sw->nic_ctr.csum_completed += (uint64_t)done;
    deliver(sw, PEER_NIC, to, sw->scratch, fr->len);
}

static uint32_t port_tx(ms_switch *sw, int id)
{
    struct ms_swport *p = sw->ports[id];
    struct ms_ring *r = &p->shm->tx;
    const struct ms_ring_geom *g = &p->txg;
    uint32_t first, n = ms_tx_pending(r, g, &first);
    if (!n)
        return 0;
    if (n > MS_BATCH)
        n = MS_BATCH;
    struct ms_txbuf wb[MS_BATCH];
    uint32_t nw = sw->nic->ops->tx_reserve(sw->nic, wb, n);
    uint32_t w = 0;
    struct ms_parsed pp;
    for (uint32_t i = 0; i < PREFETCH && i < n; i++) {
        __builtin_prefetch(ms_ring_buf(p->shm, g, first + i));
        if (i < nw)
            __builtin_prefetch(wb[i].data, 1);
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t idx = first + i;
        /* Read the length once: the application may rewrite the slot at any time. */
        uint32_t len = *(volatile uint32_t *)&ms_ring_slot(p->shm, g, idx)->len;
        const uint8_t *src = ms_ring_buf(p->shm, g, idx);
        if (i + PREFETCH < n) {
            /* The sender's core wrote these lines: start the transfers early. */
            __builtin_prefetch(ms_ring_buf(p->shm, g, idx + PREFETCH));
            if (w + PREFETCH < nw)
                __builtin_prefetch(wb[w + PREFETCH].data, 1);
        }
        if (len > g->buf_size) {
            drop(sw, id, DIR_TX, MS_R_OVERSIZE, src, g->buf_size);
            continue;
        }
        /* Check a private copy, never the shared buffer (the sender could change it
         * between the check and the copy). */
        uint8_t *f = w < nw ? wb[w].data : sw->scratch;
        memcpy(f, src, len);
        int to;
        int reason = classify_tx(sw, id, f, len, &pp, &to, sw->now);
        if (reason != MS_R_OK) {
            if (reason == MS_R_LOCAL) {
                maybe_tap(sw, id, PEER_NONE, DIR_TX, MS_R_LOCAL, f, len);
                handle_local(sw, id, len, &pp);
            } else
                drop(sw, id, DIR_TX, reason, f, len);
            continue;
        }
        if (__builtin_expect(pp.frag != MS_FRAG_NONE, 0))
            follow_tx(sw, id, &pp, to);
        p->ctr.tx.frames++;
        p->ctr.tx.bytes += len;
        if (to >= 0) {
            deliver(sw, id, to, f, len);
        } else if (w < nw) {
            wb[w++].len = len;
            sw->nic_ctr.tx.frames++;
            sw->nic_ctr.tx.bytes += len;
            /* If the interface refuses it at commit, the capture shows it twice: passed
             * by the switch, then dropped ring-full. */
            maybe_tap(sw, id, PEER_NIC, DIR_TX, MS_R_OK, f, len);
        } else {
            drop(sw, -1, DIR_TX, MS_R_RING_FULL, f, len);
        }
    }
    ms_tx_release(r, n);
    if (ms_ring_wants_wakeup(r))
        ring_doorbell(p->wake_fd);
    /* Frames the interface refused were counted as sent above (readers hold the lock, so
     * they never see this correction half done). */
    for (uint32_t i = sw->nic->ops->tx_commit(sw->nic, wb, w); i < w; i++) {
        sw->nic_ctr.tx.frames--;
        sw->nic_ctr.tx.bytes -= wb[i].len;
        drop(sw, -1, DIR_TX, MS_R_RING_FULL, wb[i].data, wb[i].len);
    }
    flush_deliveries(sw);
    return n;
}

static uint32_t nic_rx(ms_switch *sw)
{
    struct ms_nic_frame fr[MS_BATCH];
    uint32_t n = sw->nic->ops->rx_burst(sw->nic, fr, MS_BATCH);
    if (!n)
        return 0;
    struct ms_parsed pp;
    for (uint32_t i = 0; i < n; i++) {
        if (i + PREFETCH < n)
            __builtin_prefetch(fr[i + PREFETCH].data);
        sw->nic_ctr.rx.frames++;
        sw->nic_ctr.rx.bytes += fr[i].len;
        int to = fr[i].flags & MS_NIC_F_HOST_ONLY
                     ? -1
                     : classify_rx(sw, fr[i].data, fr[i].len, &pp, sw->now);
        if (to >= 0) {
            if (__builtin_expect(pp.frag != MS_FRAG_NONE, 0))
                follow_rx(sw, &pp, to);
            if (__builtin_expect((fr[i].flags & (MS_NIC_F_CSUM_PARTIAL |
                                                 MS_NIC_F_CSUM_UNVERIFIED)) ||
                                     fr[i].len > sw->ports[to]->mtu + 14, 0))
                deliver_offloaded(sw, to, &fr[i], &pp);
            else
                deliver(sw, PEER_NIC, to, fr[i].data, fr[i].len);
        } else if (sw->nic->has_host) {
            sw->nic_ctr.to_host.frames++;
            sw->nic_ctr.to_host.bytes += fr[i].len;
            maybe_tap(sw, PEER_NIC, PEER_HOST, DIR_RX, MS_R_TO_HOST, fr[i].data, fr[i].len);
        } else {
            drop(sw, -1, DIR_RX, MS_R_NO_BINDING, fr[i].data, fr[i].len);
        }
    }
    flush_deliveries(sw);
    sw->nic->ops->rx_done(sw->nic, n);
    return n;
}

static int64_t now_ns(void);

static uint32_t round_locked(ms_switch *sw)
{
    uint32_t work = 0;
    sw->now = now_ns();
    for (int i = 0; i < sw->nports; i++)
        if (sw->ports[i] && sw->ports[i]->active)
            work += port_tx(sw, i);
    return work + nic_rx(sw);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *switch_loop(void *arg)
{
    ms_switch *sw = arg;
    pthread_setname_np(pthread_self(), "ms-switch");
    int64_t last_work = now_ns();
    while (atomic_load_explicit(&sw->running, memory_order_relaxed)) {
        pthread_mutex_lock(&sw->mu);
        uint32_t work = round_locked(sw);
        pthread_mutex_unlock(&sw->mu);
        if (atomic_load_explicit(&sw->ctl_waiting, memory_order_relaxed))
            sched_yield(); /* glibc mutexes are not fair: let the control call in */
        if (work) {
            last_work = 0;
            continue;
        }
        int64_t t = now_ns();
        if (!last_work)
            last_work = t;
        if (t - last_work < (sw->nic->has_host ? SPIN_NS_REAL : SPIN_NS)) {
            sched_yield(); /* two cores: never starve the applications we wait for */
            continue;
        }
        /* Ask every producer to ring the doorbell, then look once more before sleeping:
         * a frame published before the request was seen is caught by this last round. */
        pthread_mutex_lock(&sw->mu);
        for (int i = 0; i < sw->nports; i++)
            if (sw->ports[i] && sw->ports[i]->active)
                atomic_store(&sw->ports[i]->shm->kick_wanted, 1);
        int nic_fd = sw->nic->ops->arm(sw->nic);
        atomic_thread_fence(memory_order_seq_cst);
        work = round_locked(sw);
        pthread_mutex_unlock(&sw->mu);
        if (work) {
            last_work = 0;
            continue;
        }
        struct pollfd pfd[2] = {{.fd = sw->doorbell, .events = POLLIN},
                                {.fd = nic_fd, .events = POLLIN}};
        poll(pfd, nic_fd >= 0 ? 2 : 1, SLEEP_MS);
        uint64_t v;
        ssize_t r = read(sw->doorbell, &v, sizeof(v));
        (void)r;
        last_work = 0;
    }
    return NULL;
}

/* --- control ------------------------------------------------------------------------ */

int ms_switch_create(const struct ms_config *cfg, ms_switch **out)
{
    ms_switch *sw = calloc(1, sizeof(*sw));
    if (!sw)
        return -ENOMEM;
    sw->cfg = *cfg;
    if (!sw->cfg.ring_slots)
        sw->cfg.ring_slots = DEFAULT_SLOTS;
    if (!sw->cfg.buf_size)
        sw->cfg.buf_size = DEFAULT_BUF;
    if (!sw->cfg.wire_slots)
        sw->cfg.wire_slots = DEFAULT_WIRE_SLOTS;
    if (!sw->cfg.max_bindings)
        sw->cfg.max_bindings = DEFAULT_MAX_BINDINGS;
    uint32_t s = sw->cfg.ring_slots, ws = sw->cfg.wire_slots, b = sw->cfg.buf_size;
    if ((s & (s - 1)) || (ws & (ws - 1)) || b < 128 || b > 65536 || (b & 63)) {
        free(sw);
        return -EINVAL;
    }
    pthread_mutex_init(&sw->mu, NULL);
    sw->doorbell = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    sw->table = ms_table_new(sw->cfg.max_bindings);
    sw->scratch = malloc(b);
    sw->frags = ms_frags_new();
    sw->wire_memfd = sw->wire_wake_fd = -1;
    if (sw->doorbell < 0 || !sw->table || !sw->scratch || !sw->frags ||
        ms_framelog_init(&sw->log) < 0 || ms_framelog_init(&sw->taplog) < 0) {
        ms_switch_destroy(sw);
        return -ENOMEM;
    }
    *out = sw;
    return 0;
}

uint32_t ms_switch_buf_size(ms_switch *sw) { return sw->cfg.buf_size; }

int ms_switch_add_address(ms_switch *sw, int family, const uint8_t *ip)
{
    if (family != 4 && family != 6)
        return -EINVAL;
    ctl_lock(sw);
    int rc = 0;
    if (sw->naddrs == MS_MAX_ADDRS) {
        rc = -ENOSPC;
    } else {
        sw->addrs[sw->naddrs].family = (uint8_t)family;
        memset(sw->addrs[sw->naddrs].ip, 0, 16);
        memcpy(sw->addrs[sw->naddrs].ip, ip, family == 4 ? 4 : 16);
        sw->naddrs++;
    }
    ctl_unlock(sw);
    return rc;
}

int ms_switch_attach_virtual(ms_switch *sw)
{
    if (sw->nic)
        return -EBUSY;
    sw->neigh = ms_neigh_new_static();
    if (!sw->neigh)
        return -ENOMEM;
    sw->nic = ms_nic_virtual_new(sw->cfg.wire_slots, sw->cfg.buf_size, &sw->wire_memfd,
                                 &sw->wire_wake_fd);
    return sw->nic ? 0 : -ENOMEM;
}

int ms_switch_add_neighbor(ms_switch *sw, int family, const uint8_t *ip, const uint8_t *mac)
{
    if (family != 4 && family != 6)
        return -EINVAL;
    ctl_lock(sw);
    int rc = sw->neigh ? ms_neigh_set(sw->neigh, family, ip, mac) : -EINVAL;
    ctl_unlock(sw);
    return rc;
}

int ms_switch_neighbor(ms_switch *sw, int family, const uint8_t *ip, uint8_t *mac, int resolve)
{
    if (family != 4 && family != 6)
        return -EINVAL;
    ctl_lock(sw);
    int rc = sw->neigh ? ms_neigh_lookup(sw->neigh, family, ip, mac, resolve) : 0;
    ctl_unlock(sw);
    return rc;
}

int ms_switch_attach(ms_switch *sw, const char *ifname, const char *backend, char *err,
                     size_t errlen)
{
    if (sw->nic) {
        snprintf(err, errlen, "the switch is attached to a NIC already");
        return -EBUSY;
    }
    if (strcmp(backend, "afpacket") == 0)
        sw->nic = ms_nic_afpacket_new(ifname, sw->cfg.buf_size, err, errlen);
    else if (strcmp(backend, "afxdp") == 0)
        sw->nic = ms_nic_afxdp_new(ifname, sw->cfg.buf_size, err, errlen);
    else
        snprintf(err, errlen, "unknown backend %s (afxdp or afpacket)", backend);
    if (sw->nic && !(sw->neigh = ms_neigh_new_kernel(ifname, err, errlen))) {
        sw->nic->ops->destroy(sw->nic);
        sw->nic = NULL;
    }
    return sw->nic ? 0 : -EINVAL;
}

int ms_switch_pin(ms_switch *sw, int cpu)
{
    if (!sw->started)
        return -EINVAL;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return -pthread_setaffinity_np(sw->thread, sizeof(set), &set);
}

const char *ms_switch_backend(ms_switch *sw) { return sw->nic ? sw->nic->ops->name : ""; }

int ms_switch_kernel_steers(ms_switch *sw, const uint8_t *frame, uint32_t len)
{
    ctl_lock(sw);
    int r = sw->nic && sw->nic->ops->kernel_steers
                ? sw->nic->ops->kernel_steers(sw->nic, frame, len)
                : -ENOTSUP;
    ctl_unlock(sw);
    return r;
}

const char *ms_switch_xdp_mode(ms_switch *sw)
{
    const char *m = sw->nic && sw->nic->ops->xdp_mode ? sw->nic->ops->xdp_mode(sw->nic) : NULL;
    return m ? m : "";
}

int ms_switch_start(ms_switch *sw)
{
    if (!sw->nic)
        return -EINVAL;
    if (sw->started)
        return 0;
    atomic_store(&sw->running, 1);
    if (pthread_create(&sw->thread, NULL, switch_loop, sw) != 0) {
        atomic_store(&sw->running, 0);
        return -EAGAIN;
    }
    sw->started = 1;
    return 0;
}

static void port_free(struct ms_swport *p)
{
    if (p->shm)
        munmap(p->shm, p->shm_size);
    if (p->memfd >= 0)
        close(p->memfd);
    if (p->wake_fd >= 0)
        close(p->wake_fd);
    free(p);
}

void ms_switch_destroy(ms_switch *sw)
{
    if (!sw)
        return;
    if (sw->started) {
        atomic_store(&sw->running, 0);
        ring_doorbell(sw->doorbell);
        pthread_join(sw->thread, NULL);
    }
    for (int i = 0; i < sw->nports; i++)
        if (sw->ports[i])
            port_free(sw->ports[i]);
    if (sw->nic)
        sw->nic->ops->destroy(sw->nic);
    ms_table_free(sw->table);
    ms_frags_free(sw->frags);
    ms_neigh_free(sw->neigh);
    ms_framelog_free(&sw->log);
    ms_framelog_free(&sw->taplog);
    free(sw->scratch);
    if (sw->doorbell >= 0)
        close(sw->doorbell);
    pthread_mutex_destroy(&sw->mu);
    free(sw);
}

int ms_port_create(ms_switch *sw, const char *name, uint32_t mtu)
{
    size_t nl = strnlen(name, MS_NAME_MAX);
    if (nl == 0 || nl >= MS_NAME_MAX || mtu < 68 || mtu + 14 > sw->cfg.buf_size)
        return -EINVAL;
    struct ms_swport *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    memcpy(p->name, name, nl);
    p->mtu = mtu;
    p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    p->memfd = ms_shm_create(name, sw->cfg.ring_slots, sw->cfg.buf_size, &p->shm, &p->shm_size);
    if (p->memfd < 0 || p->wake_fd < 0) {
        int e = p->memfd < 0 ? p->memfd : -errno;
        port_free(p);
        return e;
    }
    p->txg = p->shm->tx.geom;
    p->rxg = p->shm->rx.geom;
    /* The loop may be asleep already: the first frame must ring. */
    atomic_store(&p->shm->kick_wanted, 1);
    p->active = 1;

    ctl_lock(sw);
    int id = -1, rc;
    for (int i = 0; i < MS_MAX_PORTS; i++) {
        if (sw->ports[i] && sw->ports[i]->active && strcmp(sw->ports[i]->name, p->name) == 0) {
            id = -2;
            break;
        }
        if (id == -1 && (!sw->ports[i] || !sw->ports[i]->active))
            id = i;
    }
    if (id == -2) {
        rc = -EEXIST;
    } else if (id == -1) {
        rc = -ENOSPC;
    } else {
        if (sw->ports[id])
            port_free(sw->ports[id]);
        sw->ports[id] = p;
        if (id >= sw->nports)
            sw->nports = id + 1;
        rc = id;
    }
    ctl_unlock(sw);
    if (rc < 0)
        port_free(p);
    return rc;
}

static int unbind_locked(ms_switch *sw, int id, int family, int proto, const uint8_t *ip,
                         uint16_t l4port)
{
    int e = ms_table_del(sw->table, id, family, proto, ip, l4port);
    if (e == 0 && sw->nic->ops->binding)
        sw->nic->ops->binding(sw->nic, 0, family, proto, ip, l4port);
    return e;
}

/* Every binding of port id goes, in the table and in the NIC's steering. */
static void unbind_all_locked(ms_switch *sw, int id)
{
    int n = (int)ms_table_count(sw->table);
    struct ms_binding_info *b = n ? malloc((size_t)n * sizeof(*b)) : NULL;
    if (!b) {
        ms_table_del_owner(sw->table, id);
        return;
    }
    n = ms_table_list(sw->table, id, b, n);
    for (int i = 0; i < n; i++)
        unbind_locked(sw, id, b[i].family, b[i].proto, b[i].ip, b[i].l4port);
    free(b);
}

int ms_port_destroy(ms_switch *sw, int id)
{
    ctl_lock(sw);
    struct ms_swport *p = port_get(sw, id);
    if (p) {
        /* Frames the owner queued before closing are handled, not lost: a close flushes
         * (at most one ring's worth, whatever the owner wrote into its indices). */
        for (uint32_t i = 0; i <= p->txg.num_slots / MS_BATCH; i++)
            if (!port_tx(sw, id))
                break;
        unbind_all_locked(sw, id);
        ms_frags_forget_port(sw->frags, id);
        for (int t = 0; t < MS_MAX_TAPS; t++)
            if (sw->tap_open[t] && sw->tap_target[t] == id)
                sw->tap_target[t] = TAP_GONE;
        sw->ntaps -= p->taps;
        p->taps = 0;
        p->active = 0;
        /* Keep the record until the id is reused so that late stats calls stay safe;
         * the memory goes now. */
        munmap(p->shm, p->shm_size);
        close(p->memfd);
        close(p->wake_fd);
        p->shm = NULL;
        p->memfd = p->wake_fd = -1;
    }
    ctl_unlock(sw);
    return p ? 0 : -ENOENT;
}

int ms_port_memfd(ms_switch *sw, int id)
{
    ctl_lock(sw);
    struct ms_swport *p = port_get(sw, id);
    int fd = p ? p->memfd : -ENOENT;
    ctl_unlock(sw);
    return fd;
}

int ms_port_fds(ms_switch *sw, int id, int *memfd, int *doorbell, int *wake_fd)
{
    ctl_lock(sw);
    struct ms_swport *p = port_get(sw, id);
    if (p) {
        *memfd = p->memfd;
        *doorbell = sw->doorbell;
        *wake_fd = p->wake_fd;
    }
    ctl_unlock(sw);
    return p ? 0 : -ENOENT;
}

static int address_is_local(ms_switch *sw, int family, const uint8_t *ip)
{
    struct ms_parsed probe;
    probe.family = (uint8_t)family;
    memset(probe.dst_ip, 0, 16);
    memcpy(probe.dst_ip, ip, family == 4 ? 4 : 16);
    return is_local(sw, &probe);
}

/* Which (protocol, port) pairs can be bound at all. */
static int check_tuple(int family, int proto, int l4port)
{
    if (proto < 0 || proto > 255)
        return MS_BIND_BAD_PROTOCOL;
    if (family == 6 && ms_ipv6_is_ext_header(proto))
        return MS_BIND_BAD_PROTOCOL;   /* the parser never reports these as a protocol */
    if ((family == 6 && proto == MS_IP_ICMP) || (family == 4 && proto == MS_IP_ICMPV6))
        return MS_BIND_BAD_PROTOCOL;   /* ICMP and ICMPv6 each belong to one family */
    if (l4port < 0 || l4port > 65535)
        return MS_BIND_BAD_PORT;
    if (ms_proto_has_ports(family, proto)) {
        int echo = proto == MS_IP_ICMP || proto == MS_IP_ICMPV6;
        if (!echo && l4port == 0)
            return MS_BIND_BAD_PORT;   /* port 0 is "any" to sockets, never a source port */
    } else if (l4port != 0) {
        return MS_BIND_BAD_PORT;       /* a port-less protocol binds port 0 */
    }
    return MS_BIND_OK;
}

/* The ports Linux reserves below ip_unprivileged_port_start: every port-based protocol's,
 * but not the ICMP echo identifier (ping sockets have no such rule). */
static int needs_bind_service(int family, int proto, int l4port, int privileged_below)
{
    return l4port < privileged_below && ms_proto_has_ports(family, proto) &&
           proto != MS_IP_ICMP && proto != MS_IP_ICMPV6;
}

int ms_bind(ms_switch *sw, int id, int family, const uint8_t *ip, int proto, int l4port,
            int privileged_below)
{
    if (family != 4 && family != 6)
        return MS_BIND_ADDRESS_NOT_LOCAL;
    ctl_lock(sw);
    int rc;
    if (!port_get(sw, id))
        rc = -ENOENT;
    else if (!address_is_local(sw, family, ip))
        rc = MS_BIND_ADDRESS_NOT_LOCAL;
    else if ((rc = check_tuple(family, proto, l4port)) == MS_BIND_OK &&
             needs_bind_service(family, proto, l4port, privileged_below))
        rc = MS_BIND_NOT_PERMITTED;
    else if (rc == MS_BIND_OK) {
        int e = ms_table_add(sw->table, id, family, proto, ip, (uint16_t)l4port);
        rc = e == -EEXIST ? MS_BIND_IN_USE : e == -ENOSPC ? MS_BIND_NO_SPACE : MS_BIND_OK;
        if (rc == MS_BIND_OK && sw->nic->ops->binding &&
            sw->nic->ops->binding(sw->nic, 1, family, proto, ip, (uint16_t)l4port) < 0) {
            ms_table_del(sw->table, id, family, proto, ip, (uint16_t)l4port);
            rc = MS_BIND_NO_SPACE; /* the NIC's steering table is full */
        }
    }
    ctl_unlock(sw);
    return rc;
}

int ms_unbind(ms_switch *sw, int id, int family, const uint8_t *ip, int proto, int l4port)
{
    if ((family != 4 && family != 6) || proto < 0 || proto > 255 || l4port < 0 ||
        l4port > 65535)
        return -ENOENT;
    ctl_lock(sw);
    int rc;
    if (!port_get(sw, id))
        rc = -ENOENT;
    else {
        int e = unbind_locked(sw, id, family, proto, ip, (uint16_t)l4port);
        rc = e == -EPERM ? MS_BIND_NOT_OWNER : e;
    }
    ctl_unlock(sw);
    return rc;
}

int ms_bindings(ms_switch *sw, struct ms_binding_info *out, int max)
{
    ctl_lock(sw);
    int n = out ? ms_table_list(sw->table, -1, out, max) : (int)ms_table_count(sw->table);
    ctl_unlock(sw);
    return n;
}

/* The binding a spoofed frame came closest to: the very tuple when another port holds it,
 * else the nearest of the sender's own. */
static void nearest_tx(ms_switch *sw, int port, struct ms_verdict *v)
{
    const struct ms_parsed *p = &v->parsed;
    uint16_t sport = p->has_ports ? p->sport : 0;
    if (ms_table_lookup(sw->table, p->family, p->proto, p->src_ip, sport) >= 0) {
        v->near = ms_table_nearest(sw->table, -1, p->family, p->proto, p->src_ip, sport,
                                   &v->nearest);
        return;
    }
    v->near = ms_table_nearest(sw->table, port, p->family, p->proto, p->src_ip, sport,
                               &v->nearest);
}

int ms_explain(ms_switch *sw, int port, const uint8_t *f, uint32_t len, struct ms_verdict *v)
{
    memset(v, 0, sizeof(*v));
    v->to_port = -1;
    v->near = -1;
    ctl_lock(sw);
    int rc = 0;
    if (port >= 0) {
        if (!port_get(sw, port)) {
            rc = -ENOENT;
        } else {
            int to;
            v->reason = classify_tx(sw, port, f, len, &v->parsed, &to, now_ns());
            v->action = v->reason == MS_R_OK;
            v->dest = !v->action ? MS_TO_NONE : to >= 0 ? MS_TO_PORT : MS_TO_WIRE;
            v->to_port = to;
            if (v->reason >= MS_R_SPOOFED_SRC_IP && v->reason <= MS_R_SPOOFED_SRC_PORT)
                nearest_tx(sw, port, v);
            uint8_t mac[6];
            if (v->reason == MS_R_LOCAL) {
                v->action = 2;
                /* An answer goes back to the sender; its MAC is the answer's source. */
                if (ms_answer_wanted(&v->parsed) && neighbour_mac(sw, &v->parsed, 0, mac)) {
                    v->dest = MS_TO_PORT;
                    v->to_port = port;
                    memcpy(v->answer_mac, mac, 6);
                }
            }
        }
    } else {
        int to = classify_rx(sw, f, len, &v->parsed, now_ns());
        struct ms_segmenter sg;
        if (to >= 0 && len > sw->ports[to]->mtu + 14 &&
            ms_seg_init(&sg, f, &v->parsed, sw->ports[to]->mtu, 0) < 0) {
            v->reason = MS_R_OVERSIZE;   /* larger than the port's MTU and cannot be cut */
            v->to_port = to;             /* whose MTU it is, for the sentence */
        } else if (to >= 0) {
            v->action = 1;
            v->dest = MS_TO_PORT;
            v->to_port = to;
        } else if (sw->nic && sw->nic->has_host) {
            v->action = 1;
            v->dest = MS_TO_HOST;
        } else {
            v->reason = MS_R_NO_BINDING;
        }
        const struct ms_parsed *p = &v->parsed;
        if (to < 0 && p->family && !p->problems && !p->nd)
            v->near = ms_table_nearest(sw->table, -1, p->family, p->proto, p->dst_ip,
                                       p->has_ports ? p->dport : 0, &v->nearest);
    }
    ctl_unlock(sw);
    return rc;
}

/* Wait until the switch has taken every frame that was queued when the call began: each
 * ring's consumer index must pass the producer index seen then. Checked under the lock, so
 * a frame taken is a frame fully handled. Frames queued later do not delay the answer. */
int ms_switch_sync(ms_switch *sw, int timeout_ms)
{
    int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
    uint32_t mark[MS_MAX_PORTS];
    struct ms_port_shm *shm[MS_MAX_PORTS];
    ctl_lock(sw);
    int n = sw->nports;
    for (int i = 0; i < n; i++) {
        struct ms_swport *p = sw->ports[i];
        shm[i] = p && p->active ? p->shm : NULL;
        if (!shm[i])
            continue;
        mark[i] = atomic_load_explicit(&p->shm->tx.head, memory_order_acquire);
        /* A head more than a ring ahead is a broken owner: wait for one ring's worth. */
        uint32_t taken = atomic_load_explicit(&p->shm->tx.tail, memory_order_relaxed) -
                         p->txg.num_slots;
        if (mark[i] - taken > p->txg.num_slots)
            mark[i] = taken + p->txg.num_slots;
    }
    uint32_t nic_mark = sw->nic && sw->nic->ops->rx_mark ? sw->nic->ops->rx_mark(sw->nic) : 0;
    ctl_unlock(sw);
    for (;;) {
        int busy = 0;
        ctl_lock(sw);
        for (int i = 0; i < n && !busy; i++) {
            struct ms_swport *p = sw->ports[i];
            if (!shm[i] || !p || !p->active || p->shm != shm[i])
                continue; /* closed (or replaced) since: nothing of it left to handle */
            uint32_t taken = atomic_load_explicit(&p->shm->tx.tail, memory_order_relaxed) -
                             p->txg.num_slots;
            busy = (int32_t)(taken - mark[i]) < 0;
        }
        if (!busy && sw->nic && sw->nic->ops->rx_reached)
            busy = !sw->nic->ops->rx_reached(sw->nic, nic_mark);
        ctl_unlock(sw);
        if (!busy)
            return 0;
        if (timeout_ms >= 0 && now_ns() > deadline)
            return -ETIMEDOUT;
        ring_doorbell(sw->doorbell);
        struct timespec d = {0, 20000};
        nanosleep(&d, NULL);
    }
}

int ms_port_stats(ms_switch *sw, int id, struct ms_port_stats *out)
{
    ctl_lock(sw);
    struct ms_swport *p = id >= 0 && id < sw->nports ? sw->ports[id] : NULL;
    if (p)
        *out = p->ctr;
    ctl_unlock(sw);
    return p ? 0 : -ENOENT;
}

int ms_nic_stats(ms_switch *sw, struct ms_nic_stats *out)
{
    ctl_lock(sw);
    *out = sw->nic_ctr;
    ms_frags_stats(sw->frags, &out->frags);
    if (sw->nic && sw->nic->ops->host_counters) {
        uint64_t frames = 0, bytes = 0;
        sw->nic->ops->host_counters(sw->nic, &frames, &bytes);
        out->to_host.frames += frames;
        out->to_host.bytes += bytes;
        out->rx.frames += frames;
        out->rx.bytes += bytes;
    }
    ctl_unlock(sw);
    return 0;
}

int ms_drops(ms_switch *sw, struct ms_frame_record *out, int max)
{
    ctl_lock(sw);
    int n = ms_framelog_read(&sw->log, out, max);
    ctl_unlock(sw);
    return n;
}

static int *tap_counter(ms_switch *sw, int target)
{
    return target >= 0 ? &sw->ports[target]->taps
                       : target == MS_TAP_NIC ? &sw->nic_taps : &sw->all_taps;
}

int ms_tap_open(ms_switch *sw, int target, uint64_t *seq)
{
    if (target < MS_TAP_ALL)
        return -EINVAL;
    ctl_lock(sw);
    int t = 0;
    while (t < MS_MAX_TAPS && sw->tap_open[t])
        t++;
    if (target >= 0 && !port_get(sw, target))
        t = -ENOENT;
    else if (t == MS_MAX_TAPS)
        t = -ENOSPC;
    else {
        sw->tap_open[t] = 1;
        sw->tap_target[t] = target;
        (*tap_counter(sw, target))++;
        sw->ntaps++;
        *seq = sw->taplog.seq;
    }
    ctl_unlock(sw);
    return t;
}

int ms_tap_close(ms_switch *sw, int t)
{
    if (t < 0 || t >= MS_MAX_TAPS)
        return -EINVAL;
    ctl_lock(sw);
    int r = sw->tap_open[t] ? 0 : -ENOENT;
    if (!r && sw->tap_target[t] != TAP_GONE) {
        (*tap_counter(sw, sw->tap_target[t]))--;
        sw->ntaps--;
    }
    sw->tap_open[t] = 0;
    ctl_unlock(sw);
    return r;
}

int ms_tapped(ms_switch *sw, uint64_t since, struct ms_frame_record *out, int max)
{
    ctl_lock(sw);
    int n = ms_framelog_read_since(&sw->taplog, since, out, max);
    ctl_unlock(sw);
    return n;
}

ms_app *ms_switch_app(ms_switch *sw, int id)
{
    ctl_lock(sw);
    struct ms_swport *p = port_get(sw, id);
    ms_app *a = p ? ms_app_open(p->memfd, sw->doorbell, p->wake_fd) : NULL;
    ctl_unlock(sw);
    return a;
}

ms_app *ms_switch_wire(ms_switch *sw)
{
    if (!sw->nic || sw->wire_memfd < 0)
        return NULL;
    return ms_app_open(sw->wire_memfd, sw->doorbell, sw->wire_wake_fd);
}

