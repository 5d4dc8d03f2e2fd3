/* The switch's answers to a port's neighbour resolution: an ARP reply for an ARP request,
 * a neighbour advertisement for a neighbour solicitation, as the neighbour itself would
 * send them (its MAC, its address), addressed to the port. */
#ifndef MS_ANSWER_H
#define MS_ANSWER_H

#include <stdint.h>

#include "ministack.h"

#define MS_ANSWER_MAX 86

/* 1 when request p (MS_ND_ARP_REQUEST or MS_ND_NS, let through as local) asks for a
 * neighbour, 0 for a probe or an announcement of the sender's own address (no answer:
 * the host owns the address, there is no conflict to report). */
int ms_answer_wanted(const struct ms_parsed *p);
/* Write into out (MS_ANSWER_MAX bytes) the answer to p saying that p->nd_target is at
 * mac; returns its length. */
uint32_t ms_answer(const struct ms_parsed *p, const uint8_t *mac, uint8_t *out);

#endif
