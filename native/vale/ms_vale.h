/* The VALE module's state, shared by its forwarding half (ms_vale.c: the lookup netmap calls
 * for every frame, and the module's life) and its control half (ms_vale_ctl.c: the device
 * that binds, the kernel-socket reservations, the counters' and drop log's files), as netmap
 * splits netmap_vale.c from netmap_bdg.c.
 *
 * Locking, which netmap decides for us:
 *   - the lookup runs under the bridge's lock held for reading, on several CPUs at once (one
 *     per sending port's ring), in process or softirq context;
 *   - the control half changes the bindings table only inside netmap_bdg_update_private_data()
 *     (netmap's global lock and the bridge's lock held for writing), and netmap calls the
 *     port destructor with both held, so the table needs no lock of its own;
 *   - the fragment table and the drop log are written by the lookup itself: each has a
 *     spinlock, taken only by fragments and by drops. */
#ifndef MS_VALE_INTERNAL_H
#define MS_VALE_INTERNAL_H

#include <bsd_glue.h>
#include <net/netmap.h>
#include <dev/netmap/netmap_kern.h>
#include <dev/netmap/netmap_bdg.h>

#include <linux/atomic.h>
#include <linux/list.h>
#include <linux/spinlock.h>

#include "filter.h"
#include "ministack_vale.h"

#define MS_VALE_LOG_SLOTS 256      /* recent drops kept, a power of two */
#define MS_VALE_LOG_BYTES MS_VALE_DROP_BYTES
static_assert(MS_R_COUNT <= MS_VALE_REASONS, "ministack_vale.h has no room for the reasons");

struct ms_vale_drop {
    u64 seq;
    s64 time_ns;                   /* ktime_get_real_ns() */
    u16 port;
    char name[NETMAP_REQ_IFNAMSIZ];  /* the port's, as it was opened (valems:NAME) */
    u8 reason;
    u16 len;                       /* the frame's length; head holds min(len, LOG_BYTES) */
    u8 head[MS_VALE_LOG_BYTES];
};

struct ms_vale {
    void *auth;                    /* netmap's token for our exclusive switch */
    struct nm_bridge *bdg;         /* learned from the first port seen (for cleanup) */
    struct ms_table *table;        /* owners are VALE port indices */
    struct ms_frags *frags;
    spinlock_t frags_lock;
    uint8_t mac[6];                /* the NIC's: the only source MAC ports may use */
    uint32_t mtu;
    struct net *net;               /* where the host's addresses and reservations are */
    char nic[IFNAMSIZ];            /* "" when no NIC is attached */
    struct netmap_vp_adapter *nic_vp, *host_vp;
    struct list_head reserved;     /* struct ms_vale_reservation; netmap's locks */
    spinlock_t log_lock;
    u64 log_seq;
    struct ms_vale_drop log[MS_VALE_LOG_SLOTS];
    u64 port_since[NM_BDG_MAXPORTS];  /* the first log seq the index's current port owns */
    /* Per VALE port and reason (MS_R_OK: forwarded). */
    atomic64_t verdicts[NM_BDG_MAXPORTS][MS_R_COUNT];
    atomic64_t tx_bytes[NM_BDG_MAXPORTS];   /* of the frames forwarded */
    /* What the lookup sent to the port (from the NIC, or another port's hairpin): a frame
     * VALE then finds no room for in the port's ring is lost there, as on any VALE port. */
    atomic64_t rx_frames[NM_BDG_MAXPORTS], rx_bytes[NM_BDG_MAXPORTS];
    atomic64_t local_bytes[NM_BDG_MAXPORTS];
    /* What came from the NIC, and what of it went to ports rather than the host stack. */
    atomic64_t nic_rx_frames, nic_rx_bytes, kept_frames, kept_bytes;
    struct net_device *dev;        /* the NIC (held), whose neighbours answer ports */
    /* Answers to each port's solicitations, until its library takes them (ANSWERS). */
    spinlock_t answer_lock;
    struct ms_vale_answer_queue {
        u8 count;
        u16 len[MS_VALE_ANSWER_SLOTS];
        u8 frames[MS_VALE_ANSWER_SLOTS][MS_VALE_ANSWER_BYTES];
    } answers[NM_BDG_MAXPORTS];
    atomic64_t answered[NM_BDG_MAXPORTS];
};

/* ms_vale.c */
int ms_vale_is_host_address(const struct ms_vale *v, int family, const uint8_t *ip);
void ms_vale_port_gone(struct ms_vale *v, int port);   /* netmap's locks held */
int ms_vale_take_answers(struct ms_vale *v, int port, struct ms_vale_answers *a);

/* ms_vale_ctl.c */
int ms_vale_ctl_init(struct ms_vale *v);
void ms_vale_ctl_exit(struct ms_vale *v);
void ms_vale_release_port(struct ms_vale *v, int port);  /* its reservations */

#endif
