/* MiniStack as a VALE extension, as the MiniStack poster and MultiStack built it: a kernel
 * module that creates a VALE switch in exclusive mode and plugs into it a lookup function
 * that runs the user-space switch's own parser and filter (parse.c, filter.c, table.c,
 * compiled into this module unchanged; see Kbuild), so that every frame a VALE port sends
 * is checked against the registrations in DESIGN's order, in the kernel.
 *
 * This first step: the switch "valems:" and the TX filter. Any process that opens a port
 * on it (vale-ctl, pkt-gen -i valems:p0) gets an ephemeral VALE port, and every frame the
 * port sends is classified; the verdicts are counted per port and per reason in
 * /proc/ministack_vale ("port reason frames" lines). Not yet: the NIC and its host stack
 * attached, demultiplexing, bindings (nothing can be bound yet, so no frame passes), owners,
 * the drop log, one allocator per port. */
#include <bsd_glue.h>
#include <net/netmap.h>
#include <dev/netmap/netmap_kern.h>
#include <dev/netmap/netmap_bdg.h>

#include <linux/atomic.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>

#include "filter.h"

#define MS_VALE_NAME "valems:"
#define MS_VALE_MTU 1500

struct ms_vale {
    void *auth;                 /* netmap's token for our exclusive switch */
    struct ms_table *table;
    struct ms_frags *frags;
    uint8_t mac[6];             /* the NIC's, which ports must send from */
    struct proc_dir_entry *proc;
    /* Per VALE port and reason (MS_R_OK: passed). Lookups of different ports, or of one
     * port's rings, run on several CPUs at once. */
    atomic64_t verdicts[NM_BDG_MAXPORTS][MS_R_COUNT];
};

static struct ms_vale *vale;

static char *mac = "02:4d:53:00:00:01";
module_param(mac, charp, 0444);
MODULE_PARM_DESC(mac, "the MAC address ports must send from (the NIC's, once attached)");

/* netmap's bdg_lookup_fn_t: where a frame port `na` sends goes. Every frame is parsed and
 * filtered; with no NIC attached yet, even a frame that passes has nowhere to go. */
static uint32_t ms_vale_lookup(struct nm_bdg_fwd *ft, uint8_t *dst_ring,
                               struct netmap_vp_adapter *na, void *private_data)
{
    struct ms_vale *v = private_data;
    const uint8_t *f = (const uint8_t *)ft->ft_buf + ft->ft_offset;
    uint32_t len = ft->ft_len - ft->ft_offset;
    int port = na->bdg_port, to, reason;
    struct ms_parsed pp;

    *dst_ring = 0;
    if (port < 0 || port >= NM_BDG_MAXPORTS)
        return NM_BDG_NOPORT;
    if (ft->ft_flags & NS_INDIRECT) {
        /* The buffer is the sender's user memory: nothing the switch can check in place. */
        reason = MS_R_MALFORMED;
    } else {
        ms_parse(f, len, &pp);
        reason = ms_filter_tx(&pp, port, MS_VALE_MTU, v->mac, v->table, v->frags,
                              ktime_get_ns(), &to);
    }
    atomic64_inc(&v->verdicts[port][reason]);
    return NM_BDG_NOPORT;
}

static struct netmap_bdg_ops ms_vale_ops = {
    .lookup = ms_vale_lookup,
};

static int ms_vale_show(struct seq_file *m, void *unused)
{
    for (int p = 0; p < NM_BDG_MAXPORTS; p++)
        for (int r = 0; r < MS_R_COUNT; r++) {
            s64 n = atomic64_read(&vale->verdicts[p][r]);
            if (n)
                seq_printf(m, "%d %s %lld\n", p, r == MS_R_OK ? "ok" : ms_reason_name(r), n);
        }
    return 0;
}

static void ms_vale_free(struct ms_vale *v)
{
    ms_frags_free(v->frags);
    ms_table_free(v->table);
    kvfree(v);
}

static int __init ms_vale_init(void)
{
    int err = 0;
    struct ms_vale *v = kvzalloc(sizeof(*v), GFP_KERNEL);
    if (!v)
        return -ENOMEM;
    if (!mac_pton(mac, v->mac)) {
        pr_err("ministack_vale: mac=%s is not a MAC address (02:4d:53:00:00:01, say)\n", mac);
        kvfree(v);
        return -EINVAL;
    }
    v->table = ms_table_new(16384);
    v->frags = ms_frags_new();
    if (!v->table || !v->frags) {
        ms_vale_free(v);
        return -ENOMEM;
    }
    v->auth = netmap_vale_create(MS_VALE_NAME, &err);
    if (!v->auth) {
        pr_err("ministack_vale: netmap could not create the switch %s: error %d%s\n",
               MS_VALE_NAME, err, err == EEXIST ? " (it exists: vale-ctl -r it)" : "");
        ms_vale_free(v);
        return -err;
    }
    err = netmap_bdg_regops(MS_VALE_NAME, &ms_vale_ops, v, v->auth);
    if (err) {
        pr_err("ministack_vale: netmap refused the lookup for %s: error %d\n", MS_VALE_NAME,
               err);
        netmap_vale_destroy(MS_VALE_NAME, v->auth);
        ms_vale_free(v);
        return -err;
    }
    vale = v;
    v->proc = proc_create_single("ministack_vale", 0444, NULL, ms_vale_show);
    pr_info("ministack_vale: %s filters every frame its ports send\n", MS_VALE_NAME);
    return 0;
}

static void __exit ms_vale_exit(void)
{
    proc_remove(vale->proc);
    /* Back to netmap's own lookup first: no frame is classified against freed tables. */
    netmap_bdg_regops(MS_VALE_NAME, NULL, NULL, vale->auth);
    netmap_vale_destroy(MS_VALE_NAME, vale->auth);
    ms_vale_free(vale);
}

module_init(ms_vale_init);
module_exit(ms_vale_exit);
MODULE_DESCRIPTION("MiniStack: a VALE switch that filters what its ports send");
MODULE_LICENSE("Dual BSD/GPL");
