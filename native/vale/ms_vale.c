/* MiniStack as a VALE extension, as the MiniStack poster and MultiStack built it: a kernel
 * module that creates a VALE switch in exclusive mode, attaches a NIC and its host stack to
 * it, and plugs into it a lookup function that runs the user-space switch's own parser and
 * filter (parse.c, filter.c, table.c and frag.c, compiled into this module unchanged; see
 * Kbuild). This file is the forwarding half: where each frame goes. ms_vale_ctl.c is the
 * control half: the device that binds, and the files that show counters and drops.
 *
 * Where frames go:
 *   - from a port (valems:NAME): the filter's verdict in DESIGN's order; a frame that passes
 *     goes to the port that bound its destination (hairpin), else to the host stack when it
 *     is for one of the host's addresses, else to the NIC;
 *   - from the NIC: to the port that bound (protocol, destination IP, destination port),
 *     a later fragment to where its first went, everything else to the host stack;
 *   - from the host stack: to the NIC, unfiltered (the kernel is not an application).
 * A port's neighbour solicitation (verdict "local") goes nowhere: the switch answers it,
 * as the user-space switch does (answer.c, with the host's own MAC for a host address and
 * the kernel's neighbour table of the NIC for the rest), but a lookup can only choose a
 * destination, so the answer waits for the port's library to take it (MS_VALE_ANSWERS). */
#include <linux/etherdevice.h>
#include <linux/inetdevice.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/netdevice.h>
#include <net/addrconf.h>
#include <net/arp.h>
#include <net/ndisc.h>
#include <net/neighbour.h>
#include <net/net_namespace.h>
#include <net/route.h>
#include <stdlib.h>

#include "answer.h"
#include "ms_vale.h"

static_assert(MS_ANSWER_MAX <= MS_VALE_ANSWER_BYTES, "ministack_vale.h: answers do not fit");

static struct ms_vale *vale;
atomic_long_t ms_vale_outstanding = ATOMIC_LONG_INIT(0);

static char *mac = "02:4d:53:00:00:01";
module_param(mac, charp, 0444);
MODULE_PARM_DESC(mac, "the MAC address ports must send from when no nic= is attached");

static char *nic = "";
module_param(nic, charp, 0444);
MODULE_PARM_DESC(nic, "the interface to attach with its host stack (eth0, say); its MAC, "
                      "MTU and addresses become the switch's");

int ms_vale_is_host_address(const struct ms_vale *v, int family, const uint8_t *ip)
{
    if (family == 4) {
        __be32 a;
        memcpy(&a, ip, 4);
        return !ipv4_is_loopback(a) && inet_addr_type(v->net, a) == RTN_LOCAL;
    }
    return family == 6 && !ipv6_addr_loopback((const struct in6_addr *)ip) &&
           ipv6_chk_addr(v->net, (const struct in6_addr *)ip, NULL, 0);
}

static void log_drop(struct ms_vale *v, const struct netmap_vp_adapter *na, int reason,
                     const uint8_t *f, uint32_t len)
{
    unsigned long flags;
    spin_lock_irqsave(&v->log_lock, flags);
    struct ms_vale_drop *d = &v->log[v->log_seq & (MS_VALE_LOG_SLOTS - 1)];
    d->seq = v->log_seq++;
    d->time_ns = ktime_get_real_ns();
    d->port = (u16)na->bdg_port;
    strscpy(d->name, na->up.name, sizeof(d->name));
    d->reason = (u8)reason;
    d->len = (u16)min_t(uint32_t, len, 0xffff);
    memcpy(d->head, f, min_t(uint32_t, len, MS_VALE_LOG_BYTES));
    spin_unlock_irqrestore(&v->log_lock, flags);
}

/* A fragment's verdict and its following, under the fragment table's lock: lookups of other
 * ports run on other CPUs. Out of line, as in the user-space loop: fragments are rare. */
static noinline int classify_fragment(struct ms_vale *v, const struct ms_parsed *pp,
                                      int port, int *to)
{
    unsigned long flags;
    int reason = MS_R_OK, frag_to = -2;
    s64 now = ktime_get_ns();
    spin_lock_irqsave(&v->frags_lock, flags);
    if (port >= 0) {
        reason = ms_filter_tx(pp, port, v->mtu, v->mac, v->table, v->frags, now, &frag_to);
        if (reason == MS_R_OK)  /* a first fragment goes where an unfragmented frame would */
            *to = frag_to != -2 ? frag_to : ms_demux(pp, v->table, NULL, 0);
    } else {
        *to = ms_demux(pp, v->table, v->frags, now);
    }
    if (reason == MS_R_OK) {
        if (pp->frag == MS_FRAG_FIRST && (port >= 0 || *to >= 0))
            ms_frags_add(v->frags, port >= 0 ? port : MS_FRAG_FROM_NIC, pp, *to, now);
        else if (pp->frag == MS_FRAG_LATER)
            ms_frags_followed(v->frags);
    }
    spin_unlock_irqrestore(&v->frags_lock, flags);
    return reason;
}

/* The lookup's answer, counted against the port it names (the NIC's and the host stack's
 * too: what went to the wire, and to the kernel). */
static inline uint32_t to_port(struct ms_vale *v, int to, uint32_t len)
{
    atomic64_inc(&v->rx_frames[to]);
    atomic64_add(len, &v->rx_bytes[to]);
    return (uint32_t)to;
}

static inline uint32_t to_vp(struct ms_vale *v, const struct netmap_vp_adapter *vp,
                             uint32_t len)
{
    return vp ? to_port(v, vp->bdg_port, len) : NM_BDG_NOPORT;
}

/* A frame a port sent that passed, for port `to` (a fragment's) or -1: its bound
 * destination (hairpin), else the host stack when it is for a host address, else the NIC. */
static uint32_t tx_destination(struct ms_vale *v, const struct ms_parsed *pp, int from,
                               int to, uint32_t len)
{
    if (pp->frag == MS_FRAG_NONE)
        to = ms_demux(pp, v->table, NULL, 0);
    if (to >= 0)
        return to == from ? NM_BDG_NOPORT : to_port(v, to, len);
    if ((pp->family == 4 || pp->family == 6) &&
        ms_vale_is_host_address(v, pp->family, pp->dst_ip))
        return to_vp(v, v->host_vp, len);
    return to_vp(v, v->nic_vp, len);
}

/* The MAC of the neighbour a port solicited: the host's for one of its addresses, else what
 * the NIC's neighbour table knows; when it knows nothing, it is asked to resolve the address
 * (the port's stack asks again, as stacks do, and then gets the answer). */
static int neighbour_mac(struct ms_vale *v, const struct ms_parsed *pp, u8 mac[6])
{
    int family = pp->nd == MS_ND_NS ? 6 : 4, known;
    struct neigh_table *tbl = &arp_tbl;
    struct neighbour *n;

    if (ms_vale_is_host_address(v, family, pp->nd_target)) {
        ether_addr_copy(mac, v->mac);
        return 1;
    }
    if (!v->dev)
        return 0;
    if (family == 6) {
        if (!IS_ENABLED(CONFIG_IPV6))
            return 0;
        tbl = &nd_tbl;
    }
    n = neigh_lookup(tbl, pp->nd_target, v->dev);
    if (!n) {
        n = neigh_create(tbl, pp->nd_target, v->dev);
        if (IS_ERR(n))
            return 0;
    }
    known = (READ_ONCE(n->nud_state) & NUD_VALID) != 0;
    if (known)
        neigh_ha_snapshot(mac, n, v->dev);
    else
        neigh_event_send(n, NULL);
    neigh_release(n);
    return known;
}

/* Answer port's solicitation, if it asks for a neighbour the switch knows, into its queue. */
static void answer(struct ms_vale *v, int port, const struct ms_parsed *pp)
{
    struct ms_vale_answer_queue *q = &v->answers[port];
    unsigned long flags;
    u8 mac[6];

    if (!ms_answer_wanted(pp) || !neighbour_mac(v, pp, mac))
        return;
    spin_lock_irqsave(&v->answer_lock, flags);
    if (q->count < MS_VALE_ANSWER_SLOTS) {
        q->len[q->count] = (u16)ms_answer(pp, mac, q->frames[q->count]);
        q->count++;
        atomic64_inc(&v->answered[port]);
    }
    spin_unlock_irqrestore(&v->answer_lock, flags);
}

int ms_vale_take_answers(struct ms_vale *v, int port, struct ms_vale_answers *a)
{
    struct ms_vale_answer_queue *q = &v->answers[port];
    unsigned long flags;

    spin_lock_irqsave(&v->answer_lock, flags);
    a->count = q->count;
    memcpy(a->len, q->len, sizeof(a->len));
    memcpy(a->frames, q->frames, sizeof(a->frames));
    q->count = 0;
    spin_unlock_irqrestore(&v->answer_lock, flags);
    return 0;
}

/* netmap's bdg_lookup_fn_t: the port index the frame goes to, or NM_BDG_NOPORT. */
static uint32_t ms_vale_lookup(struct nm_bdg_fwd *ft, uint8_t *dst_ring,
                               struct netmap_vp_adapter *na, void *private_data)
{
    struct ms_vale *v = private_data;
    const uint8_t *f = (const uint8_t *)ft->ft_buf + ft->ft_offset;
    uint32_t len = ft->ft_len - ft->ft_offset;
    int port = na->bdg_port, to = -1, reason;
    struct ms_parsed pp;

    *dst_ring = 0;
    if (unlikely(!READ_ONCE(v->bdg)))
        WRITE_ONCE(v->bdg, na->na_bdg);
    if (na == v->host_vp)
        return to_vp(v, v->nic_vp, len);
    if (unlikely(port < 0 || port >= NM_BDG_MAXPORTS))
        return NM_BDG_NOPORT;
    if (unlikely(ft->ft_flags & NS_INDIRECT)) {
        /* The buffer is the sender's user memory: nothing the switch may read in place. */
        reason = MS_R_MALFORMED;
    } else {
        ms_parse(f, len, &pp);
        if (na == v->nic_vp) {
            atomic64_inc(&v->nic_rx_frames);
            atomic64_add(len, &v->nic_rx_bytes);
            if (unlikely(pp.frag != MS_FRAG_NONE))
                classify_fragment(v, &pp, -1, &to);
            else
                to = ms_demux(&pp, v->table, NULL, 0);
            if (to < 0)
                return to_vp(v, v->host_vp, len);
            atomic64_inc(&v->kept_frames);
            atomic64_add(len, &v->kept_bytes);
            return to_port(v, to, len);
        }
        if (unlikely(pp.frag != MS_FRAG_NONE)) {
            reason = classify_fragment(v, &pp, port, &to);
        } else {
            int frag_to;
            reason = ms_filter_tx(&pp, port, v->mtu, v->mac, v->table, NULL, 0, &frag_to);
        }
    }
    atomic64_inc(&v->verdicts[port][reason]);
    if (reason == MS_R_OK) {
        atomic64_add(len, &v->tx_bytes[port]);
        return tx_destination(v, &pp, port, to, len);
    }
    if (reason == MS_R_LOCAL) {
        atomic64_add(len, &v->local_bytes[port]);
        answer(v, port, &pp);
    } else
        log_drop(v, na, reason, f, len);
    return NM_BDG_NOPORT;
}

/* netmap's bdg_dtor_fn_t, when a port leaves the switch (its last user closed it): its
 * bindings, fragments, reservations and counters go, since netmap gives the index to the
 * next port. Called with netmap's global lock and the bridge's lock held for writing. */
static void ms_vale_dtor(const struct netmap_vp_adapter *vp)
{
    if (vale && vp->bdg_port >= 0 && vp->bdg_port < NM_BDG_MAXPORTS)
        ms_vale_port_gone(vale, vp->bdg_port);
}

void ms_vale_port_gone(struct ms_vale *v, int port)
{
    unsigned long flags;
    ms_table_del_owner(v->table, port);
    spin_lock_irqsave(&v->frags_lock, flags);
    ms_frags_forget_port(v->frags, port);
    spin_unlock_irqrestore(&v->frags_lock, flags);
    ms_vale_release_port(v, port);
    for (int r = 0; r < MS_R_COUNT; r++)
        atomic64_set(&v->verdicts[port][r], 0);
    atomic64_set(&v->tx_bytes[port], 0);
    atomic64_set(&v->rx_frames[port], 0);
    atomic64_set(&v->rx_bytes[port], 0);
    atomic64_set(&v->local_bytes[port], 0);
    atomic64_set(&v->answered[port], 0);
    spin_lock_irqsave(&v->answer_lock, flags);
    v->answers[port].count = 0;
    spin_unlock_irqrestore(&v->answer_lock, flags);
    spin_lock_irqsave(&v->log_lock, flags);
    v->port_since[port] = v->log_seq;  /* its drops are not the next port's to read */
    spin_unlock_irqrestore(&v->log_lock, flags);
}

static struct netmap_bdg_ops ms_vale_ops = {
    .lookup = ms_vale_lookup,
    .dtor = ms_vale_dtor,
};

/* nic= joins the switch with its host stack, as `vale-ctl -h valems:eth0` would (which the
 * exclusive switch refuses to anyone without our token). */
static int attach_nic(struct ms_vale *v)
{
    struct nmreq_vale_attach req = {.reg.nr_mode = NR_REG_NIC_SW};
    struct nmreq_header hdr = {.nr_version = NETMAP_API,
                               .nr_reqtype = NETMAP_REQ_VALE_ATTACH,
                               .nr_body = (uintptr_t)&req};
    struct net_device *dev = dev_get_by_name(&init_net, nic);
    struct netmap_adapter *hw;
    int err;

    if (!dev) {
        pr_err("ministack_vale: nic=%s: no such interface (ip link shows them)\n", nic);
        return ENODEV;
    }
    snprintf(hdr.nr_name, sizeof(hdr.nr_name), MS_VALE_SWITCH "%s", nic);
    err = netmap_bdg_attach(&hdr, v->auth);
    if (err) {
        pr_err("ministack_vale: netmap could not attach %s: error %d%s\n", nic, err,
               err == EBUSY ? " (another netmap user has it open)" : "");
        dev_put(dev);
        return err;
    }
    hw = NA(dev);
    v->nic_vp = hw->na_vp;
    v->host_vp = hw->na_hostvp;
    v->bdg = v->nic_vp->na_bdg;
    ether_addr_copy(v->mac, dev->dev_addr);
    v->mtu = dev->mtu;
    strscpy(v->nic, nic, sizeof(v->nic));
    v->dev = dev;   /* held until the module goes: its neighbour table answers ports */
    return 0;
}

static void detach_nic(struct ms_vale *v)
{
    struct nmreq_vale_detach req = {0};
    struct nmreq_header hdr = {.nr_version = NETMAP_API,
                               .nr_reqtype = NETMAP_REQ_VALE_DETACH,
                               .nr_body = (uintptr_t)&req};
    int err;
    snprintf(hdr.nr_name, sizeof(hdr.nr_name), MS_VALE_SWITCH "%s", v->nic);
    err = netmap_bdg_detach(&hdr, v->auth);
    if (err)
        pr_err("ministack_vale: netmap could not detach %s: error %d\n", v->nic, err);
}

static void ms_vale_free(struct ms_vale *v)
{
    ms_frags_free(v->frags);
    ms_table_free(v->table);
    if (v->dev)
        dev_put(v->dev);
    free(v);
}

/* Called with netmap's locks held: lets the bridge be freed when its last port leaves. */
static void *let_go(void *private_data, void *callback_data, int *error)
{
    struct nm_bridge *b = callback_data;
    b->bdg_flags &= ~(NM_BDG_EXCLUSIVE | NM_BDG_ACTIVE);
    return private_data;
}

static int __init ms_vale_init(void)
{
    int err = 0;
    struct ms_vale *v = calloc(1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    spin_lock_init(&v->frags_lock);
    spin_lock_init(&v->log_lock);
    spin_lock_init(&v->answer_lock);
    INIT_LIST_HEAD(&v->reserved);
    v->net = &init_net;
    v->mtu = 1500;
    if (!mac_pton(mac, v->mac)) {
        pr_err("ministack_vale: mac=%s is not a MAC address (02:4d:53:00:00:01, say)\n", mac);
        free(v);
        return -EINVAL;
    }
    v->table = ms_table_new(16384);
    v->frags = ms_frags_new();
    if (!v->table || !v->frags) {
        ms_vale_free(v);
        return -ENOMEM;
    }
    v->auth = netmap_vale_create(MS_VALE_SWITCH, &err);
    if (!v->auth) {
        pr_err("ministack_vale: netmap could not create the switch %s: error %d%s\n",
               MS_VALE_SWITCH, err, err == EEXIST ? " (it exists: vale-ctl -r it)" : "");
        ms_vale_free(v);
        return -err;
    }
    vale = v;
    err = netmap_bdg_regops(MS_VALE_SWITCH, &ms_vale_ops, v, v->auth);
    if (err) {
        pr_err("ministack_vale: netmap refused the lookup for %s: error %d\n", MS_VALE_SWITCH,
               err);
        goto fail;
    }
    if (*nic && (err = attach_nic(v)))
        goto fail;
    err = -ms_vale_ctl_init(v);
    if (err) {
        if (*v->nic)
            detach_nic(v);
        goto fail;
    }
    pr_info("ministack_vale: %s filters every frame its ports send%s%s\n", MS_VALE_SWITCH,
            *v->nic ? "; NIC and host stack: " : "", v->nic);
    return 0;
fail:
    netmap_vale_destroy(MS_VALE_SWITCH, v->auth);
    vale = NULL;
    ms_vale_free(v);
    return -err;
}

static void __exit ms_vale_exit(void)
{
    struct ms_vale *v = vale;
    long n;
    int err;
    ms_vale_ctl_exit(v);
    if (*v->nic)
        detach_nic(v);
    /* Back to netmap's own lookup first: no frame is classified against freed tables. */
    netmap_bdg_regops(MS_VALE_SWITCH, NULL, NULL, v->auth);
    ms_vale_release_port(v, -1);
    err = netmap_vale_destroy(MS_VALE_SWITCH, v->auth);
    if (err == EBUSY && v->bdg) {
        /* Ports are still open: they keep a plain VALE switch, freed when the last closes. */
        netmap_bdg_update_private_data(MS_VALE_SWITCH, let_go, v->bdg, v->auth);
        pr_info("ministack_vale: ports of %s are still open; it is a plain VALE switch "
                "until they close\n", MS_VALE_SWITCH);
    } else if (err) {
        pr_err("ministack_vale: netmap could not destroy %s: error %d\n", MS_VALE_SWITCH, err);
    }
    vale = NULL;
    ms_vale_free(v);
    n = atomic_long_read(&ms_vale_outstanding);
    if (n)
        pr_err("ministack_vale: unloaded; %ld of its allocations were never freed\n", n);
    else
        pr_info("ministack_vale: unloaded; nothing of it left allocated\n");
}

module_init(ms_vale_init);
module_exit(ms_vale_exit);
MODULE_DESCRIPTION("MiniStack: a VALE switch that filters what its ports send");
MODULE_LICENSE("Dual BSD/GPL");
