/* The filter: what a port may transmit, and which port a frame is addressed to. Both work
 * on the parser's output, the bindings table and the fragment table; the switch loop and
 * explain() call these and nothing else to decide. */
#ifndef MS_FILTER_H
#define MS_FILTER_H

#include "frag.h"
#include "parse.h"
#include "table.h"

/* The verdict on a frame port `port` (MTU mtu) sends on a NIC whose MAC is mac: the first
 * failing check in DESIGN.md's order, MS_R_LOCAL for neighbour resolution the switch
 * handles itself, or MS_R_OK when it may leave. A later fragment of a datagram whose first
 * fragment this port sent is MS_R_OK with *frag_to where that one went (a port id, or -1 for
 * the wire); *frag_to is -2 otherwise. fr may be NULL (no fragment follows). */
int ms_filter_tx(const struct ms_parsed *p, int port, uint32_t mtu, const uint8_t *mac,
                 const struct ms_table *t, const struct ms_frags *fr, int64_t now_ns,
                 int *frag_to);

/* The port a frame from the network is addressed to (family, protocol, destination IP and
 * port; a later fragment: its first fragment's port), or -1 when no binding matches or the
 * frame is not plain IP that a port could own. */
int ms_demux(const struct ms_parsed *p, const struct ms_table *t, const struct ms_frags *fr,
             int64_t now_ns);

#endif
