/* A port of the VALE module's switch (valems:NAME, native/vale/) as an ms_app: the same
 * send, receive and wait calls as a user-space switch's port, over netmap's rings instead of
 * ours. app.c hands every ms_app_* call on such a handle to the functions here.
 *
 * netmap's user API is rings in shared memory with head/cur/tail, like ours, but the kernel
 * moves tail only inside a system call (NIOCTXSYNC, NIOCRXSYNC, poll), which orders every
 * access to the ring before and after it: plain loads and stores of head, cur and tail are
 * what netmap's own applications use. One system call per batch, none per frame.
 *
 * Built only where netmap's public user header is installed (./setup.sh --netmap puts it
 * in /usr/local/include; MS_HAVE_NETMAP, set by ministack/_build.py); elsewhere every call
 * fails with ENOTSUP and ms_vale_built() says why. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ministack.h"
#include "app_internal.h"

#ifdef MS_HAVE_NETMAP
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <net/netmap_user.h>

#include "vale/ministack_vale.h"

struct ms_nm {
    int fd;                         /* /dev/netmap, registered on the port (ours, a dup) */
    void *mem;
    size_t memsize;
    struct netmap_ring *tx, *rx;    /* ring 0 of each: a VALE port has one pair by default */
    int stop_fd;                    /* eventfd: ms_app_interrupt() writes it */
    int wake_fd;                    /* epoll over fd, stop_fd and answer_fd */
    /* The switch's answers to this port's neighbour solicitations wait in the module
     * (MS_VALE_ANSWERS on ctl_fd) until recv takes them, before its ring: a send that may
     * have solicited sets answers_due and writes answer_fd, so a waiting recv wakes. */
    int ctl_fd, answer_fd;
    _Atomic int answers_due;
    uint32_t queued, next;          /* answers taken from the module, not yet received */
    struct ms_vale_answers answers;
};

int ms_vale_built(char *why, size_t len)
{
    (void)why;
    (void)len;
    return 1;
}

int ms_vale_open_port(const char *name, int *fd, uint64_t *memsize, uint32_t *offset)
{
    struct nmreq_register reg = {.nr_mode = NR_REG_ALL_NIC};
    struct nmreq_header hdr = {.nr_version = NETMAP_API, .nr_reqtype = NETMAP_REQ_REGISTER,
                               .nr_body = (uintptr_t)&reg};
    /* No nr_mem_id: netmap gives the port an allocator of its own, so no other port maps
     * its buffers (the module refuses to bind on a port whose memory is shared). */
    if (snprintf(hdr.nr_name, sizeof(hdr.nr_name), "%s", name) >= (int)sizeof(hdr.nr_name))
        return -ENAMETOOLONG;
    int f = open(NETMAP_DEVICE_NAME, O_RDWR | O_CLOEXEC);
    if (f < 0)
        return -errno;
    if (ioctl(f, NIOCCTRL, &hdr) < 0) {
        int e = errno;
        close(f);
        return -e;
    }
    *fd = f;
    *memsize = reg.nr_memsize;
    *offset = (uint32_t)reg.nr_offset;
    return 0;
}

int ms_vale_attach(const char *name, int attach)
{
    struct nmreq_vale_attach at = {.reg.nr_mode = NR_REG_ALL_NIC};
    struct nmreq_vale_detach de = {0};
    struct nmreq_header hdr = {.nr_version = NETMAP_API,
                               .nr_reqtype = attach ? NETMAP_REQ_VALE_ATTACH
                                                    : NETMAP_REQ_VALE_DETACH,
                               .nr_body = attach ? (uintptr_t)&at : (uintptr_t)&de};
    if (snprintf(hdr.nr_name, sizeof(hdr.nr_name), "%s", name) >= (int)sizeof(hdr.nr_name))
        return -ENAMETOOLONG;
    int f = open(NETMAP_DEVICE_NAME, O_RDWR | O_CLOEXEC);
    if (f < 0)
        return -errno;
    int rc = ioctl(f, NIOCCTRL, &hdr) < 0 ? -errno : 0;
    close(f);
    return rc;
}

static void nm_free(struct ms_nm *m)
{
    if (m->mem && m->mem != MAP_FAILED)
        munmap(m->mem, m->memsize);
    const int fds[] = {m->fd, m->stop_fd, m->wake_fd, m->ctl_fd, m->answer_fd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(m);
}

struct ms_nm *ms_nm_open(int netmap_fd, uint64_t memsize, uint32_t offset)
{
    struct ms_nm *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->fd = m->stop_fd = m->wake_fd = m->ctl_fd = m->answer_fd = -1;
    m->memsize = memsize;
    m->fd = fcntl(netmap_fd, F_DUPFD_CLOEXEC, 0);
    m->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    m->answer_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    m->wake_fd = epoll_create1(EPOLL_CLOEXEC);
    m->ctl_fd = open(MS_VALE_DEVICE, O_RDWR | O_CLOEXEC);   /* without it, no answers */
    if (m->fd < 0 || m->stop_fd < 0 || m->answer_fd < 0 || m->wake_fd < 0 ||
        memsize < sizeof(struct netmap_if) ||
        offset > memsize - sizeof(struct netmap_if))
        goto fail;
    m->mem = mmap(NULL, memsize, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
    if (m->mem == MAP_FAILED)
        goto fail;
    struct netmap_if *nifp = NETMAP_IF(m->mem, offset);
    if (nifp->ni_tx_rings < 1 || nifp->ni_rx_rings < 1)
        goto fail;
    m->tx = NETMAP_TXRING(nifp, 0);
    m->rx = NETMAP_RXRING(nifp, 0);
    struct epoll_event stop = {.events = EPOLLIN, .data.fd = m->stop_fd};
    struct epoll_event port = {.events = 0, .data.fd = m->fd};
    struct epoll_event answer = {.events = 0, .data.fd = m->answer_fd};
    if (epoll_ctl(m->wake_fd, EPOLL_CTL_ADD, m->stop_fd, &stop) < 0 ||
        epoll_ctl(m->wake_fd, EPOLL_CTL_ADD, m->fd, &port) < 0 ||
        epoll_ctl(m->wake_fd, EPOLL_CTL_ADD, m->answer_fd, &answer) < 0)
        goto fail;
    return m;
fail:
    nm_free(m);
    return NULL;
}

void ms_nm_close(struct ms_nm *m) { nm_free(m); }

void ms_nm_interrupt(struct ms_nm *m)
{
    uint64_t one = 1;
    ssize_t w = write(m->stop_fd, &one, sizeof(one));
    (void)w;
}

uint32_t ms_nm_buf_size(struct ms_nm *m) { return m->tx->nr_buf_size; }
uint32_t ms_nm_slots(struct ms_nm *m) { return m->tx->num_slots; }
int ms_nm_wake_fd(struct ms_nm *m) { return m->wake_fd; }

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reset answer_fd after it woke a waiter (answers_due says whether to ask): drained before
 * the flag is read, so a send in between leaves it readable for the next wait, and a stale
 * count never keeps a waiter spinning. */
static void drain_answer_fd(struct ms_nm *m)
{
    uint64_t count;
    ssize_t rd = read(m->answer_fd, &count, sizeof(count));
    (void)rd;
}

/* Sleep in netmap's poll (which syncs the ring itself) until `events` or an interrupt;
 * -ETIMEDOUT once the deadline (-1: none) has passed, -EINTR when interrupted. */
static int nm_wait(struct ms_nm *m, short events, int64_t deadline)
{
    int timeout = -1;
    if (deadline >= 0) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        timeout = left > 1000000 ? 1000000 : (int)left;
    }
    /* A receiver also wakes for answers a send has just made. */
    struct pollfd pfd[3] = {{.fd = m->fd, .events = events},
                            {.fd = m->stop_fd, .events = POLLIN},
                            {.fd = m->answer_fd, .events = POLLIN}};
    int rc = poll(pfd, events & POLLIN ? 3 : 2, timeout);
    if (rc < 0)
        return errno == EINTR ? 0 : -errno;
    if (pfd[1].revents)
        return -EINTR;
    if ((events & POLLIN) && pfd[2].revents)
        drain_answer_fd(m);
    if (pfd[0].revents & (POLLERR | POLLNVAL))
        return -EIO;
    return 0;
}

/* Whether a frame may be a neighbour solicitation (ARP, or ICMPv6 right after the IPv6
 * header), which the switch may answer: then recv asks the module. Two loads per frame,
 * where parsing it would cost the whole parser. */
static int may_solicit(const uint8_t *f, uint32_t len)
{
    return len >= 14 && ((f[12] == 0x08 && f[13] == 0x06) ||
                         (len >= 21 && f[12] == 0x86 && f[13] == 0xdd && f[20] == 58));
}

static void answers_due(struct ms_nm *m)
{
    uint64_t one = 1;
    atomic_store(&m->answers_due, 1);
    ssize_t w = write(m->answer_fd, &one, sizeof(one));
    (void)w;
}

/* Take what the module answered since the last call, when a send may have asked. */
static void take_answers(struct ms_nm *m)
{
    if (m->queued > m->next || !atomic_exchange(&m->answers_due, 0))
        return;
    m->answers.netmap_fd = m->fd;
    m->queued = m->next = 0;
    if (ioctl(m->ctl_fd, MS_VALE_ANSWERS, &m->answers) == 0)
        m->queued = m->answers.count;
}

int ms_nm_send(struct ms_nm *m, const uint8_t *data, const uint32_t *lens, uint32_t n,
               int timeout_ms, const _Atomic int *closing)
{
    int solicits = 0;
    struct netmap_ring *r = m->tx;
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    uint32_t sent = 0;
    size_t off = 0;
    for (uint32_t i = 0; i < n; i++)
        if (lens[i] > r->nr_buf_size)
            return -EMSGSIZE;
    while (sent < n) {
        uint32_t space = nm_ring_space(r);
        if (space == 0) {
            if (atomic_load(closing) || nm_wait(m, POLLOUT, deadline) < 0)
                break;
            continue;
        }
        if (space > n - sent)
            space = n - sent;
        uint32_t cur = r->cur;
        for (uint32_t j = 0; j < space; j++) {
            struct netmap_slot *s = &r->slot[cur];
            uint32_t len = lens[sent + j];
            memcpy(NETMAP_BUF(r, s->buf_idx), data + off, len);
            solicits |= may_solicit(data + off, len);
            s->len = (uint16_t)len;
            s->flags = 0;
            off += len;
            cur = nm_ring_next(r, cur);
        }
        r->head = r->cur = cur;
        sent += space;
        if (ioctl(m->fd, NIOCTXSYNC, NULL) < 0)
            return sent ? (int)sent : -errno;
    }
    if (solicits && m->ctl_fd >= 0)   /* the switch answered, if at all, inside the sync */
        answers_due(m);
    return (int)sent;
}

int ms_nm_recv(struct ms_nm *m, uint8_t *out, uint32_t *lens, uint32_t max, int timeout_ms,
               const _Atomic int *closing)
{
    struct netmap_ring *r = m->rx;
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    take_answers(m);
    if (nm_ring_empty(r) && ioctl(m->fd, NIOCRXSYNC, NULL) < 0)
        return -errno;
    while (nm_ring_empty(r) && m->next == m->queued && timeout_ms != 0 &&
           !atomic_load(closing)) {
        if (nm_wait(m, POLLIN, deadline) < 0)
            break;
        take_answers(m);
    }
    uint32_t n = 0, cur = r->cur, size = r->nr_buf_size;
    for (; n < max && m->next < m->queued; m->next++) {   /* the switch's answers first */
        uint32_t len = m->answers.len[m->next];
        len = len > MS_VALE_ANSWER_BYTES ? MS_VALE_ANSWER_BYTES : len;
        memcpy(out + (size_t)n * size, m->answers.frames[m->next], len);
        lens[n++] = len;
    }
    while (n < max && cur != r->tail) {
        struct netmap_slot *s = &r->slot[cur];
        uint32_t len = s->len > size ? size : s->len;
        memcpy(out + (size_t)n * size, NETMAP_BUF(r, s->buf_idx), len);
        lens[n++] = len;
        cur = nm_ring_next(r, cur);
    }
    /* The slots go back to the kernel at the next sync: this process's next recv or poll. */
    r->head = r->cur = cur;
    return (int)n;
}

int ms_nm_arm(struct ms_nm *m, int rx, int tx)
{
    int ready = 0;
    if (rx) {
        drain_answer_fd(m);
        ioctl(m->fd, NIOCRXSYNC, NULL);
        ready |= !nm_ring_empty(m->rx) || m->next < m->queued || atomic_load(&m->answers_due);
    }
    if (tx) {
        ioctl(m->fd, NIOCTXSYNC, NULL);
        ready |= nm_ring_space(m->tx) > 0;
    }
    struct epoll_event ev = {.events = (rx ? EPOLLIN : 0) | (tx ? EPOLLOUT : 0),
                             .data.fd = m->fd};
    epoll_ctl(m->wake_fd, EPOLL_CTL_MOD, m->fd, &ev);
    struct epoll_event answer = {.events = rx ? EPOLLIN : 0, .data.fd = m->answer_fd};
    epoll_ctl(m->wake_fd, EPOLL_CTL_MOD, m->answer_fd, &answer);
    return ready;
}

#else /* no netmap here */

int ms_vale_built(char *why, size_t len)
{
    snprintf(why, len, "this MiniStack was built without netmap's user header "
                       "(net/netmap_user.h); ./setup.sh --netmap installs netmap and builds "
                       "it again");
    return 0;
}

int ms_vale_open_port(const char *name, int *fd, uint64_t *memsize, uint32_t *offset)
{
    (void)name, (void)fd, (void)memsize, (void)offset;
    return -ENOTSUP;
}

int ms_vale_attach(const char *name, int attach)
{
    (void)name, (void)attach;
    return -ENOTSUP;
}

struct ms_nm *ms_nm_open(int netmap_fd, uint64_t memsize, uint32_t offset)
{
    (void)netmap_fd, (void)memsize, (void)offset;
    errno = ENOTSUP;
    return NULL;
}

/* Unreachable without a handle from ms_nm_open. */
void ms_nm_close(struct ms_nm *m) { (void)m; }
void ms_nm_interrupt(struct ms_nm *m) { (void)m; }
uint32_t ms_nm_buf_size(struct ms_nm *m) { (void)m; return 0; }
uint32_t ms_nm_slots(struct ms_nm *m) { (void)m; return 0; }
int ms_nm_wake_fd(struct ms_nm *m) { (void)m; return -1; }
int ms_nm_send(struct ms_nm *m, const uint8_t *data, const uint32_t *lens, uint32_t n,
               int timeout_ms, const _Atomic int *closing)
{
    (void)m, (void)data, (void)lens, (void)n, (void)timeout_ms, (void)closing;
    return -ENOTSUP;
}
int ms_nm_recv(struct ms_nm *m, uint8_t *out, uint32_t *lens, uint32_t max, int timeout_ms,
               const _Atomic int *closing)
{
    (void)m, (void)out, (void)lens, (void)max, (void)timeout_ms, (void)closing;
    return -ENOTSUP;
}
int ms_nm_arm(struct ms_nm *m, int rx, int tx) { (void)m, (void)rx, (void)tx; return 0; }

#endif
