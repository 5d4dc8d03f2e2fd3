/* The table of datagrams whose later fragments follow their first (frag.h). */
#include <stdlib.h>
#include <string.h>

#include "frag.h"

#define PROBE 8   /* slots looked at per operation: the bound on work per fragment */

struct frag_entry {
    int64_t expires;    /* 0: free */
    int32_t from;
    int32_t to;
    uint32_t id;
    uint8_t family;
    uint8_t proto;
    uint8_t src[16];
    uint8_t dst[16];
};

struct ms_frags {
    struct frag_entry e[MS_FRAG_SLOTS];
    struct ms_frag_stats st;
};

struct ms_frags *ms_frags_new(void)
{
    struct ms_frags *f = calloc(1, sizeof(*f));
    if (f)
        f->st.capacity = MS_FRAG_SLOTS;
    return f;
}

void ms_frags_free(struct ms_frags *f) { free(f); }

static uint32_t hash(int from, const struct ms_parsed *p)
{
    /* FNV-1a over the key; the identification alone is what varies most. */
    uint32_t h = 2166136261u;
    const uint8_t *parts[2] = {p->src_ip, p->dst_ip};
    unsigned n = p->family == 4 ? 4 : 16;
    for (int k = 0; k < 2; k++)
        for (unsigned i = 0; i < n; i++)
            h = (h ^ parts[k][i]) * 16777619u;
    h = (h ^ p->frag_id) * 16777619u;
    h = (h ^ (uint32_t)(from + 2)) * 16777619u;
    return (h ^ p->proto) * 16777619u;
}

static int same(const struct frag_entry *e, int from, const struct ms_parsed *p)
{
    unsigned n = p->family == 4 ? 4 : 16;
    return e->from == from && e->id == p->frag_id && e->family == p->family &&
           e->proto == p->proto && memcmp(e->src, p->src_ip, n) == 0 &&
           memcmp(e->dst, p->dst_ip, n) == 0;
}

/* An entry past its time is freed (and counted) when an operation meets it. */
static int live(struct ms_frags *f, struct frag_entry *e, int64_t now)
{
    if (!e->expires)
        return 0;
    if (e->expires > now)
        return 1;
    e->expires = 0;
    f->st.expired++;
    f->st.active--;
    return 0;
}

void ms_frags_add(struct ms_frags *f, int from, const struct ms_parsed *p, int to, int64_t now)
{
    uint32_t h = hash(from, p);
    struct frag_entry *slot = NULL, *oldest = NULL;
    for (uint32_t i = 0; i < PROBE; i++) {
        struct frag_entry *e = &f->e[(h + i) & (MS_FRAG_SLOTS - 1)];
        if (!live(f, e, now)) {
            if (!slot)
                slot = e;
            continue;
        }
        if (same(e, from, p)) { /* the first fragment again (a retransmission) */
            e->to = to;
            e->expires = now + MS_FRAG_TIMEOUT_NS;
            return;
        }
        if (!oldest || e->expires < oldest->expires)
            oldest = e;
    }
    if (!slot) {
        slot = oldest;
        f->st.evicted++;
    } else {
        f->st.active++;
    }
    f->st.datagrams++;
    memset(slot, 0, sizeof(*slot));
    slot->expires = now + MS_FRAG_TIMEOUT_NS;
    slot->from = from;
    slot->to = to;
    slot->id = p->frag_id;
    slot->family = p->family;
    slot->proto = p->proto;
    memcpy(slot->src, p->src_ip, p->family == 4 ? 4 : 16);
    memcpy(slot->dst, p->dst_ip, p->family == 4 ? 4 : 16);
}

int ms_frags_find(const struct ms_frags *f, int from, const struct ms_parsed *p, int64_t now,
                  int *to)
{
    uint32_t h = hash(from, p);
    for (uint32_t i = 0; i < PROBE; i++) {
        const struct frag_entry *e = &f->e[(h + i) & (MS_FRAG_SLOTS - 1)];
        if (e->expires > now && same(e, from, p)) {
            *to = e->to;
            return 1;
        }
    }
    return 0;
}

void ms_frags_followed(struct ms_frags *f) { f->st.followed++; }

void ms_frags_forget_port(struct ms_frags *f, int port)
{
    for (uint32_t i = 0; i < MS_FRAG_SLOTS; i++) {
        struct frag_entry *e = &f->e[i];
        if (e->expires && (e->from == port || e->to == port)) {
            e->expires = 0;
            f->st.active--;
        }
    }
}

void ms_frags_stats(const struct ms_frags *f, struct ms_frag_stats *out) { *out = f->st; }
