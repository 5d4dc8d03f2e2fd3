/* ARP replies (RFC 826) and neighbour advertisements (RFC 4861 section 4.4). */
#include <string.h>

#include "answer.h"
#include "checksum.h"
#include "parse.h"

static const uint8_t zero_ip[16];

int ms_answer_wanted(const struct ms_parsed *p)
{
    unsigned n = p->nd == MS_ND_NS ? 16 : 4;
    if (p->nd != MS_ND_ARP_REQUEST && p->nd != MS_ND_NS)
        return 0;
    return memcmp(p->src_ip, zero_ip, n) != 0 && memcmp(p->src_ip, p->nd_target, n) != 0;
}

static uint8_t *eth(uint8_t *o, const uint8_t *dst, const uint8_t *src, uint16_t type)
{
    memcpy(o, dst, 6);
    memcpy(o + 6, src, 6);
    o[12] = (uint8_t)(type >> 8);
    o[13] = (uint8_t)type;
    return o + 14;
}

uint32_t ms_answer(const struct ms_parsed *p, const uint8_t *mac, uint8_t *out)
{
    memset(out, 0, MS_ANSWER_MAX);
    if (p->nd == MS_ND_ARP_REQUEST) {
        uint8_t *a = eth(out, p->src_mac, mac, MS_ETH_ARP);
        static const uint8_t head[8] = {0, 1, 8, 0, 6, 4, 0, 2}; /* Ethernet, IPv4, reply */
        memcpy(a, head, 8);
        memcpy(a + 8, mac, 6);
        memcpy(a + 14, p->nd_target, 4);
        memcpy(a + 18, p->nd_lladdr, 6);
        memcpy(a + 24, p->src_ip, 4);
        return 14 + 28;
    }
    uint8_t *ip = eth(out, p->src_mac, mac, MS_ETH_IPV6);
    ip[0] = 0x60;
    ip[5] = 32;     /* payload: advertisement (24) + target link-layer option (8) */
    ip[6] = MS_IP_ICMPV6;
    ip[7] = 255;    /* hop limit 255: receivers discard neighbour discovery with less */
    memcpy(ip + 8, p->nd_target, 16);
    memcpy(ip + 24, p->src_ip, 16);
    uint8_t *na = ip + 40;
    na[0] = 136;
    na[4] = 0x60;   /* Solicited, Override */
    memcpy(na + 8, p->nd_target, 16);
    na[24] = 2;     /* target link-layer address */
    na[25] = 1;
    memcpy(na + 26, mac, 6);
    ms_csum_store(na, 32, 2, ms_csum_pseudo(6, ip + 8, ip + 24, MS_IP_ICMPV6, 32), 0);
    return 14 + 40 + 32;
}
