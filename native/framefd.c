/* A TAP-like descriptor over a port (ministack.h, ms_framefd_open).
 *
 * A SOCK_SEQPACKET socket pair keeps frame boundaries, as a TAP device does: one read, one
 * frame; one write, one frame. The application gets one end; a pump thread holds the other
 * and moves frames between it and the port's rings, in batches (recvmmsg/sendmmsg, whole
 * ring bursts), sleeping in one poll() on the socket, the port's eventfd and its own stop
 * eventfd. Neither side blocks the other: frames that found no room wait in the pump until
 * there is room (the socket buffer and the TX ring push back on the writer; a full socket
 * leaves frames in the port's RX ring, which then drops them as ring-full). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ministack.h"

#define BATCH 64
/* Idle passes before the pump sleeps: a writer that keeps writing then finds it awake,
 * instead of paying for a wake-up in nearly every write() (a syscall costs ~250 ns on the
 * VMs measured, a wake-up several times that). */
#define SPIN_PASSES 16

struct ms_framefd {
    ms_app *a;
    int user, pump, stopfd;
    uint32_t buf_size;
    pthread_t thread;
    _Atomic int stop;
    /* ring -> socket: frames taken from the RX ring, [rx_off, rx_n) not yet written */
    uint8_t *rxbuf;
    uint32_t rxlens[BATCH], rx_n, rx_off;
    /* socket -> ring: frames read from the socket, [tx_off, tx_n) not yet queued */
    uint8_t *txbuf;
    uint32_t txlens[BATCH], tx_n, tx_off;
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
};

static void point(struct ms_framefd *f, uint8_t *buf, const uint32_t *lens, uint32_t from,
                  uint32_t to)
{
    for (uint32_t i = from; i < to; i++) {
        f->iov[i - from].iov_base = buf + (size_t)i * f->buf_size;
        f->iov[i - from].iov_len = lens ? lens[i] : f->buf_size;
        memset(&f->msgs[i - from].msg_hdr, 0, sizeof(f->msgs[i - from].msg_hdr));
        f->msgs[i - from].msg_hdr.msg_iov = &f->iov[i - from];
        f->msgs[i - from].msg_hdr.msg_iovlen = 1;
    }
}

/* One pass each way; 1 when anything moved, -1 when the application closed its end. */
static int pump_once(struct ms_framefd *f)
{
    int moved = 0;
    if (f->rx_off == f->rx_n) {
        int n = ms_app_recv(f->a, f->rxbuf, f->rxlens, BATCH, 0);
        f->rx_n = n > 0 ? (uint32_t)n : 0;
        f->rx_off = 0;
    }
    if (f->rx_off < f->rx_n) {
        point(f, f->rxbuf, f->rxlens, f->rx_off, f->rx_n);
        int r = sendmmsg(f->pump, f->msgs, f->rx_n - f->rx_off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r > 0) {
            f->rx_off += (uint32_t)r;
            moved = 1;
        } else if (r < 0 && errno != EAGAIN && errno != EINTR) {
            return -1;
        }
    }
    if (f->tx_off == f->tx_n) {
        point(f, f->txbuf, NULL, 0, BATCH);
        int r = recvmmsg(f->pump, f->msgs, BATCH, MSG_DONTWAIT, NULL);
        if (r > 0) {
            /* ms_app_send takes frames back to back: close the gaps. */
            size_t off = 0;
            for (int i = 0; i < r; i++) {
                uint32_t len = f->msgs[i].msg_len;
                if (f->msgs[i].msg_hdr.msg_flags & MSG_TRUNC)
                    len = 0;   /* larger than a port buffer: not a frame the port can send */
                memmove(f->txbuf + off, f->txbuf + (size_t)i * f->buf_size, len);
                f->txlens[i] = len;
                off += len;
            }
            f->tx_n = (uint32_t)r;
            f->tx_off = 0;
            moved = 1;
        } else if (r < 0 && errno != EAGAIN && errno != EINTR) {
            return -1;
        }
    }
    if (f->tx_off < f->tx_n) {
        size_t off = 0;
        for (uint32_t i = 0; i < f->tx_off; i++)
            off += f->txlens[i];
        int r = ms_app_send(f->a, f->txbuf + off, f->txlens + f->tx_off, f->tx_n - f->tx_off, 0);
        if (r > 0) {
            f->tx_off += (uint32_t)r;
            moved = 1;
        }
    }
    return moved;
}

static void *pump_loop(void *arg)
{
    struct ms_framefd *f = arg;
    pthread_setname_np(pthread_self(), "ms-framefd");
    int idle = 0;
    while (!atomic_load(&f->stop)) {
        int r = pump_once(f);
        if (r < 0)
            break;
        if (r) {
            idle = 0;
            continue;
        }
        if (++idle < SPIN_PASSES)
            continue;
        idle = 0;
        int want_rx = f->rx_off == f->rx_n, want_tx = f->tx_off < f->tx_n;
        if (ms_app_arm(f->a, want_rx, want_tx))
            continue;
        short ev = (short)((want_rx ? 0 : POLLOUT) | (want_tx ? 0 : POLLIN));
        struct pollfd p[3] = {{.fd = f->pump, .events = ev},
                              {.fd = ms_app_wake_fd(f->a), .events = POLLIN},
                              {.fd = f->stopfd, .events = POLLIN}};
        poll(p, 3, -1);
        uint64_t v;
        ssize_t n = read(p[1].fd, &v, sizeof(v));
        (void)n;
        if ((p[0].revents & (POLLHUP | POLLERR)) && !(p[0].revents & POLLIN))
            break; /* the application closed every copy of its end */
    }
    return NULL;
}

ms_framefd *ms_framefd_open(ms_app *a)
{
    struct ms_framefd *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->a = a;
    f->buf_size = ms_app_buf_size(a);
    f->user = f->pump = f->stopfd = -1;
    int sv[2];
    f->rxbuf = malloc((size_t)BATCH * f->buf_size);
    f->txbuf = malloc((size_t)BATCH * f->buf_size);
    f->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!f->rxbuf || !f->txbuf || f->stopfd < 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        goto fail;
    f->user = sv[0];
    f->pump = sv[1];
    if (pthread_create(&f->thread, NULL, pump_loop, f) != 0)
        goto fail;
    return f;
fail:
    if (f->user >= 0) {
        close(f->user);
        close(f->pump);
    }
    if (f->stopfd >= 0)
        close(f->stopfd);
    free(f->rxbuf);
    free(f->txbuf);
    free(f);
    return NULL;
}

int ms_framefd_fd(ms_framefd *f) { return f->user; }

void ms_framefd_close(ms_framefd *f)
{
    if (!f)
        return;
    atomic_store(&f->stop, 1);
    uint64_t one = 1;
    ssize_t w = write(f->stopfd, &one, sizeof(one));
    (void)w;
    pthread_join(f->thread, NULL);
    close(f->pump);
    close(f->user);
    close(f->stopfd);
    free(f->rxbuf);
    free(f->txbuf);
    free(f);
}
