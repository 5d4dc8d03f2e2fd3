/* The AF_PACKET backend: works on any interface. A TPACKET_V3 receive ring (blocks of
 * frames the kernel fills and hands over whole), sendmmsg() of a whole batch for transmit
 * with PACKET_QDISC_BYPASS. The kernel stack would see every received frame as well: the
 * steering program at the interface's tc ingress (bpf_steer.c), which runs after the
 * packet socket has taken its copy, drops the bound ones before it, by the same rules as
 * AF_XDP's XDP program.
 *
 * Each received frame comes with a virtio-net header (PACKET_VNET_HDR): the kernel says
 * there whether the checksum is partial and whether the frame is a GSO/GRO super-frame,
 * which the switch then completes or cuts before a port sees it (offload.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "ministack.h"
#include "nic.h"

#define BLOCK_SIZE (1u << 20)
#define NBLOCKS 16
#define FRAME_SIZE 2048
#define RETIRE_MS 1   /* a partly filled block is handed over after this long */

struct nic_afpacket {
    struct ms_nic nic;
    int fd;
    uint8_t *ring;
    size_t ring_size;
    uint32_t cur_block;
    int block_open;                /* cur_block is ours, frames left in it */
    uint32_t left;
    struct tpacket3_hdr *next;
    uint32_t buf_size;
    uint8_t *txbufs;
    struct iovec iov[MS_BATCH][2];     /* a virtio-net header (all zero: nothing to do), the frame */
    struct virtio_net_hdr no_offload;
    struct mmsghdr msgs[MS_BATCH];
    struct ms_ingress *ingress;
};

static struct nic_afpacket *np(struct ms_nic *n) { return (struct nic_afpacket *)n; }

static struct tpacket_block_desc *block(struct nic_afpacket *p, uint32_t i)
{
    return (struct tpacket_block_desc *)(p->ring + (size_t)i * BLOCK_SIZE);
}

static void release_block(struct nic_afpacket *p)
{
    __atomic_store_n(&block(p, p->cur_block)->hdr.bh1.block_status, TP_STATUS_KERNEL,
                     __ATOMIC_RELEASE);
    p->cur_block = (p->cur_block + 1) % NBLOCKS;
    p->block_open = 0;
}

/* Frames come from one block per burst; rx_done hands the block back once it is used up. */
static uint32_t ap_rx_burst(struct ms_nic *n, struct ms_nic_frame *out, uint32_t max)
{
    struct nic_afpacket *p = np(n);
    while (!p->block_open) {
        struct tpacket_block_desc *bd = block(p, p->cur_block);
        if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER))
            return 0;
        p->left = bd->hdr.bh1.num_pkts;
        p->next = (struct tpacket3_hdr *)((uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt);
        p->block_open = 1;
        if (!p->left)
            release_block(p);
    }
    uint32_t k = 0;
    struct tpacket3_hdr *h = p->next;
    while (k < max && k < p->left) {
        out[k].data = (const uint8_t *)h + h->tp_mac;
        out[k].len = h->tp_snaplen;
        /* The kernel moved a VLAN tag out of the frame, or cut the frame short: neither
         * is something a port could own. */
        out[k].flags = (h->tp_status & TP_STATUS_VLAN_VALID) || h->tp_snaplen < h->tp_len
                           ? MS_NIC_F_HOST_ONLY
                           : 0;
        struct virtio_net_hdr vh;
        memcpy(&vh, (const uint8_t *)h + h->tp_mac - sizeof(vh), sizeof(vh));
        out[k].gso_size = vh.gso_type != VIRTIO_NET_HDR_GSO_NONE ? vh.gso_size : 0;
        if (vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
            out[k].flags |= MS_NIC_F_CSUM_PARTIAL;
            out[k].csum_start = vh.csum_start;
            out[k].csum_offset = vh.csum_offset;
        }
        /* A frame larger than a port buffer can still reach a port: cut into segments. */
        if (out[k].len > p->buf_size && !out[k].gso_size)
            out[k].flags |= MS_NIC_F_HOST_ONLY;
        k++;
        h = (struct tpacket3_hdr *)((uint8_t *)h + h->tp_next_offset);
    }
    p->next = h;
    return k;
}

static void ap_rx_done(struct ms_nic *n, uint32_t k)
{
    struct nic_afpacket *p = np(n);
    p->left -= k;
    if (p->block_open && !p->left)
        release_block(p);
}

static uint32_t ap_tx_reserve(struct ms_nic *n, struct ms_txbuf *out, uint32_t max)
{
    struct nic_afpacket *p = np(n);
    if (max > MS_BATCH)
        max = MS_BATCH;
    for (uint32_t i = 0; i < max; i++) {
        out[i].data = p->txbufs + (size_t)i * p->buf_size;
        out[i].len = 0;
    }
    return max;
}

static uint32_t ap_tx_commit(struct ms_nic *n, const struct ms_txbuf *bufs, uint32_t k)
{
    struct nic_afpacket *p = np(n);
    for (uint32_t i = 0; i < k; i++)
        p->iov[i][1].iov_len = bufs[i].len;
    uint32_t sent = 0;
    /* One system call per batch. The bypassed qdisc can push back (ENOBUFS); try again
     * once for the rest, then report what did not go. */
    for (int tries = 0; sent < k && tries < 2; tries++) {
        int r = sendmmsg(p->fd, p->msgs + sent, k - sent, MSG_DONTWAIT);
        if (r > 0)
            sent += (uint32_t)r;
    }
    return sent;
}

static int ap_arm(struct ms_nic *n) { return np(n)->fd; }

static int ap_binding(struct ms_nic *n, int add, int family, int proto, const uint8_t *ip,
                      uint16_t port)
{
    return ms_ingress_binding(np(n)->ingress, add, family, proto, ip, port);
}

static int ap_kernel_steers(struct ms_nic *n, const uint8_t *frame, uint32_t len)
{
    return ms_ingress_steers(np(n)->ingress, frame, len);
}

static void ap_kernel_kept(struct ms_nic *n, uint64_t *frames, uint64_t *bytes)
{
    ms_ingress_kept(np(n)->ingress, frames, bytes);
}

static void ap_destroy(struct ms_nic *n)
{
    struct nic_afpacket *p = np(n);
    /* The steering goes first: no bound flow stays dropped with no switch to see it. */
    ms_ingress_destroy(p->ingress);
    if (p->ring && p->ring != MAP_FAILED)
        munmap(p->ring, p->ring_size);
    if (p->fd >= 0)
        close(p->fd);
    free(p->txbufs);
    free(p);
}

static const struct ms_nic_ops afpacket_ops = {
    .name = "afpacket",
    .rx_burst = ap_rx_burst,
    .rx_done = ap_rx_done,
    .tx_reserve = ap_tx_reserve,
    .tx_commit = ap_tx_commit,
    .arm = ap_arm,
    .binding = ap_binding,
    .kernel_kept = ap_kernel_kept,
    .kernel_steers = ap_kernel_steers,
    .destroy = ap_destroy,
};

static struct ms_nic *fail(struct nic_afpacket *p, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    ap_destroy(&p->nic);
    return NULL;
}

struct ms_nic *ms_nic_afpacket_new(const char *ifname, uint32_t buf_size, char *err, size_t errlen)
{
    struct nic_afpacket *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->nic.ops = &afpacket_ops;
    p->nic.has_host = 1;
    p->buf_size = buf_size;
    p->fd = -1;
    unsigned ifindex = if_nametoindex(ifname);
    if (!ifindex)
        return fail(p, err, errlen, "no interface %s: %s", ifname, strerror(errno));
    p->fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (p->fd < 0)
        return fail(p, err, errlen,
                    "could not open an AF_PACKET socket: %s; run as root (CAP_NET_RAW)",
                    strerror(errno));
    int v3 = TPACKET_V3, one = 1;
    struct tpacket_req3 req = {
        .tp_block_size = BLOCK_SIZE,
        .tp_block_nr = NBLOCKS,
        .tp_frame_size = FRAME_SIZE,
        .tp_frame_nr = BLOCK_SIZE / FRAME_SIZE * NBLOCKS,
        .tp_retire_blk_tov = RETIRE_MS,
    };
    if (setsockopt(p->fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) < 0)
        return fail(p, err, errlen, "could not ask for virtio-net headers on %s: %s", ifname,
                    strerror(errno));
    if (setsockopt(p->fd, SOL_PACKET, PACKET_VERSION, &v3, sizeof(v3)) < 0 ||
        setsockopt(p->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) < 0)
        return fail(p, err, errlen, "could not set up the TPACKET_V3 ring on %s: %s", ifname,
                    strerror(errno));
    /* Our own transmissions (and the host's) are not input. */
    setsockopt(p->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
    setsockopt(p->fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
    p->ring_size = (size_t)BLOCK_SIZE * NBLOCKS;
    p->ring = mmap(NULL, p->ring_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, p->fd, 0);
    if (p->ring == MAP_FAILED)
        p->ring = mmap(NULL, p->ring_size, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, 0);
    if (p->ring == MAP_FAILED)
        return fail(p, err, errlen, "could not map the packet ring: %s", strerror(errno));
    struct sockaddr_ll sll = {
        .sll_family = AF_PACKET,
        .sll_protocol = htons(ETH_P_ALL),
        .sll_ifindex = (int)ifindex,
    };
    if (bind(p->fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
        return fail(p, err, errlen, "could not bind to %s: %s", ifname, strerror(errno));
    p->txbufs = malloc((size_t)MS_BATCH * buf_size);
    if (!p->txbufs)
        return fail(p, err, errlen, "out of memory");
    char why[400];
    if (!(p->ingress = ms_ingress_new(ifname, why, sizeof(why))))
        return fail(p, err, errlen, "%s", why);
    for (uint32_t i = 0; i < MS_BATCH; i++) {
        p->iov[i][0].iov_base = &p->no_offload;
        p->iov[i][0].iov_len = sizeof(p->no_offload);
        p->iov[i][1].iov_base = p->txbufs + (size_t)i * buf_size;
        p->msgs[i].msg_hdr.msg_iov = p->iov[i];
        p->msgs[i].msg_hdr.msg_iovlen = 2;
    }
    return &p->nic;
}
