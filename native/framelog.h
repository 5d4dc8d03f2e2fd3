/* A frame log: the last MS_FRAMELOG_LEN frames the switch recorded, with their verdict and
 * bytes. The switch keeps two: every drop (`ministack drops`), and every frame of a tapped
 * port (`ministack capture`). Written by the switch loop, read by control calls, both under
 * the switch's lock. */
#ifndef MS_FRAMELOG_H
#define MS_FRAMELOG_H

#include <stdint.h>

#include "ministack.h"

struct ms_framelog {
    uint64_t seq;     /* frames recorded so far */
    struct ms_frame_record *rec;
};

int ms_framelog_init(struct ms_framelog *l);
void ms_framelog_free(struct ms_framelog *l);
/* Names are whole MS_NAME_MAX arrays (NUL-padded), read in full. */
void ms_framelog_add(struct ms_framelog *l, int64_t time_ns, int port,
                     const char port_name[MS_NAME_MAX], int direction, int reason,
                     const char peer_name[MS_NAME_MAX], const uint8_t *frame, uint32_t len);
/* The newest min(max, recorded) records, oldest first. */
int ms_framelog_read(const struct ms_framelog *l, struct ms_frame_record *out, int max);
/* The records after seq `since` that are still kept, oldest first, at most max. */
int ms_framelog_read_since(const struct ms_framelog *l, uint64_t since,
                           struct ms_frame_record *out, int max);

#endif
