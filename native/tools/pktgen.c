/* ms-pktgen: a traffic source and sink that attaches to a port of `ministack daemon` like
 * any application, in the spirit of netmap's pkt-gen. Frames are UDP over IPv4, built once
 * and copied into the TX ring in batches; only shared memory is touched per frame. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ministack_app.h"
#include "ring.h"
#include "app_internal.h"

static const char *usage =
    "usage: ms-pktgen [-s SOCKET] [-p PORT] [-m tx|rx] [-S SRCIP:SPORT] [-D DSTIP:DPORT]\n"
    "                 [-M DSTMAC] [-l LEN] [-n COUNT] [-d SECONDS] [-r PPS] [-b BATCH] [-j]\n"
    "  tx: bind SRCIP udp SPORT on a new port and send LEN-byte UDP frames to DSTIP:DPORT\n"
    "  rx: bind SRCIP udp SPORT and count what arrives\n"
    "  -n 0 and -r 0 mean no limit; -j prints the result as JSON\n";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int split(const char *s, char *ip, size_t cap, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= cap)
        return -1;
    memcpy(ip, s, (size_t)(colon - s));
    ip[colon - s] = 0;
    *port = atoi(colon + 1);
    return *port >= 0 && *port <= 65535 ? 0 : -1;
}

static uint16_t csum(const uint8_t *p, size_t n)
{
    uint32_t s = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

static int build(uint8_t *f, uint32_t len, const uint8_t *src_mac, const uint8_t *dst_mac,
                 const char *sip, int sport, const char *dip, int dport)
{
    if (len < 60 || len > 1514)
        return -1;
    memset(f, 0, len);
    memcpy(f, dst_mac, 6);
    memcpy(f + 6, src_mac, 6);
    f[12] = 0x08;
    uint8_t *ip = f + 14;
    uint16_t tot = (uint16_t)(len - 14);
    ip[0] = 0x45;
    ip[2] = (uint8_t)(tot >> 8);
    ip[3] = (uint8_t)tot;
    ip[8] = 64;
    ip[9] = 17;
    if (inet_pton(AF_INET, sip, ip + 12) != 1 || inet_pton(AF_INET, dip, ip + 16) != 1)
        return -1;
    uint16_t c = csum(ip, 20);
    ip[10] = (uint8_t)(c >> 8);
    ip[11] = (uint8_t)c;
    uint8_t *udp = ip + 20;
    uint16_t ulen = (uint16_t)(tot - 20);
    udp[0] = (uint8_t)(sport >> 8), udp[1] = (uint8_t)sport;
    udp[2] = (uint8_t)(dport >> 8), udp[3] = (uint8_t)dport;
    udp[4] = (uint8_t)(ulen >> 8), udp[5] = (uint8_t)ulen;
    return 0;
}

int main(int argc, char **argv)
{
    const char *sock = "/run/ministack.sock", *pname = "pktgen", *mode = "tx";
    const char *src = "10.0.0.2:5000", *dst = "10.0.0.9:9", *dmac_s = "02:00:00:00:00:09";
    uint32_t len = 64, batch = 256;
    uint64_t count = 0;
    double seconds = 5, rate = 0;
    int json = 0, opt;
    while ((opt = getopt(argc, argv, "s:p:m:S:D:M:l:n:d:r:b:jh")) != -1) {
        switch (opt) {
        case 's': sock = optarg; break;
        case 'p': pname = optarg; break;
        case 'm': mode = optarg; break;
        case 'S': src = optarg; break;
        case 'D': dst = optarg; break;
        case 'M': dmac_s = optarg; break;
        case 'l': len = (uint32_t)atoi(optarg); break;
        case 'n': count = strtoull(optarg, NULL, 10); break;
        case 'd': seconds = atof(optarg); break;
        case 'r': rate = atof(optarg); break;
        case 'b': batch = (uint32_t)atoi(optarg); break;
        case 'j': json = 1; break;
        default: fputs(usage, opt == 'h' ? stdout : stderr); return opt == 'h' ? 0 : 2;
        }
    }
    int tx = strcmp(mode, "tx") == 0;
    char sip[64], dip[64], err[512] = "";
    int sport, dport;
    unsigned m[6];
    uint8_t dmac[6];
    if ((!tx && strcmp(mode, "rx") != 0) || split(src, sip, sizeof(sip), &sport) < 0 ||
        split(dst, dip, sizeof(dip), &dport) < 0 || batch == 0 || batch > 4096 ||
        sscanf(dmac_s, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6) {
        fputs(usage, stderr);
        return 2;
    }
    for (int i = 0; i < 6; i++)
        dmac[i] = (uint8_t)m[i];
    ms_client *c = ms_client_connect(sock, err, sizeof(err));
    ms_app *a = c ? ms_client_port(c, pname, 0, err, sizeof(err)) : NULL;
    if (!a || ms_client_bind(c, pname, sip, "udp", sport, err, sizeof(err)) < 0) {
        fprintf(stderr, "ms-pktgen: %s\n", err);
        return 1;
    }
    struct ms_port_shm *shm = ms_app_shm(a);
    const struct ms_ring_geom *txg = ms_app_geom(a, 0);
    uint8_t frame[1514];
    if (tx && build(frame, len, ms_client_mac(c), dmac, sip, sport, dip, dport) < 0) {
        fprintf(stderr, "ms-pktgen: frame length must be 60..1514 and addresses IPv4\n");
        return 2;
    }
    uint64_t done = 0;
    double t0 = now(), end = t0 + seconds, t = t0;
    uint8_t *rxbuf = tx ? NULL : malloc((size_t)batch * ms_app_buf_size(a));
    uint32_t *lens = tx ? NULL : malloc(batch * sizeof(uint32_t));
    for (uint64_t iter = 0; (!count || done < count); iter++) {
        if ((iter & 63) == 0 && (t = now()) >= end)
            break;
        if (tx) {
            uint64_t allowed = rate > 0 ? (uint64_t)((t - t0) * rate) + 1 : UINT64_MAX;
            uint32_t h, k = ms_ring_reserve(&shm->tx, txg, &h);
            if (k > batch)
                k = batch;
            if (count && k > count - done)
                k = (uint32_t)(count - done);
            if (allowed <= done)
                k = 0;
            else if (k > allowed - done)
                k = (uint32_t)(allowed - done);
            for (uint32_t j = 0; j < k; j++) {
                memcpy(ms_ring_buf(shm, txg, h + j), frame, len);
                ms_ring_slot(shm, txg, h + j)->len = len;
            }
            if (k) {
                ms_ring_publish(&shm->tx, k);
                ms_app_kick(a);
                done += k;
            } else if (rate > 0) {
                struct timespec d = {0, 10000}; /* paced: the next frame is not due yet */
                nanosleep(&d, NULL);
            } else {
                sched_yield(); /* the ring is full: the switch drains it within microseconds */
            }
        } else {
            int n = ms_app_recv(a, rxbuf, lens, batch, 100);
            if (n > 0)
                done += (uint64_t)n;
        }
    }
    double el = now() - t0;
    if (json)
        printf("{\"mode\": \"%s\", \"frames\": %llu, \"seconds\": %.3f, \"mpps\": %.3f}\n", mode,
               (unsigned long long)done, el, (double)done / el / 1e6);
    else
        printf("ms-pktgen: %s %llu frames of %u bytes in %.2f s: %.3f Mpps\n", mode,
               (unsigned long long)done, len, el, (double)done / el / 1e6);
    free(rxbuf);
    free(lens);
    ms_app_close(a);
    ms_client_close(c);
    return 0;
}
