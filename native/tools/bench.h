/* The benchmark and tool drivers (native/tools/): traffic generated and drained from C,
 * acting as applications and as the network. Nothing in the switch names them; they use
 * its public API (ministack.h) and the application side's ring access (app_internal.h).
 * Also declared for cffi (ministack/_build.py), so plain declarations only. */
#ifndef MS_TOOLS_BENCH_H
#define MS_TOOLS_BENCH_H

#include "ministack.h"

struct ms_bench_result {
    uint64_t frames;        /* frames that arrived at the far end */
    uint64_t sent;
    double seconds;
    double mpps;
    uint64_t probes, hits;  /* the same-work ring's lookups, and those that found a tuple */
};
/* A copy-only SPSC ring between two threads (lab 05's "a ring that only copies"). */
int ms_bench_baseline(uint32_t frame_len, uint32_t batch, double seconds, struct ms_bench_result *r);
/* The same-work ring, the switch rows' baseline: the driver of ms_bench_run fills one
 * ring and drains another, and a stage thread between them copies each frame across,
 * parses Ethernet/IPv4/UDP and probes a hash holding the frames' tuples (the source's
 * when by_src, else the destination's) and made-up ones up to `entries`; its two rings
 * have the row's sizes. Pinned as the switch rows are: driver CPU 0, stage CPU 1. */
int ms_bench_same_work(const uint8_t *frames, const uint32_t *lens, uint32_t nframes,
                       uint32_t entries, int by_src, uint32_t in_slots, uint32_t out_slots,
                       uint32_t batch, double seconds, struct ms_bench_result *r);
/* Nanoseconds per frame, on one core with the frames in cache, of: the copy; the copy and
 * ms_parse(); those and ms_filter_tx() (tx: the frames' sources bound) or ms_demux() (else:
 * their destinations), with `entries` more bindings; the same-work ring's stage. ns has
 * MS_BENCH_COST_STAGES elements. */
#define MS_BENCH_COST_STAGES 4
int ms_bench_cost(const uint8_t *frames, const uint32_t *lens, uint32_t nframes,
                  uint32_t entries, int tx, double seconds, double *ns);
/* Nanoseconds per frame of the switch's whole round on one core (ms_switch_poll, frames in
 * cache): a switch of its own (MAC `mac`, address ip4) on the virtual NIC, with one port
 * bound to UDP (ip4, ports[i]) for each i. Frames go in from the port (tx) or the wire,
 * 256 per round, and the other side is emptied between rounds, untimed. The fastest
 * round over `seconds`. */
int ms_bench_loop_cost(const uint8_t *frames, const uint32_t *lens, uint32_t nframes,
                       const uint8_t *mac, const uint8_t *ip4, const uint16_t *ports,
                       uint32_t nports, int tx, double seconds, double *ns);
/* Drive traffic into `src` (a port id, or -1 for the wire) and drain `dst` (port id or -1)
 * with the given precomposed frames, cycled; the driver on CPU 0, the switch on CPU 1. */
int ms_bench_run(ms_switch *sw, int src, int dst, const uint8_t *frames, const uint32_t *lens,
                 uint32_t nframes, uint32_t batch, double seconds, struct ms_bench_result *r);
/* Over a veth pair into namespace ns: a bare AF_PACKET sender at one end and receiver at
 * the other (to_host: the peer sends), or the peer end against switch port `port`
 * (to_port: the peer sends and the port is drained; else the port sends). */
int ms_bench_veth_baseline(const char *host_if, const char *ns, const char *peer_if,
                           int to_host, const uint8_t *frames, const uint32_t *lens,
                           uint32_t nframes, double seconds, struct ms_bench_result *r,
                           char *err, size_t errlen);
int ms_bench_veth_switch(ms_switch *sw, int port, const char *ns, const char *peer_if,
                         int to_port, const uint8_t *frames, const uint32_t *lens,
                         uint32_t nframes, double seconds, struct ms_bench_result *r,
                         char *err, size_t errlen);
/* Through port's frame descriptor (ms_framefd), one write() or read() per frame:
 * to_port 0 writes and drains the wire, 1 injects at the wire and reads. */
int ms_bench_framefd(ms_switch *sw, int port, int to_port, const uint8_t *frames,
                     const uint32_t *lens, uint32_t nframes, double seconds,
                     struct ms_bench_result *r);
/* The same driver on a bare SOCK_SEQPACKET pair served by a thread in batches, as the
 * pump serves a port's: the cost of one syscall per frame, without the switch. */
int ms_bench_framefd_bare(int to_port, const uint8_t *frame, uint32_t len, double seconds,
                          struct ms_bench_result *r);
/* Drain the wire of sw on a background thread, napping nap_ns when it is empty (0:
 * yield); NULL when the switch has no virtual wire or no thread could start. Stop it
 * before the switch is destroyed: it returns the frames it drained. */
struct ms_bench_sink;
struct ms_bench_sink *ms_bench_sink_start(ms_switch *sw, int nap_ns);
uint64_t ms_bench_sink_stop(struct ms_bench_sink *s);

/* As ms_bench_veth_switch, for a port of any switch given as its application handle (a
 * VALE port's, from ms_app_open_netmap, say): it sends MS_BATCH frames per ms_app_send
 * (else receives with ms_app_recv) on CPU 1 while the peer end (ns NULL: this namespace)
 * receives (or sends) on CPU 0. Counts what arrived at the far end. */
int ms_bench_veth_app(ms_app *app, const char *ns, const char *peer_if, int to_port,
                      const uint8_t *frames, const uint32_t *lens, uint32_t nframes,
                      double seconds, struct ms_bench_result *r, char *err, size_t errlen);

#endif
