/* The switch's control operations: create and destroy, ports, bindings, explain, counters,
 * taps. They take the control lock that the forwarding loop (forward.c) holds for each
 * round, so the loop never sees a half-done change and a call waits at most one round.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "answer.h"
#include "filter.h"
#include "neigh.h"
#include "nic.h"
#include "offload.h"
#include "switch_state.h"

#define DEFAULT_SLOTS 1024
#define DEFAULT_BUF 2048
#define DEFAULT_WIRE_SLOTS 4096
#define DEFAULT_MAX_BINDINGS 16384

/* --- the control lock --------------------------------------------------------------- */

static void ctl_lock(ms_switch *sw)
{
    atomic_fetch_add(&sw->ctl_waiting, 1);
    pthread_mutex_lock(&sw->mu);
    atomic_fetch_sub(&sw->ctl_waiting, 1);
}

static void ctl_unlock(ms_switch *sw) { pthread_mutex_unlock(&sw->mu); }
static struct ms_swport *port_get(ms_switch *sw, int id)
{
    if (id < 0 || id >= sw->nports || !sw->ports[id] || !sw->ports[id]->active)
        return NULL;
    return sw->ports[id];
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
        if (family == 4)
            memcpy(&sw->addrs4[sw->naddrs4++], ip, 4);
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
    if (pthread_create(&sw->thread, NULL, ms_fwd_loop, sw) != 0) {
        atomic_store(&sw->running, 0);
        return -EAGAIN;
    }
    sw->started = 1;
    return 0;
}

int ms_switch_poll(ms_switch *sw)
{
    if (!sw->nic)
        return -EINVAL;
    if (sw->started)
        return -EBUSY;
    ctl_lock(sw);
    uint32_t n = ms_fwd_round(sw);
    ctl_unlock(sw);
    return (int)n;
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
        ms_ring_doorbell(sw->doorbell);
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
    if (e == 0 && sw->nic && sw->nic->ops->binding)
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
         * (at most one ring's worth, whatever the owner wrote into its indices), as a
         * round of its own would (its time: fragments' ages, the drop log's stamps). */
        sw->now = ms_now_ns();
        for (uint32_t i = 0; i <= p->txg.num_slots / MS_BATCH; i++)
            if (!ms_fwd_port_tx(sw, id))
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
    return ms_is_local(sw, &probe);
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
    else if ((rc = ms_table_check_tuple(family, proto, l4port)) == MS_BIND_OK &&
             ms_table_needs_bind_service(family, proto, l4port, privileged_below))
        rc = MS_BIND_NOT_PERMITTED;
    else if (rc == MS_BIND_OK) {
        int e = ms_table_add(sw->table, id, family, proto, ip, (uint16_t)l4port);
        rc = e == -EEXIST ? MS_BIND_IN_USE : e == -ENOSPC ? MS_BIND_NO_SPACE : MS_BIND_OK;
        if (rc == MS_BIND_OK && sw->nic && sw->nic->ops->binding &&
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
            v->reason = ms_fwd_classify_tx(sw, port, f, len, &v->parsed, &to, ms_now_ns());
            v->action = v->reason == MS_R_OK;
            v->dest = !v->action ? MS_TO_NONE : to >= 0 ? MS_TO_PORT : MS_TO_WIRE;
            v->to_port = to;
            if (v->reason >= MS_R_SPOOFED_SRC_IP && v->reason <= MS_R_SPOOFED_SRC_PORT)
                nearest_tx(sw, port, v);
            uint8_t mac[6];
            if (v->reason == MS_R_LOCAL) {
                v->action = 2;
                /* An answer goes back to the sender; its MAC is the answer's source. */
                if (ms_answer_wanted(&v->parsed) && ms_fwd_neighbour_mac(sw, &v->parsed, 0, mac)) {
                    v->dest = MS_TO_PORT;
                    v->to_port = port;
                    memcpy(v->answer_mac, mac, 6);
                }
            }
        }
    } else {
        int to = ms_fwd_classify_rx(sw, f, len, &v->parsed, ms_now_ns());
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
    int64_t deadline = ms_now_ns() + (int64_t)timeout_ms * 1000000;
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
        if (timeout_ms >= 0 && ms_now_ns() > deadline)
            return -ETIMEDOUT;
        ms_ring_doorbell(sw->doorbell);
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
    if (sw->nic && sw->nic->ops->kernel_kept)
        sw->nic->ops->kernel_kept(sw->nic, &out->kept.frames, &out->kept.bytes);
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

