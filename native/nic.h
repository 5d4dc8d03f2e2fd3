/* The NIC backend interface: how the switch loop moves frames to and from an interface.
 * Backends: nic_virtual.c (an in-memory wire), nic_afpacket.c and nic_afxdp.c (real
 * interfaces). The frame operations run on the switch thread only; the others under the
 * control lock. */
#ifndef MS_NIC_H
#define MS_NIC_H

#include <stddef.h>
#include <stdint.h>

#define MS_NIC_F_HOST_ONLY 1u   /* never deliver to a port (e.g. the kernel stripped a VLAN tag) */
/* The checksum is partial: complete it from csum_start, store at csum_start + csum_offset. */
#define MS_NIC_F_CSUM_PARTIAL 2u
/* The backend cannot tell whether the sender left the TCP/UDP checksum partial. */
#define MS_NIC_F_CSUM_UNVERIFIED 4u

struct ms_nic_frame {
    const uint8_t *data;
    uint32_t len;
    uint32_t flags;
    uint16_t gso_size;      /* a super-frame's segment size (GSO/GRO), else 0 */
    uint16_t csum_start;
    uint16_t csum_offset;
};

struct ms_txbuf {
    uint8_t *data;
    uint32_t len;
};

struct ms_nic;

struct ms_nic_ops {
    const char *name;
    /* Borrow up to max received frames; they stay valid until rx_done(n). */
    uint32_t (*rx_burst)(struct ms_nic *nic, struct ms_nic_frame *out, uint32_t max);
    void (*rx_done)(struct ms_nic *nic, uint32_t n);
    /* For sync: a mark of the input queued so far, and whether the switch has taken
     * everything up to a mark. Backends fed by a real network return 0 and 1. */
    uint32_t (*rx_mark)(struct ms_nic *nic);
    int (*rx_reached)(struct ms_nic *nic, uint32_t mark);
    /* Up to max empty buffers (each buf_size bytes) to fill for transmission. */
    uint32_t (*tx_reserve)(struct ms_nic *nic, struct ms_txbuf *out, uint32_t max);
    /* Transmit the first n reserved buffers, lengths set; the rest go back unused.
     * Returns how many of the n the interface took (the switch counts the others as
     * NIC drops, ring-full). */
    uint32_t (*tx_commit)(struct ms_nic *nic, const struct ms_txbuf *bufs, uint32_t n);
    /* Called before the switch sleeps: ask to be woken on new input. Returns an fd to poll
     * for input, or -1 when the backend writes the switch's doorbell itself. */
    int (*arm)(struct ms_nic *nic);
    /* A binding was added (add=1) or removed: keep the backend's own steering (an XDP
     * map) in step. Called under the control lock; NULL when the backend needs nothing.
     * Returns 0 or -errno (the bind is then refused). */
    int (*binding)(struct ms_nic *nic, int add, int family, int proto, const uint8_t *ip,
                   uint16_t port);
    /* Frames the backend handed to the host stack without the switch seeing them (an XDP
     * pass), added to the to-host counter; NULL when the switch sees everything. */
    void (*host_counters)(struct ms_nic *nic, uint64_t *frames, uint64_t *bytes);
    /* Frames the kernel's steering took from the host stack for the switch (an XDP
     * redirect, a tc ingress drop); NULL when nothing is steered. */
    void (*kernel_kept)(struct ms_nic *nic, uint64_t *frames, uint64_t *bytes);
    /* The XDP mode a program attached in, "native" or "generic"; NULL when the backend
     * uses no XDP program. */
    const char *(*xdp_mode)(struct ms_nic *nic);
    /* What the kernel side does with a frame from the network: 1 it takes the frame from
     * the host stack for the switch, 0 it leaves it to the host stack, or -errno. Runs the
     * attached steering program on a copy (BPF_PROG_TEST_RUN): the frame goes nowhere, but
     * a first fragment's datagram is remembered as if it had arrived. NULL when nothing
     * is steered (the virtual NIC). */
    int (*kernel_steers)(struct ms_nic *nic, const uint8_t *frame, uint32_t len);
    void (*destroy)(struct ms_nic *nic);
};

struct ms_nic {
    const struct ms_nic_ops *ops;
    int has_host;   /* frames no port bound go to a host stack (else: dropped, no-binding) */
};

/* Real interfaces. On failure they return NULL and write why into err (errlen bytes). */
struct ms_nic *ms_nic_afpacket_new(const char *ifname, uint32_t buf_size, char *err,
                                   size_t errlen);
/* AF_XDP and AF_PACKET's ingress steering need libbpf (and AF_XDP libxdp), so they live
 * in their own shared object, libms_bpf.so (nic_afxdp.c, bpf_steer.c), that
 * bpf_plugin.c loads on first use: a machine without those libraries still imports
 * MiniStack. The plugin exports one symbol, a table of these entry points. */
typedef struct ms_nic *ms_afxdp_new_fn(const char *ifname, uint32_t buf_size, char *err,
                                       size_t errlen);
struct ms_ingress;
struct ms_bpf_plugin {
    ms_afxdp_new_fn *afxdp_new;
    struct ms_ingress *(*ingress_new)(const char *ifname, char *err, size_t errlen);
    int (*ingress_binding)(struct ms_ingress *g, int add, int family, int proto,
                           const uint8_t *ip, uint16_t port);
    int (*ingress_steers)(struct ms_ingress *g, const uint8_t *frame, uint32_t len);
    void (*ingress_kept)(struct ms_ingress *g, uint64_t *frames, uint64_t *bytes);
    void (*ingress_destroy)(struct ms_ingress *g);
};
#define MS_BPF_PLUGIN "libms_bpf.so"
#define MS_BPF_PLUGIN_ENTRY "ms_bpf_plugin"
ms_afxdp_new_fn ms_afxdp_plugin_new; /* in the plugin */
struct ms_nic *ms_nic_afxdp_new(const char *ifname, uint32_t buf_size, char *err,
                                size_t errlen);
/* The ingress steering of an AF_PACKET NIC (bpf_steer.c), through the plugin: 1 / 0 /
 * -errno as kernel_steers says. ms_ingress_new and ms_ingress_destroy are public
 * (ministack.h), for benchmarks' bare baselines. */
int ms_ingress_steers(struct ms_ingress *g, const uint8_t *frame, uint32_t len);
void ms_ingress_kept(struct ms_ingress *g, uint64_t *frames, uint64_t *bytes);

/* The virtual wire: a port-shaped shared region whose far end (ms_switch_wire) injects into
 * its TX ring and captures from its RX ring. */
struct ms_nic *ms_nic_virtual_new(uint32_t slots, uint32_t buf_size, int *memfd, int *wake_fd);

#endif
