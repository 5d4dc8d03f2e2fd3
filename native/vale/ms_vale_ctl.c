/* The VALE module's control half: /dev/ministack_vale, whose ioctls bind and unbind, and
 * the /proc files an instructor reads with cat: verdict counters, bindings, recent drops.
 *
 * Who may bind: whoever holds the port's own netmap descriptor (see ministack_vale.h), and
 * for a port below ip_unprivileged_port_start only with CAP_NET_BIND_SERVICE, as for a
 * socket. Every UDP and TCP binding also holds a kernel socket bound to the same address
 * and port, as MultiStack did: the host stack cannot take a tuple a port holds, and a port
 * cannot take one the host's own sockets hold. A port whose packet memory another port of
 * the switch shares (opened with that port's nr_mem_id) cannot bind at all, since it could
 * read the other's frames. */
#include <linux/capability.h>
#include <linux/file.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/net.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/uaccess.h>
#include <net/ip.h>
#include <net/sock.h>
#include <stdlib.h>

#include "ms_vale.h"

struct ms_vale_reservation {
    struct list_head link;
    int port;
    struct ms_binding_info tuple;
    struct socket *sock;         /* NULL for protocols sockets cannot reserve */
};

struct ctl_req {
    struct ms_vale *v;
    struct netmap_priv_d *priv;  /* the caller's netmap descriptor's */
    int port;                    /* the VALE port it is registered on, or -1 */
    struct ms_vale_bind *b;
    struct ms_vale_reservation *res;
    int err;                     /* a positive errno for the ioctl */
};

static struct ms_vale *ctl_vale;

/* The port of our switch the descriptor is registered on, or -1. Netmap's locks are held,
 * so the adapter and the bridge's port array stand still. */
static int caller_port(struct ctl_req *r)
{
    struct netmap_adapter *na = r->priv->np_na;
    struct netmap_vp_adapter *vp;
    struct nm_bridge *b;
    size_t n = strlen(MS_VALE_SWITCH);

    /* A VALE port's adapter is named as it was opened, valems:NAME. Interface names cannot
     * hold ':', and netmap's pipes of a port add '{' or '}', its host rings '^'. */
    if (!na || !r->priv->np_nifp || strncmp(na->name, MS_VALE_SWITCH, n) ||
        strpbrk(na->name + n, "{}^"))
        return -1;
    vp = (struct netmap_vp_adapter *)na;
    b = vp->na_bdg;
    if (!b || b->private_data != r->v || vp->bdg_port < 0 || vp->bdg_port >= NM_BDG_MAXPORTS ||
        b->bdg_ports[vp->bdg_port] != vp || vp == r->v->nic_vp || vp == r->v->host_vp)
        return -1;
    r->v->bdg = b;
    return vp->bdg_port;
}

static void *whose_locked(void *private_data, void *callback_data, int *error)
{
    struct ctl_req *r = callback_data;
    r->port = caller_port(r);
    r->err = r->port < 0 ? EINVAL : 0;
    return private_data;
}

/* Another port whose packet memory is this one's could read its frames. */
static int shares_memory(struct ctl_req *r)
{
    struct nm_bridge *b = r->v->bdg;
    for (int i = 0; i < NM_BDG_MAXPORTS; i++)
        if (i != r->port && b->bdg_ports[i] &&
            b->bdg_ports[i]->up.nm_mem == b->bdg_ports[r->port]->up.nm_mem)
            return 1;
    return 0;
}

static void *bind_locked(void *private_data, void *callback_data, int *error)
{
    struct ctl_req *r = callback_data;
    struct ms_vale_bind *b = r->b;
    int e;
    whose_locked(private_data, r, error);
    if (r->port < 0)
        return private_data;
    b->port_index = r->port;
    if (shares_memory(r)) {
        r->err = EXDEV;
        return private_data;
    }
    e = ms_table_add(r->v->table, r->port, b->family, b->proto, b->ip, b->port);
    b->result = e == -EEXIST ? MS_BIND_IN_USE : e == -ENOSPC ? MS_BIND_NO_SPACE : MS_BIND_OK;
    if (b->result == MS_BIND_OK) {
        r->res->port = r->port;
        list_add(&r->res->link, &r->v->reserved);
        r->res = NULL;
    }
    return private_data;
}

static void *unbind_locked(void *private_data, void *callback_data, int *error)
{
    struct ctl_req *r = callback_data;
    struct ms_vale_bind *b = r->b;
    struct ms_vale_reservation *res;
    int e;
    whose_locked(private_data, r, error);
    if (r->port < 0)
        return private_data;
    b->port_index = r->port;
    e = ms_table_del(r->v->table, r->port, b->family, b->proto, b->ip, b->port);
    if (e == -ENOENT)
        r->err = ENOENT;
    b->result = e == -EPERM ? MS_BIND_NOT_OWNER : MS_BIND_OK;
    if (e)
        return private_data;
    list_for_each_entry(res, &r->v->reserved, link)
        if (res->port == r->port && res->tuple.family == b->family &&
            res->tuple.proto == b->proto && res->tuple.l4port == b->port &&
            !memcmp(res->tuple.ip, b->ip, b->family == 4 ? 4 : 16)) {
            list_del(&res->link);
            r->res = res;           /* released outside netmap's locks */
            break;
        }
    return private_data;
}

static void release(struct ms_vale_reservation *res)
{
    if (res && res->sock) {
        sock_release(res->sock);
        atomic_long_dec(&ms_vale_outstanding);
    }
    free(res);
}

void ms_vale_release_port(struct ms_vale *v, int port)
{
    struct ms_vale_reservation *res, *next;
    list_for_each_entry_safe(res, next, &v->reserved, link)
        if (port < 0 || res->port == port) {
            list_del(&res->link);
            release(res);
        }
}

/* A kernel socket on the binding's address and port, for UDP and TCP: the host stack's
 * own bind() then fails for it, and ours fails for what the host's sockets hold. A TCP one
 * listens, so that not even SO_REUSEADDR shares it (no SYN reaches it: they go to the port). */
static int reserve(struct ms_vale *v, const struct ms_vale_bind *b, struct socket **out)
{
    struct sockaddr_storage ss = {0};
    int type, len, err;
    *out = NULL;
    if (b->proto == IPPROTO_UDP)
        type = SOCK_DGRAM;
    else if (b->proto == IPPROTO_TCP)
        type = SOCK_STREAM;
    else
        return 0;
    if (b->family == 4) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(b->port);
        memcpy(&sin->sin_addr, b->ip, 4);
        len = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(b->port);
        memcpy(&sin6->sin6_addr, b->ip, 16);
        len = sizeof(*sin6);
    }
    err = sock_create_kern(v->net, b->family == 4 ? AF_INET : AF_INET6, type, b->proto, out);
    if (err)
        return err;
    atomic_long_inc(&ms_vale_outstanding);   /* counted as an allocation: see stdlib.h */
    err = kernel_bind(*out, (struct sockaddr *)&ss, len);
    if (!err && type == SOCK_STREAM)
        err = kernel_listen(*out, 1);
    if (err) {
        sock_release(*out);
        atomic_long_dec(&ms_vale_outstanding);
        *out = NULL;
    }
    return err;
}

/* The checks in the user-space switch's order (ms_bind): address, tuple, privilege, use. */
static int do_bind(struct ctl_req *r)
{
    struct ms_vale *v = r->v;
    struct ms_vale_bind *b = r->b;
    int err;
    if ((b->family != 4 && b->family != 6) || !ms_vale_is_host_address(v, b->family, b->ip)) {
        b->result = MS_BIND_ADDRESS_NOT_LOCAL;
        return 0;
    }
    b->result = ms_table_check_tuple(b->family, b->proto, b->port);
    if (b->result != MS_BIND_OK)
        return 0;
    /* The kernel's helper hides where each version keeps ip_unprivileged_port_start. */
    if (ms_table_needs_bind_service(b->family, b->proto, b->port,
                                    inet_port_requires_bind_service(v->net, b->port)
                                        ? b->port + 1 : 0) &&
        !ns_capable(v->net->user_ns, CAP_NET_BIND_SERVICE)) {
        b->result = MS_BIND_NOT_PERMITTED;
        return 0;
    }
    r->res = calloc(1, sizeof(*r->res));
    if (!r->res)
        return ENOMEM;
    r->res->tuple = (struct ms_binding_info){.family = b->family, .proto = b->proto,
                                             .l4port = b->port};
    memcpy(r->res->tuple.ip, b->ip, 16);
    err = reserve(v, b, &r->res->sock);
    if (err == -EADDRINUSE) {
        b->result = MS_BIND_IN_USE;     /* a host socket, or another port, holds it */
        err = 0;
    } else if (err) {
        release(r->res);
        return -err;
    } else {
        err = netmap_bdg_update_private_data(MS_VALE_SWITCH, bind_locked, r, v->auth);
    }
    release(r->res);                    /* NULL once the binding keeps it */
    return err ? err : r->err;
}

static int do_unbind(struct ctl_req *r)
{
    int err = netmap_bdg_update_private_data(MS_VALE_SWITCH, unbind_locked, r, r->v->auth);
    release(r->res);
    return err ? err : r->err;
}

static int whose(struct ctl_req *r)
{
    int err = netmap_bdg_update_private_data(MS_VALE_SWITCH, whose_locked, r, r->v->auth);
    return err ? err : r->err;
}

/* The switch's own counters, which anyone may read (netmap_fd -1 asks for these alone). */
static void switch_stats(struct ms_vale *v, struct ms_vale_stats *s)
{
    s->nic_rx_frames = (u64)atomic64_read(&v->nic_rx_frames);
    s->nic_rx_bytes = (u64)atomic64_read(&v->nic_rx_bytes);
    s->kept_frames = (u64)atomic64_read(&v->kept_frames);
    s->kept_bytes = (u64)atomic64_read(&v->kept_bytes);
    s->nic_tx_frames = s->nic_tx_bytes = s->to_host_frames = s->to_host_bytes = 0;
    if (v->nic_vp) {
        s->nic_tx_frames = (u64)atomic64_read(&v->rx_frames[v->nic_vp->bdg_port]);
        s->nic_tx_bytes = (u64)atomic64_read(&v->rx_bytes[v->nic_vp->bdg_port]);
    }
    if (v->host_vp) {
        s->to_host_frames = (u64)atomic64_read(&v->rx_frames[v->host_vp->bdg_port]);
        s->to_host_bytes = (u64)atomic64_read(&v->rx_bytes[v->host_vp->bdg_port]);
    }
}

static int do_stats(struct ctl_req *r, struct ms_vale_stats *s)
{
    struct ms_vale *v = r->v;
    int err = whose(r);
    if (err)
        return err;
    s->port_index = r->port;
    for (int i = 0; i < MS_R_COUNT; i++)
        s->frames[i] = (u64)atomic64_read(&v->verdicts[r->port][i]);
    s->tx_bytes = (u64)atomic64_read(&v->tx_bytes[r->port]);
    s->rx_frames = (u64)atomic64_read(&v->rx_frames[r->port]);
    s->rx_bytes = (u64)atomic64_read(&v->rx_bytes[r->port]);
    s->local_bytes = (u64)atomic64_read(&v->local_bytes[r->port]);
    s->answers = (u64)atomic64_read(&v->answered[r->port]);
    switch_stats(v, s);
    return 0;
}

/* The caller's own drops from d->after on, copied out of the log under its lock. */
static int do_drops(struct ctl_req *r, struct ms_vale_drops *d)
{
    struct ms_vale *v = r->v;
    struct ms_vale_drop_record *out;
    unsigned long flags;
    u32 n = 0, room = min_t(u32, d->max, MS_VALE_LOG_SLOTS);
    u64 seq;
    int err = whose(r);
    if (err)
        return err;
    out = kcalloc(max_t(u32, room, 1), sizeof(*out), GFP_KERNEL);
    if (!out)
        return ENOMEM;
    spin_lock_irqsave(&v->log_lock, flags);
    seq = max3(d->after, v->port_since[r->port],
               v->log_seq > MS_VALE_LOG_SLOTS ? v->log_seq - MS_VALE_LOG_SLOTS : 0);
    for (; seq < v->log_seq && n < room; seq++) {
        const struct ms_vale_drop *e = &v->log[seq & (MS_VALE_LOG_SLOTS - 1)];
        if (e->port != r->port)
            continue;
        out[n] = (struct ms_vale_drop_record){.seq = e->seq, .time_ns = e->time_ns,
                                              .len = e->len, .reason = e->reason};
        memcpy(out[n++].head, e->head, min_t(u16, e->len, MS_VALE_DROP_BYTES));
    }
    spin_unlock_irqrestore(&v->log_lock, flags);
    d->count = n;
    d->next = seq;
    err = copy_to_user(u64_to_user_ptr(d->records), out, n * sizeof(*out)) ? EFAULT : 0;
    kfree(out);
    return err;
}

static long ms_vale_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
    union {
        struct ms_vale_bind bind;
        struct ms_vale_stats stats;
        struct ms_vale_drops drops;
        struct ms_vale_answers answers;
    } a;
    struct ctl_req r = {.v = ctl_vale, .b = &a.bind};
    struct file *nf;
    int err;
    if (cmd != MS_VALE_BIND && cmd != MS_VALE_UNBIND && cmd != MS_VALE_STATS &&
        cmd != MS_VALE_DROPS && cmd != MS_VALE_ANSWERS)
        return -ENOTTY;
    if (copy_from_user(&a, (void __user *)arg, _IOC_SIZE(cmd)))
        return -EFAULT;
    if (cmd == MS_VALE_STATS && a.stats.netmap_fd == -1) {
        memset(&a.stats, 0, sizeof(a.stats));
        a.stats.netmap_fd = a.stats.port_index = -1;
        switch_stats(r.v, &a.stats);
        return copy_to_user((void __user *)arg, &a, _IOC_SIZE(cmd)) ? -EFAULT : 0;
    }
    /* netmap_fd leads every request. */
    nf = fget(a.bind.netmap_fd);
    if (!nf)
        return -EBADF;
    if (!nf->f_op || !nf->f_op->owner || strcmp(module_name(nf->f_op->owner), "netmap")) {
        fput(nf);
        return -ENOTTY;
    }
    r.priv = nf->private_data;
    switch (cmd) {
    case MS_VALE_BIND:
        a.bind.port_index = -1;
        err = do_bind(&r);
        break;
    case MS_VALE_UNBIND:
        a.bind.port_index = -1;
        err = do_unbind(&r);
        break;
    case MS_VALE_STATS:
        err = do_stats(&r, &a.stats);
        break;
    case MS_VALE_ANSWERS:
        err = whose(&r);
        if (!err)
            err = ms_vale_take_answers(r.v, r.port, &a.answers);
        break;
    default:
        err = do_drops(&r, &a.drops);
    }
    fput(nf);
    if (!err && copy_to_user((void __user *)arg, &a, _IOC_SIZE(cmd)))
        return -EFAULT;
    return -err;
}

static const struct file_operations ms_vale_fops = {
    .owner = THIS_MODULE,
    .unlocked_ioctl = ms_vale_ioctl,
    .compat_ioctl = compat_ptr_ioctl,
};

static struct miscdevice ms_vale_dev = {
    .minor = MISC_DYNAMIC_MINOR,
    .name = "ministack_vale",
    .fops = &ms_vale_fops,
    .mode = 0666,                 /* holding a port's descriptor is what grants a bind */
};

/* The /proc files print under netmap's locks, so that port names and bindings stand still. */
struct show_req {
    struct seq_file *m;
    void (*show)(struct ms_vale *v, struct seq_file *m);
};

static void *show_locked(void *private_data, void *callback_data, int *error)
{
    struct show_req *s = callback_data;
    s->show(private_data, s->m);
    return private_data;
}

static const char *port_name(struct ms_vale *v, int port)
{
    struct nm_bridge *b = v->bdg;
    if (b && b->bdg_ports[port])
        return b->bdg_ports[port]->up.name;
    return "-";
}

static void show_counters(struct ms_vale *v, struct seq_file *m)
{
    seq_puts(m, "port name reason frames\n");
    for (int p = 0; p < NM_BDG_MAXPORTS; p++)
        for (int r = 0; r < MS_R_COUNT; r++) {
            s64 n = atomic64_read(&v->verdicts[p][r]);
            if (n)
                seq_printf(m, "%d %s %s %lld\n", p, port_name(v, p),
                           r == MS_R_OK ? "forwarded" : ms_reason_name(r), n);
        }
}

static void show_bindings(struct ms_vale *v, struct seq_file *m)
{
    struct ms_vale_reservation *res;
    seq_puts(m, "port name family proto address port reserved\n");
    list_for_each_entry(res, &v->reserved, link) {
        const struct ms_binding_info *t = &res->tuple;
        if (t->family == 4)
            seq_printf(m, "%d %s 4 %u %pI4 %u %s\n", res->port, port_name(v, res->port),
                       t->proto, t->ip, t->l4port, res->sock ? "socket" : "-");
        else
            seq_printf(m, "%d %s 6 %u %pI6c %u %s\n", res->port, port_name(v, res->port),
                       t->proto, t->ip, t->l4port, res->sock ? "socket" : "-");
    }
}

static void show_drops(struct ms_vale *v, struct seq_file *m)
{
    unsigned long flags;
    struct ms_vale_drop *d = kmalloc(sizeof(*d), GFP_KERNEL);
    u64 end, seq;
    if (!d)
        return;
    seq_puts(m, "seq time_ns port name reason len frame\n");
    spin_lock_irqsave(&v->log_lock, flags);
    end = v->log_seq;
    spin_unlock_irqrestore(&v->log_lock, flags);
    for (seq = end > MS_VALE_LOG_SLOTS ? end - MS_VALE_LOG_SLOTS : 0; seq < end; seq++) {
        spin_lock_irqsave(&v->log_lock, flags);
        *d = v->log[seq & (MS_VALE_LOG_SLOTS - 1)];
        spin_unlock_irqrestore(&v->log_lock, flags);
        if (d->seq != seq)
            continue;               /* overwritten while we printed */
        seq_printf(m, "%llu %lld %u %s %s %u ", d->seq, d->time_ns, d->port, d->name,
                   ms_reason_name(d->reason), d->len);
        /* %ph prints at most 64 bytes at a time. */
        for (int i = 0, n = min_t(int, d->len, MS_VALE_LOG_BYTES); i < n; i += 64)
            seq_printf(m, "%*phN", min(n - i, 64), d->head + i);
        seq_putc(m, '\n');
    }
    kfree(d);
}

static int show(struct seq_file *m, void (*what)(struct ms_vale *, struct seq_file *))
{
    struct show_req s = {m, what};
    return -netmap_bdg_update_private_data(MS_VALE_SWITCH, show_locked, &s, ctl_vale->auth);
}

static int counters_show(struct seq_file *m, void *unused) { return show(m, show_counters); }
static int bindings_show(struct seq_file *m, void *unused) { return show(m, show_bindings); }
static int drops_show(struct seq_file *m, void *unused) { return show(m, show_drops); }

static struct proc_dir_entry *proc_dir;

int ms_vale_ctl_init(struct ms_vale *v)
{
    int err;
    ctl_vale = v;
    proc_dir = proc_mkdir("ministack_vale", NULL);
    if (!proc_dir)
        return ENOMEM;
    proc_create_single("counters", 0444, proc_dir, counters_show);
    proc_create_single("bindings", 0444, proc_dir, bindings_show);
    /* Frames of every port: for root, as tcpdump is. */
    proc_create_single("drops", 0400, proc_dir, drops_show);
    err = misc_register(&ms_vale_dev);
    if (err) {
        pr_err("ministack_vale: could not register %s: error %d\n", MS_VALE_DEVICE, err);
        proc_remove(proc_dir);
        return -err;
    }
    return 0;
}

void ms_vale_ctl_exit(struct ms_vale *v)
{
    misc_deregister(&ms_vale_dev);
    proc_remove(proc_dir);
}
