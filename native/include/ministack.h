/* MiniStack public C API: the switch (control side) and a port's application side.
 *
 * This header is also the cffi declaration of the Python binding: ministack/_build.py
 * feeds it to cdef() after dropping preprocessor lines other than integer #defines and
 * writing out enum ms_reason from ms_reasons.h's rows, so it must stay plain C
 * declarations (no other macros with expressions, no inline code).
 */
#ifndef MINISTACK_H
#define MINISTACK_H

#include <stddef.h>
#include <stdint.h>

#include "ms_reasons.h"

#define MS_NAME_MAX 32
#define MS_MAX_PORTS 256
#define MS_MAX_ADDRS 64
#define MS_BATCH 256
#define MS_FRAMELOG_LEN 1024

/* Verdict reasons, one per row of ms_reasons.h: MS_R_OK, MS_R_MALFORMED, ... The TX
 * filter returns the first failing check in number order (DESIGN.md). */
enum ms_reason {
#define MS_REASON_ENUM(number, id, ...) MS_R_##id = number,
    MS_REASONS(MS_REASON_ENUM)
#undef MS_REASON_ENUM
    MS_R_COUNT
};

/* What a verdict is (ms_reason_kind). */
enum ms_reason_kind {
    MS_KIND_FORWARD = 0,
    MS_KIND_DROP = 1,
    MS_KIND_LOCAL = 2,
    MS_KIND_TO_HOST = 3,
    MS_KIND_RETIRED = 4
};

/* Where a drop is counted (ms_reason_counted); CHECK: a port's, by the TX filter. */
enum ms_reason_counted {
    MS_COUNTED_NONE = 0,
    MS_COUNTED_CHECK = 1,
    MS_COUNTED_PORT = 2,
    MS_COUNTED_NIC = 3,
    MS_COUNTED_BOTH = 4
};

/* What a neighbour-resolution frame is (struct ms_parsed.nd). */
enum ms_nd_kind {
    MS_ND_NONE = 0,
    MS_ND_ARP_REQUEST = 1,
    MS_ND_ARP_OTHER = 2,     /* a reply, or any other ARP operation */
    MS_ND_NS = 3,            /* IPv6 neighbour solicitation */
    MS_ND_NA = 4,
    MS_ND_RS = 5,            /* router solicitation */
    MS_ND_RA = 6,
    MS_ND_REDIRECT = 7,
    MS_ND_MLD = 8            /* MLD report or done */
};

/* Which piece of a datagram a frame is (struct ms_parsed.frag). */
enum ms_frag_kind {
    MS_FRAG_NONE = 0,
    MS_FRAG_FIRST = 1,       /* offset 0, more fragments follow */
    MS_FRAG_LATER = 2        /* offset above 0 */
};

/* Why bind() refused. */
enum ms_bind_result {
    MS_BIND_OK = 0,
    MS_BIND_ADDRESS_NOT_LOCAL = 1,
    MS_BIND_IN_USE = 2,
    MS_BIND_BAD_PROTOCOL = 3,
    MS_BIND_BAD_PORT = 4,
    MS_BIND_NOT_OWNER = 5,
    MS_BIND_NO_SPACE = 6,
    MS_BIND_NOT_PERMITTED = 7
};

/* Where explain() says a frame goes. */
enum ms_dest {
    MS_TO_NONE = 0,   /* dropped */
    MS_TO_WIRE = 1,   /* a port's frame that leaves through the NIC */
    MS_TO_PORT = 2,   /* delivered to port `to_port` (RX demux or hairpin) */
    MS_TO_HOST = 3    /* left to the host kernel stack (real NICs only) */
};

struct ms_config {
    uint8_t mac[6];
    uint32_t ring_slots;    /* per port ring, power of two; 0 = default 1024 */
    uint32_t buf_size;      /* bytes per slot buffer; 0 = default 2048 */
    uint32_t wire_slots;    /* virtual wire rings; 0 = default 4096 */
    uint32_t max_bindings;  /* 0 = default 16384 */
};

/* What the parser read from a frame, for explain() and tests. IPs are network order,
 * IPv4 in the first 4 bytes. */
struct ms_parsed {
    uint32_t len;
    uint32_t problems;      /* bit (1 << reason) for each structural problem found */
    uint16_t ethertype;
    uint8_t family;         /* 4, 6, or 0 when not IP */
    uint8_t proto;
    uint16_t sport, dport;  /* host order; the echo identifier for ICMP/ICMPv6 echo */
    uint8_t src_ip[16];
    uint8_t dst_ip[16];
    uint8_t src_mac[6];
    uint8_t dst_mac[6];
    uint8_t icmp_type;
    uint8_t has_ports;      /* 1 when sport/dport came from the L4 header */
    uint8_t nd;             /* enum ms_nd_kind; ARP: src_ip is the sender's IPv4 */
    uint8_t frag;           /* enum ms_frag_kind */
    uint16_t l4_off;        /* where the L4 header starts; 0 when not read */
    uint32_t l3_end;        /* end of the IP datagram (frames may carry padding after it) */
    /* The parser clears the 72 bytes above with one memset, all a plain frame needs; a
     * larger clear makes gcc use a string instruction (rep stos, 20 ns a frame). The
     * fields below are set only where they mean something: */
    const char *note;       /* problems != 0: static sentence on the first problem found */
    uint32_t frag_id;       /* frag != MS_FRAG_NONE: the IPv4 or IPv6 identification */
    /* nd != MS_ND_NONE: */
    uint8_t has_lladdr;
    uint8_t nd_lladdr[6];   /* ARP sender MAC, the solicitation's source link-layer option */
    uint8_t nd_target[16];  /* ARP target IP, neighbour solicitation's target */
};

/* Which fields of a frame's tuple differ from the nearest binding's (ms_table_nearest). */
enum ms_near_field {
    MS_NEAR_IP = 1,         /* the address (or its family) */
    MS_NEAR_PROTO = 2,
    MS_NEAR_PORT = 4
};

struct ms_binding_info {
    int port;
    uint8_t family;
    uint8_t proto;
    uint16_t l4port;
    uint8_t ip[16];
};

struct ms_verdict {
    int action;             /* 1 forward, 0 drop, 2 local (the switch handled it) */
    int reason;             /* enum ms_reason; MS_R_OK when forwarded */
    int dest;               /* enum ms_dest */
    int to_port;            /* port id when dest == MS_TO_PORT */
    uint8_t answer_mac[6];  /* local with an answer: the MAC the answer gives */
    /* A spoofed frame from a port, or one from the network no port bound: the binding it
     * came closest to (nearest), and the ms_near_field bits that differ (0: the very
     * tuple, held by another port); -1 when there is none to compare with. */
    int near;
    struct ms_binding_info nearest;
    struct ms_parsed parsed;
};

struct ms_counter {
    uint64_t frames;
    uint64_t bytes;
};

struct ms_port_stats {
    struct ms_counter tx;
    struct ms_counter rx;
    struct ms_counter local;    /* frames the switch handled itself (verdict local) */
    uint64_t answers;           /* ARP replies and neighbour advertisements it sent back */
    uint64_t drops[MS_R_COUNT]; /* indexed by enum ms_reason */
};

/* Fragments followed (both directions together). */
struct ms_frag_stats {
    uint64_t datagrams;     /* first fragments remembered */
    uint64_t followed;      /* later fragments sent where their first fragment went */
    uint64_t expired;       /* datagrams forgotten after the timeout */
    uint64_t evicted;       /* datagrams forgotten early: the table was full */
    uint32_t active;        /* datagrams remembered now */
    uint32_t capacity;
};

struct ms_nic_stats {
    struct ms_counter rx;
    struct ms_counter tx;
    struct ms_counter to_host;
    struct ms_counter kept;     /* taken from the host stack by the kernel's steering */
    uint64_t drops[MS_R_COUNT];
    uint64_t csum_completed;    /* partial checksums (NIC offload) completed before delivery */
    uint64_t segmented;         /* super-frames (GSO/GRO) cut to the port's MTU */
    struct ms_frag_stats frags;
};

/* A frame the switch recorded: a drop (ms_drops), or any frame of a tapped port (ms_tapped). */
struct ms_frame_record {
    uint64_t seq;           /* 1, 2, ... in the order they were recorded */
    int64_t time_ns;        /* CLOCK_REALTIME */
    int32_t port;           /* port id, -1 for the NIC */
    char port_name[32];
    /* Where a frame the port sent went ("nic": the wire, or the port it was delivered to),
     * or where a frame for the port came from ("nic", the sending port, "switch": an answer
     * the switch made); "host" for a frame from the network the host stack took; "" for a
     * frame that went nowhere (dropped, or handled by the switch: local). */
    char peer_name[32];
    uint8_t direction;      /* 0 tx (from a port), 1 rx (towards a port) */
    uint8_t reason;         /* MS_R_OK for a forwarded frame */
    uint32_t len;           /* frame length */
    uint32_t caplen;        /* bytes of the frame kept in `frame` */
    uint8_t frame[2048];
};

typedef struct ms_switch ms_switch;
typedef struct ms_app ms_app;

/* --- switch, control side (all thread-safe; they wait at most one switch round) --- */
int ms_switch_create(const struct ms_config *cfg, ms_switch **out);
int ms_switch_add_address(ms_switch *sw, int family, const uint8_t *ip);
int ms_switch_attach_virtual(ms_switch *sw);
/* The virtual NIC's neighbour table, which answers ports' ARP and neighbour solicitations
 * (a real interface answers from the kernel's): ip is at mac; mac NULL removes. 0, or
 * -EINVAL on a real interface, -ENOSPC when 256 neighbours are known. */
int ms_switch_add_neighbor(ms_switch *sw, int family, const uint8_t *ip, const uint8_t *mac);
/* The MAC of neighbour ip from the table the switch answers ports from: 1 and mac set when
 * known, 0 when not (with resolve set, a real interface's kernel is asked to resolve it:
 * look again shortly), -EINVAL for a bad family. */
int ms_switch_neighbor(ms_switch *sw, int family, const uint8_t *ip, uint8_t *mac, int resolve);
/* Attach to a real interface with backend "afxdp" or "afpacket"; on failure err says why. */
int ms_switch_attach(ms_switch *sw, const char *ifname, const char *backend, char *err,
                     size_t errlen);
const char *ms_switch_backend(ms_switch *sw);
/* Keep the switch thread on one CPU (0, or -errno). */
int ms_switch_pin(ms_switch *sw, int cpu);
/* 1 when the AF_XDP backend can be used here: it was built (libxdp, libbpf and clang were
 * there at install) and its libraries load now. Else 0, with why in `why` (when not NULL). */
int ms_afxdp_available(char *why, size_t whylen);
/* "native" or "generic" when attached with AF_XDP, else "". */
const char *ms_switch_xdp_mode(ms_switch *sw);
/* Whether the NIC's kernel side would take this frame from the network away from the host
 * stack for the switch (1) or leave it to the host stack (0): asked of the attached
 * steering program (AF_XDP's XDP program, AF_PACKET's at tc ingress) on a copy of the
 * frame; -ENOTSUP on the virtual NIC, or -errno. */
int ms_switch_kernel_steers(ms_switch *sw, const uint8_t *frame, uint32_t len);
/* The AF_PACKET backend's ingress steering on its own, without a switch (benchmarks'
 * bare baselines give a bare socket the kernel's help the switch gets): the steering
 * program at ifname's tc ingress, dropping before the host stack the frames of each
 * (family, proto, destination ip, port) added. NULL with err saying why, when it cannot
 * (root, the BPF plugin). ms_ingress_binding returns 0 or -errno. */
struct ms_ingress;
struct ms_ingress *ms_ingress_new(const char *ifname, char *err, size_t errlen);
int ms_ingress_binding(struct ms_ingress *g, int add, int family, int proto,
                       const uint8_t *ip, uint16_t port);
void ms_ingress_destroy(struct ms_ingress *g);
int ms_switch_start(ms_switch *sw);
/* One round of the forwarding loop on the calling thread, for a switch never started
 * (benchmarks that measure the loop on one core): the frames it handled, -EBUSY when the
 * switch's own thread runs, -EINVAL with no NIC attached. */
int ms_switch_poll(ms_switch *sw);
void ms_switch_destroy(ms_switch *sw);
/* Wait until every frame queued so far by ports and the wire has been handled (timeout_ms
 * -1: no limit). 0, or -ETIMEDOUT. */
int ms_switch_sync(ms_switch *sw, int timeout_ms);
uint32_t ms_switch_buf_size(ms_switch *sw);

int ms_port_create(ms_switch *sw, const char *name, uint32_t mtu);
int ms_port_destroy(ms_switch *sw, int port);
int ms_port_memfd(ms_switch *sw, int port);
/* The three descriptors an application needs to attach to port (still owned by the
 * switch: duplicate them, e.g. by passing them over a UNIX socket). */
int ms_port_fds(ms_switch *sw, int port, int *memfd, int *doorbell, int *wake_fd);

/* privileged_below: as Linux's bind(), a TCP, UDP, SCTP, DCCP or UDP-Lite port below it is
 * refused (MS_BIND_NOT_PERMITTED) after the address and tuple checks and before in-use. The
 * caller passes net.ipv4.ip_unprivileged_port_start for a binder without
 * CAP_NET_BIND_SERVICE, 0 for one that has it. */
int ms_bind(ms_switch *sw, int port, int family, const uint8_t *ip, int proto, int l4port,
            int privileged_below);
int ms_unbind(ms_switch *sw, int port, int family, const uint8_t *ip, int proto, int l4port);
int ms_bindings(ms_switch *sw, struct ms_binding_info *out, int max);

int ms_explain(ms_switch *sw, int port, const uint8_t *frame, uint32_t len, struct ms_verdict *v);
/* A verdict number's name, its sentence (docs/reasons.md), its kind (enum
 * ms_reason_kind) and where it is counted (enum ms_reason_counted); -1 for a number that
 * is none. */
const char *ms_reason_name(int reason);
const char *ms_reason_sentence(int reason);
/* explain()'s template for one frame with this verdict, sent by a port (rx 0) or from the
 * network (rx 1): ms_reasons.h says which {fields} it names; "" where it cannot happen. */
const char *ms_reason_detail(int reason, int rx);
int ms_reason_kind(int reason);
const char *ms_reason_kind_name(int kind);   /* "forward", "drop", ... */
int ms_reason_counted(int reason);

int ms_port_stats(ms_switch *sw, int port, struct ms_port_stats *out);
int ms_nic_stats(ms_switch *sw, struct ms_nic_stats *out);
int ms_drops(ms_switch *sw, struct ms_frame_record *out, int max);

/* Taps (`ministack capture`): while a port, the NIC (MS_TAP_NIC) or every port and the NIC
 * (MS_TAP_ALL) is tapped, the switch also records every frame it handles for it, with its
 * verdict, in a second log of MS_FRAMELOG_LEN frames. ms_tap_open returns a tap id (or
 * -ENOENT for no such port, -ENOSPC when MS_MAX_TAPS are open) and sets *seq to the seq of
 * the last frame recorded before it (read from there); a port's taps end with it.
 * ms_tapped reads the records after seq `since`, oldest first: a reader that finds the
 * first one's seq above since + 1 was too slow and lost the frames between. */
#define MS_MAX_TAPS 64
enum { MS_TAP_NIC = -1, MS_TAP_ALL = -2 };
int ms_tap_open(ms_switch *sw, int target, uint64_t *seq);
int ms_tap_close(ms_switch *sw, int tap);
int ms_tapped(ms_switch *sw, uint64_t since, struct ms_frame_record *out, int max);

/* --- application side of a port (or of the virtual wire's far end) --- */
ms_app *ms_app_open(int memfd, int doorbell_fd, int wake_fd);
ms_app *ms_switch_app(ms_switch *sw, int port);    /* in-process handle for port */
ms_app *ms_switch_wire(ms_switch *sw);             /* far end of the virtual wire */
/* A port of the VALE module's switch: netmap_fd is /dev/netmap registered on valems:NAME
 * (ms_vale_open_port, or one the daemon sent), memsize and offset what registering it
 * answered (nr_memsize, nr_offset). The descriptor is duplicated. NULL with errno set;
 * ENOTSUP when this library was built without netmap (ms_vale_built says so). */
ms_app *ms_app_open_netmap(int netmap_fd, uint64_t memsize, uint32_t offset);
int ms_vale_open_port(const char *name, int *netmap_fd, uint64_t *memsize, uint32_t *offset);
int ms_vale_built(char *why, size_t len);   /* 1, or 0 and why not */
/* Attach (detach: attach 0) interface IF to a plain VALE switch, as `vale-ctl -a SW:IF`
 * does (name "SW:IF"; the NIC only, not its host stack): the benchmark's baseline, netmap's
 * own learning bridge. 0 or -errno. */
int ms_vale_attach(const char *name, int attach);
void ms_app_close(ms_app *a);
/* Wake any thread waiting in ms_app_send/recv on a and make it return; call before close
 * when another thread may be waiting. */
void ms_app_interrupt(ms_app *a);
uint32_t ms_app_buf_size(ms_app *a);
uint32_t ms_app_slots(ms_app *a);
/* Queue n frames packed back to back in data with their lengths; waits up to timeout_ms
 * (-1 forever) for ring space. Returns frames queued, or -errno. */
int ms_app_send(ms_app *a, const uint8_t *data, const uint32_t *lens, uint32_t n, int timeout_ms);
/* Take up to max frames into out (max * buf_size bytes), lengths into lens; waits up to
 * timeout_ms for the first. Returns frames taken. */
int ms_app_recv(ms_app *a, uint8_t *out, uint32_t *lens, uint32_t max, int timeout_ms);

/* For an application that waits on the port and other descriptors at once: poll
 * ms_app_wake_fd() after ms_app_arm() returned 0 (1: what was asked for is there already,
 * do not sleep). rx: wake when frames arrive; tx: wake when the TX ring has room. */
int ms_app_wake_fd(ms_app *a);
int ms_app_arm(ms_app *a, int rx, int tx);

/* A TAP-like descriptor for a port: each read() of it returns one frame the port received,
 * each write() sends one frame through the filter; pollable. A thread of the calling
 * process moves the frames between the descriptor and the port's rings, so while it is
 * open the port's received frames go to it, not to ms_app_recv. ms_framefd_fd() is the
 * descriptor (duplicate it to keep it); after ms_framefd_close() reads return 0 (end of
 * file) and writes fail with EPIPE, as a TAP device whose interface went away. */
typedef struct ms_framefd ms_framefd;
ms_framefd *ms_framefd_open(ms_app *a);
int ms_framefd_fd(ms_framefd *f);
void ms_framefd_close(ms_framefd *f);


#endif
