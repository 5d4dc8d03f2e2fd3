/* The reasons: for each verdict number (enum ms_reason, published in docs/reasons.md and
 * never renumbered), its name, its kind and its sentence. Everything that prints a reason,
 * in C or in Python, reads it from here. */
#include "ministack.h"

struct reason_desc {
    const char *name;
    int kind;
    const char *sentence;
};

static const struct reason_desc reasons[MS_R_COUNT] = {
    [MS_OK] = {"ok", MS_KIND_FORWARD, "it passed every check and was forwarded"},
    [MS_R_MALFORMED] = {"malformed", MS_KIND_DROP,
                        "its headers cannot be read as what they claim to be"},
    [MS_R_OVERSIZE] = {"oversize", MS_KIND_DROP,
                       "it is larger than the port's MTU plus the Ethernet header"},
    [MS_R_SPOOFED_SRC_MAC] = {"spoofed-src-mac", MS_KIND_DROP,
                              "its source MAC (or the MAC it claims in ARP or neighbour "
                              "discovery) is not the NIC's"},
    [MS_R_VLAN] = {"vlan", MS_KIND_DROP,
                   "it carries an 802.1Q/802.1ad VLAN tag; VLANs belong to the host"},
    [MS_R_NOT_ALLOWED] = {"not-allowed", MS_KIND_DROP,
                          "only the host may send it (another EtherType, ICMP other than "
                          "echo, an ARP reply, an advertisement or a redirect)"},
    [MS_R_FRAGMENT] = {"fragment", MS_KIND_DROP,
                       "it is a later fragment of a datagram whose first fragment was not "
                       "let through"},
    [MS_R_UNSUPPORTED_HEADER] = {"unsupported-header", MS_KIND_DROP,
                                 "it has an IPv6 extension header the switch does not "
                                 "accept, or too many of them"},
    [MS_R_SPOOFED_SRC_IP] = {"spoofed-src-ip", MS_KIND_DROP,
                             "its source address is not one the port bound"},
    [MS_R_SPOOFED_PROTOCOL] = {"spoofed-protocol", MS_KIND_DROP,
                               "the port bound its source address, but not for this "
                               "protocol"},
    [MS_R_SPOOFED_SRC_PORT] = {"spoofed-src-port", MS_KIND_DROP,
                               "the port bound its address and protocol, but not this "
                               "source port"},
    [MS_R_RING_FULL] = {"ring-full", MS_KIND_DROP,
                        "it passed, but the ring it was going to had no room"},
    [MS_R_NO_BINDING] = {"no-binding", MS_KIND_DROP,
                         "no port bound its destination, and there is no host stack to "
                         "leave it to"},
    [MS_R_LOCAL] = {"local", MS_KIND_LOCAL,
                    "the switch handles it itself (neighbour resolution for the port)"},
    [MS_R_TO_HOST] = {"to-host", MS_KIND_TO_HOST,
                      "no port bound its destination: it is left to the host's stack"},
};

static const struct reason_desc *desc(int r)
{
    return r >= 0 && r < MS_R_COUNT && reasons[r].name ? &reasons[r] : NULL;
}

const char *ms_reason_name(int r)
{
    const struct reason_desc *d = desc(r);
    return d ? d->name : "unknown";
}

const char *ms_reason_sentence(int r)
{
    const struct reason_desc *d = desc(r);
    return d ? d->sentence : "";
}

int ms_reason_kind(int r)
{
    const struct reason_desc *d = desc(r);
    return d ? d->kind : -1;
}
