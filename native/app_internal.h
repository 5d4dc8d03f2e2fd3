/* The application side's ring access, for the drivers in tools/ that act as applications
 * and as the far end of the virtual wire (not part of the public API). */
#ifndef MS_APP_INTERNAL_H
#define MS_APP_INTERNAL_H

#include "ministack.h"
#include "ring.h"

struct ms_port_shm *ms_app_shm(ms_app *a);
const struct ms_ring_geom *ms_app_geom(ms_app *a, int rx);
void ms_app_kick(ms_app *a);

#endif
