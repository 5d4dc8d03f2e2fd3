/* The BPF plugin, loaded when first asked for: the AF_XDP backend and AF_PACKET's ingress
 * steering (nic_afxdp.c, bpf_steer.c) are built into their own shared object,
 * libms_bpf.so, next to the extension module, and linked with libxdp and libbpf; nothing
 * else links them. A wheel installed where those libraries are missing (a JupyterHub
 * image, a machine without compilers) still imports and runs on the virtual NIC, and says
 * why a real interface cannot, instead of failing to import. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ministack.h"
#include "nic.h"

static pthread_mutex_t load_mu = PTHREAD_MUTEX_INITIALIZER;
static int loaded;              /* 1 tried */
static const struct ms_bpf_plugin *entry; /* NULL: not available, why in load_why */
static char load_why[512];

/* $MINISTACK_BPF_PLUGIN, or libms_bpf.so in the folder of the object this code is in
 * (the extension module's, ministack/). */
static int plugin_path(char *out, size_t len)
{
    const char *env = getenv("MINISTACK_BPF_PLUGIN");
    if (env && *env)
        return snprintf(out, len, "%s", env) < (int)len ? 0 : -1;
    Dl_info info;
    if (!dladdr((void *)plugin_path, &info) || !info.dli_fname)
        return -1;
    char self[PATH_MAX];
    snprintf(self, sizeof(self), "%s", info.dli_fname);
    return snprintf(out, len, "%s/%s", dirname(self), MS_BPF_PLUGIN) < (int)len ? 0 : -1;
}

static void load_once(void)
{
    pthread_mutex_lock(&load_mu);
    if (!loaded) {
        loaded = 1;
        char path[PATH_MAX];
        void *h = NULL;
        if (plugin_path(path, sizeof(path)) < 0 || access(path, F_OK) != 0) {
            snprintf(load_why, sizeof(load_why),
                     "MiniStack was installed without AF_XDP (libxdp, libbpf and clang were "
                     "missing when it was built: apt-get install libxdp-dev libbpf-dev clang "
                     "llvm, then reinstall)");
        } else if (!(h = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
            snprintf(load_why, sizeof(load_why),
                     "MiniStack's BPF plugin does not load: %.300s (apt-get install "
                     "libxdp1 libbpf1)", dlerror());
        } else if (!(entry = (const struct ms_bpf_plugin *)dlsym(h, MS_BPF_PLUGIN_ENTRY))) {
            snprintf(load_why, sizeof(load_why), "%.300s has no %s: reinstall MiniStack",
                     path, MS_BPF_PLUGIN_ENTRY);
            dlclose(h);
        }
        /* A loaded plugin stays loaded: its code runs inside the switch from now on. */
    }
    pthread_mutex_unlock(&load_mu);
}

int ms_afxdp_available(char *why, size_t whylen)
{
    load_once();
    if (!entry && why && whylen)
        snprintf(why, whylen, "%s", load_why);
    return entry != NULL;
}

struct ms_nic *ms_nic_afxdp_new(const char *ifname, uint32_t buf_size, char *err,
                                size_t errlen)
{
    load_once();
    if (!entry) {
        snprintf(err, errlen, "AF_XDP is not available on %s: %s", ifname, load_why);
        return NULL;
    }
    return entry->afxdp_new(ifname, buf_size, err, errlen);
}

struct ms_ingress *ms_ingress_new(const char *ifname, char *err, size_t errlen)
{
    load_once();
    if (!entry) {
        snprintf(err, errlen, "cannot keep bound flows on %s from the host stack: %s",
                 ifname, load_why);
        return NULL;
    }
    return entry->ingress_new(ifname, err, errlen);
}

/* A struct ms_ingress exists only once the plugin has loaded: entry is set. */
int ms_ingress_binding(struct ms_ingress *g, int add, int family, int proto,
                       const uint8_t *ip, uint16_t port)
{
    return entry->ingress_binding(g, add, family, proto, ip, port);
}

int ms_ingress_steers(struct ms_ingress *g, const uint8_t *frame, uint32_t len)
{
    return entry->ingress_steers(g, frame, len);
}

void ms_ingress_kept(struct ms_ingress *g, uint64_t *frames, uint64_t *bytes)
{
    entry->ingress_kept(g, frames, bytes);
}

void ms_ingress_destroy(struct ms_ingress *g)
{
    if (g)
        entry->ingress_destroy(g);
}
