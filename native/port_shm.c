/* A port's own packet memory: one sealed memfd region per port (layout in ring.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ring.h"

static size_t align_up(size_t v, size_t a) { return (v + a - 1) & ~(a - 1); }

static void ring_layout(struct ms_ring_geom *g, uint32_t slots, uint32_t buf_size,
                        size_t *slots_at, size_t *bufs_at)
{
    g->num_slots = slots;
    g->buf_size = buf_size;
    g->buf_stride = buf_size + MS_CACHELINE;
    g->slots_off = *slots_at;
    g->bufs_off = *bufs_at;
    *slots_at += (size_t)slots * sizeof(struct ms_slot);
    *bufs_at += (size_t)slots * g->buf_stride;
}

int ms_shm_create(const char *name, uint32_t slots, uint32_t buf_size, struct ms_port_shm **out,
                  size_t *size_out)
{
    if (slots == 0 || (slots & (slots - 1)) || buf_size < 64 || (buf_size & 63))
        return -EINVAL;
    size_t slots_at = align_up(sizeof(struct ms_port_shm), MS_CACHELINE);
    size_t slot_bytes = 2 * (size_t)slots * sizeof(struct ms_slot);
    size_t bufs_at = align_up(slots_at + slot_bytes, 4096);
    size_t size = align_up(bufs_at + 2 * (size_t)slots * (buf_size + MS_CACHELINE), 4096);

    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)size) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    struct ms_port_shm *s = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (s == MAP_FAILED) {
        int e = -errno;
        close(fd);
        return e;
    }
    s->magic = MS_SHM_MAGIC;
    s->version = MS_SHM_VERSION;
    s->size = size;
    ring_layout(&s->tx.geom, slots, buf_size, &slots_at, &bufs_at);
    ring_layout(&s->rx.geom, slots, buf_size, &slots_at, &bufs_at);
    atomic_store(&s->tx.tail, slots);   /* the whole TX ring starts as the application's */
    *out = s;
    *size_out = size;
    return fd;
}

int ms_shm_map(int fd, struct ms_port_shm **out, size_t *size_out)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    size_t size = (size_t)st.st_size;
    if (size < sizeof(struct ms_port_shm))
        return -EINVAL;
    struct ms_port_shm *s = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (s == MAP_FAILED)
        return -errno;
    /* The application side checks the layout it was given before it writes anything. */
    const struct ms_ring_geom *geoms[2] = {&s->tx.geom, &s->rx.geom};
    int ok = s->magic == MS_SHM_MAGIC && s->version == MS_SHM_VERSION && s->size == size;
    for (int i = 0; ok && i < 2; i++) {
        const struct ms_ring_geom *g = geoms[i];
        ok = g->num_slots && !(g->num_slots & (g->num_slots - 1)) && g->buf_size &&
             g->buf_size <= g->buf_stride &&
             g->slots_off + (uint64_t)g->num_slots * sizeof(struct ms_slot) <= size &&
             g->bufs_off + (uint64_t)g->num_slots * g->buf_stride <= size;
    }
    if (!ok) {
        munmap(s, size);
        return -EINVAL;
    }
    *out = s;
    *size_out = size;
    return 0;
}
