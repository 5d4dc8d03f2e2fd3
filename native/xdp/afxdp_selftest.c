/* Exercises the AF_XDP backend on its own, without the switch:
 *
 *   afxdp_selftest IFNAME [-t SECONDS] [-b PROTO:IP:PORT]... [-x HEXFRAME [-c COUNT]
 *                  [-d DELAY_MS]] [-q]
 *
 * Creates the backend on IFNAME, binds udp:10.0.0.2:5000 (or each -b given; PROTO is a
 * name or an IP protocol number, IP an IPv4 or IPv6 address, IPv6 written [addr]:port or
 * addr:port with the port after the last colon), prints "ready" and then every frame the
 * backend receives for SECONDS (default 5), one line each. With -x it transmits HEXFRAME
 * COUNT times (default 1) DELAY_MS after "ready". At the end it prints the counts, unbinds
 * and destroys the backend. SIGINT/SIGTERM end the loop early, cleanly. Needs root. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_xdp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ministack.h"
#include "nic.h"

/* nic_afxdp.c, linked in directly: the plugin entry, not the loader. */
ms_afxdp_new_fn ms_afxdp_plugin_new;

#define MAX_BINDS 16

struct bind_arg {
    int family, proto;
    uint8_t ip[16];
    uint16_t port;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int proto_number(const char *s)
{
    static const struct {
        const char *name;
        int num;
    } names[] = {{"icmp", 1}, {"tcp", 6}, {"udp", 17}, {"dccp", 33}, {"icmpv6", 58},
                 {"sctp", 132}, {"udplite", 136}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(s, names[i].name) == 0)
            return names[i].num;
    char *end;
    long v = strtol(s, &end, 10);
    return *s && !*end && v >= 0 && v <= 255 ? (int)v : -1;
}

static int parse_bind(const char *arg, struct bind_arg *b)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", arg);
    char *c1 = strchr(buf, ':');
    char *c2 = strrchr(buf, ':');
    if (!c1 || c1 == c2)
        return -1;
    *c1 = 0;
    *c2 = 0;
    char *ip = c1 + 1;
    size_t l = strlen(ip);
    if (l >= 2 && ip[0] == '[' && ip[l - 1] == ']') {
        ip[l - 1] = 0;
        ip++;
    }
    b->proto = proto_number(buf);
    char *end;
    long port = strtol(c2 + 1, &end, 10);
    if (b->proto < 0 || !c2[1] || *end || port < 0 || port > 65535)
        return -1;
    b->port = (uint16_t)port;
    memset(b->ip, 0, sizeof(b->ip));
    if (inet_pton(AF_INET, ip, b->ip) == 1)
        b->family = 4;
    else if (inet_pton(AF_INET6, ip, b->ip) == 1)
        b->family = 6;
    else
        return -1;
    return 0;
}

static int parse_hex(const char *s, uint8_t *out, size_t max)
{
    size_t n = 0;
    int hi = -1;
    for (; *s; s++) {
        int v;
        if (*s >= '0' && *s <= '9')
            v = *s - '0';
        else if (*s >= 'a' && *s <= 'f')
            v = *s - 'a' + 10;
        else if (*s >= 'A' && *s <= 'F')
            v = *s - 'A' + 10;
        else if (*s == ' ' || *s == ':' || *s == '\n')
            continue;
        else
            return -1;
        if (hi < 0) {
            hi = v;
        } else {
            if (n == max)
                return -1;
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    return hi < 0 ? (int)n : -1;
}

static void print_frame(uint64_t seq, const struct ms_nic_frame *f)
{
    printf("rx %llu len=%u", (unsigned long long)seq, f->len);
    uint32_t show = f->len < 64 ? f->len : 64;
    printf(" data=");
    for (uint32_t i = 0; i < show; i++)
        printf("%02x", f->data[i]);
    printf("%s\n", show < f->len ? "..." : "");
}

/* Transmit count copies of frame, a batch of up to MS_BATCH at a time. */
static uint64_t transmit(struct ms_nic *nic, const uint8_t *frame, uint32_t len, uint64_t count)
{
    struct ms_txbuf bufs[MS_BATCH];
    uint64_t sent = 0;
    int idle = 0;
    while (sent < count && idle < 1000) {
        uint32_t want = count - sent < MS_BATCH ? (uint32_t)(count - sent) : MS_BATCH;
        uint32_t k = nic->ops->tx_reserve(nic, bufs, want);
        for (uint32_t i = 0; i < k; i++) {
            memcpy(bufs[i].data, frame, len);
            bufs[i].len = len;
        }
        uint32_t taken = nic->ops->tx_commit(nic, bufs, k);
        sent += taken;
        if (!taken) {
            idle++;
            usleep(1000);
        } else {
            idle = 0;
        }
    }
    return sent;
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s IFNAME [-t SECONDS] [-b PROTO:IP:PORT]... [-x HEXFRAME [-c COUNT] "
            "[-d DELAY_MS]] [-q]\n",
            argv0);
}

int main(int argc, char **argv)
{
    double seconds = 5;
    struct bind_arg binds[MAX_BINDS];
    int nbinds = 0, quiet = 0;
    const char *hex = NULL;
    uint64_t count = 1;
    long delay_ms = 0;
    int opt;
    while ((opt = getopt(argc, argv, "t:b:x:c:d:q")) != -1) {
        switch (opt) {
        case 't':
            seconds = atof(optarg);
            break;
        case 'b':
            if (nbinds == MAX_BINDS || parse_bind(optarg, &binds[nbinds]) < 0) {
                fprintf(stderr, "bad binding %s (want PROTO:IP:PORT, at most %d)\n", optarg,
                        MAX_BINDS);
                return 2;
            }
            nbinds++;
            break;
        case 'x':
            hex = optarg;
            break;
        case 'c':
            count = strtoull(optarg, NULL, 10);
            break;
        case 'd':
            delay_ms = atol(optarg);
            break;
        case 'q':
            quiet = 1;
            break;
        default:
            usage(argv[0]);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(argv[0]);
        return 2;
    }
    const char *ifname = argv[optind];
    if (!nbinds)
        parse_bind("udp:10.0.0.2:5000", &binds[nbinds++]);

    static uint8_t frame[4096];
    int flen = 0;
    if (hex) {
        flen = parse_hex(hex, frame, sizeof(frame));
        if (flen < 14 || flen > 2048) {
            fprintf(stderr, "bad frame: want 14 to 2048 bytes of hex\n");
            return 2;
        }
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    char err[512] = "";
    struct ms_nic *nic = ms_afxdp_plugin_new(ifname, 2048, err, sizeof(err));
    if (!nic) {
        fprintf(stderr, "afxdp_selftest: %s\n", err);
        return 1;
    }
    int rc = 0;
    printf("backend %s mode %s has_host %d\n", nic->ops->name, nic->ops->xdp_mode(nic),
           nic->has_host);
    for (int i = 0; i < nbinds; i++) {
        int e = nic->ops->binding(nic, 1, binds[i].family, binds[i].proto, binds[i].ip,
                                  binds[i].port);
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(binds[i].family == 4 ? AF_INET : AF_INET6, binds[i].ip, ip, sizeof(ip));
        printf("bind family %d proto %d ip %s port %u: %s\n", binds[i].family, binds[i].proto,
               ip, binds[i].port, e ? strerror(-e) : "ok");
        if (e)
            rc = 1;
    }
    printf("ready\n");
    fflush(stdout);

    int64_t start = now_ms(), deadline = start + (int64_t)(seconds * 1000);
    int sent_done = !hex;
    uint64_t received = 0, bytes = 0, sent = 0;
    struct ms_nic_frame fr[MS_BATCH];
    while (!stop && now_ms() < deadline) {
        if (!sent_done && now_ms() - start >= delay_ms) {
            sent = transmit(nic, frame, (uint32_t)flen, count);
            printf("tx %llu frames of %d bytes\n", (unsigned long long)sent, flen);
            fflush(stdout);
            sent_done = 1;
        }
        uint32_t n = nic->ops->rx_burst(nic, fr, MS_BATCH);
        for (uint32_t i = 0; i < n; i++) {
            received++;
            bytes += fr[i].len;
            if (!quiet)
                print_frame(received, &fr[i]);
        }
        if (n) {
            nic->ops->rx_done(nic, n);
            if (!quiet)
                fflush(stdout);
            continue;
        }
        struct pollfd p = {.fd = nic->ops->arm(nic), .events = POLLIN};
        poll(&p, 1, 50);
    }
    printf("received %llu frames, %llu bytes; sent %llu frames\n",
           (unsigned long long)received, (unsigned long long)bytes, (unsigned long long)sent);
    /* The socket's own counters: frames the kernel could not hand over (no fill entry,
     * too large) and descriptors it refused. arm() returns the socket's fd. */
    struct xdp_statistics st;
    socklen_t sl = sizeof(st);
    memset(&st, 0, sizeof(st));
    if (getsockopt(nic->ops->arm(nic), 283 /* SOL_XDP */, XDP_STATISTICS, &st, &sl) == 0)
        printf("xsk stats: rx_dropped %llu rx_invalid %llu tx_invalid %llu "
               "rx_ring_full %llu fill_ring_empty %llu tx_ring_empty %llu\n",
               (unsigned long long)st.rx_dropped, (unsigned long long)st.rx_invalid_descs,
               (unsigned long long)st.tx_invalid_descs,
               (unsigned long long)st.rx_ring_full,
               (unsigned long long)st.rx_fill_ring_empty_descs,
               (unsigned long long)st.tx_ring_empty_descs);
    for (int i = 0; i < nbinds; i++) {
        int e = nic->ops->binding(nic, 0, binds[i].family, binds[i].proto, binds[i].ip,
                                  binds[i].port);
        if (e) {
            printf("unbind %d: %s\n", i, strerror(-e));
            rc = 1;
        }
    }
    nic->ops->destroy(nic);
    printf("destroyed\n");
    return rc;
}
