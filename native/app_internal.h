/* The application side's ring access, for the drivers in tools/ that act as applications
 * and as the far end of the virtual wire (not part of the public API). */
#ifndef MS_APP_INTERNAL_H
#define MS_APP_INTERNAL_H

#include "ministack.h"
#include "ring.h"

struct ms_port_shm *ms_app_shm(ms_app *a);
const struct ms_ring_geom *ms_app_geom(ms_app *a, int rx);
void ms_app_kick(ms_app *a);

/* app_netmap.c: a VALE port's netmap rings behind an ms_app (app.c calls these when the
 * handle came from ms_app_open_netmap). `closing` is the handle's interrupt flag. */
struct ms_nm;
struct ms_nm *ms_nm_open(int netmap_fd, uint64_t memsize, uint32_t offset);
void ms_nm_close(struct ms_nm *m);
void ms_nm_interrupt(struct ms_nm *m);
uint32_t ms_nm_buf_size(struct ms_nm *m);
uint32_t ms_nm_slots(struct ms_nm *m);
int ms_nm_wake_fd(struct ms_nm *m);
int ms_nm_send(struct ms_nm *m, const uint8_t *data, const uint32_t *lens, uint32_t n,
               int timeout_ms, const _Atomic int *closing);
int ms_nm_recv(struct ms_nm *m, uint8_t *out, uint32_t *lens, uint32_t max, int timeout_ms,
               const _Atomic int *closing);
int ms_nm_arm(struct ms_nm *m, int rx, int tx);

#endif
