/* The one table of verdicts. Everything that names, counts or explains a verdict is
 * derived from these rows: enum ms_reason and MS_R_COUNT (ministack.h), the length of every
 * counter array, the names, kinds and sentences (reasons.c), Python's lists of reasons
 * (ministack/switch.py) and the check of docs/reasons.md (tests/test_reasons.py), in the
 * manner of Linux's DEFINE_DROP_REASON. Adding a reason is one row here, its check, and
 * its tests.
 *
 * R(number, ID, name, kind, counted, sentence, tx_detail, rx_detail)
 *   number   docs/reasons.md publishes it and it never changes: a new reason takes the next
 *            one; a retired one keeps its row, with kind RETIRED. Rows are in number order.
 *   kind     FORWARD, DROP, LOCAL (the switch handles it), TO_HOST (left to the host).
 *   counted  where stats() counts it as a drop: CHECK (a port's; one of the TX filter's
 *            checks, made in number order, DESIGN.md), PORT (a port's, a delivery outcome),
 *            NIC, BOTH (a port's or the NIC's), or NONE (not a drop).
 *   tx_detail, rx_detail
 *            explain()'s sentence on one frame with this verdict, sent by a port (tx) or
 *            arriving from the network (rx): a template whose {fields} the Python API fills
 *            from the frame ({port}, {held} its bindings, {proto}, {src}, {dst}, {sport},
 *            {dport}, {len}, {src_mac}, {nic_mac}, {note} the parser's, {where} it went,
 *            {to} the port it reached, {why} the rx side's reason no port took it); "" where
 *            the verdict cannot happen. Neighbour messages and later fragments have
 *            sentences of their own, whatever their verdict.
 *
 * Plain rows only (no expressions, no line of anything else): ministack/_build.py reads
 * them for cffi's declarations.
 */
#ifndef MS_REASONS_H
#define MS_REASONS_H

#define MS_REASONS(R) \
    R(0, OK, "ok", FORWARD, NONE, \
      "it passed every check and was forwarded", \
      "its source {proto} {src}:{sport} matches {port}'s binding; it {where}", \
      "{proto} {dst}:{dport} is bound by port {to!r}; delivered there") \
    R(1, MALFORMED, "malformed", DROP, CHECK, \
      "its headers cannot be read as what they claim to be", \
      "dropped because {note}", \
      "") \
    R(2, OVERSIZE, "oversize", DROP, CHECK, \
      "it is larger than the port's MTU plus the Ethernet header", \
      "the frame is {len} bytes, more than {port}'s MTU plus 14", \
      "{proto} {dst}:{dport} is bound by port {to!r}, but the frame is {len} bytes, " \
      "more than {to}'s MTU plus 14, and not a TCP segment the switch could cut to fit") \
    R(3, SPOOFED_SRC_MAC, "spoofed-src-mac", DROP, CHECK, \
      "its source MAC (or the MAC it claims in ARP or neighbour discovery) is not the NIC's", \
      "source MAC {src_mac} is not the NIC's MAC {nic_mac}", \
      "") \
    R(4, VLAN, "vlan", DROP, CHECK, \
      "it carries an 802.1Q/802.1ad VLAN tag; VLANs belong to the host", \
      "dropped because {note}", \
      "") \
    R(5, NOT_ALLOWED, "not-allowed", DROP, CHECK, \
      "only the host may send it (another EtherType, ICMP other than echo, an ARP reply, " \
      "an advertisement or a redirect)", \
      "dropped because {note}", \
      "") \
    R(6, FRAGMENT, "fragment", DROP, CHECK, \
      "it is a later fragment of a datagram whose first fragment was not let through", \
      "dropped because {note}", \
      "") \
    R(7, UNSUPPORTED_HEADER, "unsupported-header", DROP, CHECK, \
      "it has an IPv6 extension header the switch does not accept, or too many of them", \
      "dropped because {note}", \
      "") \
    R(8, SPOOFED_SRC_IP, "spoofed-src-ip", DROP, CHECK, \
      "its source address is not one the port bound", \
      "source {src} is not an address {port} bound ({port} holds: {held})", \
      "") \
    R(9, SPOOFED_PROTOCOL, "spoofed-protocol", DROP, CHECK, \
      "the port bound its source address, but not for this protocol", \
      "{port} bound {src}, but not for {proto} ({port} holds: {held})", \
      "") \
    R(10, SPOOFED_SRC_PORT, "spoofed-src-port", DROP, CHECK, \
      "the port bound its address and protocol, but not this source port", \
      "{port} bound {proto} on {src}, but not port {sport} ({port} holds: {held})", \
      "") \
    R(11, RING_FULL, "ring-full", DROP, BOTH, \
      "it passed, but the ring it was going to had no room", \
      "it passed, but the ring it was going to had no room", \
      "it passed, but the ring it was going to had no room") \
    R(12, NO_BINDING, "no-binding", DROP, NIC, \
      "no port bound its destination, and there is no host stack to leave it to", \
      "", \
      "{why}; the virtual NIC has no host stack, so it is dropped (no-binding)") \
    R(13, LOCAL, "local", LOCAL, NONE, \
      "the switch handles it itself (neighbour resolution for the port)", \
      "", \
      "") \
    R(14, TO_HOST, "to-host", TO_HOST, NONE, \
      "no port bound its destination: it is left to the host's stack", \
      "", \
      "{why}; left to the host stack")

#endif
