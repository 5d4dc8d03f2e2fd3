/* The NIC backend interface: how the switch loop moves frames to and from an interface.
 * Backends: nic_virtual.c (an in-memory wire); real interfaces come later behind the same
 * operations. All operations run on the switch thread only. */
#ifndef MS_NIC_H
#define MS_NIC_H

#include <stdint.h>

struct ms_nic_frame {
    const uint8_t *data;
    uint32_t len;
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
    /* Transmit the first n reserved buffers, lengths set; the rest go back unused. */
    void (*tx_commit)(struct ms_nic *nic, const struct ms_txbuf *bufs, uint32_t n);
    /* Called before the switch sleeps: ask to be woken on new input. Returns an fd to poll
     * for input, or -1 when the backend writes the switch's doorbell itself. */
    int (*arm)(struct ms_nic *nic);
    void (*destroy)(struct ms_nic *nic);
};

struct ms_nic {
    const struct ms_nic_ops *ops;
    int has_host;   /* frames no port bound go to a host stack (else: dropped, no-binding) */
};

/* The virtual wire: a port-shaped shared region whose far end (ms_switch_wire) injects into
 * its TX ring and captures from its RX ring. */
struct ms_nic *ms_nic_virtual_new(uint32_t slots, uint32_t buf_size, int *memfd, int *wake_fd);

#endif
