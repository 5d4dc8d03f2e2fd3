/* The forwarding loop: one native thread. Each round it takes up to MS_BATCH frames from
 * every port's TX ring (filter, then wire or hairpin) and up to MS_BATCH frames from the NIC
 * (demux to a port, else host or no-binding), all under the control lock (switch.c), so a
 * control call never sees a half-done round and waits at most one. The loop spins briefly
 * when idle, then sleeps on an eventfd doorbell that applications ring.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "answer.h"
#include "filter.h"
#include "neigh.h"
#include "nic.h"
#include "offload.h"
#include "switch_state.h"

#define SPIN_NS 50000        /* keep polling this long after the last frame */
/* A real NIC hands frames over in bursts (an AF_PACKET block retires every millisecond):
 * sleeping between bursts would add a wake-up to each, so poll across the gap. */
#define SPIN_NS_REAL 2000000
#define SLEEP_MS 1000        /* idle wake-up, for nothing but liveness */
#define PREFETCH 8           /* frames ahead: enough to cover a cross-core cache miss */

/* --- the datapath ------------------------------------------------------------------- */

/* MS_NAME_MAX bytes each, as the ports' names are: the log copies whole arrays. */
static const char *end_name(const ms_switch *sw, int id)
{
    static const char special[][MS_NAME_MAX] = {"", "switch", "host", "nic"}; /* PEER_NONE.. */
    return id >= 0 ? sw->ports[id]->name : special[id - PEER_NONE];
}

/* The wall-clock time of the round's records: read once per round that records any
 * (a clock read costs as much as forwarding a frame in a virtual machine). */
static int64_t record_time(ms_switch *sw)
{
    if (sw->record_time_at != sw->now) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts); /* vDSO: no system call */
        sw->record_time = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
        sw->record_time_at = sw->now;
    }
    return sw->record_time;
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
        ms_framelog_add(&sw->taplog, record_time(sw), port, end_name(sw, port), dir, reason,
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
    ms_framelog_add(&sw->log, record_time(sw), port, end_name(sw, port), dir, reason,
                    end_name(sw, PEER_NONE), f, len);
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
    /* Everything but the copy first: after it the compiler must assume any of these
     * fields changed, and would read them all again. */
    uint32_t idx = p->rx_first + p->rx_pending++;
    uint8_t *dst = ms_ring_buf(p->shm, g, idx);
    ms_ring_slot(p->shm, g, idx)->len = len;
    p->ctr.rx.frames++;
    p->ctr.rx.bytes += len;
    memcpy(dst, f, len);
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
            ms_ring_doorbell(p->wake_fd);
    }
    sw->ntouched = 0;
}

/* Verdict on a frame port `port` sends: its reason, and where a forwarded frame goes
 * (*to: a port id for hairpin delivery, -1 for the wire). */
int ms_fwd_classify_tx(ms_switch *sw, int port, const uint8_t *f, uint32_t len,
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
        else if (ms_is_local(sw, pp))
            *to = ms_demux(pp, sw->table, NULL, 0);
    }
    return reason;
}

/* Port a frame from the NIC goes to, or -1 for the host / no-binding. */
int ms_fwd_classify_rx(ms_switch *sw, const uint8_t *f, uint32_t len, struct ms_parsed *pp,
                       int64_t now)
{
    ms_parse(f, len, pp);
    return ms_demux(pp, sw->table, sw->frags, now);
}

/* Where the neighbour a port solicited is: the host's own addresses are the NIC's MAC
 * (a port reaches them through the switch), the rest the neighbour table's. */
int ms_fwd_neighbour_mac(ms_switch *sw, const struct ms_parsed *pp, int resolve,
                         uint8_t mac[6])
{
    int family = pp->nd == MS_ND_NS ? 6 : 4;
    struct ms_parsed probe;
    probe.family = (uint8_t)family;
    memcpy(probe.dst_ip, pp->nd_target, 16);
    if (ms_is_local(sw, &probe)) {
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
    if (!ms_answer_wanted(pp) || !ms_fwd_neighbour_mac(sw, pp, 1, mac))
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

__attribute__((flatten)) uint32_t ms_fwd_port_tx(ms_switch *sw, int id)
{
    struct ms_swport *p = sw->ports[id];
    struct ms_ring *r = &p->shm->tx;
    /* Our copies in registers: the frames' copies below could, for all the compiler
     * knows, overwrite the port's. */
    const struct ms_ring_geom geom = p->txg, *g = &geom;
    struct ms_port_shm *shm = p->shm;
    uint8_t *scratch = sw->scratch;
    uint32_t first, n = ms_tx_pending(r, g, &first);
    if (!n)
        return 0;
    if (n > MS_BATCH)
        n = MS_BATCH;
    struct ms_txbuf wb[MS_BATCH];
    uint32_t nw = sw->nic->ops->tx_reserve(sw->nic, wb, n);
    uint32_t w = 0;
    /* Counted here and added once: in memory, each frame's four increments would wait on
     * the frame's copy (the compiler cannot tell they do not alias it). */
    uint64_t sent = 0, sent_bytes = 0, wired_bytes = 0;
    struct ms_parsed pp;
    for (uint32_t i = 0; i < PREFETCH && i < n; i++) {
        __builtin_prefetch(ms_ring_buf(shm, g, first + i));
        if (i < nw)
            __builtin_prefetch(wb[i].data, 1);
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t idx = first + i;
        /* Read the length once: the application may rewrite the slot at any time. */
        uint32_t len = *(volatile uint32_t *)&ms_ring_slot(shm, g, idx)->len;
        const uint8_t *src = ms_ring_buf(shm, g, idx);
        if (i + PREFETCH < n) {
            /* The sender's core wrote these lines: start the transfers early. */
            __builtin_prefetch(ms_ring_buf(shm, g, idx + PREFETCH));
            if (w + PREFETCH < nw)
                __builtin_prefetch(wb[w + PREFETCH].data, 1);
        }
        if (len > g->buf_size) {
            drop(sw, id, DIR_TX, MS_R_OVERSIZE, src, g->buf_size);
            continue;
        }
        /* Check a private copy, never the shared buffer (the sender could change it
         * between the check and the copy). */
        uint8_t *f = w < nw ? wb[w].data : scratch;
        memcpy(f, src, len);
        int to;
        int reason = ms_fwd_classify_tx(sw, id, f, len, &pp, &to, sw->now);
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
        sent++;
        sent_bytes += len;
        if (to >= 0) {
            deliver(sw, id, to, f, len);
        } else if (w < nw) {
            wb[w++].len = len;
            wired_bytes += len;
            /* If the interface refuses it at commit, the capture shows it twice: passed
             * by the switch, then dropped ring-full. */
            maybe_tap(sw, id, PEER_NIC, DIR_TX, MS_R_OK, f, len);
        } else {
            drop(sw, -1, DIR_TX, MS_R_RING_FULL, f, len);
        }
    }
    p->ctr.tx.frames += sent;
    p->ctr.tx.bytes += sent_bytes;
    sw->nic_ctr.tx.frames += w;
    sw->nic_ctr.tx.bytes += wired_bytes;
    ms_tx_release(r, n);
    if (ms_ring_wants_wakeup(r))
        ms_ring_doorbell(p->wake_fd);
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

static __attribute__((flatten)) uint32_t nic_rx(ms_switch *sw)
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
                     : ms_fwd_classify_rx(sw, fr[i].data, fr[i].len, &pp, sw->now);
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

uint32_t ms_fwd_round(ms_switch *sw)
{
    uint32_t work = 0;
    sw->now = ms_now_ns();
    for (int i = 0; i < sw->nports; i++)
        if (sw->ports[i] && sw->ports[i]->active)
            work += ms_fwd_port_tx(sw, i);
    return work + nic_rx(sw);
}

void *ms_fwd_loop(void *arg)
{
    ms_switch *sw = arg;
    pthread_setname_np(pthread_self(), "ms-switch");
    int64_t last_work = ms_now_ns();
    while (atomic_load_explicit(&sw->running, memory_order_relaxed)) {
        pthread_mutex_lock(&sw->mu);
        uint32_t work = ms_fwd_round(sw);
        pthread_mutex_unlock(&sw->mu);
        if (atomic_load_explicit(&sw->ctl_waiting, memory_order_relaxed))
            sched_yield(); /* glibc mutexes are not fair: let the control call in */
        if (work) {
            last_work = 0;
            continue;
        }
        int64_t t = ms_now_ns();
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
        work = ms_fwd_round(sw);
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
