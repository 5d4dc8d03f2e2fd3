/* libFuzzer harness over the parser, the TX filter, RX demux and the bindings table.
 *
 * Input layout (all multi-byte fields big endian):
 *
 *   byte 0      bits 0-3  number of table operations N (0..15)
 *               bits 4-5  index in ports[] of the port also checked with the other MAC (3: port
 *                         42, which never binds); every port's ms_filter_tx is checked anyway
 *               bit  6    which NIC MAC (macs[])
 *               bit  7    small max_bindings (byte 3 & 15) instead of 16384
 *   bytes 1-2   MTU
 *   byte 3      bits 0-3  max_bindings when byte 0 bit 7 is set
 *               bits 4-5  port whose bindings ms_table_del_owner removes at the end (3: none)
 *   N x 4 bytes table operations:
 *     o[0]      bits 0-1  owner index in ports[] (3 is ports[1] again)
 *               bit  2    family: 0 IPv4, 1 IPv6
 *               bit  3    0 add, 1 delete
 *               bits 4-6  protocol index in protos[]
 *               bit  7    delete only: delete the tuple of live binding number o[1] (mod count),
 *                         as o[0]'s owner (so a wrong owner gets -EPERM)
 *     o[1]      bits 0-1  local address index (addr4[] / addr6[])
 *     o[2..3]   L4 port (forced to 0 for port-less protocols, to 1 when 0 for port protocols
 *               other than ICMP echo, mirroring the switch's ms_bind checks)
 *   the rest    the Ethernet frame
 *
 * A shadow list of bindings models the table; every table answer and demux result is checked
 * against it, and every filter verdict must be true of the frame. Any disagreement traps.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "answer.h"
#include "checksum.h"
#include "filter.h"
#include "offload.h"
#include "parse.h"
#include "table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                 \
    do {                                                                                         \
        if (!(c))                                                                                \
            __builtin_trap();                                                                    \
    } while (0)

#define NPORTS 3
#define MAX_OPS 15
#define HDR 4

static const int ports[NPORTS] = {0, 1, 255};
static const int unbound_port = 42;

static const uint8_t macs[2][6] = {
    {0x02, 0x00, 0x00, 0x00, 0x00, 0x01},
    {0x52, 0x54, 0x00, 0x12, 0x34, 0x56},
};

static const uint8_t addr4[4][16] = {
    {10, 0, 0, 1}, {10, 0, 0, 2}, {192, 168, 1, 10}, {127, 0, 0, 1},
};

static const uint8_t addr6[4][16] = {
    {0xfd, 0x00, [15] = 0x01},                    /* fd00::1 */
    {0xfd, 0x00, [15] = 0x02},                    /* fd00::2 */
    {0x20, 0x01, 0x0d, 0xb8, [15] = 0x10},        /* 2001:db8::10 */
    {0xfe, 0x80, [15] = 0x01},                    /* fe80::1 */
};

/* Index 2 is ICMP echo of the family (ICMP for IPv4, ICMPv6 for IPv6). */
static const int protos[8] = {MS_IP_UDP,  MS_IP_TCP,     -1, MS_IP_SCTP,
                              MS_IP_DCCP, MS_IP_UDPLITE, 47 /* GRE */, 89 /* OSPF */};

struct shadow {
    int owner;
    int family;
    int proto;
    uint8_t ip[16];
    uint16_t port;
};

static struct shadow sh[MAX_OPS];
static int nsh;

static int ip_eq(int family, const uint8_t *a, const uint8_t *b)
{
    return memcmp(a, b, family == 4 ? 4 : 16) == 0;
}

static int sh_find(int family, int proto, const uint8_t *ip, uint16_t port)
{
    for (int i = 0; i < nsh; i++)
        if (sh[i].family == family && sh[i].proto == proto && sh[i].port == port &&
            ip_eq(family, sh[i].ip, ip))
            return i;
    return -1;
}

static int sh_owner(int family, int proto, const uint8_t *ip, uint16_t port)
{
    int i = sh_find(family, proto, ip, port);
    return i < 0 ? -1 : sh[i].owner;
}

static int sh_has_addr(int owner, int family, const uint8_t *ip)
{
    for (int i = 0; i < nsh; i++)
        if (sh[i].owner == owner && sh[i].family == family && ip_eq(family, sh[i].ip, ip))
            return 1;
    return 0;
}

static int sh_has_proto(int owner, int family, const uint8_t *ip, int proto)
{
    for (int i = 0; i < nsh; i++)
        if (sh[i].owner == owner && sh[i].family == family && sh[i].proto == proto &&
            ip_eq(family, sh[i].ip, ip))
            return 1;
    return 0;
}

static void sh_remove(int i)
{
    sh[i] = sh[--nsh];
}

/* Every live binding is found with its owner (cheap; run after every operation). */
static void check_bindings(const struct ms_table *t)
{
    CHECK(ms_table_count(t) == (uint32_t)nsh);
    for (int i = 0; i < nsh; i++) {
        CHECK(ms_table_lookup(t, sh[i].family, sh[i].proto, sh[i].ip, sh[i].port) ==
              sh[i].owner);
        CHECK(ms_table_has_addr(t, sh[i].owner, sh[i].family, sh[i].ip));
        CHECK(ms_table_has_proto(t, sh[i].owner, sh[i].family, sh[i].ip, sh[i].proto));
        /* Same tuple, other port number: bound only if the shadow says so. */
        uint16_t other = (uint16_t)(sh[i].port + 1);
        CHECK(ms_table_lookup(t, sh[i].family, sh[i].proto, sh[i].ip, other) ==
              sh_owner(sh[i].family, sh[i].proto, sh[i].ip, other));
    }
}

/* The whole table agrees with the shadow list: every address and protocol reference count
 * of every port, and the listing. */
static void check_table(const struct ms_table *t)
{
    check_bindings(t);
    for (int pi = 0; pi < NPORTS; pi++) {
        for (int fam = 4; fam <= 6; fam += 2) {
            for (int a = 0; a < 4; a++) {
                const uint8_t *ip = fam == 4 ? addr4[a] : addr6[a];
                CHECK(ms_table_has_addr(t, ports[pi], fam, ip) ==
                      sh_has_addr(ports[pi], fam, ip));
                for (int k = 0; k < 8; k++) {
                    int proto = protos[k] < 0 ? (fam == 4 ? MS_IP_ICMP : MS_IP_ICMPV6)
                                              : protos[k];
                    CHECK(ms_table_has_proto(t, ports[pi], fam, ip, proto) ==
                          sh_has_proto(ports[pi], fam, ip, proto));
                }
            }
        }
    }
    struct ms_binding_info out[MAX_OPS + 1];
    int n = ms_table_list(t, -1, out, MAX_OPS + 1);
    CHECK(n == nsh);
    int seen[MAX_OPS] = {0};
    for (int i = 0; i < n; i++) {
        int j = sh_find(out[i].family, out[i].proto, out[i].ip, out[i].l4port);
        CHECK(j >= 0 && !seen[j] && sh[j].owner == out[i].port);
        seen[j] = 1;
    }
    for (int pi = 0; pi < NPORTS; pi++) {
        int want = 0;
        for (int i = 0; i < nsh; i++)
            want += sh[i].owner == ports[pi];
        n = ms_table_list(t, ports[pi], out, MAX_OPS + 1);
        CHECK(n == want);
        for (int i = 0; i < n; i++)
            CHECK(out[i].port == ports[pi]);
    }
}

static const uint8_t zero16[16];

/* The reason ms_filter_tx gave is true of the frame. (Which true reason comes first is the
 * filter's order, tested in tests/test_filter.py; it is not written out a second time here.)
 * followed: the frame is a later fragment of a datagram this port started. */
static void check_justified(const struct ms_parsed *p, int r, int port, uint32_t mtu,
                            const uint8_t *mac, int followed)
{
    uint16_t sport = p->has_ports ? p->sport : 0;
    int arp = p->nd == MS_ND_ARP_REQUEST || p->nd == MS_ND_ARP_OTHER;
    int fam = arp ? 4 : p->family;
    switch (r) {
    case MS_R_OK:
        CHECK(followed || sh_owner(p->family, p->proto, p->src_ip, sport) == port);
        CHECK(!p->nd);
        break;
    case MS_R_LOCAL:
        CHECK(p->nd == MS_ND_ARP_REQUEST || p->nd == MS_ND_NS || p->nd == MS_ND_RS ||
              p->nd == MS_ND_MLD);
        CHECK(memcmp(p->src_mac, mac, 6) == 0);
        if (p->has_lladdr)
            CHECK(memcmp(p->nd_lladdr, mac, 6) == 0);
        if (p->nd == MS_ND_ARP_REQUEST)
            CHECK(memcmp(p->src_ip, zero16, 4) == 0 || sh_has_addr(port, 4, p->src_ip));
        if (p->nd == MS_ND_NS)
            CHECK(sh_has_addr(port, 6, memcmp(p->src_ip, zero16, 16) ? p->src_ip : p->nd_target));
        break;
    case MS_R_OVERSIZE:
        CHECK((uint64_t)p->len > (uint64_t)mtu + 14);
        break;
    case MS_R_SPOOFED_SRC_MAC:
        CHECK(memcmp(p->src_mac, mac, 6) != 0 ||
              (p->nd && p->has_lladdr && memcmp(p->nd_lladdr, mac, 6) != 0));
        break;
    case MS_R_SPOOFED_SRC_IP:
        if (p->nd == MS_ND_NS && !memcmp(p->src_ip, zero16, 16))
            CHECK(!sh_has_addr(port, 6, p->nd_target));
        else
            CHECK(!p->problems && !sh_has_addr(port, fam, p->src_ip));
        break;
    case MS_R_SPOOFED_PROTOCOL:
        CHECK(!p->problems && sh_has_addr(port, p->family, p->src_ip) &&
              !sh_has_proto(port, p->family, p->src_ip, p->proto));
        break;
    case MS_R_SPOOFED_SRC_PORT:
        CHECK(!p->problems && sh_has_proto(port, p->family, p->src_ip, p->proto) &&
              sh_owner(p->family, p->proto, p->src_ip, sport) != port);
        break;
    case MS_R_NOT_ALLOWED:
        CHECK((p->problems & MS_PROB(r)) || p->nd == MS_ND_ARP_OTHER || p->nd == MS_ND_NA ||
              p->nd == MS_ND_RA || p->nd == MS_ND_REDIRECT);
        break;
    case MS_R_FRAGMENT:
        CHECK((p->problems & MS_PROB(r)) && p->frag == MS_FRAG_LATER && !followed);
        break;
    default: /* a structural problem the parser found */
        CHECK(p->problems & MS_PROB(r));
        break;
    }
}

/* TCP/UDP checksum of a clean parse is right. */
static int l4_csum_ok(const uint8_t *f, const struct ms_parsed *p)
{
    uint32_t l4len = p->l3_end - p->l4_off;
    uint64_t s = ms_csum_pseudo(p->family, p->src_ip, p->dst_ip, p->proto, l4len);
    return ms_csum_fold(ms_csum_add(s, f + p->l4_off, l4len)) == 0xffff;
}

/* The offload code on this frame: a repaired checksum is right; pieces of a cut frame fit
 * the MTU, parse clean, carry right checksums and together carry the whole payload. */
static void check_offload(const uint8_t *frame, uint32_t len, const struct ms_parsed *p,
                          uint32_t mtu, uint16_t gso)
{
    uint8_t *copy = malloc(len ? len : 1);
    CHECK(copy);
    memcpy(copy, frame, len);
    if (ms_csum_repair(copy, len, p) == 1)
        CHECK(l4_csum_ok(copy, p));
    ms_csum_finish(copy, len, gso & 0x7f, (gso >> 7) & 0x1f);
    free(copy);
    if (mtu < 68 || mtu > 9000)
        return;
    struct ms_segmenter sg;
    if (ms_seg_init(&sg, frame, p, mtu, gso) < 0)
        return;
    uint8_t *out = malloc(mtu + 14);
    CHECK(out);
    uint32_t n, payload = 0, pieces = 0;
    while ((n = ms_seg_next(&sg, out))) {
        CHECK(n <= mtu + 14 && ++pieces <= 65536);
        struct ms_parsed q;
        ms_parse(out, n, &q);
        CHECK(!q.problems && q.proto == p->proto && q.l3_end == n);
        CHECK(l4_csum_ok(out, &q));
        payload += n - sg.hdr_len;
    }
    CHECK(payload == p->l3_end - sg.hdr_len);
    free(out);
}

/* What the parser reported is consistent with itself and with the frame's bytes. */
static void check_parse(const struct ms_parsed *p, const uint8_t *f, uint32_t len)
{
    const uint32_t known = MS_PROB(MS_R_MALFORMED) | MS_PROB(MS_R_VLAN) |
                           MS_PROB(MS_R_NOT_ALLOWED) | MS_PROB(MS_R_FRAGMENT) |
                           MS_PROB(MS_R_UNSUPPORTED_HEADER);
    CHECK(p->len == len);
    CHECK((p->problems & ~known) == 0);
    if (p->problems)
        CHECK(p->note != NULL);
    CHECK(p->family == 0 || p->family == 4 || p->family == 6);
    if (len >= 14) {
        CHECK(memcmp(p->dst_mac, f, 6) == 0);
        CHECK(memcmp(p->src_mac, f + 6, 6) == 0);
        CHECK(p->ethertype == ((f[12] << 8) | f[13]));
    }
    if (p->has_ports)
        CHECK(p->family && ms_proto_has_ports(p->family, p->proto));
    if (p->problems)
        return;
    CHECK(len >= 14);
    if (p->nd == MS_ND_ARP_REQUEST || p->nd == MS_ND_ARP_OTHER) {
        CHECK(p->ethertype == MS_ETH_ARP && len >= 42 && !p->family);
        CHECK(memcmp(p->nd_lladdr, f + 22, 6) == 0 && memcmp(p->src_ip, f + 28, 4) == 0 &&
              memcmp(p->nd_target, f + 38, 4) == 0);
        return;
    }
    CHECK(p->family == 4 || p->family == 6);
    CHECK(p->l3_end <= len && p->l4_off >= 34 && p->l4_off <= p->l3_end);
    if (p->family == 4) {
        CHECK(p->ethertype == MS_ETH_IPV4 && len >= 34);
        CHECK(memcmp(p->src_ip, f + 26, 4) == 0 && memcmp(p->dst_ip, f + 30, 4) == 0);
        static const uint8_t zero[12];
        CHECK(memcmp(p->src_ip + 4, zero, 12) == 0 && memcmp(p->dst_ip + 4, zero, 12) == 0);
        CHECK(p->proto == f[23]);
    } else {
        CHECK(p->ethertype == MS_ETH_IPV6 && len >= 54);
        CHECK(memcmp(p->src_ip, f + 22, 16) == 0 && memcmp(p->dst_ip, f + 38, 16) == 0);
        CHECK(!ms_ipv6_is_ext_header(p->proto) && p->proto != 44);
    }
    if (p->nd)
        CHECK(p->family == 6 && p->proto == MS_IP_ICMPV6 && !p->has_ports);
    /* A port-carrying protocol that parsed clean always yields its ports. */
    CHECK(p->has_ports == (uint8_t)(ms_proto_has_ports(p->family, p->proto) && !p->nd));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HDR)
        return 0;
    unsigned nops = data[0] & 15;
    size_t off = HDR + (size_t)nops * 4;
    if (size < off)
        return 0;
    unsigned txi = (data[0] >> 4) & 3;
    int tx_port = txi < NPORTS ? ports[txi] : unbound_port;
    const uint8_t *mac = macs[(data[0] >> 6) & 1];
    uint32_t max_bindings = (data[0] & 0x80) ? (uint32_t)(data[3] & 15) : 16384;
    uint32_t mtu = (uint32_t)((data[1] << 8) | data[2]);
    unsigned deli = (data[3] >> 4) & 3;

    struct ms_table *t = ms_table_new(max_bindings);
    CHECK(t);
    nsh = 0;

    for (unsigned k = 0; k < nops; k++) {
        const uint8_t *o = data + HDR + k * 4;
        unsigned oi = o[0] & 3u;
        int owner = ports[oi < NPORTS ? oi : 1];
        int family = (o[0] & 4) ? 6 : 4;
        int del = (o[0] >> 3) & 1;
        int proto = protos[(o[0] >> 4) & 7];
        if (proto < 0)
            proto = family == 4 ? MS_IP_ICMP : MS_IP_ICMPV6;
        uint8_t ip[16];
        memcpy(ip, family == 4 ? addr4[o[1] & 3] : addr6[o[1] & 3], 16);
        uint16_t port = (uint16_t)((o[2] << 8) | o[3]);
        if (!ms_proto_has_ports(family, proto))
            port = 0;
        else if (port == 0 && proto != MS_IP_ICMP && proto != MS_IP_ICMPV6)
            port = 1;
        if (del && (o[0] & 0x80) && nsh) {
            const struct shadow *s = &sh[o[1] % nsh];
            family = s->family;
            proto = s->proto;
            memcpy(ip, s->ip, 16);
            port = s->port;
        }
        if (!del) {
            int want = sh_find(family, proto, ip, port) >= 0 ? -EEXIST
                       : (uint32_t)nsh >= max_bindings        ? -ENOSPC
                                                              : 0;
            int rc = ms_table_add(t, owner, family, proto, ip, port);
            CHECK(rc == want);
            if (rc == 0) {
                CHECK(nsh < MAX_OPS);
                sh[nsh] = (struct shadow){owner, family, proto, {0}, port};
                memcpy(sh[nsh].ip, ip, 16);
                nsh++;
            }
        } else {
            int i = sh_find(family, proto, ip, port);
            int want = i < 0 ? -ENOENT : sh[i].owner != owner ? -EPERM : 0;
            int rc = ms_table_del(t, owner, family, proto, ip, port);
            CHECK(rc == want);
            if (rc == 0)
                sh_remove(i);
        }
        check_bindings(t);
    }
    check_table(t);

    /* The frame, in a buffer of exactly its length so ASan sees any read past the end. */
    uint32_t len = (uint32_t)(size - off);
    uint8_t *frame = malloc(len);
    if (len)
        CHECK(frame);
    if (len)
        memcpy(frame, data + off, len);

    struct ms_parsed p;
    ms_parse(frame, len, &p);
    check_parse(&p, frame, len);

    /* The datagram this frame belongs to was started by tx_port, as if its first fragment
     * had gone to the wire; and by the network, towards port 0. */
    struct ms_frags *fr = ms_frags_new();
    CHECK(fr);
    int64_t now = 1000;
    if (p.frag != MS_FRAG_NONE && (data[3] & 4)) {
        ms_frags_add(fr, tx_port, &p, -1, now);
        ms_frags_add(fr, MS_FRAG_FROM_NIC, &p, ports[0], now);
    }
    int tracked = p.frag == MS_FRAG_LATER && (data[3] & 4);
    /* ... or long ago: then nothing follows. */
    if (data[3] & 8)
        now += MS_FRAG_TIMEOUT_NS;
    int live = tracked && !(data[3] & 8);

    int oks = 0;
    for (int pi = 0; pi <= NPORTS; pi++) {
        int port = pi < NPORTS ? ports[pi] : unbound_port;
        int frag_to;
        int r = ms_filter_tx(&p, port, mtu, mac, t, fr, now, &frag_to);
        CHECK(r == MS_R_OK || r == MS_R_LOCAL || ms_reason_counted(r) == MS_COUNTED_CHECK);
        int followed = live && port == tx_port;
        check_justified(&p, r, port, mtu, mac, followed);
        CHECK(frag_to == (r == MS_R_OK && p.frag == MS_FRAG_LATER ? -1 : -2));
        if (r == MS_R_OK && p.frag != MS_FRAG_LATER) {
            uint16_t sport = p.has_ports ? p.sport : 0;
            CHECK(ms_table_lookup(t, p.family, p.proto, p.src_ip, sport) == port);
            CHECK(p.problems == 0);
            CHECK(p.family == 4 || p.family == 6);
            oks++;
        }
        if (r == MS_R_OK) {
            CHECK(memcmp(p.src_mac, mac, 6) == 0 && len >= 14 && memcmp(frame + 6, mac, 6) == 0);
            CHECK((uint64_t)len <= (uint64_t)mtu + 14);
            CHECK(port != unbound_port || followed);
        }
        if (r == MS_R_LOCAL && ms_answer_wanted(&p)) {
            /* The answer the switch would give parses as an answer to this request. */
            uint8_t ans[MS_ANSWER_MAX];
            uint32_t n = ms_answer(&p, macs[1], ans);
            struct ms_parsed q;
            ms_parse(ans, n, &q);
            CHECK(!q.problems && memcmp(q.dst_mac, mac, 6) == 0);
            CHECK(q.nd == (p.nd == MS_ND_NS ? MS_ND_NA : MS_ND_ARP_OTHER));
            if (q.nd == MS_ND_NA)
                CHECK(ms_csum_fold(ms_csum_add(ms_csum_pseudo(6, q.src_ip, q.dst_ip, 58, 32),
                                               ans + 54, 32)) == 0xffff);
        }
        if (port == tx_port) {
            /* The chosen port again, with the other MAC: never forwarded unless MACs match. */
            const uint8_t *other = macs[mac == macs[0]];
            int r2 = ms_filter_tx(&p, port, mtu, other, t, fr, now, &frag_to);
            check_justified(&p, r2, port, mtu, other, followed);
            if (r2 == MS_R_OK || r2 == MS_R_LOCAL)
                CHECK(memcmp(p.src_mac, other, 6) == 0);
        }
    }
    CHECK(oks <= 1); /* one owner per exact binding */

    int d = ms_demux(&p, t, fr, now);
    CHECK(d >= -1);
    if (d >= 0 && !live) {
        uint16_t dport = p.has_ports ? p.dport : 0;
        CHECK(p.problems == 0 && (p.family == 4 || p.family == 6));
        CHECK(ms_table_lookup(t, p.family, p.proto, p.dst_ip, dport) == d);
    }
    int want_d = live ? ports[0]
                 : (p.problems || !p.family || p.nd)
                     ? -1
                     : sh_owner(p.family, p.proto, p.dst_ip, p.has_ports ? p.dport : 0);
    CHECK(d == want_d);
    ms_frags_free(fr);
    check_offload(frame, len, &p, mtu, (uint16_t)((data[1] << 8 | data[2]) ^ 0x5a5a));

    /* Remove one port's bindings wholesale; the others stay. */
    if (deli < NPORTS) {
        ms_table_del_owner(t, ports[deli]);
        for (int i = 0; i < nsh;) {
            if (sh[i].owner == ports[deli])
                sh_remove(i);
            else
                i++;
        }
        check_table(t);
    }

    free(frame);
    ms_table_free(t);
    return 0;
}
