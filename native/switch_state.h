/* The switch's state, shared by the forwarding loop (forward.c) and the control
 * operations (switch.c), as netmap's bridge private struct is by netmap_vale.c and
 * netmap_bdg.c. Not part of the public API. */
#ifndef MS_SWITCH_STATE_H
#define MS_SWITCH_STATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "framelog.h"
#include "ministack.h"
#include "parse.h"
#include "ring.h"

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
    /* The IPv4 ones again as words: every forwarded IPv4 frame asks ms_is_local. */
    uint32_t naddrs4;
    uint32_t addrs4[MS_MAX_ADDRS];
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
    int64_t record_time, record_time_at;  /* CLOCK_REALTIME for the round `now` names */
    int ntaps;                /* open taps whose target is still there: 0 on the fast path */
    int nic_taps, all_taps;
    /* The taps themselves, cold: only control calls and recording touch them. */
    struct ms_framelog taplog;    /* every frame of a tapped port */
    int tap_target[MS_MAX_TAPS];  /* a port id, MS_TAP_NIC, MS_TAP_ALL or TAP_GONE */
    uint8_t tap_open[MS_MAX_TAPS];
};

static inline void ms_ring_doorbell(int fd)
{
    uint64_t one = 1;
    ssize_t w = write(fd, &one, sizeof(one));
    (void)w; /* EAGAIN: the counter is saturated, a wake-up is pending anyway */
}

static inline int64_t ms_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The frame's destination is one of the switch's own addresses. */
static inline int ms_is_local(const ms_switch *sw, const struct ms_parsed *pp)
{
    if (pp->family == 4) {
        uint32_t dst;
        memcpy(&dst, pp->dst_ip, 4);
        for (uint32_t i = 0; i < sw->naddrs4; i++)
            if (sw->addrs4[i] == dst)
                return 1;
        return 0;
    }
    for (uint32_t i = 0; i < sw->naddrs; i++)
        if (sw->addrs[i].family == pp->family && ms_ip_eq(pp->family, sw->addrs[i].ip, pp->dst_ip))
            return 1;
    return 0;
}

/* forward.c: the loop, and what explain() and the control operations share with it. */
void *ms_fwd_loop(void *sw);
uint32_t ms_fwd_round(ms_switch *sw); /* one round, under sw->mu: frames handled */
uint32_t ms_fwd_port_tx(ms_switch *sw, int id);
int ms_fwd_classify_tx(ms_switch *sw, int port, const uint8_t *f, uint32_t len,
                       struct ms_parsed *pp, int *to, int64_t now);
int ms_fwd_classify_rx(ms_switch *sw, const uint8_t *f, uint32_t len, struct ms_parsed *pp,
                       int64_t now);
int ms_fwd_neighbour_mac(ms_switch *sw, const struct ms_parsed *pp, int resolve,
                         uint8_t mac[6]);

#endif
