/* The filter: what a port may transmit, and which port a frame is addressed to. Both work
 * on the parser's output and the bindings table; the switch loop and explain() call these
 * and nothing else to decide. */
#ifndef MS_FILTER_H
#define MS_FILTER_H

#include "parse.h"
#include "table.h"

/* First failing check, in DESIGN.md's order, for a frame that port `port` (MTU mtu) sends
 * on a NIC whose MAC is mac; MS_OK when it may leave. */
int ms_filter_tx(const struct ms_parsed *p, int port, uint32_t mtu, const uint8_t *mac,
                 const struct ms_table *t);

/* The port a frame is addressed to (family, protocol, destination IP and port), or -1 when
 * no binding matches or the frame is not plain IP that a port could own. */
int ms_demux(const struct ms_parsed *p, const struct ms_table *t);

#endif
