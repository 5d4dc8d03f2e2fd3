/* The header rules both the switch's parser (parse.c) and the steering program
 * (xdp/ministack_steer.bpf.c, as XDP for AF_XDP and at tc ingress for AF_PACKET) apply, so
 * that the kernel's half of a real NIC takes from the kernel exactly the frames the switch
 * would deliver (tests/test_steering.py). In the
 * spirit of xdp-tools' parsing_helpers.h: one header that gcc and clang -target bpf both
 * build. So it is plain C with no library and no pointers: each rule is a step over bytes
 * the caller has already read within bounds, because only the caller knows how to prove
 * that to its compiler (a length check in parse.c, a check against data_end in BPF).
 */
#ifndef MS_HEADER_RULES_H
#define MS_HEADER_RULES_H

/* The upper-layer protocols whose headers a rule reads. */
enum {
    MS_IP_ICMP = 1,
    MS_IP_TCP = 6,
    MS_IP_UDP = 17,
    MS_IP_DCCP = 33,
    MS_IP_ICMPV6 = 58,
    MS_IP_SCTP = 132,
    MS_IP_UDPLITE = 136,
};

/* The fixed IP headers: which of their rules a header breaks first, in parse.c's order
 * (MS_HDR_OK when none), from its first byte, its length field and the `len` bytes the
 * frame has from the header's start. The caller reads those two fields only when there
 * are len >= 20 (IPv4) or 40 (IPv6) bytes; with fewer it passes 0 for both. */
enum {
    MS_HDR_OK = 0,
    MS_HDR_SHORT,        /* fewer bytes than the fixed header */
    MS_HDR_VERSION,      /* the version field disagrees with the EtherType */
    MS_HDR_IHL_SMALL,    /* IPv4: a header length (IHL) below 5 words */
    MS_HDR_IHL_PAST,     /* IPv4: the header runs past the frame */
    MS_HDR_TOTAL_SMALL,  /* IPv4: a total length below the header's */
    MS_HDR_TOTAL_PAST,   /* the datagram (IPv4 total, IPv6 40 + payload length) runs past it */
};

/* IPv4 (RFC 791); tot is the total length field. */
static inline int ms_rule_ipv4_header(unsigned char byte0, unsigned tot, unsigned len)
{
    unsigned ihl = (byte0 & 15u) * 4;
    if (len < 20)
        return MS_HDR_SHORT;
    if ((byte0 >> 4) != 4)
        return MS_HDR_VERSION;
    if (ihl < 20)
        return MS_HDR_IHL_SMALL;
    if (ihl > len)
        return MS_HDR_IHL_PAST;
    if (tot < ihl)
        return MS_HDR_TOTAL_SMALL;
    if (tot > len)
        return MS_HDR_TOTAL_PAST;
    return MS_HDR_OK;
}

/* IPv6 (RFC 8200); plen is the payload length field. */
static inline int ms_rule_ipv6_header(unsigned char byte0, unsigned plen, unsigned len)
{
    if (len < 40)
        return MS_HDR_SHORT;
    if ((byte0 >> 4) != 6)
        return MS_HDR_VERSION;
    if (40 + plen > len)
        return MS_HDR_TOTAL_PAST;
    return MS_HDR_OK;
}

/* The bytes an upper-layer header must have before its ports (or an ICMP echo's
 * identifier) can be read; 0 for a protocol that has none (port-less, or the ICMP of the
 * other family). */
static inline unsigned ms_rule_l4_min(unsigned family, unsigned proto)
{
    switch (proto) {
    case MS_IP_UDP: case MS_IP_UDPLITE:
        return 8;
    case MS_IP_SCTP: case MS_IP_DCCP:
        return 12;
    case MS_IP_TCP:
        return 20;
    case MS_IP_ICMP:
        return family == 4 ? 8 : 0;
    case MS_IP_ICMPV6:
        return family == 6 ? 8 : 0;
    default:
        return 0;
    }
}

/* TCP (RFC 9293): the data offset (the high nibble of byte 12) ends the header at 20
 * bytes or more, and within the len bytes there are. */
static inline int ms_rule_tcp_ok(unsigned char byte12, unsigned len)
{
    unsigned doff = (unsigned)(byte12 >> 4) * 4;
    return doff >= 20 && doff <= len;
}

/* DCCP (RFC 4340): the X bit (byte 8) makes the generic header 16 bytes instead of 12,
 * and the data offset (byte 4, in words) ends the header after that, within len. */
static inline int ms_rule_dccp_ok(unsigned char byte4, unsigned char byte8, unsigned len)
{
    unsigned hdr = (byte8 & 1) ? 16 : 12, doff = (unsigned)byte4 * 4;
    return len >= hdr && doff >= hdr && doff <= len;
}

/* An echo request or reply of the family's own ICMP: the only ICMP a port may own (by its
 * identifier); errors, redirects and neighbour discovery are the host's. */
static inline int ms_rule_icmp_echo(unsigned family, unsigned char type)
{
    return family == 4 ? (type == 8 || type == 0) : (type == 128 || type == 129);
}

/* IPv6 extension headers: at most this many, and this many bytes of them (a Fragment
 * header counts 8), before the upper-layer header. */
#define MS_IPV6_MAX_EXT 8
#define MS_IPV6_MAX_EXT_BYTES 256

/* An IPv6 next-header value that is an extension header (RFC 8200, 4303, 4302, 6275,
 * 7401, 5533, 3692). */
static inline int ms_rule_ipv6_ext_header(unsigned nh)
{
    switch (nh) {
    case 0: case 43: case 44: case 50: case 51: case 60: case 135: case 139: case 140:
    case 253: case 254:
        return 1;
    default:
        return 0;
    }
}

/* Options: one step of the walk over an option area of `len` bytes, at position i < len
 * where `type` is the byte at i and `next` the byte at i + 1 (0 when i + 1 == len). The
 * position of the next option, len when the list ended soundly, or 0 when it is broken.
 *
 * IPv4 (RFC 791): EOL (0) ends the list, NOP (1) is one byte, any other option is type,
 * length (2 or more, counting those two bytes) and value within the area. */
static inline unsigned ms_rule_ipv4_option_next(unsigned char type, unsigned char next,
                                                unsigned i, unsigned len)
{
    if (type == 0)
        return len;
    if (type == 1)
        return i + 1;
    if (i + 1 >= len || next < 2 || next > len - i)
        return 0;
    return i + next;
}

/* IPv6 Hop-by-Hop and Destination Options (RFC 8200 4.2): Pad1 (0) is one byte, any
 * other option is type, length (of the value, after those two bytes) and value within
 * the area. */
static inline unsigned ms_rule_ipv6_option_next(unsigned char type, unsigned char next,
                                                unsigned i, unsigned len)
{
    if (type == 0)
        return i + 1;
    if (i + 1 >= len || (unsigned)next + 2 > len - i)
        return 0;
    return i + next + 2;
}

#endif
