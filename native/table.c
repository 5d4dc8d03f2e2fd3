/* The bindings table: linear probing, a power-of-two capacity kept at most half full (it
 * grows on the control path, so 1,000 bindings stay within L2), backward-shift deletion (no
 * tombstones, so lookups never slow down with churn). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "table.h"

enum { K_EXACT = 1, K_ADDR = 2, K_PROTO = 3 };

/* Three words: w[0] = kind | family << 8 | proto << 16 | port << 32 | owner << 48, then the
 * IP. Built with word arithmetic, never byte stores: a byte-wise key read back as words
 * stalls store forwarding on every lookup. */
struct ms_key {
    uint64_t w[3];
};

static inline int key_kind(const struct ms_key *k) { return (int)(k->w[0] & 0xff); }
static inline int key_family(const struct ms_key *k) { return (int)((k->w[0] >> 8) & 0xff); }
static inline int key_proto(const struct ms_key *k) { return (int)((k->w[0] >> 16) & 0xff); }
static inline uint16_t key_port(const struct ms_key *k) { return (uint16_t)(k->w[0] >> 32); }

struct ms_entry {
    struct ms_key key;
    int32_t owner;    /* for exact entries */
    uint32_t refs;    /* 0: empty slot */
};

struct ms_table {
    uint32_t mask;
    uint32_t used;       /* occupied slots */
    uint32_t bindings;
    uint32_t max_bindings;
    struct ms_entry *e;
};

/* One 64x64->128 multiply, its halves folded (wyhash's "mum"): every key bit reaches the
 * low bits the mask keeps, in about half the latency of a multiply-xorshift chain. The
 * lookup is on every frame's critical path, so those cycles show in the Mpps. */
static inline uint64_t mix(const struct ms_key *k)
{
    uint64_t a = k->w[0] ^ 0x9E3779B97F4A7C15ull;
    uint64_t b = (k->w[1] ^ (k->w[2] << 32 | k->w[2] >> 32)) ^ 0xC2B2AE3D27D4EB4Full;
    unsigned __int128 m = (unsigned __int128)a * b;
    return (uint64_t)m ^ (uint64_t)(m >> 64);
}

static inline int key_eq(const struct ms_key *a, const struct ms_key *b)
{
    return ((a->w[0] ^ b->w[0]) | (a->w[1] ^ b->w[1]) | (a->w[2] ^ b->w[2])) == 0;
}

static inline void make_key(struct ms_key *k, int kind, int owner, int family, int proto,
                            const uint8_t *ip, uint16_t port)
{
    k->w[0] = (uint64_t)(uint8_t)kind | (uint64_t)(uint8_t)family << 8 |
              (uint64_t)(uint8_t)proto << 16 | (uint64_t)port << 32 |
              (uint64_t)(uint16_t)owner << 48;
    if (family == 4) {
        uint32_t v4;
        memcpy(&v4, ip, 4);
        k->w[1] = v4;
        k->w[2] = 0;
    } else {
        memcpy(&k->w[1], ip, 8);
        memcpy(&k->w[2], ip + 8, 8);
    }
}

/* Index of the entry holding k, or of the empty slot where it would go. */
static inline uint32_t probe(const struct ms_table *t, const struct ms_key *k)
{
    uint32_t i = (uint32_t)mix(k) & t->mask;
    while (t->e[i].refs && !key_eq(&t->e[i].key, k))
        i = (i + 1) & t->mask;
    return i;
}

struct ms_table *ms_table_new(uint32_t max_bindings)
{
    struct ms_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    uint64_t cap = 64;
    t->e = calloc(cap, sizeof(*t->e));
    if (!t->e) {
        free(t);
        return NULL;
    }
    t->mask = (uint32_t)cap - 1;
    t->max_bindings = max_bindings;
    return t;
}

void ms_table_free(struct ms_table *t)
{
    if (t) {
        free(t->e);
        free(t);
    }
}

uint32_t ms_table_count(const struct ms_table *t) { return t->bindings; }

int ms_table_lookup(const struct ms_table *t, int family, int proto, const uint8_t *ip,
                    uint16_t port)
{
    struct ms_key k;
    make_key(&k, K_EXACT, 0, family, proto, ip, port);
    const struct ms_entry *e = &t->e[probe(t, &k)];
    return e->refs ? e->owner : -1;
}

int ms_table_has_addr(const struct ms_table *t, int owner, int family, const uint8_t *ip)
{
    struct ms_key k;
    make_key(&k, K_ADDR, owner, family, 0, ip, 0);
    return t->e[probe(t, &k)].refs != 0;
}

int ms_table_has_proto(const struct ms_table *t, int owner, int family, const uint8_t *ip,
                       int proto)
{
    struct ms_key k;
    make_key(&k, K_PROTO, owner, family, proto, ip, 0);
    return t->e[probe(t, &k)].refs != 0;
}

static void ref(struct ms_table *t, const struct ms_key *k, int owner)
{
    struct ms_entry *e = &t->e[probe(t, k)];
    if (!e->refs) {
        e->key = *k;
        e->owner = owner;
        t->used++;
    }
    e->refs++;
}

/* Make room for three more entries at no more than half load. */
static int reserve(struct ms_table *t)
{
    uint64_t cap = (uint64_t)t->mask + 1;
    if ((uint64_t)(t->used + 3) * 2 <= cap)
        return 0;
    struct ms_table bigger = *t;
    bigger.mask = (uint32_t)(cap * 2 - 1);
    bigger.e = calloc(cap * 2, sizeof(*bigger.e));
    if (!bigger.e)
        return -ENOMEM;
    for (uint64_t i = 0; i < cap; i++)
        if (t->e[i].refs)
            bigger.e[probe(&bigger, &t->e[i].key)] = t->e[i];
    free(t->e);
    *t = bigger;
    return 0;
}

/* Backward-shift deletion: pull later members of the probe run into the hole. */
static void erase_at(struct ms_table *t, uint32_t hole)
{
    uint32_t i = hole;
    for (;;) {
        i = (i + 1) & t->mask;
        if (!t->e[i].refs)
            break;
        uint32_t home = (uint32_t)mix(&t->e[i].key) & t->mask;
        /* Entry i may move to hole only if hole lies cyclically in [home, i). */
        if (((i - home) & t->mask) >= ((i - hole) & t->mask)) {
            t->e[hole] = t->e[i];
            hole = i;
        }
    }
    memset(&t->e[hole], 0, sizeof(t->e[hole]));
    t->used--;
}

static void unref(struct ms_table *t, const struct ms_key *k)
{
    uint32_t i = probe(t, k);
    if (t->e[i].refs && --t->e[i].refs == 0)
        erase_at(t, i);
}

int ms_table_add(struct ms_table *t, int owner, int family, int proto, const uint8_t *ip,
                 uint16_t port)
{
    struct ms_key k;
    make_key(&k, K_EXACT, 0, family, proto, ip, port);
    if (t->e[probe(t, &k)].refs)
        return -EEXIST;
    if (t->bindings >= t->max_bindings || reserve(t) < 0)
        return -ENOSPC;
    ref(t, &k, owner);
    make_key(&k, K_ADDR, owner, family, 0, ip, 0);
    ref(t, &k, owner);
    make_key(&k, K_PROTO, owner, family, proto, ip, 0);
    ref(t, &k, owner);
    t->bindings++;
    return 0;
}

int ms_table_del(struct ms_table *t, int owner, int family, int proto, const uint8_t *ip,
                 uint16_t port)
{
    struct ms_key k;
    make_key(&k, K_EXACT, 0, family, proto, ip, port);
    uint32_t i = probe(t, &k);
    if (!t->e[i].refs)
        return -ENOENT;
    if (t->e[i].owner != owner)
        return -EPERM;
    erase_at(t, i);
    make_key(&k, K_ADDR, owner, family, 0, ip, 0);
    unref(t, &k);
    make_key(&k, K_PROTO, owner, family, proto, ip, 0);
    unref(t, &k);
    t->bindings--;
    return 0;
}

void ms_table_del_owner(struct ms_table *t, int owner)
{
    /* List first: deletion shifts entries, so a scan that deletes as it goes misses some. */
    int n = (int)t->bindings;
    struct ms_binding_info *b = n ? malloc((size_t)n * sizeof(*b)) : NULL;
    if (!b)
        return;
    n = ms_table_list(t, owner, b, n);
    for (int i = 0; i < n; i++)
        ms_table_del(t, owner, b[i].family, b[i].proto, b[i].ip, b[i].l4port);
    free(b);
}

static void entry_info(const struct ms_entry *e, struct ms_binding_info *out)
{
    out->port = e->owner;
    out->family = (uint8_t)key_family(&e->key);
    out->proto = (uint8_t)key_proto(&e->key);
    out->l4port = key_port(&e->key);
    memcpy(out->ip, &e->key.w[1], 8);
    memcpy(out->ip + 8, &e->key.w[2], 8);
}

int ms_table_list(const struct ms_table *t, int owner, struct ms_binding_info *out, int max)
{
    int n = 0;
    for (uint32_t i = 0; i <= t->mask && n < max; i++) {
        const struct ms_entry *e = &t->e[i];
        if (!e->refs || key_kind(&e->key) != K_EXACT || (owner >= 0 && e->owner != owner))
            continue;
        entry_info(e, &out[n++]);
    }
    return n;
}

int ms_table_nearest(const struct ms_table *t, int owner, int family, int proto,
                     const uint8_t *ip, uint16_t port, struct ms_binding_info *out)
{
    struct ms_key k;
    make_key(&k, K_EXACT, 0, family, proto, ip, port);
    int best = -1;
    int64_t best_cost = INT64_MAX;
    for (uint32_t i = 0; i <= t->mask; i++) {
        const struct ms_entry *e = &t->e[i];
        if (!e->refs || key_kind(&e->key) != K_EXACT || (owner >= 0 && e->owner != owner))
            continue;
        int diff = (key_family(&e->key) != family || e->key.w[1] != k.w[1] ||
                    e->key.w[2] != k.w[2] ? MS_NEAR_IP : 0) |
                   (key_proto(&e->key) != proto ? MS_NEAR_PROTO : 0) |
                   (key_port(&e->key) != port ? MS_NEAR_PORT : 0);
        /* Fewest differing fields first; among equals, port < protocol < address, then
         * the nearer port number (5001 is a slip for 5000, not for 6000). */
        int fields = (diff & 1) + (diff >> 1 & 1) + (diff >> 2 & 1); /* no libgcc call */
        int64_t cost = (int64_t)(fields * 8 +
                                 (diff & MS_NEAR_IP ? 4 : 0) + (diff & MS_NEAR_PROTO ? 2 : 0))
                           << 17 |
                       (diff & MS_NEAR_PORT ? abs((int)key_port(&e->key) - (int)port) : 0);
        if (cost < best_cost) {
            best_cost = cost;
            best = diff;
            entry_info(e, out);
        }
    }
    return best;
}

int ms_table_check_tuple(int family, int proto, int l4port)
{
    if (proto < 0 || proto > 255)
        return MS_BIND_BAD_PROTOCOL;
    if (family == 6 && ms_ipv6_is_ext_header(proto))
        return MS_BIND_BAD_PROTOCOL;   /* the parser never reports these as a protocol */
    if ((family == 6 && proto == MS_IP_ICMP) || (family == 4 && proto == MS_IP_ICMPV6))
        return MS_BIND_BAD_PROTOCOL;   /* ICMP and ICMPv6 each belong to one family */
    if (l4port < 0 || l4port > 65535)
        return MS_BIND_BAD_PORT;
    if (ms_proto_has_ports(family, proto)) {
        int echo = proto == MS_IP_ICMP || proto == MS_IP_ICMPV6;
        if (!echo && l4port == 0)
            return MS_BIND_BAD_PORT;   /* port 0 is "any" to sockets, never a source port */
    } else if (l4port != 0) {
        return MS_BIND_BAD_PORT;       /* a port-less protocol binds port 0 */
    }
    return MS_BIND_OK;
}

/* The ports Linux reserves below ip_unprivileged_port_start: every port-based protocol's,
 * but not the ICMP echo identifier (ping sockets have no such rule). */
int ms_table_needs_bind_service(int family, int proto, int l4port, int privileged_below)
{
    return l4port < privileged_below && ms_proto_has_ports(family, proto) &&
           proto != MS_IP_ICMP && proto != MS_IP_ICMPV6;
}
