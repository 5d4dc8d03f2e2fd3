/* The neighbour table the switch answers a port's ARP and neighbour solicitations from.
 *
 * On the virtual NIC it is the wire's own table (ms_switch_add_neighbor: there is no kernel
 * to ask). On a real interface it is the kernel's: the switch asks over rtnetlink for the
 * one address solicited, and when the kernel does not know it yet, makes the kernel
 * resolve it by sending it an empty datagram to the discard port (9) on that interface;
 * the stack's next solicitation, a second later, finds the answer. (Asking with NTF_USE,
 * as `ip neigh replace ADDR dev DEV use`, took 2.5 s for IPv6 here; the datagram makes the
 * kernel solicit at once.) Only ports' solicitations reach this
 * code, never ordinary traffic. */
#ifndef MS_NEIGH_H
#define MS_NEIGH_H

#include <stddef.h>
#include <stdint.h>

#define MS_NEIGH_STATIC_MAX 256

struct ms_neigh;

/* A table of its own (the virtual NIC). */
struct ms_neigh *ms_neigh_new_static(void);
/* The kernel's table of interface ifname; NULL with err set when rtnetlink is closed. */
struct ms_neigh *ms_neigh_new_kernel(const char *ifname, char *err, size_t errlen);
void ms_neigh_free(struct ms_neigh *n);

/* Static tables only: 0, -ENOSPC, -EINVAL (a kernel table). mac NULL removes. */
int ms_neigh_set(struct ms_neigh *n, int family, const uint8_t *ip, const uint8_t *mac);
/* 1 and mac filled when the neighbour is known, 0 when not; then, with resolve set, a
 * kernel table is asked to resolve it. */
int ms_neigh_lookup(struct ms_neigh *n, int family, const uint8_t *ip, uint8_t mac[6],
                    int resolve);

#endif
