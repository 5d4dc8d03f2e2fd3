/* The bindings table: which port holds (family, protocol, IP, port).
 *
 * One open-addressing hash table holds three kinds of entries per binding, so that every
 * question the filter asks is one probe:
 *   exact (family, proto, ip, port)      -> the owning port       (RX demux, hairpin, TX)
 *   addr  (owner, family, ip)            -> refcount              (spoofed-src-ip)
 *   proto (owner, family, ip, proto)     -> refcount              (spoofed-protocol)
 * Written only under the switch's control lock; read by the switch loop under the same
 * lock, so no entry changes while a round runs.
 */
#ifndef MS_TABLE_H
#define MS_TABLE_H

#include <stdint.h>

#include "ministack.h"

struct ms_table;

struct ms_table *ms_table_new(uint32_t max_bindings);
void ms_table_free(struct ms_table *t);
uint32_t ms_table_count(const struct ms_table *t);

/* Owner of the exact binding, or -1. */
int ms_table_lookup(const struct ms_table *t, int family, int proto, const uint8_t *ip,
                    uint16_t port);
int ms_table_has_addr(const struct ms_table *t, int owner, int family, const uint8_t *ip);
int ms_table_has_proto(const struct ms_table *t, int owner, int family, const uint8_t *ip,
                       int proto);

/* MS_BIND_OK when (family, protocol, port) can be bound at all, else MS_BIND_BAD_PROTOCOL
 * or MS_BIND_BAD_PORT: the one rule both switches (user space and the VALE module) apply. */
int ms_table_check_tuple(int family, int proto, int l4port);
/* Whether binding the tuple takes CAP_NET_BIND_SERVICE, below privileged_below (the
 * host's ip_unprivileged_port_start), as a socket's bind() would. */
int ms_table_needs_bind_service(int family, int proto, int l4port, int privileged_below);

/* 0, or -EEXIST (held by any port), -ENOSPC (max_bindings reached). */
int ms_table_add(struct ms_table *t, int owner, int family, int proto, const uint8_t *ip,
                 uint16_t port);
/* 0, or -ENOENT (not bound), -EPERM (bound by another port). */
int ms_table_del(struct ms_table *t, int owner, int family, int proto, const uint8_t *ip,
                 uint16_t port);
/* Remove every binding of owner. */
void ms_table_del_owner(struct ms_table *t, int owner);
/* The exact binding of owner (of any port when owner < 0) nearest to the tuple: the one
 * that differs in the fewest of address, protocol and port, a differing port before a
 * differing protocol before a differing address (the likelier slips). Copies it into *out
 * and returns the enum ms_near_field bits that differ, or -1 when there is no binding to
 * compare with. A scan of the whole table: for explain(), never the datapath. */
int ms_table_nearest(const struct ms_table *t, int owner, int family, int proto,
                     const uint8_t *ip, uint16_t port, struct ms_binding_info *out);
/* Copy up to max bindings (all ports when owner < 0); returns how many were copied. */
int ms_table_list(const struct ms_table *t, int owner, struct ms_binding_info *out, int max);

#endif
