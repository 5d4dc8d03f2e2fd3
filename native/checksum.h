/* The Internet checksum (RFC 1071), for the frames the switch writes or completes.
 *
 * Sums are kept in the machine's byte order over 16-bit words as they lie in memory; the
 * one's complement sum is the same in either order, so a result stored back with memcpy
 * is right on the wire (RFC 1071 section 2B). */
#ifndef MS_CHECKSUM_H
#define MS_CHECKSUM_H

#include <stdint.h>
#include <string.h>

static inline uint64_t ms_csum_add(uint64_t sum, const uint8_t *b, uint32_t len)
{
    while (len >= 4) {
        uint32_t w;
        memcpy(&w, b, 4);
        sum += w;
        b += 4;
        len -= 4;
    }
    if (len >= 2) {
        uint16_t w;
        memcpy(&w, b, 2);
        sum += w;
        b += 2;
        len -= 2;
    }
    if (len) {
        uint8_t last[2] = {b[0], 0};
        uint16_t w;
        memcpy(&w, last, 2);
        sum += w;
    }
    return sum;
}

/* Folded to 16 bits, not complemented. */
static inline uint16_t ms_csum_fold(uint64_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)sum;
}

/* A 16-bit value given in host order, as it would lie in memory in network order. */
static inline uint64_t ms_csum_be16(uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    uint16_t w;
    memcpy(&w, b, 2);
    return w;
}

/* The pseudo-header of TCP, UDP and ICMPv6 (RFC 793, 768, 8200 section 8.1). */
static inline uint64_t ms_csum_pseudo(int family, const uint8_t *src, const uint8_t *dst,
                                      uint8_t proto, uint32_t l4len)
{
    unsigned n = family == 4 ? 4 : 16;
    uint64_t s = ms_csum_add(0, src, n);
    s = ms_csum_add(s, dst, n);
    s += ms_csum_be16(proto);
    s += ms_csum_be16((uint16_t)(l4len >> 16));
    return s + ms_csum_be16((uint16_t)l4len);
}

/* Store the complemented checksum of l4[0..len) (its checksum field at csum_off zeroed
 * first) with the pseudo-header sum `pseudo`. UDP says 0 as 0xffff (0 means "none"). */
static inline void ms_csum_store(uint8_t *l4, uint32_t len, uint32_t csum_off, uint64_t pseudo,
                                 int udp)
{
    memset(l4 + csum_off, 0, 2);
    uint16_t c = (uint16_t)~ms_csum_fold(ms_csum_add(pseudo, l4, len));
    if (udp && c == 0)
        c = 0xffff;
    memcpy(l4 + csum_off, &c, 2);
}

#endif
