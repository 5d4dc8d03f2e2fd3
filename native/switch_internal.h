/* Pieces shared between native files but not part of the public API. */
#ifndef MS_SWITCH_INTERNAL_H
#define MS_SWITCH_INTERNAL_H

#include "ministack.h"
#include "ring.h"

struct ms_bench_sink;
/* Where the switch keeps its benchmark sink, so that destroy can stop it. */
struct ms_bench_sink **ms_switch_sink_slot(ms_switch *sw);

/* Direct ring access for the benchmark drivers, which act as applications. */
struct ms_port_shm *ms_app_shm(ms_app *a);
const struct ms_ring_geom *ms_app_geom(ms_app *a, int rx);
void ms_app_kick(ms_app *a);

#endif
