/* Fragments follow their first fragment (DESIGN.md "Neighbours and fragments").
 *
 * Only a datagram's first fragment carries ports, so only it can be checked or
 * demultiplexed. When it is let through, the switch remembers the datagram, keyed on
 * (who sent it, family, source, destination, protocol, identification), with where the
 * first fragment went; a later fragment with the same key goes there too. "Who sent it"
 * is the sending port for a port's datagram and MS_FRAG_FROM_NIC for the network's, so a
 * port can never ride on a datagram another port (or the network) started.
 *
 * The table is bounded: open addressing over a fixed array, an entry expires
 * MS_FRAG_TIMEOUT_NS after its first fragment (Linux's ipfrag_time), and when the table
 * is full the oldest entry in the probe window gives way. Single-threaded: the switch loop
 * writes it, explain() reads it under the same lock. */
#ifndef MS_FRAG_H
#define MS_FRAG_H

#include <stdint.h>

#include "ministack.h"

#define MS_FRAG_FROM_NIC (-1)
#define MS_FRAG_TIMEOUT_NS (30ll * 1000000000)
#define MS_FRAG_SLOTS 4096   /* a power of two */

struct ms_frags;

struct ms_frags *ms_frags_new(void);
void ms_frags_free(struct ms_frags *f);

/* Remember datagram p (a first fragment from `from`) as going to `to` (a port id, or -1
 * for the wire). now_ns: CLOCK_MONOTONIC. */
void ms_frags_add(struct ms_frags *f, int from, const struct ms_parsed *p, int to,
                  int64_t now_ns);
/* Where the datagram of later fragment p from `from` goes: 1 and *to set when its first
 * fragment was let through less than the timeout ago, else 0. */
int ms_frags_find(const struct ms_frags *f, int from, const struct ms_parsed *p,
                  int64_t now_ns, int *to);
/* Count a later fragment the datapath sent after its first (explain() does not). */
void ms_frags_followed(struct ms_frags *f);
/* Forget every datagram from or to port (it closed). */
void ms_frags_forget_port(struct ms_frags *f, int port);
void ms_frags_stats(const struct ms_frags *f, struct ms_frag_stats *out);

#endif
