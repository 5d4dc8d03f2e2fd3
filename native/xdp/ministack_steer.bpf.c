/* The kernel's half of a real NIC, in two programs over one steer():
 *   - ms_xdp, the XDP program of the AF_XDP backend (nic_afxdp.c), redirects to the
 *     switch's AF_XDP socket exactly the received frames a port bound;
 *   - ms_tc, at tc ingress for the AF_PACKET backend (nic_afpacket.c), whose packet socket
 *     has seen every frame already, drops those same frames before the host stack.
 * Everything else goes to the kernel stack untouched: ARP, NDP and other ICMP, VLAN-tagged
 * frames, frames whose headers do not add up, fragments of datagrams whose first fragment
 * was not steered, and every unbound flow.
 *
 * Fragments follow their first fragment (DESIGN.md): a steered first fragment's datagram
 * (family, source, destination, protocol, identification) is remembered in ms_frags for
 * 30 s, as long as Linux keeps a fragment queue, and its later fragments are steered too.
 *
 * A frame is steered when (family, protocol, destination IP, destination port) is a key of
 * ms_bindings. The checks are those the switch's parser makes before it demultiplexes
 * (native/parse.c), their rules shared in ms_header_rules.h: every frame taken from the
 * kernel here is one the switch delivers, and every frame the switch would deliver is
 * taken (tests/test_steering.py runs both programs on the tests' frames).
 *
 * Build: clang -O2 -g -target bpf -c ministack_steer.bpf.c (see native/Makefile). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "ms_header_rules.h"

/* The binding key, shared with bpf_steer.c (struct steer_key there):
 *   family  4 or 6
 *   proto   the IP protocol number (IPv6: the upper-layer next header)
 *   port    the destination port, or the echo identifier for ICMP/ICMPv6 echo request and
 *           reply, or 0 for protocols without ports; NETWORK byte order (as on the wire)
 *   ip      the destination address, network order; IPv4 in ip[0..4), ip[4..16) zero
 * 20 bytes, no padding. The value is a u32 the program does not read (1). */
struct ms_key {
    __u8 family;
    __u8 proto;
    __u16 port;
    __u8 ip[16];
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, struct ms_key);
    __type(value, __u32);
} ms_bindings SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, __u32);
} ms_xsks SEC(".maps");

/* Hides from the compiler what it knows about a value. After `ip + tot <= end` and
 * `k < tot`, clang 18 and newer rightly conclude that `ip + k + 1 <= end` and drop that
 * check; the verifier, which tracks only constant offsets from a checked pointer, then
 * rejects the read ("invalid access to packet"). Every bounds check after a length check
 * compares against a hidden `end`, so it stays in the program. */
#define HIDE(x) asm volatile("" : "+r"(x))


/* IPv4 options: each is EOL (ends the list), NOP, or type-length-value with
 * 2 <= length <= what is left of the header; at most 40 bytes. The walk is unrolled over
 * the 40 possible positions, so every read has a constant offset the verifier checks
 * cheaply (a loop over a variable offset makes it explore too many states). One position:
 * 1 when the list ended soundly, -1 when it is broken, 0 to go on. */
static __always_inline int ipv4_option_at(const __u8 *o, __u32 k, __u32 olen, __u32 *next,
                                          const void *end)
{
    if (k >= olen)
        return 1;
    if (k != *next)
        return 0;
    if ((const void *)(o + k + 1) > end)
        return -1;
    __u8 after = 0;
    if (k + 1 < olen) {
        if ((const void *)(o + k + 2) > end)
            return -1;
        after = o[k + 1];
    }
    __u32 n = ms_rule_ipv4_option_next(o[k], after, k, olen);
    if (!n)
        return -1;
    *next = n;
    return n >= olen;
}

#define OPT(k)                                                                             \
    do {                                                                                   \
        int r_ = ipv4_option_at(o, k, olen, &next, end);                                   \
        if (r_)                                                                            \
            return r_ > 0;                                                                 \
    } while (0)
#define OPT4(k) OPT(k); OPT(k + 1); OPT(k + 2); OPT(k + 3)

/* Returns 1 when the options are sound. */
static __always_inline int ipv4_options_ok(const __u8 *o, __u32 olen, const void *end)
{
    __u32 next = 0;
    HIDE(end);
    OPT4(0); OPT4(4); OPT4(8); OPT4(12); OPT4(16);
    OPT4(20); OPT4(24); OPT4(28); OPT4(32); OPT4(36);
    return 1;
}

/* IPv6 options (Hop-by-Hop, Destination Options) are walked on a copy on the stack, one
 * option per bpf_loop() step: the verifier checks the step once, not once per position. */
struct opt_walk {
    __u32 i, len;
    int ok;
    __u8 buf[MS_IPV6_MAX_EXT_BYTES];
};

static long ipv6_option_step(__u64 n, void *arg)
{
    struct opt_walk *w = arg;
    (void)n;
    __u32 i = w->i;
    if (i >= w->len) {
        w->ok = 1;
        return 1;
    }
    __u8 after = i + 1 < w->len ? w->buf[(i + 1) & (MS_IPV6_MAX_EXT_BYTES - 1)] : 0;
    w->i = ms_rule_ipv6_option_next(w->buf[i & (MS_IPV6_MAX_EXT_BYTES - 1)], after, i,
                                    w->len);
    return w->i == 0; /* broken: stop, not ok */
}

/* The option area of len bytes at offset `at` of the frame is sound. (len is 64 bits
 * wide and hidden so that the bound the verifier checks is on the very register the
 * helper gets, not on a zero-extended copy of it.) ctx is a struct __sk_buff when tc is
 * set, else a struct xdp_md; tc is a constant in each program, so only one call stays. */
static __always_inline int ipv6_options_ok(void *ctx, int tc, __u32 at, __u64 len)
{
    struct opt_walk w = {.i = 0, .len = (__u32)len, .ok = 0};
    HIDE(len);
    if (len == 0)
        return 1;
    if (len > sizeof(w.buf))
        return 0;
    if ((tc ? bpf_skb_load_bytes(ctx, at, w.buf, len) : bpf_xdp_load_bytes(ctx, at, w.buf, len)) <
        0)
        return 0;
    bpf_loop(MS_IPV6_MAX_EXT_BYTES, ipv6_option_step, &w, 0);
    return w.ok;
}

/* Frames and bytes a program kept for the host stack (ms_to_host: the switch never sees
 * them on AF_XDP, so it reads this to count them as to-host) and took from it (ms_kept:
 * what `stats()["nic"]["kept-from-host"]` says, on either backend). */
struct ms_count {
    __u64 frames;
    __u64 bytes;
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct ms_count);
} ms_to_host SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct ms_count);
} ms_kept SEC(".maps");

static __always_inline void count(void *map, __u64 bytes)
{
    __u32 zero = 0;
    struct ms_count *c = bpf_map_lookup_elem(map, &zero);
    if (c) {
        c->frames++;
        c->bytes += bytes;
    }
}

/* A datagram whose first fragment was steered; the value is when it expires
 * (bpf_ktime_get_ns). LRU: under pressure the oldest datagrams are forgotten first. */
struct ms_fkey {
    __u8 family;
    __u8 proto;
    __u16 pad;
    __u32 id;
    __u8 src[16];
    __u8 dst[16];
};

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 4096);
    __type(key, struct ms_fkey);
    __type(value, __u64);
} ms_frags SEC(".maps");

#define FRAG_TIMEOUT_NS (30ull * 1000000000)

static __always_inline int steer(void *ctx, int tc, void *data, void *end);

SEC("xdp")
int ms_xdp(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    if (!steer(ctx, 0, data, end)) {
        count(&ms_to_host, (__u64)(end - data));
        return XDP_PASS;
    }
    count(&ms_kept, (__u64)(end - data));
    /* No socket on this queue: the lower bits of the flags are the action then. */
    return bpf_redirect_map(&ms_xsks, ctx->rx_queue_index, XDP_PASS);
}

SEC("tc")
int ms_tc(struct __sk_buff *skb)
{
    /* The kernel moved a VLAN tag out of the frame: the switch sees it so marked too
     * (MS_NIC_F_HOST_ONLY), and no port can own it. */
    if (skb->vlan_present)
        return TC_ACT_OK;
    /* Headers past the linear part are not in [data, data_end): make it all linear
     * (rare: a super-frame of many pages). */
    if (skb->data_end - skb->data < skb->len && bpf_skb_pull_data(skb, skb->len) < 0)
        return TC_ACT_OK;
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    if (!steer(skb, 1, data, end))
        return TC_ACT_OK;
    count(&ms_kept, skb->len);
    return TC_ACT_SHOT;
}

/* A later fragment: steered when its datagram's first fragment was. */
static __always_inline int follow(const struct ms_fkey *fk)
{
    __u64 *exp = bpf_map_lookup_elem(&ms_frags, fk);
    return exp && *exp >= bpf_ktime_get_ns();
}

/* 1: the frame is a port's (the switch delivers it), 0: the host stack's. */
static __always_inline int steer(void *ctx, int tc, void *data, void *end)
{
    struct ms_key key;
    struct ms_fkey fk;
    const __u8 *l4;
    __u32 l4len;
    int first = 0;

    __builtin_memset(&key, 0, sizeof(key));
    __builtin_memset(&fk, 0, sizeof(fk));
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end)
        return 0;

    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = (void *)(eth + 1);
        if ((void *)(ip + 1) > end)
            return 0;   /* malformed: shorter than the fixed header */
        __u8 byte0 = *(const __u8 *)ip;
        __u32 tot = bpf_ntohs(ip->tot_len);
        if (ms_rule_ipv4_header(byte0, tot, (__u32)(end - (void *)ip)) != MS_HDR_OK)
            return 0;   /* malformed */
        __u32 ihl = (__u32)(byte0 & 15) * 4;
        if (ihl > 20 && !ipv4_options_ok((const __u8 *)(ip + 1), ihl - 20, end))
            return 0;
        __u16 fo = bpf_ntohs(ip->frag_off);
        if (fo & 0x3fff) {   /* MF set or offset > 0 */
            fk.family = 4;
            fk.proto = ip->protocol;
            fk.id = ip->id;
            __builtin_memcpy(fk.src, &ip->saddr, 4);
            __builtin_memcpy(fk.dst, &ip->daddr, 4);
            if (fo & 0x1fff)
                return follow(&fk);
            first = 1;
        }
        key.family = 4;
        key.proto = ip->protocol;
        __builtin_memcpy(key.ip, &ip->daddr, 4);
        l4 = (const __u8 *)ip + ihl;
        l4len = tot - ihl;
    } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        if ((void *)(ip6 + 1) > end)
            return 0;   /* malformed: shorter than the fixed header */
        __u32 plen = bpf_ntohs(ip6->payload_len);
        if (ms_rule_ipv6_header(*(const __u8 *)ip6, plen, (__u32)(end - (void *)ip6)) !=
            MS_HDR_OK)
            return 0;   /* malformed */
        __u8 nh = ip6->nexthdr;
        const __u8 *base = (const __u8 *)(ip6 + 1);
        __u32 off = 0;   /* bytes of extension headers read: parse.c's `bytes` */
        /* The extension headers, as parse_ipv6() walks them (and in its order of checks):
         * any frame it would not demultiplex stays with the kernel. */
        for (__u32 count = 0; count <= MS_IPV6_MAX_EXT; count++) {
            if (nh != 0 && nh != 43 && nh != 60 && nh != 44)
                break;
            if (nh != 44 && ((nh == 0 && count) || count == MS_IPV6_MAX_EXT))
                return 0;   /* unsupported-header */
            /* Never true of a frame parse.c accepts (at most 256 + 8 Fragment headers'
             * bytes), but it bounds the offset for the verifier. */
            if (off > 2 * MS_IPV6_MAX_EXT_BYTES || plen - off < 8)
                return 0;   /* malformed */
            const __u8 *h = base + off;
            HIDE(end);
            if ((const void *)(h + 8) > end)
                return 0;
            if (nh == 44) {
                __u16 fo = (__u16)(h[2] << 8 | h[3]);
                if (fo & 0xfff9) {   /* an offset, or M: a fragment, not an atomic one */
                    fk.family = 6;
                    fk.proto = h[0];
                    __builtin_memcpy(&fk.id, h + 4, 4);
                    __builtin_memcpy(fk.src, &ip6->saddr, 16);
                    __builtin_memcpy(fk.dst, &ip6->daddr, 16);
                    if (fo >> 3)
                        return follow(&fk);
                    first = 1;
                }
                if (count == MS_IPV6_MAX_EXT)
                    return 0;
                nh = h[0];
                off += 8;
                continue;
            }
            __u32 hl = ((__u32)h[1] + 1) * 8;
            if (hl > plen - off)
                return 0;   /* malformed */
            if (off + hl > MS_IPV6_MAX_EXT_BYTES)
                return 0;   /* unsupported-header */
            if (nh != 43 &&
                !ipv6_options_ok(ctx, tc, ETH_HLEN + sizeof(*ip6) + off + 2, hl - 2))
                return 0;   /* malformed */
            nh = h[0];
            off += hl;
        }
        if (ms_rule_ipv6_ext_header(nh))
            return 0;   /* an extension header the switch does not accept */
        if (off > 2 * MS_IPV6_MAX_EXT_BYTES)
            return 0;
        l4 = base + off;
        l4len = plen - off;
        key.family = 6;
        key.proto = nh;
        __builtin_memcpy(key.ip, &ip6->daddr, 16);
    } else {
        return 0;   /* ARP, VLAN tags (802.1Q/802.1ad), everything else */
    }
    HIDE(end);

    /* The upper-layer header, by parse_l4()'s rules: enough of it for its ports, a sound
     * TCP or DCCP data offset, and of ICMP only an echo of the frame's own family. */
    __u32 need = ms_rule_l4_min(key.family, key.proto);
    if (l4len < need)
        return 0;
    switch (need) { /* the same bound, as a constant the verifier can follow */
    case 8:
        if ((const void *)(l4 + 8) > end)
            return 0;
        break;
    case 12:
        if ((const void *)(l4 + 12) > end)
            return 0;
        break;
    case 20:
        if ((const void *)(l4 + 20) > end)
            return 0;
        break;
    default:
        break;   /* a port-less protocol: port 0 */
    }
    if (need == 20 && key.proto == MS_IP_TCP && !ms_rule_tcp_ok(l4[12], l4len))
        return 0;
    if (need == 12 && key.proto == MS_IP_DCCP && !ms_rule_dccp_ok(l4[4], l4[8], l4len))
        return 0;
    if (need == 8 && (key.proto == MS_IP_ICMP || key.proto == MS_IP_ICMPV6)) {
        if (!ms_rule_icmp_echo(key.family, l4[0]))
            return 0;   /* errors, redirects, neighbour discovery: the host's */
        __builtin_memcpy(&key.port, l4 + 4, 2);
    } else if (need >= 8) {
        __builtin_memcpy(&key.port, l4 + 2, 2);
    }

    if (!bpf_map_lookup_elem(&ms_bindings, &key))
        return 0;
    if (first) {
        __u64 exp = bpf_ktime_get_ns() + FRAG_TIMEOUT_NS;
        bpf_map_update_elem(&ms_frags, &fk, &exp, BPF_ANY);
    }
    return 1;
}

char _license[] SEC("license") = "Dual BSD/GPL";
