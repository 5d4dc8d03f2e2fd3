/* Frames a real stack can accept (DESIGN.md): every frame delivered to a port carries
 * complete checksums and is at most the port's MTU, whatever offloads the sender used.
 *
 * A kernel sending over a veth (and a NIC doing receive offload) hands over
 *  - partial checksums: the checksum field holds only the pseudo-header sum, to be
 *    completed by hardware that never comes (CHECKSUM_PARTIAL);
 *  - super-frames: one TCP segment, or a train of UDP datagrams, up to 64 KiB, to be cut
 *    by hardware or by GSO that never comes (TSO/GSO on the sender, GRO on the receiver).
 * The switch completes the first and cuts the second, on the way into a port only. */
#ifndef MS_OFFLOAD_H
#define MS_OFFLOAD_H

#include <stdint.h>

#include "ministack.h"

/* As the kernel's CHECKSUM_PARTIAL: sum f[start..len) and store the complement at
 * start + off. 1 when done, 0 when start/off lie outside the frame. */
int ms_csum_finish(uint8_t *f, uint32_t len, uint32_t start, uint32_t off);

/* A frame whose sender may have left its TCP or UDP checksum partial (the NIC cannot tell):
 * 0 when the checksum is right (or absent, or not TCP/UDP), 1 when it was partial and is
 * now complete, -1 when it is simply wrong (left so: the stack drops it, as it should). */
int ms_csum_repair(uint8_t *f, uint32_t len, const struct ms_parsed *p);

/* Cutting a TCP super-frame into segments, or a UDP GSO train into its datagrams. */
struct ms_segmenter {
    const uint8_t *f;
    const struct ms_parsed *p;
    uint32_t hdr_len;   /* Ethernet + IP + L4 header: copied into every piece */
    uint32_t end;       /* end of the payload */
    uint32_t pos;       /* next payload byte */
    uint32_t size;      /* payload bytes per piece */
    uint32_t i;
    int tcp;
};

/* Prepare to cut frame f (parsed as p) into pieces of at most mtu bytes of IP: TCP at
 * most min(gso_size, what fits); UDP exactly gso_size per datagram. 0, or -1 when it
 * cannot or need not be cut (its datagram fits the MTU; not TCP/UDP; a fragment; UDP
 * without gso_size or whose datagrams are larger than the MTU). */
int ms_seg_init(struct ms_segmenter *s, const uint8_t *f, const struct ms_parsed *p,
                uint32_t mtu, uint32_t gso_size);
/* Write the next piece into out (room for mtu + 14 bytes): its length, 0 when done. */
uint32_t ms_seg_next(struct ms_segmenter *s, uint8_t *out);

#endif
