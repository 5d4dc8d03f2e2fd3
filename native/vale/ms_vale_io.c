/* ms-vale-io: drives ports of the VALE module's switch from a script, one command per line
 * on standard input and one or more answer lines per command on standard output, so that
 * a test (or a person at a guest's console) can open ports, bind, send and receive frames,
 * and watch the NIC's peer and the host stack, all through the interfaces applications use:
 * netmap's user API (net/netmap_user.h) and /dev/ministack_vale.
 *
 *   open NAME [MEM_ID|@PORT]        -> open NAME ok MEM_ID | open NAME errno E (@PORT: the
 *                                      allocator of an open port, as an attacker would ask)
 *   bind|unbind NAME 4|6 IP PROTO PORT -> bind NAME RESULT INDEX | bind NAME errno E
 *   bindfd FD 4|6 IP PROTO PORT     -> the same with any descriptor (a test's wrong ones)
 *   stats NAME                      -> stats NAME INDEX REASON=FRAMES ... (reason numbers)
 *   drops NAME                      -> drop NAME SEQ REASON LEN HEAD ..., then drops NAME COUNT
 *   send NAME HEX                   -> send NAME ok | send NAME full
 *   recv NAME                       -> rx NAME HEX ... then recv NAME COUNT
 *   close NAME                      -> close NAME
 *   capture IF / wire IF            -> frames the interface saw since: wire IF HEX ..., wire IF COUNT
 *   inject IF HEX                   -> a frame into the interface (its peer's side)
 *   listen 4|6 IP PORT / heard      -> UDP datagrams the host stack delivered: heard IP PORT LEN
 *   hostbind 4|6 udp|tcp IP PORT    -> hostbind errno E (0: the host stack could bind it)
 *   drop UID                        -> this process runs as UID from here on
 *   cat PATH                        -> cat LINE ... then cat end (the module's /proc files)
 *   sh COMMAND                      -> sh STATUS, after COMMAND ran (ip addr add ..., say)
 *   mark TEXT                       -> === TEXT (to find a script's parts in the output)
 *   sleep MS
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <net/netmap.h>
#include <net/netmap_user.h>

#include "ministack_vale.h"

#define MAX_PORTS 16
#define MAX_SOCKS 16

struct port {
    char name[64];
    int fd;
    void *mem;
    size_t memsize;
    unsigned mem_id;
    struct netmap_if *nifp;
};

static struct port ports[MAX_PORTS];
static struct { char name[IFNAMSIZ]; int fd; } caps[MAX_SOCKS];
static struct { char ip[64]; int port, fd; } listeners[MAX_SOCKS];

static struct port *find(const char *name)
{
    for (int i = 0; i < MAX_PORTS; i++)
        if (ports[i].fd > 0 && !strcmp(ports[i].name, name))
            return &ports[i];
    return NULL;
}

static int unhex(const char *s, uint8_t *out, int max)
{
    int n = 0;
    for (; s[0] && s[1] && n < max; s += 2) {
        unsigned v;
        if (sscanf(s, "%2x", &v) != 1)
            break;
        out[n++] = (uint8_t)v;
    }
    return n;
}

static void hex(const uint8_t *b, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        printf("%02x", b[i]);
}

static void cmd_open(const char *name, int mem_id)
{
    struct nmreq_register reg = {.nr_mode = NR_REG_ALL_NIC, .nr_mem_id = (uint16_t)mem_id};
    struct nmreq_header hdr = {.nr_version = NETMAP_API, .nr_reqtype = NETMAP_REQ_REGISTER,
                               .nr_body = (uintptr_t)&reg};
    struct port *p = NULL;
    for (int i = 0; i < MAX_PORTS && !p; i++)
        if (ports[i].fd <= 0)
            p = &ports[i];
    snprintf(hdr.nr_name, sizeof(hdr.nr_name), MS_VALE_SWITCH "%s", name);
    int fd = open("/dev/netmap", O_RDWR);
    if (fd < 0 || ioctl(fd, NIOCCTRL, &hdr) < 0) {
        printf("open %s errno %d\n", name, errno);
        if (fd >= 0)
            close(fd);
        return;
    }
    void *mem = mmap(NULL, reg.nr_memsize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED) {
        printf("open %s errno %d\n", name, errno);
        close(fd);
        return;
    }
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->fd = fd;
    p->mem = mem;
    p->memsize = reg.nr_memsize;
    p->mem_id = reg.nr_mem_id;
    p->nifp = NETMAP_IF(mem, reg.nr_offset);
    printf("open %s ok %u\n", name, reg.nr_mem_id);
}

static int control(unsigned long op, void *arg)
{
    int dev = open(MS_VALE_DEVICE, O_RDWR), rc = dev < 0 ? -1 : ioctl(dev, op, arg);
    int err = errno;
    if (dev >= 0)
        close(dev);
    errno = err;
    return rc;
}

static void cmd_bind(unsigned long op, const char *what, int fd, const char *label,
                     int family, const char *ip, int proto, int l4port)
{
    struct ms_vale_bind b = {.netmap_fd = fd, .family = (uint8_t)family,
                             .proto = (uint8_t)proto, .port = (uint16_t)l4port};
    if (inet_pton(family == 4 ? AF_INET : AF_INET6, ip, b.ip) != 1) {
        printf("%s %s bad-address\n", what, label);
        return;
    }
    if (control(op, &b) < 0)
        printf("%s %s errno %d\n", what, label, errno);
    else
        printf("%s %s %d %d\n", what, label, b.result, b.port_index);
}

static void cmd_stats(const char *name)
{
    struct port *p = find(name);
    struct ms_vale_stats s = {.netmap_fd = p ? p->fd : -1};
    if (control(MS_VALE_STATS, &s) < 0) {
        printf("stats %s errno %d\n", name, errno);
        return;
    }
    printf("stats %s %d", name, s.port_index);
    for (int i = 0; i < MS_VALE_REASONS; i++)
        if (s.frames[i])
            printf(" %d=%llu", i, (unsigned long long)s.frames[i]);
    printf("\n");
}

static void cmd_drops(const char *name)
{
    static struct ms_vale_drop_record rec[256];
    struct port *p = find(name);
    struct ms_vale_drops d = {.netmap_fd = p ? p->fd : -1, .max = 256,
                              .records = (uintptr_t)rec};
    if (control(MS_VALE_DROPS, &d) < 0) {
        printf("drops %s errno %d\n", name, errno);
        return;
    }
    for (unsigned i = 0; i < d.count; i++) {
        printf("drop %s %llu %u %u ", name, (unsigned long long)rec[i].seq, rec[i].reason,
               rec[i].len);
        hex(rec[i].head, rec[i].len < MS_VALE_DROP_BYTES ? rec[i].len : MS_VALE_DROP_BYTES);
        printf("\n");
    }
    printf("drops %s %u\n", name, d.count);
}

static void cmd_send(const char *name, const char *hexframe)
{
    struct port *p = find(name);
    struct netmap_ring *r = p ? NETMAP_TXRING(p->nifp, 0) : NULL;
    if (!r || nm_ring_space(r) == 0) {
        printf("send %s full\n", name);
        return;
    }
    struct netmap_slot *s = &r->slot[r->cur];
    s->len = (uint16_t)unhex(hexframe, (uint8_t *)NETMAP_BUF(r, s->buf_idx), r->nr_buf_size);
    r->head = r->cur = nm_ring_next(r, r->cur);
    ioctl(p->fd, NIOCTXSYNC, NULL);
    printf("send %s ok\n", name);
}

static void cmd_recv(const char *name)
{
    struct port *p = find(name);
    int n = 0;
    if (p) {
        ioctl(p->fd, NIOCRXSYNC, NULL);
        struct netmap_ring *r = NETMAP_RXRING(p->nifp, 0);
        while (!nm_ring_empty(r)) {
            struct netmap_slot *s = &r->slot[r->cur];
            printf("rx %s ", name);
            hex((const uint8_t *)NETMAP_BUF(r, s->buf_idx), s->len);
            printf("\n");
            r->head = r->cur = nm_ring_next(r, r->cur);
            n++;
        }
        ioctl(p->fd, NIOCRXSYNC, NULL);
    }
    printf("recv %s %d\n", name, n);
}

static void cmd_close(const char *name)
{
    struct port *p = find(name);
    if (p) {
        munmap(p->mem, p->memsize);
        close(p->fd);
        p->fd = 0;
    }
    printf("close %s\n", name);
}

static int packet_socket(const char *ifname)
{
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
                              .sll_ifindex = (int)if_nametoindex(ifname)};
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void cmd_capture(const char *ifname)
{
    for (int i = 0; i < MAX_SOCKS; i++)
        if (!caps[i].fd) {
            caps[i].fd = packet_socket(ifname);
            snprintf(caps[i].name, sizeof(caps[i].name), "%s", ifname);
            printf("capture %s %s\n", ifname, caps[i].fd < 0 ? "failed" : "ok");
            return;
        }
}

static void cmd_wire(const char *ifname)
{
    uint8_t buf[65536];
    int n = 0;
    for (int i = 0; i < MAX_SOCKS; i++) {
        if (caps[i].fd <= 0 || strcmp(caps[i].name, ifname))
            continue;
        struct sockaddr_ll from;
        socklen_t fl = sizeof(from);
        ssize_t len;
        while ((len = recvfrom(caps[i].fd, buf, sizeof(buf), 0, (struct sockaddr *)&from,
                               &fl)) > 0) {
            if (from.sll_pkttype == PACKET_OUTGOING)
                continue;        /* what this end sent, not what it received */
            printf("wire %s ", ifname);
            hex(buf, (unsigned)len);
            printf("\n");
            n++;
        }
    }
    printf("wire %s %d\n", ifname, n);
}

static void cmd_inject(const char *ifname, const char *hexframe)
{
    uint8_t buf[9000];
    int n = unhex(hexframe, buf, sizeof(buf));
    int fd = packet_socket(ifname);
    if (fd < 0 || send(fd, buf, (size_t)n, 0) != n)
        printf("inject %s errno %d\n", ifname, errno);
    else
        printf("inject %s ok\n", ifname);
    if (fd >= 0)
        close(fd);
}

static int inet_socket(int family, int type, const char *ip, int port, int *err)
{
    struct sockaddr_storage ss = {0};
    socklen_t len;
    int fd = socket(family == 4 ? AF_INET : AF_INET6, type | SOCK_NONBLOCK, 0);
    if (family == 4) {
        struct sockaddr_in *s = (struct sockaddr_in *)&ss;
        s->sin_family = AF_INET;
        s->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, ip, &s->sin_addr);
        len = sizeof(*s);
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
        s->sin6_family = AF_INET6;
        s->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, ip, &s->sin6_addr);
        len = sizeof(*s);
    }
    int one = 1;
    /* As servers set it: a reservation must hold against it. */
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    *err = 0;
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) < 0) {
        *err = errno;
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static void cmd_listen(int family, const char *ip, int port)
{
    int err;
    for (int i = 0; i < MAX_SOCKS; i++)
        if (!listeners[i].fd) {
            listeners[i].fd = inet_socket(family, SOCK_DGRAM, ip, port, &err);
            snprintf(listeners[i].ip, sizeof(listeners[i].ip), "%s", ip);
            listeners[i].port = port;
            printf("listen %s %d errno %d\n", ip, port, err);
            return;
        }
}

static void cmd_heard(void)
{
    char buf[65536];
    for (int i = 0; i < MAX_SOCKS; i++) {
        ssize_t n;
        while (listeners[i].fd > 0 && (n = recv(listeners[i].fd, buf, sizeof(buf), 0)) >= 0)
            printf("heard %s %d %zd\n", listeners[i].ip, listeners[i].port, n);
    }
    printf("heard done\n");
}

static void cmd_hostbind(int family, const char *proto, const char *ip, int port)
{
    int err, fd = inet_socket(family, strcmp(proto, "tcp") ? SOCK_DGRAM : SOCK_STREAM, ip,
                              port, &err);
    if (fd >= 0)
        close(fd);
    printf("hostbind %s %s %d errno %d\n", proto, ip, port, err);
}

static void cmd_cat(const char *path)
{
    char l[512];
    FILE *f = fopen(path, "r");
    while (f && fgets(l, sizeof(l), f))
        printf("cat %s", l);
    if (f)
        fclose(f);
    printf("cat end %d\n", f ? 0 : errno);
}

int main(void)
{
    char line[20000];
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof(line), stdin)) {
        char a[64] = "", b[64] = "", c[64] = "", *rest = NULL;
        int x = 0, y = 0, z = 0;
        line[strcspn(line, "\r\n")] = 0;
        if (sscanf(line, "open %63s @%63s", a, b) == 2) {
            struct port *p = find(b);
            cmd_open(a, p ? (int)p->mem_id : -1);
        } else if (sscanf(line, "open %63s %d", a, &x) >= 1)
            cmd_open(a, x);
        else if (sscanf(line, "bind %63s %d %63s %d %d", a, &x, b, &y, &z) == 5) {
            struct port *p = find(a);
            cmd_bind(MS_VALE_BIND, "bind", p ? p->fd : -1, a, x, b, y, z);
        } else if (sscanf(line, "unbind %63s %d %63s %d %d", a, &x, b, &y, &z) == 5) {
            struct port *p = find(a);
            cmd_bind(MS_VALE_UNBIND, "unbind", p ? p->fd : -1, a, x, b, y, z);
        } else if (sscanf(line, "bindfd %63s %d %63s %d %d", a, &x, b, &y, &z) == 5)
            cmd_bind(MS_VALE_BIND, "bindfd", atoi(a), a, x, b, y, z);
        else if (sscanf(line, "stats %63s", a) == 1)
            cmd_stats(a);
        else if (sscanf(line, "drops %63s", a) == 1)
            cmd_drops(a);
        else if (sscanf(line, "send %63s", a) == 1 && (rest = strrchr(line, ' ')))
            cmd_send(a, rest + 1);
        else if (sscanf(line, "recv %63s", a) == 1)
            cmd_recv(a);
        else if (sscanf(line, "close %63s", a) == 1)
            cmd_close(a);
        else if (sscanf(line, "capture %63s", a) == 1)
            cmd_capture(a);
        else if (sscanf(line, "wire %63s", a) == 1)
            cmd_wire(a);
        else if (sscanf(line, "inject %63s", a) == 1 && (rest = strrchr(line, ' ')))
            cmd_inject(a, rest + 1);
        else if (sscanf(line, "listen %d %63s %d", &x, a, &y) == 3)
            cmd_listen(x, a, y);
        else if (!strcmp(line, "heard"))
            cmd_heard();
        else if (sscanf(line, "hostbind %d %63s %63s %d", &x, c, a, &y) == 4)
            cmd_hostbind(x, c, a, y);
        else if (sscanf(line, "drop %d", &x) == 1)
            printf("drop %d errno %d\n", x, setresuid((uid_t)x, (uid_t)x, (uid_t)x) ? errno : 0);
        else if (sscanf(line, "cat %63s", a) == 1)
            cmd_cat(a);
        else if (!strncmp(line, "mark ", 5))
            printf("=== %s\n", line + 5);
        else if (!strncmp(line, "sh ", 3))
            printf("sh %d\n", system(line + 3));
        else if (sscanf(line, "sleep %d", &x) == 1) {
            struct timespec ts = {x / 1000, (x % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        } else if (*line)
            printf("unknown %s\n", line);
    }
    return 0;
}
