/* The filter table of DESIGN.md, in its order. */
#include <string.h>

#include "filter.h"

/* Structural problems after oversize and spoofed-src-mac, in table order. */
static const int later_problems[] = {MS_R_VLAN, MS_R_NOT_ALLOWED, MS_R_FRAGMENT,
                                     MS_R_UNSUPPORTED_HEADER};

int ms_filter_tx(const struct ms_parsed *p, int port, uint32_t mtu, const uint8_t *mac,
                 const struct ms_table *t)
{
    if (p->problems & MS_PROB(MS_R_MALFORMED))
        return MS_R_MALFORMED;
    if (p->len > mtu + 14)
        return MS_R_OVERSIZE;
    if (!ms_mac_eq(p->src_mac, mac))
        return MS_R_SPOOFED_SRC_MAC;
    if (p->problems) {
        for (unsigned i = 0; i < sizeof(later_problems) / sizeof(later_problems[0]); i++)
            if (p->problems & MS_PROB(later_problems[i]))
                return later_problems[i];
    }
    uint16_t sport = p->has_ports ? p->sport : 0;
    if (ms_table_lookup(t, p->family, p->proto, p->src_ip, sport) == port)
        return MS_OK;
    if (!ms_table_has_addr(t, port, p->family, p->src_ip))
        return MS_R_SPOOFED_SRC_IP;
    if (!ms_table_has_proto(t, port, p->family, p->src_ip, p->proto))
        return MS_R_SPOOFED_PROTOCOL;
    return MS_R_SPOOFED_SRC_PORT;
}

int ms_demux(const struct ms_parsed *p, const struct ms_table *t)
{
    if (p->problems || !p->family)
        return -1;
    return ms_table_lookup(t, p->family, p->proto, p->dst_ip, p->has_ports ? p->dport : 0);
}
