/* The drop log: the last MS_DROPLOG_LEN drops with their reason and frame bytes. Written by
 * the switch loop, read by control calls, both under the switch's lock. */
#ifndef MS_DROPLOG_H
#define MS_DROPLOG_H

#include <stdint.h>

#include "ministack.h"

struct ms_droplog {
    uint64_t seq;     /* drops recorded so far */
    struct ms_drop_record *rec;
};

int ms_droplog_init(struct ms_droplog *l);
void ms_droplog_free(struct ms_droplog *l);
void ms_droplog_add(struct ms_droplog *l, int port, const char *port_name, int direction,
                    int reason, const uint8_t *frame, uint32_t len);
/* The newest min(max, recorded) drops, oldest first. */
int ms_droplog_read(const struct ms_droplog *l, struct ms_drop_record *out, int max);

#endif
