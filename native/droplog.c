#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "droplog.h"

int ms_droplog_init(struct ms_droplog *l)
{
    l->seq = 0;
    l->rec = calloc(MS_DROPLOG_LEN, sizeof(*l->rec));
    return l->rec ? 0 : -1;
}

void ms_droplog_free(struct ms_droplog *l)
{
    free(l->rec);
    l->rec = NULL;
}

void ms_droplog_add(struct ms_droplog *l, int port, const char *port_name, int direction,
                    int reason, const uint8_t *frame, uint32_t len)
{
    struct ms_drop_record *r = &l->rec[l->seq % MS_DROPLOG_LEN];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* vDSO: no system call */
    r->seq = ++l->seq;
    r->time_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    r->port = port;
    strncpy(r->port_name, port_name, sizeof(r->port_name) - 1);
    r->port_name[sizeof(r->port_name) - 1] = 0;
    r->direction = (uint8_t)direction;
    r->reason = (uint8_t)reason;
    r->len = len;
    r->caplen = len < sizeof(r->frame) ? len : (uint32_t)sizeof(r->frame);
    memcpy(r->frame, frame, r->caplen);
}

int ms_droplog_read(const struct ms_droplog *l, struct ms_drop_record *out, int max)
{
    uint64_t n = l->seq < MS_DROPLOG_LEN ? l->seq : MS_DROPLOG_LEN;
    if (max < 0)
        max = 0;
    if (n > (uint64_t)max)
        n = (uint64_t)max;
    for (uint64_t i = 0; i < n; i++)
        out[i] = l->rec[(l->seq - n + i) % MS_DROPLOG_LEN];
    return (int)n;
}
