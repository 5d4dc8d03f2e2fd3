/* The frame parser. Reads Ethernet, IPv4 (options walked), IPv6 (Hop-by-Hop, Routing and
 * Destination Options walked) and the first bytes of the L4 header. Every read is bounded
 * by the frame length and by the IP header's own length fields. */
#include <stddef.h>
#include <string.h>

#include "parse.h"

static inline uint16_t rd16(const uint8_t *b) { return (uint16_t)((b[0] << 8) | b[1]); }

/* Record a problem; the note describes the one the filter will report, the earliest in
 * the table's order. */
static void problem(struct ms_parsed *p, int reason, const char *note)
{
    if (!p->problems || MS_PROB(reason) < (p->problems & -p->problems))
        p->note = note;
    p->problems |= MS_PROB(reason);
}

int ms_proto_has_ports(int family, int proto)
{
    switch (proto) {
    case MS_IP_TCP:
    case MS_IP_UDP:
    case MS_IP_DCCP:
    case MS_IP_SCTP:
    case MS_IP_UDPLITE:
        return 1;
    case MS_IP_ICMP:
        return family == 4;
    case MS_IP_ICMPV6:
        return family == 6;
    default:
        return 0;
    }
}

int ms_ipv6_is_ext_header(int proto) { return ms_rule_ipv6_ext_header((unsigned)proto); }

/* ICMPv6 neighbour discovery and MLD (RFC 4861, 2710, 3810): what it is, and for a
 * solicitation its target and source link-layer address option. */
static void parse_nd(const uint8_t *l4, uint32_t l, struct ms_parsed *p)
{
    p->has_lladdr = 0;
    memset(p->nd_target, 0, sizeof(p->nd_target));
    switch (l4[0]) {
    case 130: /* a multicast listener query: only routers send those */
        p->nd = MS_ND_RA;
        return;
    case 131: case 132: case 143:
        p->nd = MS_ND_MLD;
        return;
    case 133:
        p->nd = MS_ND_RS;
        return;
    case 134:
        p->nd = MS_ND_RA;
        return;
    case 136:
        p->nd = MS_ND_NA;
        return;
    case 137:
        p->nd = MS_ND_REDIRECT;
        return;
    default: /* 135 */
        break;
    }
    if (l < 24) {
        problem(p, MS_R_MALFORMED, "a neighbour solicitation is shorter than 24 bytes");
        return;
    }
    p->nd = MS_ND_NS;
    memcpy(p->nd_target, l4 + 8, 16);
    /* Options: type, length in units of 8 bytes (0 is invalid), value. */
    for (uint32_t i = 24; i < l;) {
        if (l - i < 8 || l4[i + 1] == 0 || (uint32_t)l4[i + 1] * 8 > l - i) {
            problem(p, MS_R_MALFORMED, "a neighbour discovery option's length is 0 or runs "
                                       "past the message");
            return;
        }
        if (l4[i] == 1 && l4[i + 1] == 1) {
            memcpy(p->nd_lladdr, l4 + i + 2, 6);
            p->has_lladdr = 1;
        }
        i += (uint32_t)l4[i + 1] * 8;
    }
}

static int is_nd_type(uint8_t t)
{
    return (t >= 130 && t <= 137) || t == 143;
}

/* The L4 header: l4[0..l) is what the IP header says the payload is. */
static void parse_l4(const uint8_t *l4, uint32_t l, struct ms_parsed *p)
{
    uint32_t need = ms_rule_l4_min(p->family, p->proto);
    if (!need)
        return; /* a port-less protocol: nothing to read */
    if (l < need) {
        problem(p, MS_R_MALFORMED, "the L4 header is shorter than its protocol's minimum");
        return;
    }
    if (p->proto == MS_IP_TCP && !ms_rule_tcp_ok(l4[12], l)) {
        problem(p, MS_R_MALFORMED, "the TCP data offset is below 5 or beyond the packet");
        return;
    }
    if (p->proto == MS_IP_DCCP && !ms_rule_dccp_ok(l4[4], l4[8], l)) {
        problem(p, MS_R_MALFORMED, "the DCCP data offset is too small or beyond the packet");
        return;
    }
    if (p->proto == MS_IP_ICMP || p->proto == MS_IP_ICMPV6) {
        uint8_t t = l4[0];
        p->icmp_type = t;
        if (p->proto == MS_IP_ICMPV6 && is_nd_type(t)) {
            parse_nd(l4, l, p);
            return;
        }
        if (!ms_rule_icmp_echo(p->family, t)) {
            problem(p, MS_R_NOT_ALLOWED,
                    "ICMP other than echo request and reply (errors, redirects) belongs to "
                    "the host");
            return;
        }
        p->sport = p->dport = rd16(l4 + 4);
    } else {
        p->sport = rd16(l4);
        p->dport = rd16(l4 + 2);
    }
    p->has_ports = 1;
}

/* IPv4 options: each is EOL, NOP, or type-length-value with 2 <= length <= what is left. */
static int ipv4_options_ok(const uint8_t *o, uint32_t l)
{
    for (uint32_t i = 0; i < l;)
        if (!(i = ms_rule_ipv4_option_next(o[i], i + 1 < l ? o[i + 1] : 0, i, l)))
            return 0;
    return 1;
}

/* A sound IPv4 header of ihl bytes and total length tot: its fields, its options, its
 * fragmentation, then the L4 header. */
static inline void ipv4_body(const uint8_t *b, uint32_t ihl, uint32_t tot, struct ms_parsed *p)
{
    p->family = 4;
    p->proto = b[9];
    memcpy(p->src_ip, b + 12, 4);
    memcpy(p->dst_ip, b + 16, 4);
    if (ihl > 20 && !ipv4_options_ok(b + 20, ihl - 20)) {
        problem(p, MS_R_MALFORMED, "an IPv4 option's length is below 2 or beyond the header");
        return;
    }
    p->l3_end = 14 + tot;
    uint16_t frag = rd16(b + 6);
    if (frag & 0x3fff) {
        p->frag_id = rd16(b + 4);
        /* A later fragment has no L4 header: it can only follow its first fragment. */
        if (frag & 0x1fff) {
            p->frag = MS_FRAG_LATER;
            problem(p, MS_R_FRAGMENT, "it is a later IPv4 fragment (offset above 0) of a "
                                      "datagram whose first fragment was not let through");
            return;
        }
        p->frag = MS_FRAG_FIRST;
    }
    p->l4_off = (uint16_t)(14 + ihl);
    parse_l4(b + ihl, tot - ihl, p);
}

static void parse_ipv4(const uint8_t *b, uint32_t l, struct ms_parsed *p)
{
    static const char *const broken[] = {
        [MS_HDR_SHORT] = "the frame is shorter than an IPv4 header (20 bytes)",
        [MS_HDR_VERSION] = "the IP version field disagrees with the IPv4 EtherType",
        [MS_HDR_IHL_SMALL] = "the IPv4 header length (IHL) is below 5",
        [MS_HDR_IHL_PAST] = "the IPv4 header (IHL) runs past the end of the frame",
        [MS_HDR_TOTAL_SMALL] = "the IPv4 total length is smaller than its header",
        [MS_HDR_TOTAL_PAST] = "the IPv4 total length is beyond the end of the frame",
    };
    uint32_t tot = l >= 20 ? rd16(b + 2) : 0;
    int rule = ms_rule_ipv4_header(l >= 20 ? b[0] : 0, tot, l);
    if (__builtin_expect(rule != MS_HDR_OK, 0)) {
        problem(p, MS_R_MALFORMED, broken[rule]);
        return;
    }
    ipv4_body(b, (uint32_t)(b[0] & 15) * 4, tot, p);
}

/* Hop-by-Hop and Destination Options hold TLV options: Pad1, or type, length, value. */
static int ipv6_options_ok(const uint8_t *o, uint32_t l)
{
    for (uint32_t i = 0; i < l;)
        if (!(i = ms_rule_ipv6_option_next(o[i], i + 1 < l ? o[i + 1] : 0, i, l)))
            return 0;
    return 1;
}

static void parse_ipv6(const uint8_t *b, uint32_t l, struct ms_parsed *p)
{
    static const char *const broken[] = {
        [MS_HDR_SHORT] = "the frame is shorter than an IPv6 header (40 bytes)",
        [MS_HDR_VERSION] = "the IP version field disagrees with the IPv6 EtherType",
        [MS_HDR_TOTAL_PAST] = "the IPv6 payload length is beyond the end of the frame",
    };
    uint32_t plen = l >= 40 ? rd16(b + 4) : 0;
    int rule = ms_rule_ipv6_header(l >= 40 ? b[0] : 0, plen, l);
    if (rule != MS_HDR_OK) {
        problem(p, MS_R_MALFORMED, broken[rule]);
        return;
    }
    uint32_t end = 40u + plen;
    p->family = 6;
    p->l3_end = 14 + end;
    memcpy(p->src_ip, b + 8, 16);
    memcpy(p->dst_ip, b + 24, 16);
    uint8_t nh = b[6];
    uint32_t off = 40, count = 0, bytes = 0;
    for (;;) {
        p->proto = nh;
        if (nh == 0 || nh == 43 || nh == 60) {
            if (nh == 0 && count) {
                problem(p, MS_R_UNSUPPORTED_HEADER, "a Hop-by-Hop header is not the first");
                return;
            }
            if (count == MS_IPV6_MAX_EXT) {
                problem(p, MS_R_UNSUPPORTED_HEADER, "it has more than 8 IPv6 extension headers");
                return;
            }
            if (end - off < 8) {
                problem(p, MS_R_MALFORMED, "an IPv6 extension header runs past the payload");
                return;
            }
            uint32_t hl = ((uint32_t)b[off + 1] + 1) * 8;
            if (hl > end - off) {
                problem(p, MS_R_MALFORMED, "an IPv6 extension header runs past the payload");
                return;
            }
            bytes += hl;
            if (bytes > MS_IPV6_MAX_EXT_BYTES) {
                problem(p, MS_R_UNSUPPORTED_HEADER,
                        "its IPv6 extension headers are longer than 256 bytes");
                return;
            }
            if (nh != 43 && !ipv6_options_ok(b + off + 2, hl - 2)) {
                problem(p, MS_R_MALFORMED, "an IPv6 option's length runs past its header");
                return;
            }
            nh = b[off];
            off += hl;
            count++;
            continue;
        }
        if (nh == 44) {
            if (end - off < 8) {
                problem(p, MS_R_MALFORMED, "an IPv6 Fragment header runs past the payload");
                return;
            }
            uint16_t fo = rd16(b + off + 2);
            uint32_t id = (uint32_t)rd16(b + off + 4) << 16 | rd16(b + off + 6);
            if (fo >> 3) {
                p->frag = MS_FRAG_LATER;
                p->frag_id = id;
                p->proto = b[off];
                problem(p, MS_R_FRAGMENT, "it is a later IPv6 fragment (offset above 0) of a "
                                          "datagram whose first fragment was not let through");
                return; /* no L4 header to read */
            }
            if (fo & 1) { /* M set; without it this is an atomic fragment, a whole datagram */
                p->frag = MS_FRAG_FIRST;
                p->frag_id = id;
            }
            if (count == MS_IPV6_MAX_EXT) {
                problem(p, MS_R_UNSUPPORTED_HEADER, "it has more than 8 IPv6 extension headers");
                return;
            }
            nh = b[off];
            off += 8;
            count++;
            bytes += 8;
            continue;
        }
        if (ms_rule_ipv6_ext_header(nh)) {
            problem(p, MS_R_UNSUPPORTED_HEADER,
                    "it has an IPv6 extension header other than Hop-by-Hop, Routing or "
                    "Destination Options");
            return;
        }
        break;
    }
    p->l4_off = (uint16_t)(14 + off);
    parse_l4(b + off, end - off, p);
}

/* Ethernet/IPv4 ARP (RFC 826): 28 bytes; anything else is not for a port to send. */
static void parse_arp(const uint8_t *b, uint32_t l, struct ms_parsed *p)
{
    if (l < 28) {
        problem(p, MS_R_MALFORMED, "the frame is shorter than an Ethernet/IPv4 ARP message "
                                   "(28 bytes)");
        return;
    }
    if (rd16(b) != 1 || rd16(b + 2) != MS_ETH_IPV4 || b[4] != 6 || b[5] != 4) {
        problem(p, MS_R_NOT_ALLOWED, "it is ARP for a hardware or protocol type other than "
                                     "Ethernet and IPv4");
        return;
    }
    p->nd = rd16(b + 6) == 1 ? MS_ND_ARP_REQUEST : MS_ND_ARP_OTHER;
    memset(p->nd_target, 0, sizeof(p->nd_target));
    memcpy(p->nd_lladdr, b + 8, 6);
    p->has_lladdr = 1;
    memcpy(p->src_ip, b + 14, 4);
    memcpy(p->nd_target, b + 24, 4);
}

_Static_assert(offsetof(struct ms_parsed, note) == 72,
              "ms_parse clears the first 72 bytes of struct ms_parsed: more costs rep stos");

void ms_parse(const uint8_t *f, uint32_t len, struct ms_parsed *p)
{
    memset(p, 0, offsetof(struct ms_parsed, note));
    p->len = len;
    if (len < 14) {
        problem(p, MS_R_MALFORMED, "the frame is shorter than an Ethernet header (14 bytes)");
        return;
    }
    memcpy(p->dst_mac, f, 6);
    memcpy(p->src_mac, f + 6, 6);
    uint16_t et = rd16(f + 12);
    p->ethertype = et;
    if (__builtin_expect(et == MS_ETH_IPV4, 1)) /* the rest are tested in the order below */
        parse_ipv4(f + 14, len - 14, p);
    else if (et == 0x8100 || et == 0x88a8 || et == 0x9100)
        problem(p, MS_R_VLAN, "it carries an 802.1Q/802.1ad VLAN tag");
    else if (et == MS_ETH_IPV6)
        parse_ipv6(f + 14, len - 14, p);
    else if (et == MS_ETH_ARP)
        parse_arp(f + 14, len - 14, p);
    else
        problem(p, MS_R_NOT_ALLOWED,
                "its EtherType is not IPv4, IPv6 or ARP (the rest belongs to the host)");
}
