/* The filter table of DESIGN.md, in its order, with its neighbour and fragment rules. */
#include <string.h>

#include "filter.h"

static const uint8_t zero_ip[16];

/* A port's ARP: only a request, from the NIC's MAC and from an address the port bound
 * (or 0.0.0.0, a probe). */
static int arp_verdict(const struct ms_parsed *p, int port, const uint8_t *mac,
                       const struct ms_table *t)
{
    if (!ms_mac_eq(p->nd_lladdr, mac))
        return MS_R_SPOOFED_SRC_MAC;
    if (!ms_ip_eq(4, p->src_ip, zero_ip) && !ms_table_has_addr(t, port, 4, p->src_ip))
        return MS_R_SPOOFED_SRC_IP;
    return p->nd == MS_ND_ARP_REQUEST ? MS_R_LOCAL : MS_R_NOT_ALLOWED;
}

/* A port's IPv6 neighbour discovery and MLD: solicitations from its own addresses (or from
 * :: for one of them, duplicate address detection), router solicitations and listener
 * reports are the switch's to handle; what only a router or an address's owner may say is
 * not the port's. */
static int nd_verdict(const struct ms_parsed *p, int port, const uint8_t *mac,
                      const struct ms_table *t)
{
    switch (p->nd) {
    case MS_ND_RS:
    case MS_ND_MLD:
        return MS_R_LOCAL;
    case MS_ND_NS:
        if (p->has_lladdr && !ms_mac_eq(p->nd_lladdr, mac))
            return MS_R_SPOOFED_SRC_MAC;
        if (ms_ip_eq(6, p->src_ip, zero_ip))
            return ms_table_has_addr(t, port, 6, p->nd_target) ? MS_R_LOCAL
                                                               : MS_R_SPOOFED_SRC_IP;
        return ms_table_has_addr(t, port, 6, p->src_ip) ? MS_R_LOCAL : MS_R_SPOOFED_SRC_IP;
    default:
        return MS_R_NOT_ALLOWED;
    }
}

/* DESIGN.md's order, every check: the verdict on whatever the fast test below did not
 * pass. Out of line, so that the loops keep only the fast test in their instructions. */
static __attribute__((__noinline__)) int filter_tx_in_order(
    const struct ms_parsed *p, int port, uint32_t mtu, const uint8_t *mac,
    const struct ms_table *t, const struct ms_frags *fr, int64_t now_ns, int *frag_to)
{
    if (p->problems & MS_PROB(MS_R_MALFORMED))
        return MS_R_MALFORMED;
    if (p->len > mtu + 14)
        return MS_R_OVERSIZE;
    if (!ms_mac_eq(p->src_mac, mac))
        return MS_R_SPOOFED_SRC_MAC;
    if (p->problems & MS_PROB(MS_R_VLAN))
        return MS_R_VLAN;
    if (p->nd == MS_ND_ARP_REQUEST || p->nd == MS_ND_ARP_OTHER)
        return arp_verdict(p, port, mac, t);
    if (p->problems & MS_PROB(MS_R_NOT_ALLOWED))
        return MS_R_NOT_ALLOWED;
    if (p->nd)
        return nd_verdict(p, port, mac, t);
    if (p->problems & MS_PROB(MS_R_FRAGMENT)) {
        if (fr && ms_frags_find(fr, port, p, now_ns, frag_to))
            return MS_R_OK;
        return MS_R_FRAGMENT;
    }
    if (p->problems & MS_PROB(MS_R_UNSUPPORTED_HEADER))
        return MS_R_UNSUPPORTED_HEADER;
    uint16_t sport = p->has_ports ? p->sport : 0;
    if (ms_table_lookup(t, p->family, p->proto, p->src_ip, sport) == port)
        return MS_R_OK;
    if (!ms_table_has_addr(t, port, p->family, p->src_ip))
        return MS_R_SPOOFED_SRC_IP;
    if (!ms_table_has_proto(t, port, p->family, p->src_ip, p->proto))
        return MS_R_SPOOFED_PROTOCOL;
    return MS_R_SPOOFED_SRC_PORT;
}

int ms_filter_tx(const struct ms_parsed *p, int port, uint32_t mtu, const uint8_t *mac,
                 const struct ms_table *t, const struct ms_frags *fr, int64_t now_ns,
                 int *frag_to)
{
    *frag_to = -2;
    /* Nearly every frame is plain IP with no problem, no neighbour message, within the MTU,
     * from the NIC's MAC, and holds its binding: every check of the order passes, so one
     * test of them all gives the same verdict as the order with fewer branches. Anything
     * else gets the whole order, which alone says which check failed. */
    if (__builtin_expect(!p->problems && !p->nd && p->len <= mtu + 14 &&
                             ms_mac_eq(p->src_mac, mac), 1)) {
        uint16_t sport = p->has_ports ? p->sport : 0;
        if (__builtin_expect(ms_table_lookup(t, p->family, p->proto, p->src_ip, sport) == port,
                             1))
            return MS_R_OK;
    }
    return filter_tx_in_order(p, port, mtu, mac, t, fr, now_ns, frag_to);
}

int ms_demux(const struct ms_parsed *p, const struct ms_table *t, const struct ms_frags *fr,
             int64_t now_ns)
{
    if (__builtin_expect(!p->problems && p->family && !p->nd, 1))
        return ms_table_lookup(t, p->family, p->proto, p->dst_ip, p->has_ports ? p->dport : 0);
    int to;
    if (p->problems == MS_PROB(MS_R_FRAGMENT) && p->frag == MS_FRAG_LATER && fr &&
        ms_frags_find(fr, MS_FRAG_FROM_NIC, p, now_ns, &to))
        return to;
    return -1;
}
