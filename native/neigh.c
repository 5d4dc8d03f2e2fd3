/* Neighbour tables: the virtual NIC's own, or the kernel's over rtnetlink (neigh.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "neigh.h"

struct neigh_entry {
    uint8_t family;
    uint8_t ip[16];
    uint8_t mac[6];
};

struct ms_neigh {
    int nlfd;           /* -1: a static table */
    unsigned ifindex;
    char ifname[IF_NAMESIZE];
    uint32_t seq;
    uint32_t n;
    struct neigh_entry e[MS_NEIGH_STATIC_MAX];
};

struct ms_neigh *ms_neigh_new_static(void)
{
    struct ms_neigh *n = calloc(1, sizeof(*n));
    if (n)
        n->nlfd = -1;
    return n;
}

struct ms_neigh *ms_neigh_new_kernel(const char *ifname, char *err, size_t errlen)
{
    struct ms_neigh *n = calloc(1, sizeof(*n));
    if (!n) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    n->ifindex = if_nametoindex(ifname);
    snprintf(n->ifname, sizeof(n->ifname), "%s", ifname);
    n->nlfd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    /* The kernel answers within our sendmsg(); the timeout only bounds a surprise. */
    struct timeval tv = {0, 50000};
    if (n->nlfd < 0 || setsockopt(n->nlfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
        snprintf(err, errlen, "could not open rtnetlink for the neighbour table: %s",
                 strerror(errno));
        ms_neigh_free(n);
        return NULL;
    }
    return n;
}

void ms_neigh_free(struct ms_neigh *n)
{
    if (!n)
        return;
    if (n->nlfd >= 0)
        close(n->nlfd);
    free(n);
}

static unsigned iplen(int family) { return family == 4 ? 4 : 16; }

static struct neigh_entry *find(struct ms_neigh *n, int family, const uint8_t *ip)
{
    for (uint32_t i = 0; i < n->n; i++)
        if (n->e[i].family == family && memcmp(n->e[i].ip, ip, iplen(family)) == 0)
            return &n->e[i];
    return NULL;
}

int ms_neigh_set(struct ms_neigh *n, int family, const uint8_t *ip, const uint8_t *mac)
{
    if (n->nlfd >= 0 || (family != 4 && family != 6))
        return -EINVAL;
    struct neigh_entry *e = find(n, family, ip);
    if (!mac) {
        if (e)
            *e = n->e[--n->n];
        return 0;
    }
    if (!e) {
        if (n->n == MS_NEIGH_STATIC_MAX)
            return -ENOSPC;
        e = &n->e[n->n++];
        memset(e, 0, sizeof(*e));
        e->family = (uint8_t)family;
        memcpy(e->ip, ip, iplen(family));
    }
    memcpy(e->mac, mac, 6);
    return 0;
}

struct nd_req {
    struct nlmsghdr nh;
    struct ndmsg nd;
    struct rtattr dst_attr;
    uint8_t dst[16];
};

/* Ask the kernel for its entry of ip on our interface (RTM_GETNEIGH). */
static int nl_get(struct ms_neigh *n, int family, const uint8_t *ip)
{
    struct nd_req r;
    memset(&r, 0, sizeof(r));
    unsigned l = iplen(family);
    r.dst_attr.rta_type = NDA_DST;
    r.dst_attr.rta_len = (unsigned short)RTA_LENGTH(l);
    memcpy(r.dst, ip, l);
    r.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ndmsg)) + RTA_ALIGN(r.dst_attr.rta_len);
    r.nh.nlmsg_type = RTM_GETNEIGH;
    r.nh.nlmsg_flags = NLM_F_REQUEST;
    r.nh.nlmsg_seq = ++n->seq;
    r.nd.ndm_family = family == 4 ? AF_INET : AF_INET6;
    r.nd.ndm_ifindex = (int)n->ifindex;
    return send(n->nlfd, &r, r.nh.nlmsg_len, 0) < 0 ? -errno : 0;
}

/* The kernel's answer to our last request: 1 with mac when it holds a usable entry. */
static int nl_answer(struct ms_neigh *n, uint8_t mac[6])
{
    _Alignas(struct nlmsghdr) uint8_t buf[4096];
    for (;;) {
        ssize_t got = recv(n->nlfd, buf, sizeof(buf), 0);
        if (got <= 0)
            return 0;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)got);
             h = NLMSG_NEXT(h, got)) {
            if (h->nlmsg_seq != n->seq)
                continue; /* a late answer to an earlier request */
            if (h->nlmsg_type != RTM_NEWNEIGH)
                return 0; /* NLMSG_ERROR: no such entry */
            struct ndmsg *nd = NLMSG_DATA(h);
            if (!(nd->ndm_state & (NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE |
                                   NUD_PERMANENT | NUD_NOARP)))
                return 0;
            int alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*nd)));
            for (struct rtattr *a = (struct rtattr *)((uint8_t *)nd + NLMSG_ALIGN(sizeof(*nd)));
                 RTA_OK(a, alen); a = RTA_NEXT(a, alen))
                if (a->rta_type == NDA_LLADDR && RTA_PAYLOAD(a) == 6) {
                    memcpy(mac, RTA_DATA(a), 6);
                    return 1;
                }
            return 0;
        }
    }
}

/* An empty datagram to the neighbour's discard port: to send it the kernel must resolve
 * the neighbour, and does at once. */
static void provoke(struct ms_neigh *n, int family, const uint8_t *ip)
{
    int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    0);
    if (fd < 0)
        return;
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(9)};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(9)};
    memcpy(&a4.sin_addr, ip, 4);
    memcpy(&a6.sin6_addr, ip, 16);
    if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, n->ifname, (socklen_t)strlen(n->ifname)) == 0)
        (void)(family == 4 ? sendto(fd, "", 0, 0, (struct sockaddr *)&a4, sizeof(a4))
                           : sendto(fd, "", 0, 0, (struct sockaddr *)&a6, sizeof(a6)));
    close(fd);
}

int ms_neigh_lookup(struct ms_neigh *n, int family, const uint8_t *ip, uint8_t mac[6],
                    int resolve)
{
    if (n->nlfd < 0) {
        struct neigh_entry *e = find(n, family, ip);
        if (e)
            memcpy(mac, e->mac, 6);
        return e != NULL;
    }
    /* Leftovers (a late answer to an earlier request) would be read as this answer. */
    uint8_t junk[4096];
    while (recv(n->nlfd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
        ;
    if (nl_get(n, family, ip) == 0 && nl_answer(n, mac))
        return 1;
    if (resolve)
        provoke(n, family, ip);
    return 0;
}
