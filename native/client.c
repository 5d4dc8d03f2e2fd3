/* The C client of the control protocol (docs/protocol.md): just enough to attach to ports.
 * Requests are written with snprintf; replies are read with a small field extractor that
 * expects the daemon's own JSON (strings escaped by Python's json module). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ministack_app.h"

#define MAX_MSG 65536

struct ms_client {
    int fd;
    uint8_t mac[6];
    unsigned long next_id;
    char buf[MAX_MSG + 1];
};

static void say(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL); /* a gone daemon is an error, not a signal */
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read exactly n bytes, collecting descriptors passed along the way. */
static int read_all(int fd, char *p, size_t n, int *fds, int *nfds, int maxfds)
{
    while (n) {
        char cbuf[CMSG_SPACE(sizeof(int) * 4)];
        struct iovec iov = {.iov_base = p, .iov_len = n};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                            .msg_controllen = sizeof(cbuf)};
        ssize_t r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                continue;
            int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            int *got = (int *)CMSG_DATA(cm);
            for (int i = 0; i < k; i++) {
                if (*nfds < maxfds)
                    fds[(*nfds)++] = got[i];
                else
                    close(got[i]);
            }
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* One request, one reply (in c->buf); descriptors that came with it in fds. */
static int call(ms_client *c, const char *body, int *fds, int *nfds, int maxfds, char *err,
                size_t errlen)
{
    uint32_t len = htonl((uint32_t)strlen(body));
    *nfds = 0;
    /* A daemon that does not admit a connection answers at once and hangs up: the request
     * may fail to go out while that answer waits to be read. */
    int sent = write_all(c->fd, &len, 4) == 0 && write_all(c->fd, body, strlen(body)) == 0;
    int e = errno;
    if (read_all(c->fd, (char *)&len, 4, fds, nfds, maxfds) < 0) {
        say(err, errlen, "lost the ministack daemon: %s", strerror(sent ? errno : e));
        return -1;
    }
    uint32_t n = ntohl(len);
    if (n < 1 || n > MAX_MSG || read_all(c->fd, c->buf, n, fds, nfds, maxfds) < 0) {
        say(err, errlen, "the daemon sent a malformed reply");
        return -1;
    }
    c->buf[n] = 0;
    return 0;
}

/* The string value of "key" in the reply, unescaped only for \" and \\. */
static int field(const char *json, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\": \"", key);
    const char *p = strstr(json, pat);
    if (!p || !cap)
        return -1;
    p += strlen(pat);
    size_t i = 0;
    while (*p && *p != '"' && i + 1 < cap) {
        if (*p == '\\' && p[1])
            p++;
        out[i++] = *p++;
    }
    out[i] = 0;
    return 0;
}

static int failed(ms_client *c, char *err, size_t errlen)
{
    if (strstr(c->buf, "\"ok\": true"))
        return 0;
    char reason[64] = "", msg[512] = "request refused";
    field(c->buf, "reason", reason, sizeof(reason));
    field(c->buf, "message", msg, sizeof(msg));
    if (reason[0])
        say(err, errlen, "%s: %s", reason, msg);
    else
        say(err, errlen, "%s", msg);
    return 1;
}

/* Names and addresses go into JSON strings: allow only what needs no escaping. */
static int plain(const char *s)
{
    for (; *s; s++)
        if (!(*s == '-' || *s == '_' || *s == '.' || *s == ':' || (*s >= '0' && *s <= '9') ||
              (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
            return 0;
    return 1;
}

ms_client *ms_client_connect(const char *path, char *err, size_t errlen)
{
    ms_client *c = calloc(1, sizeof(*c));
    if (!c) {
        say(err, errlen, "out of memory");
        return NULL;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        say(err, errlen, "cannot reach the ministack daemon at %s: %s; is 'ministack daemon' "
            "running?", path, strerror(errno));
        ms_client_close(c);
        return NULL;
    }
    int fds[4], nfds;
    char mac[32];
    unsigned m[6];
    if (call(c, "{\"v\": 1, \"id\": 0, \"op\": \"hello\"}", fds, &nfds, 4, err, errlen) < 0 ||
        failed(c, err, errlen) || field(c->buf, "mac", mac, sizeof(mac)) < 0 ||
        sscanf(mac, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6) {
        if (!err[0])
            say(err, errlen, "the daemon did not say hello");
        ms_client_close(c);
        return NULL;
    }
    for (int i = 0; i < 6; i++)
        c->mac[i] = (uint8_t)m[i];
    return c;
}

void ms_client_close(ms_client *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

const uint8_t *ms_client_mac(ms_client *c) { return c->mac; }

ms_app *ms_client_port(ms_client *c, const char *name, uint32_t mtu, char *err, size_t errlen)
{
    if (!plain(name)) {
        say(err, errlen, "port name %s: use letters, digits, '-', '_', '.'", name);
        return NULL;
    }
    char req[256];
    char mtus[16] = "null";
    if (mtu)
        snprintf(mtus, sizeof(mtus), "%u", mtu);
    snprintf(req, sizeof(req), "{\"v\": 1, \"id\": %lu, \"op\": \"port\", \"name\": \"%s\", "
             "\"mtu\": %s}", ++c->next_id, name, mtus);
    int fds[4], nfds = 0;
    ms_app *a = NULL;
    if (call(c, req, fds, &nfds, 4, err, errlen) == 0 && !failed(c, err, errlen)) {
        if (nfds == 3)
            a = ms_app_open(fds[0], fds[1], fds[2]);
        if (!a)
            say(err, errlen, "could not map the memory of port %s", name);
    }
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    return a;
}

int ms_client_bind(ms_client *c, const char *port, const char *ip, const char *protocol,
                   int l4port, char *err, size_t errlen)
{
    if (!plain(port) || !plain(ip) || !plain(protocol)) {
        say(err, errlen, "port, address and protocol must be plain names or numbers");
        return -1;
    }
    char req[512];
    snprintf(req, sizeof(req), "{\"v\": 1, \"id\": %lu, \"op\": \"bind\", \"port\": \"%s\", "
             "\"ip\": \"%s\", \"protocol\": \"%s\", \"local_port\": %d}", ++c->next_id, port, ip,
             protocol, l4port);
    int fds[4], nfds;
    if (call(c, req, fds, &nfds, 4, err, errlen) < 0)
        return -1;
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    return failed(c, err, errlen) ? -1 : 0;
}
