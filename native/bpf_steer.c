/* The steering program in the kernel (bpf_steer.h), and the AF_PACKET backend's use of it:
 * ms_tc at the interface's tc ingress hook. A packet socket sees every received frame
 * before that hook runs (Linux's receive path hands frames to taps first), so the switch
 * has each frame already when ms_tc drops a bound one; the host stack then never sees it,
 * and answers no bound flow with a RST or an ICMP unreachable. The rules are the XDP
 * program's, from the same source, so AF_PACKET and AF_XDP steer exactly alike.
 *
 * A tc filter is not tied to a file descriptor as an XDP link is: a switch that crashes
 * leaves it attached, dropping the flows it had bound, until the interface goes away or
 * the next switch on it replaces it (same handle and priority, BPF_TC_F_REPLACE). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/pkt_cls.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf_steer.h"
#include "ms_header_rules.h"
#include "nic.h"

/* Where the compiled program is, unless MINISTACK_STEER_OBJ says otherwise. The Makefile
 * passes the absolute build path; this default only serves a run from the repository root. */
#ifndef MS_STEER_OBJ_PATH
#define MS_STEER_OBJ_PATH "native/build/ministack_steer.bpf.o"
#endif

/* The key of ms_bindings; the layout is fixed by the program (struct ms_key there). */
struct steer_key {
    uint8_t family;
    uint8_t proto;
    uint16_t port;     /* network byte order */
    uint8_t ip[16];    /* IPv4 in ip[0..4), the rest zero */
};
_Static_assert(sizeof(struct steer_key) == 20, "ms_key in ministack_steer.bpf.c is 20 bytes");

void ms_bpf_say(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int ms_bpf_steer_load(struct ms_bpf_steer *s, const char *prog, char *err, size_t errlen)
{
    s->prog_fd = s->bindings_fd = s->to_host_fd = s->kept_fd = -1;
    const char *path = getenv("MINISTACK_STEER_OBJ");
    if (!path || !*path)
        path = MS_STEER_OBJ_PATH;
    s->obj = bpf_object__open_file(path, NULL);
    if (!s->obj) {
        int e = errno;
        ms_bpf_say(err, errlen,
                   "could not open the steering program %s: %s; build it (make -C native "
                   "build/ministack_steer.bpf.o) or point MINISTACK_STEER_OBJ at it",
                   path, strerror(e));
        return -e;
    }
    /* Load only the program this backend runs: the other one's attach type and helpers
     * need not be valid here. */
    struct bpf_program *p, *want = NULL;
    bpf_object__for_each_program(p, s->obj) {
        int mine = strcmp(bpf_program__name(p), prog) == 0;
        bpf_program__set_autoload(p, mine);
        if (mine)
            want = p;
    }
    if (!want) {
        ms_bpf_say(err, errlen, "the steering object %s has no %s program; rebuild it from "
                   "native/xdp/ministack_steer.bpf.c", path, prog);
        return -ENOENT;
    }
    int rc = bpf_object__load(s->obj);
    if (rc < 0) {
        int e = -rc;
        ms_bpf_say(err, errlen, "could not load the steering program %s (%s) into the kernel: %s%s",
                   path, prog, strerror(e),
                   e == EPERM || e == EACCES
                       ? "; run as root (loading BPF needs CAP_BPF or CAP_SYS_ADMIN)"
                       : "; libbpf printed the kernel's reason on stderr");
        return rc;
    }
    s->prog_fd = bpf_program__fd(want);
    s->bindings_fd = bpf_object__find_map_fd_by_name(s->obj, "ms_bindings");
    s->to_host_fd = bpf_object__find_map_fd_by_name(s->obj, "ms_to_host");
    s->kept_fd = bpf_object__find_map_fd_by_name(s->obj, "ms_kept");
    if (s->bindings_fd < 0 || s->kept_fd < 0) {
        ms_bpf_say(err, errlen, "the steering object %s has no ms_bindings or ms_kept map; rebuild "
                   "it from native/xdp/ministack_steer.bpf.c", path);
        return -ENOENT;
    }
    return 0;
}

int ms_bpf_steer_binding(struct ms_bpf_steer *s, int add, int family, int proto,
                         const uint8_t *ip, uint16_t port)
{
    struct steer_key key;
    memset(&key, 0, sizeof(key));
    if ((family != 4 && family != 6) || proto < 0 || proto > 255)
        return -EINVAL;
    key.family = (uint8_t)family;
    key.proto = (uint8_t)proto;
    key.port = htons(port);
    memcpy(key.ip, ip, family == 4 ? 4 : 16);
    uint32_t one = 1;
    int rc = add ? bpf_map_update_elem(s->bindings_fd, &key, &one, BPF_ANY)
                 : bpf_map_delete_elem(s->bindings_fd, &key);
    return rc < 0 ? -errno : 0;
}

int ms_bpf_steer_test(struct ms_bpf_steer *s, const uint8_t *frame, uint32_t len,
                      uint32_t take, uint32_t keep)
{
    /* No interface hands on less than an Ethernet header, and one with nothing after it
     * has no IP header a port could own (the kernel's skb test run refuses it). */
    if (len <= 14)
        return 0;
    /* No context: an XDP run sees receive queue 0, the one the AF_XDP socket is on.
     * (Naming the interface in a context makes Linux 6.1 run it where the XSK map lookup
     * fails.) */
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = len, .repeat = 1);
    int rc = bpf_prog_test_run_opts(s->prog_fd, &opts); /* libbpf: -errno */
    /* Linux (6.18 at least) will not build a test socket buffer whose IP header is cut
     * short; at the hook the program's first rule leaves such a frame to the kernel. */
    uint16_t type = (uint16_t)(frame[12] << 8 | frame[13]);
    if (rc == -EINVAL &&
        ((type == 0x0800 && ms_rule_ipv4_header(0, 0, len - 14) == MS_HDR_SHORT) ||
         (type == 0x86dd && ms_rule_ipv6_header(0, 0, len - 14) == MS_HDR_SHORT)))
        return 0;
    if (rc < 0)
        return rc;
    return opts.retval == take ? 1 : opts.retval == keep ? 0 : -EPROTO;
}

/* Control path: allocation is fine here. */
void ms_bpf_steer_count(int map_fd, uint64_t *frames, uint64_t *bytes)
{
    int ncpu = libbpf_num_possible_cpus();
    if (map_fd < 0 || ncpu <= 0)
        return;
    struct {
        uint64_t frames, bytes;
    } *v = calloc((size_t)ncpu, sizeof(*v));
    uint32_t zero = 0;
    if (v && bpf_map_lookup_elem(map_fd, &zero, v) == 0) {
        for (int i = 0; i < ncpu; i++) {
            *frames += v[i].frames;
            *bytes += v[i].bytes;
        }
    }
    free(v);
}

void ms_bpf_steer_close(struct ms_bpf_steer *s)
{
    if (s->obj)
        bpf_object__close(s->obj);
    s->obj = NULL;
}

/* --- tc ingress, for AF_PACKET ------------------------------------------------------- */

/* Ours among the interface's ingress filters (tc filter show dev IF ingress). */
#define TC_HANDLE 0x4d53 /* "MS" */
#define TC_PRIORITY 1

struct ms_ingress {
    struct ms_bpf_steer s;
    char ifname[IF_NAMESIZE];
    unsigned ifindex;
    int made_hook;      /* the clsact qdisc is ours: remove it on destroy */
    int attached;
};

/* libbpf prints the kernel's message for every failed netlink request; a clsact qdisc
 * that exists already (EEXIST), or a filter gone with its interface, is expected. */
static libbpf_print_fn_t quiet(void) { return libbpf_set_print(NULL); }

static void ingress_destroy(struct ms_ingress *g)
{
    if (!g)
        return;
    libbpf_print_fn_t loud = quiet();
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)g->ifindex,
                .attach_point = BPF_TC_INGRESS);
    if (g->attached) {
        LIBBPF_OPTS(bpf_tc_opts, opts, .handle = TC_HANDLE, .priority = TC_PRIORITY);
        (void)bpf_tc_detach(&hook, &opts); /* fails only if the interface is gone */
    }
    if (g->made_hook) {
        hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS; /* the qdisc itself */
        (void)bpf_tc_hook_destroy(&hook);
    }
    libbpf_set_print(loud);
    ms_bpf_steer_close(&g->s);
    free(g);
}

static struct ms_ingress *ingress_new(const char *ifname, char *err, size_t errlen)
{
    unsigned ifindex = ifname && strlen(ifname) < IF_NAMESIZE ? if_nametoindex(ifname) : 0;
    if (!ifindex) {
        ms_bpf_say(err, errlen, "there is no interface named %s here (ip link show lists them)",
                   ifname ? ifname : "");
        return NULL;
    }
    struct ms_ingress *g = calloc(1, sizeof(*g));
    if (!g) {
        ms_bpf_say(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(g->ifname, sizeof(g->ifname), "%s", ifname);
    g->ifindex = ifindex;
    if (ms_bpf_steer_load(&g->s, "ms_tc", err, errlen) < 0) {
        ingress_destroy(g);
        return NULL;
    }
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)ifindex, .attach_point = BPF_TC_INGRESS);
    libbpf_print_fn_t loud = quiet();
    int rc = bpf_tc_hook_create(&hook);
    libbpf_set_print(loud);
    if (rc < 0 && rc != -EEXIST) {
        ms_bpf_say(err, errlen, "could not add a clsact qdisc to %s for ingress steering: %s%s",
                   ifname, strerror(-rc), rc == -EPERM ? "; run as root (CAP_NET_ADMIN)" : "");
        ingress_destroy(g);
        return NULL;
    }
    g->made_hook = rc == 0;
    LIBBPF_OPTS(bpf_tc_opts, opts, .handle = TC_HANDLE, .priority = TC_PRIORITY,
                .prog_fd = g->s.prog_fd, .flags = BPF_TC_F_REPLACE);
    rc = bpf_tc_attach(&hook, &opts);
    if (rc < 0) {
        ms_bpf_say(err, errlen, "could not attach the steering program at %s's tc ingress: %s%s",
                   ifname, strerror(-rc), rc == -EPERM ? "; run as root (CAP_NET_ADMIN)" : "");
        ingress_destroy(g);
        return NULL;
    }
    g->attached = 1;
    return g;
}

static int ingress_binding(struct ms_ingress *g, int add, int family, int proto,
                           const uint8_t *ip, uint16_t port)
{
    return ms_bpf_steer_binding(&g->s, add, family, proto, ip, port);
}

/* 1: the host stack is kept from the frame (the switch has it), 0: it gets it too. */
static int ingress_steers(struct ms_ingress *g, const uint8_t *frame, uint32_t len)
{
    return ms_bpf_steer_test(&g->s, frame, len, TC_ACT_SHOT, TC_ACT_OK);
}

static void ingress_kept(struct ms_ingress *g, uint64_t *frames, uint64_t *bytes)
{
    ms_bpf_steer_count(g->s.kept_fd, frames, bytes);
}

/* The plugin's entry points (nic.h): the only symbol libms_bpf.so exports. */
__attribute__((visibility("default"))) const struct ms_bpf_plugin ms_bpf_plugin = {
    .afxdp_new = ms_afxdp_plugin_new,
    .ingress_new = ingress_new,
    .ingress_binding = ingress_binding,
    .ingress_steers = ingress_steers,
    .ingress_kept = ingress_kept,
    .ingress_destroy = ingress_destroy,
};
