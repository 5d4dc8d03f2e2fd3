/* Completing partial checksums and cutting super-frames (offload.h). */
#include <string.h>

#include "checksum.h"
#include "offload.h"
#include "parse.h"

static inline uint16_t rd16(const uint8_t *b) { return (uint16_t)((b[0] << 8) | b[1]); }

static inline void wr16(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 8);
    b[1] = (uint8_t)v;
}

int ms_csum_finish(uint8_t *f, uint32_t len, uint32_t start, uint32_t off)
{
    if (start >= len || off > len - start || len - start - off < 2)
        return 0;
    uint16_t c = (uint16_t)~ms_csum_fold(ms_csum_add(0, f + start, len - start));
    memcpy(f + start + off, &c, 2);
    return 1;
}

int ms_csum_repair(uint8_t *f, uint32_t len, const struct ms_parsed *p)
{
    (void)len;
    if (p->frag != MS_FRAG_NONE || p->problems || !p->l4_off)
        return 0;
    uint32_t off;
    if (p->proto == MS_IP_TCP)
        off = 16;
    else if (p->proto == MS_IP_UDP)
        off = 6;
    else
        return 0;
    uint8_t *l4 = f + p->l4_off;
    uint32_t l4len = p->l3_end - p->l4_off;
    if (p->proto == MS_IP_UDP && p->family == 4 && rd16(l4 + 6) == 0)
        return 0; /* IPv4 UDP without a checksum */
    uint64_t pseudo = ms_csum_pseudo(p->family, p->src_ip, p->dst_ip, p->proto, l4len);
    uint64_t sum = ms_csum_add(0, l4, l4len);
    if (ms_csum_fold(sum + pseudo) == 0xffff)
        return 0;
    /* Partial: the field holds the folded pseudo-header sum (either zero of one's
     * complement arithmetic). */
    uint16_t field, want = ms_csum_fold(pseudo);
    memcpy(&field, l4 + off, 2);
    if (field != want && !((field == 0 || field == 0xffff) && (want == 0 || want == 0xffff)))
        return -1;
    uint16_t c = (uint16_t)~ms_csum_fold(sum);
    if (p->proto == MS_IP_UDP && c == 0)
        c = 0xffff;
    memcpy(l4 + off, &c, 2);
    return 1;
}

int ms_seg_init(struct ms_segmenter *s, const uint8_t *f, const struct ms_parsed *p,
                uint32_t mtu, uint32_t gso_size)
{
    memset(s, 0, sizeof(*s));
    /* Only a datagram larger than the MTU is cut; padding past its end is no reason. */
    if (p->problems || p->frag != MS_FRAG_NONE || !p->l4_off || p->l3_end <= mtu + 14)
        return -1;
    uint32_t l3_hdr = p->l4_off - 14;
    if (p->proto == MS_IP_TCP) {
        s->tcp = 1;
        s->hdr_len = p->l4_off + (uint32_t)(f[p->l4_off + 12] >> 4) * 4;
        if (l3_hdr + (s->hdr_len - p->l4_off) >= mtu)
            return -1;
        s->size = mtu - l3_hdr - (s->hdr_len - p->l4_off);
        if (gso_size && gso_size < s->size)
            s->size = gso_size;
    } else if (p->proto == MS_IP_UDP && gso_size) {
        s->hdr_len = p->l4_off + 8;
        if (l3_hdr + 8 + gso_size > mtu)
            return -1;
        s->size = gso_size;
    } else {
        return -1;
    }
    s->f = f;
    s->p = p;
    s->pos = s->hdr_len;
    s->end = p->l3_end;
    return s->hdr_len <= s->end ? 0 : -1;
}

uint32_t ms_seg_next(struct ms_segmenter *s, uint8_t *out)
{
    const struct ms_parsed *p = s->p;
    if (s->pos >= s->end && !(s->i == 0 && s->pos == s->end))
        return 0;
    uint32_t chunk = s->end - s->pos < s->size ? s->end - s->pos : s->size;
    uint32_t len = s->hdr_len + chunk;
    memcpy(out, s->f, s->hdr_len);
    memcpy(out + s->hdr_len, s->f + s->pos, chunk);
    int first = s->i == 0, last = s->pos + chunk >= s->end;
    uint8_t *ip = out + 14, *l4 = out + p->l4_off;
    uint32_t l4len = len - p->l4_off;
    if (p->family == 4) {
        uint32_t ihl = (uint32_t)(ip[0] & 15) * 4;
        wr16(ip + 2, len - 14);
        wr16(ip + 4, rd16(ip + 4) + s->i);  /* as GSO does: one identification each */
        memset(ip + 10, 0, 2);
        uint16_t c = (uint16_t)~ms_csum_fold(ms_csum_add(0, ip, ihl));
        memcpy(ip + 10, &c, 2);
    } else {
        wr16(ip + 4, len - 14 - 40);
    }
    uint64_t pseudo = ms_csum_pseudo(p->family, p->src_ip, p->dst_ip, p->proto, l4len);
    if (s->tcp) {
        uint32_t seq = (uint32_t)rd16(l4 + 4) << 16 | rd16(l4 + 6);
        seq += s->pos - s->hdr_len;
        wr16(l4 + 4, seq >> 16);
        wr16(l4 + 6, seq);
        if (!last)
            l4[13] &= (uint8_t)~0x09;  /* FIN and PSH belong to the last segment */
        if (!first)
            l4[13] &= (uint8_t)~0x80;  /* CWR to the first */
        ms_csum_store(l4, l4len, 16, pseudo, 0);
    } else {
        wr16(l4 + 4, l4len);
        ms_csum_store(l4, l4len, 6, pseudo, 1);
    }
    s->pos += chunk ? chunk : 1;
    s->i++;
    return len;
}
