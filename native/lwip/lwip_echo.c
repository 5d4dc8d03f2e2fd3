/* ms-lwip-echo: lwIP (a TCP/IP stack nobody here wrote, from Debian's liblwip-dev) on a
 * MiniStack port, echoing TCP and UDP.
 *
 *   ms-lwip-echo --socket /run/ministack.sock --ip 10.0.0.2/24 [--ip6 fd00::2]
 *                --tcp 8080 --udp 5353 [--port lwip]
 *   ms-lwip-echo --afpacket IFNAME --mac MAC --ip ... (the same stack on a bare AF_PACKET
 *                socket, no switch: the benchmark's baseline)
 *
 * The network interface driver is the whole integration: lwIP hands it Ethernet frames to
 * send (linkoutput), and a thread feeds it every frame the port receives (tcpip_input).
 * Nothing in lwIP knows about MiniStack; the port attaches through the daemon, so this
 * program needs no privileges. It binds the tuples it serves, answers its own ARP and
 * neighbour discovery through the switch, and prints "ready" once it serves. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lwip/etharp.h"
#include "lwip/ethip6.h"
#include "lwip/init.h"
#include "lwip/netif.h"
#include "lwip/sockets.h"
#include "lwip/tcpip.h"
#include "ministack_app.h"

#define BURST 64
#define FRAME_MAX 2048

/* Where frames come from and go to: a MiniStack port, or a bare AF_PACKET socket. */
struct link {
    ms_app *port;
    int fd;             /* AF_PACKET, or -1 */
    uint8_t mac[6];
};

static struct link lk;
static struct netif nif;

static int link_send(const uint8_t *f, uint32_t len)
{
    if (lk.port)
        return ms_app_send(lk.port, f, &len, 1, -1) == 1 ? 0 : -1;
    return send(lk.fd, f, len, 0) == (ssize_t)len ? 0 : -1;
}

static int link_recv(uint8_t *bufs, uint32_t *lens, uint32_t max)
{
    if (lk.port)
        return ms_app_recv(lk.port, bufs, lens, max, 1000);
    struct mmsghdr m[BURST];
    struct iovec iov[BURST];
    memset(m, 0, sizeof(m));
    for (uint32_t i = 0; i < max && i < BURST; i++) {
        iov[i].iov_base = bufs + (size_t)i * FRAME_MAX;
        iov[i].iov_len = FRAME_MAX;
        m[i].msg_hdr.msg_iov = &iov[i];
        m[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(lk.fd, m, max < BURST ? max : BURST, MSG_WAITFORONE, NULL);
    for (int i = 0; i < n; i++)
        lens[i] = m[i].msg_len;
    return n < 0 ? 0 : n;
}

/* lwIP -> the port: one frame per call, from the tcpip thread. */
static err_t linkoutput(struct netif *n, struct pbuf *p)
{
    (void)n;
    uint8_t f[FRAME_MAX];
    if (p->tot_len > sizeof(f))
        return ERR_BUF;
    pbuf_copy_partial(p, f, p->tot_len, 0);
    return link_send(f, p->tot_len) == 0 ? ERR_OK : ERR_IF;
}

static err_t nif_init(struct netif *n)
{
    n->name[0] = 'm';
    n->name[1] = 's';
    n->mtu = 1500;
    n->hwaddr_len = 6;
    memcpy(n->hwaddr, lk.mac, 6);
    n->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET |
               NETIF_FLAG_IGMP | NETIF_FLAG_MLD6 | NETIF_FLAG_LINK_UP;
    n->output = etharp_output;
    n->output_ip6 = ethip6_output;
    n->linkoutput = linkoutput;
    return ERR_OK;
}

/* The port -> lwIP: every received frame, copied into a pbuf for the tcpip thread. */
static void *rx_loop(void *arg)
{
    (void)arg;
    static uint8_t bufs[BURST * FRAME_MAX];
    uint32_t lens[BURST];
    uint32_t stride = lk.port ? ms_app_buf_size(lk.port) : FRAME_MAX;
    for (;;) {
        int n = link_recv(bufs, lens, stride == FRAME_MAX ? BURST : 1);
        for (int i = 0; i < n; i++) {
            struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)lens[i], PBUF_RAM);
            if (!p)
                continue;
            pbuf_take(p, bufs + (size_t)i * stride, (u16_t)lens[i]);
            if (nif.input(p, &nif) != ERR_OK)
                pbuf_free(p);
        }
    }
    return NULL;
}

static void *tcp_conn(void *arg)
{
    int s = (int)(intptr_t)arg;
    static __thread char buf[16384];
    for (;;) {
        ssize_t n = lwip_recv(s, buf, sizeof(buf), 0);
        if (n <= 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = lwip_send(s, buf + off, (size_t)(n - off), 0);
            if (w <= 0)
                goto done;
            off += w;
        }
    }
done:
    lwip_close(s);
    return NULL;
}

static void *tcp_server(void *arg)
{
    int fam = (int)(intptr_t)arg >> 16, port = (int)(intptr_t)arg & 0xffff;
    int s = lwip_socket(fam, SOCK_STREAM, 0);
    struct sockaddr_storage a;
    memset(&a, 0, sizeof(a));
    socklen_t al;
    if (fam == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&a;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        al = sizeof(*in);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        al = sizeof(*in6);
    }
    if (s < 0 || lwip_bind(s, (struct sockaddr *)&a, al) < 0 || lwip_listen(s, 8) < 0) {
        fprintf(stderr, "ms-lwip-echo: lwIP could not listen on tcp port %d: %s\n", port,
                strerror(errno));
        exit(1);
    }
    for (;;) {
        int c = lwip_accept(s, NULL, NULL);
        pthread_t t;
        if (c >= 0 && pthread_create(&t, NULL, tcp_conn, (void *)(intptr_t)c) == 0)
            pthread_detach(t);
    }
    return NULL;
}

static void *udp_server(void *arg)
{
    int fam = (int)(intptr_t)arg >> 16, port = (int)(intptr_t)arg & 0xffff;
    int s = lwip_socket(fam, SOCK_DGRAM, 0);
    struct sockaddr_storage a, from;
    memset(&a, 0, sizeof(a));
    socklen_t al = fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    ((struct sockaddr_in *)&a)->sin_family = (sa_family_t)fam;
    if (fam == AF_INET)
        ((struct sockaddr_in *)&a)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&a)->sin6_port = htons((uint16_t)port);
    if (s < 0 || lwip_bind(s, (struct sockaddr *)&a, al) < 0) {
        fprintf(stderr, "ms-lwip-echo: lwIP could not bind udp port %d\n", port);
        exit(1);
    }
    static char buf[65536];
    for (;;) {
        socklen_t fl = sizeof(from);
        ssize_t n = lwip_recvfrom(s, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
        if (n >= 0)
            lwip_sendto(s, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
    }
    return NULL;
}

static void start(void *(*fn)(void *), int fam, int port)
{
    pthread_t t;
    if (pthread_create(&t, NULL, fn, (void *)(intptr_t)(fam << 16 | port)) != 0) {
        perror("ms-lwip-echo: pthread_create");
        exit(1);
    }
    pthread_detach(t);
}

static void usage(void)
{
    fprintf(stderr, "usage: ms-lwip-echo (--socket SOCK | --afpacket IFNAME --mac MAC) "
                    "--ip IP[/LEN] [--ip6 IP6] [--tcp PORT] [--udp PORT] [--port NAME]\n");
    exit(2);
}

static void sys_ready(void *arg) { *(volatile int *)arg = 1; }

int main(int argc, char **argv)
{
    const char *sock = NULL, *ifname = NULL, *mac = NULL, *ip = NULL, *ip6 = NULL;
    const char *name = "lwip";
    int tcp = 0, udp = 0, plen = 24;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--socket")) sock = v;
        else if (!strcmp(k, "--afpacket")) ifname = v;
        else if (!strcmp(k, "--mac")) mac = v;
        else if (!strcmp(k, "--ip")) ip = v;
        else if (!strcmp(k, "--ip6")) ip6 = v;
        else if (!strcmp(k, "--tcp")) tcp = atoi(v);
        else if (!strcmp(k, "--udp")) udp = atoi(v);
        else if (!strcmp(k, "--port")) name = v;
        else usage();
    }
    if (!ip || (!sock == !ifname))
        usage();
    char ip4[64];
    snprintf(ip4, sizeof(ip4), "%s", ip);
    char *slash = strchr(ip4, '/');
    if (slash) {
        *slash = 0;
        plen = atoi(slash + 1);
    }
    signal(SIGPIPE, SIG_IGN);
    char err[256];
    if (sock) {
        ms_client *c = ms_client_connect(sock, err, sizeof(err));
        if (!c || !(lk.port = ms_client_port(c, name, 0, err, sizeof(err)))) {
            fprintf(stderr, "ms-lwip-echo: %s\n", err);
            return 1;
        }
        memcpy(lk.mac, ms_client_mac(c), 6);
        struct { const char *ip, *proto; int port; } b[4] = {
            {ip4, "tcp", tcp}, {ip4, "udp", udp}, {ip6, "tcp", tcp}, {ip6, "udp", udp}};
        for (int i = 0; i < 4; i++)
            if (b[i].ip && b[i].port &&
                ms_client_bind(c, name, b[i].ip, b[i].proto, b[i].port, err, sizeof(err)) < 0) {
                fprintf(stderr, "ms-lwip-echo: bind %s %s %d: %s\n", b[i].proto, b[i].ip,
                        b[i].port, err);
                return 1;
            }
    } else {
        unsigned m[6];
        if (!mac || sscanf(mac, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4],
                           &m[5]) != 6)
            usage();
        for (int i = 0; i < 6; i++)
            lk.mac[i] = (uint8_t)m[i];
        lk.fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
        struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
                                  .sll_ifindex = (int)if_nametoindex(ifname)};
        int one = 1;
        setsockopt(lk.fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
        if (lk.fd < 0 || bind(lk.fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
            perror("ms-lwip-echo: AF_PACKET");
            return 1;
        }
    }

    volatile int up = 0;
    tcpip_init(sys_ready, (void *)&up);
    while (!up)
        usleep(1000);
    ip4_addr_t a4, mask, gw;
    if (!ip4addr_aton(ip4, &a4)) {
        fprintf(stderr, "ms-lwip-echo: %s is not an IPv4 address\n", ip4);
        return 2;
    }
    ip4_addr_set_u32(&mask, plen ? htonl(~0u << (32 - plen)) : 0);
    ip4_addr_set_zero(&gw);
    LOCK_TCPIP_CORE();
    netif_add(&nif, &a4, &mask, &gw, NULL, nif_init, tcpip_input);
    if (ip6) {
        ip6_addr_t a6;
        s8_t idx;
        if (!ip6addr_aton(ip6, &a6)) {
            fprintf(stderr, "ms-lwip-echo: %s is not an IPv6 address\n", ip6);
            return 2;
        }
        netif_add_ip6_address(&nif, &a6, &idx);
        /* The address is the host's, handed out by the switch: no duplicate to detect. */
        netif_ip6_addr_set_state(&nif, idx, IP6_ADDR_PREFERRED);
    }
    netif_set_default(&nif);
    netif_set_up(&nif);
    UNLOCK_TCPIP_CORE();

    pthread_t rx;
    pthread_create(&rx, NULL, rx_loop, NULL);
    /* lwIP binds an IPv6 socket on :: for both families (IPADDR_TYPE_ANY): one socket
     * per protocol serves IPv4 and IPv6 alike. */
    int af = ip6 ? AF_INET6 : AF_INET;
    if (tcp)
        start(tcp_server, af, tcp);
    if (udp)
        start(udp_server, af, udp);
    printf("ready\n");
    fflush(stdout);
    pause();
    return 0;
}
