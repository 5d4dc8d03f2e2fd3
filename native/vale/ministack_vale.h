/* The VALE module's user interface: the switch's name, its control device and the ioctls on
 * it. Shared by ministack_vale.ko, the tools that drive it and the Python binding.
 *
 * A process proves it holds a port by passing the port's own netmap file descriptor: the
 * module binds on the VALE port that descriptor is registered on, and on no other, so a
 * process can bind only on ports it opened or was handed (by the daemon, say), whoever it
 * runs as. Results are the user-space switch's enum ms_bind_result, so both switches refuse
 * a binding with the same words. */
#ifndef MINISTACK_VALE_H
#define MINISTACK_VALE_H

#ifdef __KERNEL__
#include <linux/ioctl.h>
#include <linux/types.h>
#else
#include <stdint.h>
#include <sys/ioctl.h>
#endif

#define MS_VALE_SWITCH "valems:"             /* ports are valems:NAME */
#define MS_VALE_DEVICE "/dev/ministack_vale"

struct ms_vale_bind {
    int32_t netmap_fd;   /* in: /dev/netmap, registered on a port of valems: */
    uint8_t family;      /* in: 4 or 6 */
    uint8_t proto;       /* in: IP protocol number */
    uint16_t port;       /* in: host byte order; 0 for port-less protocols */
    uint8_t ip[16];      /* in: the first 4 bytes for IPv4 */
    int32_t result;      /* out: enum ms_bind_result (MS_BIND_OK, MS_BIND_IN_USE, ...) */
    int32_t port_index;  /* out: the VALE port the descriptor is on */
};

/* Every ioctl answers -1 with errno EBADF (not a descriptor), ENOTTY (not netmap's) or
 * EINVAL (not registered on a port of valems:, or on its NIC or host port). BIND and UNBIND
 * answer 0 with .result set; BIND also EXDEV when another port shares this one's packet
 * memory (it was opened with that port's nr_mem_id, or another with this one's), and
 * UNBIND ENOENT when the tuple is bound by nobody. */
#define MS_VALE_BIND _IOWR('M', 1, struct ms_vale_bind)
#define MS_VALE_UNBIND _IOWR('M', 2, struct ms_vale_bind)

#define MS_VALE_REASONS 16           /* room for enum ms_reason */

/* The verdicts on what the descriptor's port sent since it was opened, and the switch's
 * counters; netmap_fd -1 asks for the switch's alone (port_index -1, the rest 0). */
struct ms_vale_stats {
    int32_t netmap_fd;               /* in */
    int32_t port_index;              /* out */
    uint64_t frames[MS_VALE_REASONS];/* out: by enum ms_reason; [MS_R_OK] forwarded */
    uint64_t tx_bytes;               /* out: of the frames forwarded */
    uint64_t rx_frames, rx_bytes;    /* out: what the switch sent to this port */
    uint64_t local_bytes;            /* out: of the frames [MS_R_LOCAL] counts */
    /* out, the switch's, as Switch.stats()["nic"] shows them: what came from the NIC and
     * what of it went to ports (kept from the host stack); what went to the NIC (from
     * ports and the host stack) and to the host stack (from the NIC and ports) */
    uint64_t nic_rx_frames, nic_rx_bytes, kept_frames, kept_bytes;
    uint64_t nic_tx_frames, nic_tx_bytes, to_host_frames, to_host_bytes;
    uint64_t answers;                /* out: solicitations of this port answered */
};
#define MS_VALE_STATS _IOWR('M', 3, struct ms_vale_stats)

#define MS_VALE_DROP_BYTES 128

struct ms_vale_drop_record {
    uint64_t seq;
    int64_t time_ns;                 /* CLOCK_REALTIME */
    uint16_t len;                    /* the frame's; head holds min(len, DROP_BYTES) */
    uint8_t reason;                  /* enum ms_reason */
    uint8_t pad[5];
    uint8_t head[MS_VALE_DROP_BYTES];
};

/* The descriptor's port's recent drops (the module keeps the last 256 of all ports), the
 * oldest first, from sequence number `after` on: a port sees its own frames only. */
struct ms_vale_drops {
    int32_t netmap_fd;               /* in */
    uint32_t max;                    /* in: room at records */
    uint64_t after;                  /* in: 0, then the last answer's next */
    uint64_t records;                /* in: a struct ms_vale_drop_record array's address */
    uint32_t count;                  /* out: records written */
    uint32_t pad;
    uint64_t next;                   /* out */
};
#define MS_VALE_DROPS _IOWR('M', 4, struct ms_vale_drops)

#define MS_VALE_ANSWER_SLOTS 4
#define MS_VALE_ANSWER_BYTES 96

/* The answers the switch made to the descriptor's port's neighbour solicitations (ARP
 * requests, neighbour solicitations: verdict local) since the last call, oldest first, and
 * taken: a VALE lookup can only choose where a frame goes, so the module keeps them and the
 * port's library (native/app_netmap.c) delivers them before its ring. At most
 * MS_VALE_ANSWER_SLOTS wait; later ones are not made until these are taken. */
struct ms_vale_answers {
    int32_t netmap_fd;               /* in */
    uint32_t count;                  /* out */
    uint16_t len[MS_VALE_ANSWER_SLOTS];
    uint8_t frames[MS_VALE_ANSWER_SLOTS][MS_VALE_ANSWER_BYTES];
};
#define MS_VALE_ANSWERS _IOWR('M', 5, struct ms_vale_answers)

#endif
