/* The AF_XDP backend. An XDP program (ms_xdp of xdp/ministack_steer.bpf.c, loaded by
 * bpf_steer.c) on the interface steers the frames a port bound (its ms_bindings map, kept
 * in step by binding()) to one AF_XDP
 * socket on queue 0, in copy mode; everything else goes on to the kernel stack untouched,
 * so the host keeps ARP, NDP and its own flows.
 *
 * Packet memory (UMEM) is split in two fixed pools, so no frame ever changes hands between
 * them and no bookkeeping is needed per frame:
 *   - RX frames cycle fill ring -> RX ring -> borrowed by the switch -> fill ring; the fill
 *     ring is as large as the pool, so it is always full when the switch holds nothing;
 *   - TX frames cycle free stack -> reserved by the switch -> TX ring -> completion ring ->
 *     free stack; the TX and completion rings are as large as the pool, so neither can
 *     overflow.
 *
 * The program is attached through a BPF link: it goes away when the link's fd is closed,
 * by destroy() or by the kernel when the process dies, so a crashed switch never leaves
 * the interface steering bound flows into a socket nobody reads. The link needs no bpffs.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/xsk.h>

#include "bpf_steer.h"
#include "ministack.h"
#include "nic.h"

#define NRX 2048u          /* RX frames = fill ring size = RX ring size */
#define NTX 2048u          /* TX frames = TX ring size = completion ring size */
#define QUEUE 0u
#define XDP_HEADROOM 256u  /* XDP_PACKET_HEADROOM: the kernel's room before received data */
#ifndef SOL_XDP
#define SOL_XDP 283
#endif
#ifndef XDP_MAX_TX_SKB_BUDGET
#define XDP_MAX_TX_SKB_BUDGET 9 /* Linux 6.17+: descriptors one copy-mode sendto() sends */
#endif

struct nic_afxdp {
    struct ms_nic nic;
    char ifname[IF_NAMESIZE];
    unsigned ifindex;
    const char *mode;            /* "native" or "generic" */
    struct ms_bpf_steer steer;   /* the program, ms_xdp, and its maps */
    int link_fd;
    uint8_t *area;
    size_t area_size;
    uint32_t frame_size;
    struct xsk_umem *umem;
    struct xsk_socket *xsk;
    int fd;
    struct xsk_ring_prod fill, tx;
    struct xsk_ring_cons comp, rx;
    uint32_t rx_idx, rx_n;       /* RX descriptors peeked and lent to the switch */
    uint32_t nfree;              /* free TX frames: free_tx[0..nfree) */
    uint32_t nreserved;          /* lent by tx_reserve: free_tx[nfree..nfree+nreserved) */
    uint64_t free_tx[NTX];
};

static struct nic_afxdp *nx(struct ms_nic *n) { return (struct nic_afxdp *)n; }

/* Ask the kernel to transmit what the TX ring holds. Copy mode sends at most a budget of
 * frames per call (32, or MS_BATCH where XDP_MAX_TX_SKB_BUDGET works) and says EAGAIN
 * while more is left: call again until the kernel has taken everything, or it reports
 * something else (device busy or down: the frames stay queued for the next kick). */
static void tx_kick(struct nic_afxdp *x)
{
    if (!xsk_ring_prod__needs_wakeup(&x->tx))
        return;
    uint32_t limit = NTX / 32 + 2;
    for (uint32_t i = 0; i < limit; i++) {
        if (sendto(x->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0)
            return;
        if (errno != EAGAIN && errno != EBUSY && errno != EINTR)
            return;
        if (__atomic_load_n(x->tx.consumer, __ATOMIC_ACQUIRE) == *x->tx.producer)
            return;
    }
}

static int tx_queued(struct nic_afxdp *x)
{
    return __atomic_load_n(x->tx.consumer, __ATOMIC_ACQUIRE) != *x->tx.producer;
}

static uint32_t x_rx_burst(struct ms_nic *n, struct ms_nic_frame *out, uint32_t max)
{
    struct nic_afxdp *x = nx(n);
    if (x->rx_n) /* the previous burst was not returned: never lend a frame twice */
        return 0;
    uint32_t idx, k = xsk_ring_cons__peek(&x->rx, max, &idx);
    if (!k) {
        /* Drivers that want to be told about new fill entries say so (zero-copy ones);
         * copy mode never does. */
        if (xsk_ring_prod__needs_wakeup(&x->fill))
            (void)recvfrom(x->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
        return 0;
    }
    for (uint32_t i = 0; i < k; i++) {
        const struct xdp_desc *d = xsk_ring_cons__rx_desc(&x->rx, idx + i);
        out[i].data = (const uint8_t *)xsk_umem__get_data(x->area, d->addr);
        out[i].len = d->len;
        /* XDP says nothing of checksums, and a kernel on the far end of a veth leaves
         * TCP/UDP checksums partial: the switch checks, and completes those. */
        out[i].flags = MS_NIC_F_CSUM_UNVERIFIED;
        out[i].gso_size = 0;
    }
    x->rx_idx = idx;
    x->rx_n = k;
    return k;
}

static void x_rx_done(struct ms_nic *n, uint32_t k)
{
    struct nic_afxdp *x = nx(n);
    if (k > x->rx_n)
        k = x->rx_n;
    if (k) {
        /* The fill ring holds NRX entries and every RX frame not in it is one of these:
         * the reservation cannot fail. */
        uint32_t fidx;
        if (xsk_ring_prod__reserve(&x->fill, k, &fidx) == k) {
            uint64_t mask = ~(uint64_t)(x->frame_size - 1);
            for (uint32_t i = 0; i < k; i++)
                *xsk_ring_prod__fill_addr(&x->fill, fidx + i) =
                    xsk_ring_cons__rx_desc(&x->rx, x->rx_idx + i)->addr & mask;
            xsk_ring_prod__submit(&x->fill, k);
        }
        xsk_ring_cons__release(&x->rx, k);
    }
    if (k < x->rx_n) /* not taken: seen again by the next burst */
        xsk_ring_cons__cancel(&x->rx, x->rx_n - k);
    x->rx_n = 0;
}

/* Frames the kernel has sent go back to the free stack (nothing is lent meanwhile). */
static void reclaim(struct nic_afxdp *x)
{
    uint32_t idx, k = xsk_ring_cons__peek(&x->comp, NTX, &idx);
    if (!k)
        return;
    for (uint32_t i = 0; i < k; i++)
        x->free_tx[x->nfree + i] = *xsk_ring_cons__comp_addr(&x->comp, idx + i);
    x->nfree += k;
    xsk_ring_cons__release(&x->comp, k);
}

static uint32_t x_tx_reserve(struct ms_nic *n, struct ms_txbuf *out, uint32_t max)
{
    struct nic_afxdp *x = nx(n);
    /* A reservation the switch did not commit goes back first. */
    x->nfree += x->nreserved;
    x->nreserved = 0;
    reclaim(x);
    uint32_t k = max < x->nfree ? max : x->nfree;
    /* Lend the top k of the stack: out[i] is free_tx[top - 1 - i]. */
    uint32_t top = x->nfree;
    for (uint32_t i = 0; i < k; i++) {
        out[i].data = (uint8_t *)xsk_umem__get_data(x->area, x->free_tx[top - 1 - i]);
        out[i].len = 0;
    }
    x->nfree -= k;
    x->nreserved = k;
    return k;
}

/* Every frame put on the TX ring counts as taken: a kick the device refuses leaves it
 * queued there for the next kick (tx_commit or arm), it is not lost. */
static uint32_t x_tx_commit(struct ms_nic *n, const struct ms_txbuf *bufs, uint32_t k)
{
    struct nic_afxdp *x = nx(n);
    uint32_t top = x->nfree + x->nreserved;
    if (k > x->nreserved)
        k = x->nreserved;
    uint32_t idx;
    /* The TX ring is as large as the TX pool and only holds frames from it: room for
     * every frame that was free is guaranteed. */
    if (k && xsk_ring_prod__reserve(&x->tx, k, &idx) == k) {
        for (uint32_t i = 0; i < k; i++) {
            struct xdp_desc *d = xsk_ring_prod__tx_desc(&x->tx, idx + i);
            d->addr = x->free_tx[top - 1 - i];
            d->len = bufs[i].len < x->frame_size ? bufs[i].len : x->frame_size;
            d->options = 0;
        }
        xsk_ring_prod__submit(&x->tx, k);
    } else {
        k = 0;
    }
    /* The unused rest, free_tx[top - nreserved .. top - k), stays where it is. */
    x->nfree = top - k;
    x->nreserved = 0;
    if (k)
        tx_kick(x);
    return k;
}

static int x_arm(struct ms_nic *n)
{
    struct nic_afxdp *x = nx(n);
    if (tx_queued(x)) /* frames a busy device left behind: send them before sleeping */
        tx_kick(x);
    return x->fd;
}

static int x_binding(struct ms_nic *n, int add, int family, int proto, const uint8_t *ip,
                     uint16_t port)
{
    return ms_bpf_steer_binding(&nx(n)->steer, add, family, proto, ip, port);
}

static void x_destroy(struct ms_nic *n)
{
    struct nic_afxdp *x = nx(n);
    if (x->link_fd >= 0)
        close(x->link_fd); /* detaches the program: the interface is as it was */
    if (x->xsk)
        xsk_socket__delete(x->xsk);
    if (x->umem)
        xsk_umem__delete(x->umem);
    if (x->area)
        munmap(x->area, x->area_size);
    ms_bpf_steer_close(&x->steer);
    free(x);
}

static void x_host_counters(struct ms_nic *n, uint64_t *frames, uint64_t *bytes)
{
    ms_bpf_steer_count(nx(n)->steer.to_host_fd, frames, bytes);
}

static void x_kernel_kept(struct ms_nic *n, uint64_t *frames, uint64_t *bytes)
{
    ms_bpf_steer_count(nx(n)->steer.kept_fd, frames, bytes);
}

/* Which XDP mode the program attached in: "native" (the driver runs it) or "generic"
 * (the kernel runs it on socket buffers, slower, works on any interface). */
static const char *x_xdp_mode(struct ms_nic *n)
{
    return nx(n)->mode;
}

static int x_kernel_steers(struct ms_nic *n, const uint8_t *frame, uint32_t len)
{
    return ms_bpf_steer_test(&nx(n)->steer, frame, len, XDP_REDIRECT, XDP_PASS);
}

static const struct ms_nic_ops afxdp_ops = {
    .name = "afxdp",
    .rx_burst = x_rx_burst,
    .rx_done = x_rx_done,
    .rx_mark = NULL,
    .rx_reached = NULL,
    .tx_reserve = x_tx_reserve,
    .tx_commit = x_tx_commit,
    .host_counters = x_host_counters,
    .kernel_kept = x_kernel_kept,
    .arm = x_arm,
    .binding = x_binding,
    .destroy = x_destroy,
    .xdp_mode = x_xdp_mode,
    .kernel_steers = x_kernel_steers,
};

/* What to do about a permission error, said once for every step that can hit one. */
static const char *perm_hint(int e)
{
    return e == EPERM || e == EACCES
               ? "; run as root (it needs CAP_NET_ADMIN, CAP_BPF and CAP_NET_RAW, or "
                 "CAP_SYS_ADMIN)"
               : "";
}

/* Receive queues of the interface, as sysfs lists them; 0 when sysfs does not say (then
 * nothing is checked). */
static int rx_queues(const char *ifname)
{
    char path[64 + IF_NAMESIZE];
    snprintf(path, sizeof(path), "/sys/class/net/%s/queues", ifname);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int q = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        q += strncmp(e->d_name, "rx-", 3) == 0;
    closedir(d);
    return q;
}

static int if_mtu(const char *ifname)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
    int mtu = ioctl(s, SIOCGIFMTU, &ifr) < 0 ? -1 : ifr.ifr_mtu;
    close(s);
    return mtu;
}

static int create_socket(struct nic_afxdp *x, char *err, size_t errlen)
{
    x->area_size = (size_t)(NRX + NTX) * x->frame_size;
    void *area = mmap(NULL, x->area_size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (area == MAP_FAILED) {
        int e = errno;
        ms_bpf_say(err, errlen, "could not allocate %zu MiB of AF_XDP packet memory: %s",
                   x->area_size >> 20, strerror(e));
        return -e;
    }
    x->area = area;

    struct xsk_umem_config ucfg = {
        .fill_size = NRX,
        .comp_size = NTX,
        .frame_size = x->frame_size,
        .frame_headroom = 0,
        .flags = 0,
    };
    int rc = xsk_umem__create(&x->umem, x->area, x->area_size, &x->fill, &x->comp, &ucfg);
    if (rc) {
        int e = rc < 0 ? -rc : errno;
        x->umem = NULL;
        ms_bpf_say(err, errlen,
                   "could not register %zu MiB of AF_XDP packet memory (UMEM): %s%s",
                   x->area_size >> 20, strerror(e),
                   e == ENOMEM || e == EPERM
                       ? "; run as root or raise the locked-memory limit (ulimit -l)"
                       : "");
        return -e;
    }

    struct xsk_socket_config scfg;
    memset(&scfg, 0, sizeof(scfg));
    scfg.rx_size = NRX;
    scfg.tx_size = NTX;
    scfg.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD; /* our program, our map */
    scfg.xdp_flags = 0;
    scfg.bind_flags = XDP_COPY | XDP_USE_NEED_WAKEUP;
    rc = xsk_socket__create(&x->xsk, x->ifname, QUEUE, x->umem, &x->rx, &x->tx, &scfg);
    if (rc) {
        int e = rc < 0 ? -rc : errno;
        x->xsk = NULL;
        ms_bpf_say(err, errlen, "could not create an AF_XDP socket on %s queue %u: %s%s",
                   x->ifname, QUEUE, strerror(e),
                   e == EPERM || e == EACCES ? perm_hint(e)
                   : e == EBUSY ? "; another AF_XDP socket is bound to that queue, close it first"
                                : "");
        return -e;
    }
    x->fd = xsk_socket__fd(x->xsk);
    /* Copy mode sends 32 descriptors per sendto() unless told otherwise (Linux 6.17+);
     * ask for a whole switch batch, so one kick per batch is enough. Older kernels refuse
     * the option and tx_kick() calls again while the kernel says EAGAIN. */
    unsigned budget = MS_BATCH;
    (void)setsockopt(x->fd, SOL_XDP, XDP_MAX_TX_SKB_BUDGET, &budget, sizeof(budget));

    /* Every RX frame starts in the fill ring; every TX frame on the free stack. */
    uint32_t idx;
    if (xsk_ring_prod__reserve(&x->fill, NRX, &idx) != NRX) {
        ms_bpf_say(err, errlen, "could not fill the AF_XDP fill ring on %s", x->ifname);
        return -EIO;
    }
    for (uint32_t i = 0; i < NRX; i++)
        *xsk_ring_prod__fill_addr(&x->fill, idx + i) = (uint64_t)i * x->frame_size;
    xsk_ring_prod__submit(&x->fill, NRX);
    for (uint32_t i = 0; i < NTX; i++)
        x->free_tx[i] = (uint64_t)(NRX + NTX - 1 - i) * x->frame_size;
    x->nfree = NTX;

    int key = (int)QUEUE;
    int xsks_fd = bpf_object__find_map_fd_by_name(x->steer.obj, "ms_xsks");
    if (bpf_map_update_elem(xsks_fd, &key, &x->fd, BPF_ANY) < 0) {
        int e = errno;
        ms_bpf_say(err, errlen, "could not register the AF_XDP socket of %s in the ms_xsks map: %s",
                   x->ifname, strerror(e));
        return -e;
    }
    return 0;
}

/* Attach through a BPF link, native mode first, then generic. MINISTACK_XDP_MODE=native
 * or =generic allows only that one (for tests of either path). */
static int attach(struct nic_afxdp *x, char *err, size_t errlen)
{
    int prog_fd = x->steer.prog_fd;
    static const struct {
        uint32_t flags;
        const char *mode;
    } modes[] = {{XDP_FLAGS_DRV_MODE, "native"}, {XDP_FLAGS_SKB_MODE, "generic"}};
    const char *only = getenv("MINISTACK_XDP_MODE");
    if (only && *only && strcmp(only, "native") != 0 && strcmp(only, "generic") != 0) {
        ms_bpf_say(err, errlen, "MINISTACK_XDP_MODE is \"%s\"; set it to native or generic, or "
                   "unset it to try both", only);
        return -EINVAL;
    }
    int e = 0;
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (only && *only && strcmp(only, modes[i].mode) != 0)
            continue;
        LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = modes[i].flags);
        int fd = bpf_link_create(prog_fd, (int)x->ifindex, BPF_XDP, &opts);
        if (fd >= 0) {
            x->link_fd = fd;
            x->mode = modes[i].mode;
            return 0;
        }
        e = -fd; /* libbpf returns -errno */
        /* Only a driver that cannot run XDP is a reason to try generic mode. */
        if (e == EPERM || e == EACCES || e == EBUSY || e == EEXIST)
            break;
    }
    if (e == EBUSY || e == EEXIST)
        ms_bpf_say(err, errlen,
                   "could not attach XDP to %s: %s; it already has an XDP program (see ip link "
                   "show %s): remove it (ip link set dev %s xdp off, or xdpgeneric off for a "
                   "generic one) or use the afpacket backend",
                   x->ifname, strerror(e), x->ifname, x->ifname);
    else
        ms_bpf_say(err, errlen, "could not attach XDP to %s: %s%s", x->ifname, strerror(e),
                   e == EPERM || e == EACCES ? "; run as root"
                                             : "; the kernel may lack XDP links (Linux 5.9+), "
                                               "use the afpacket backend");
    return -e;
}

/* Through the plugin's table (bpf_steer.c). */
struct ms_nic *ms_afxdp_plugin_new(const char *ifname, uint32_t buf_size, char *err,
                                   size_t errlen)
{
    if (!ifname || !*ifname || strlen(ifname) >= IF_NAMESIZE) {
        ms_bpf_say(err, errlen, "\"%s\" is not an interface name", ifname ? ifname : "");
        return NULL;
    }
    unsigned ifindex = if_nametoindex(ifname);
    if (!ifindex) {
        ms_bpf_say(err, errlen, "there is no interface named %s here (ip link show lists them)",
                   ifname);
        return NULL;
    }
    int nq = rx_queues(ifname);
    if (nq > 1) {
        ms_bpf_say(err, errlen,
                   "%s has %d receive queues and the AF_XDP backend reads queue 0 only; give "
                   "it one (ethtool -L %s combined 1; a veth: create it with numtxqueues 1 "
                   "numrxqueues 1 on both ends) or use the afpacket backend",
                   ifname, nq, ifname);
        return NULL;
    }
    /* Received data starts XDP_HEADROOM into a frame; transmitted data at its start. */
    int mtu = if_mtu(ifname);
    uint32_t need_rx = mtu > 0 ? (uint32_t)mtu + 14 : 1514;
    uint32_t frame_size = buf_size <= 2048 && need_rx <= 2048 - XDP_HEADROOM ? 2048 : 4096;
    if (buf_size > frame_size) {
        ms_bpf_say(err, errlen,
                   "the switch's %u-byte buffers do not fit AF_XDP frames (at most %u bytes): use "
                   "a buffer size of at most %u, or the afpacket backend",
                   buf_size, frame_size, frame_size);
        return NULL;
    }
    if (need_rx > frame_size - XDP_HEADROOM) {
        ms_bpf_say(err, errlen,
                   "%s has MTU %d and AF_XDP copy mode receives frames of at most %u bytes "
                   "(MTU %u): lower the MTU (ip link set dev %s mtu 1500) or use the afpacket "
                   "backend",
                   ifname, mtu, frame_size - XDP_HEADROOM, frame_size - XDP_HEADROOM - 14, ifname);
        return NULL;
    }

    struct nic_afxdp *x = calloc(1, sizeof(*x));
    if (!x) {
        ms_bpf_say(err, errlen, "out of memory creating the AF_XDP backend for %s", ifname);
        return NULL;
    }
    x->nic.ops = &afxdp_ops;
    x->nic.has_host = 1;
    snprintf(x->ifname, sizeof(x->ifname), "%s", ifname);
    x->ifindex = ifindex;
    x->link_fd = x->fd = -1;
    x->frame_size = frame_size;

    /* The socket is in the map before the program runs, so the first bound frame already
     * has somewhere to go. */
    if (ms_bpf_steer_load(&x->steer, "ms_xdp", err, errlen) < 0 ||
        create_socket(x, err, errlen) < 0 || attach(x, err, errlen) < 0) {
        x_destroy(&x->nic);
        return NULL;
    }
    return &x->nic;
}
