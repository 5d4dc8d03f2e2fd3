/* The frame parser: the only code in MiniStack that reads packet headers. */
#ifndef MS_PARSE_H
#define MS_PARSE_H

#include <stdint.h>

#include "ministack.h"
#include "ms_header_rules.h"

#define MS_PROB(r) (1u << (r))

enum {
    MS_ETH_IPV4 = 0x0800,
    MS_ETH_IPV6 = 0x86DD,
    MS_ETH_ARP = 0x0806,
};

#include <string.h>

/* Six-byte compare without a library call (it runs for every frame). */
static inline int ms_mac_eq(const uint8_t *a, const uint8_t *b)
{
    uint32_t a4, b4;
    uint16_t a2, b2;
    memcpy(&a4, a, 4);
    memcpy(&b4, b, 4);
    memcpy(&a2, a + 4, 2);
    memcpy(&b2, b + 4, 2);
    return ((a4 ^ b4) | (uint32_t)(a2 ^ b2)) == 0;
}

/* An address compare (4 or 16 bytes) without a library call. */
static inline int ms_ip_eq(int family, const uint8_t *a, const uint8_t *b)
{
    if (family == 4) {
        uint32_t x, y;
        memcpy(&x, a, 4);
        memcpy(&y, b, 4);
        return x == y;
    }
    uint64_t x[2], y[2];
    memcpy(x, a, 16);
    memcpy(y, b, 16);
    return ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0;
}

/* Read the headers of frame[0..len). Every read is checked against len (and against the
 * IP lengths). p->problems gets MS_PROB(reason) for each structural problem: malformed,
 * vlan, not-allowed, fragment, unsupported-header; parsing stops at the first one that
 * leaves nothing sound to read. Never fails, never reads out of bounds. The fields after
 * l3_end are valid only as their comments in ministack.h say (note when problems is set,
 * frag_id for a fragment, the neighbour fields for nd). */
void ms_parse(const uint8_t *frame, uint32_t len, struct ms_parsed *p);

/* 1 when protocol `proto` of `family` carries ports (or an echo identifier). */
int ms_proto_has_ports(int family, int proto);
/* 1 for IPv6 extension header numbers the parser does not accept as a protocol. */
int ms_ipv6_is_ext_header(int proto);

#endif
