#include <stdlib.h>
#include <string.h>

#include "framelog.h"

int ms_framelog_init(struct ms_framelog *l)
{
    l->seq = 0;
    /* calloc of this size maps fresh zero pages: a log nobody writes costs no memory */
    l->rec = calloc(MS_FRAMELOG_LEN, sizeof(*l->rec));
    return l->rec ? 0 : -1;
}

void ms_framelog_free(struct ms_framelog *l)
{
    free(l->rec);
    l->rec = NULL;
}

void ms_framelog_add(struct ms_framelog *l, int64_t time_ns, int port,
                     const char port_name[MS_NAME_MAX], int direction, int reason,
                     const char peer_name[MS_NAME_MAX], const uint8_t *frame, uint32_t len)
{
    struct ms_frame_record *r = &l->rec[l->seq % MS_FRAMELOG_LEN];
    r->seq = ++l->seq;
    r->time_ns = time_ns;
    r->port = port;
    /* Whole arrays, no string walk: a flood of drops is recorded at the loop's pace. */
    memcpy(r->port_name, port_name, MS_NAME_MAX);
    memcpy(r->peer_name, peer_name, MS_NAME_MAX);
    r->port_name[MS_NAME_MAX - 1] = r->peer_name[MS_NAME_MAX - 1] = 0;
    r->direction = (uint8_t)direction;
    r->reason = (uint8_t)reason;
    r->len = len;
    r->caplen = len < sizeof(r->frame) ? len : (uint32_t)sizeof(r->frame);
    memcpy(r->frame, frame, r->caplen);
}

int ms_framelog_read(const struct ms_framelog *l, struct ms_frame_record *out, int max)
{
    uint64_t kept = l->seq < MS_FRAMELOG_LEN ? l->seq : MS_FRAMELOG_LEN;
    uint64_t n = max < 0 ? 0 : (uint64_t)max;
    return ms_framelog_read_since(l, l->seq - (kept < n ? kept : n), out, max);
}

int ms_framelog_read_since(const struct ms_framelog *l, uint64_t since,
                           struct ms_frame_record *out, int max)
{
    uint64_t oldest = l->seq < MS_FRAMELOG_LEN ? 0 : l->seq - MS_FRAMELOG_LEN;
    if (since < oldest)
        since = oldest;
    uint64_t n = since < l->seq ? l->seq - since : 0;
    if (max < 0)
        max = 0;
    if (n > (uint64_t)max)
        n = (uint64_t)max;
    for (uint64_t i = 0; i < n; i++)
        out[i] = l->rec[(since + i) % MS_FRAMELOG_LEN];
    return (int)n;
}
