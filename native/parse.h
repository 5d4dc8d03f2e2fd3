/* The frame parser: the only code in MiniStack that reads packet headers. */
#ifndef MS_PARSE_H
#define MS_PARSE_H

#include <stdint.h>

#include "ministack.h"

#define MS_PROB(r) (1u << (r))

enum {
    MS_ETH_IPV4 = 0x0800,
    MS_ETH_IPV6 = 0x86DD,
    MS_IP_ICMP = 1,
    MS_IP_TCP = 6,
    MS_IP_UDP = 17,
    MS_IP_DCCP = 33,
    MS_IP_ICMPV6 = 58,
    MS_IP_SCTP = 132,
    MS_IP_UDPLITE = 136,
};

/* Read the headers of frame[0..len). Every read is checked against len (and against the
 * IP lengths). p->problems gets MS_PROB(reason) for each structural problem: malformed,
 * vlan, not-allowed, fragment, unsupported-header; parsing stops at the first one that
 * leaves nothing sound to read. Never fails, never reads out of bounds. */
void ms_parse(const uint8_t *frame, uint32_t len, struct ms_parsed *p);

/* 1 when protocol `proto` of `family` carries ports (or an echo identifier). */
int ms_proto_has_ports(int family, int proto);
/* 1 for IPv6 extension header numbers the parser does not accept as a protocol. */
int ms_ipv6_is_ext_header(int proto);

#endif
