/* Built instead of nic_afxdp.c when the machine had no libxdp/libbpf/clang at install
 * time: backend="auto" then uses AF_PACKET, and backend="afxdp" says why it cannot. */
#include <stdio.h>

#include "ministack.h"
#include "nic.h"

int ms_afxdp_built(void)
{
    return 0;
}

struct ms_nic *ms_nic_afxdp_new(const char *ifname, uint32_t buf_size, char *err, size_t errlen)
{
    (void)buf_size;
    snprintf(err, errlen,
             "AF_XDP is not available on %s: MiniStack was installed without libxdp, libbpf "
             "and clang (apt-get install libxdp-dev libbpf-dev clang llvm, then reinstall)",
             ifname);
    return NULL;
}

const char *ms_nic_afxdp_mode(struct ms_nic *nic)
{
    (void)nic;
    return NULL;
}
