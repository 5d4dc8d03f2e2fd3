/* The steering program (xdp/ministack_steer.bpf.c) loaded into the kernel: its object, its
 * maps and what both backends that share a NIC with the host stack do with them. Only the
 * BPF plugin (libms_bpf.so: nic_afxdp.c, bpf_steer.c) includes this; it is the one
 * object linked with libbpf. */
#ifndef MS_BPF_STEER_H
#define MS_BPF_STEER_H

#include <stddef.h>
#include <stdint.h>

struct bpf_object;

struct ms_bpf_steer {
    struct bpf_object *obj;
    int prog_fd;        /* the program loaded: ms_xdp or ms_tc */
    int bindings_fd;    /* ms_bindings */
    int to_host_fd;     /* ms_to_host: per-CPU counts of frames passed to the host stack */
    int kept_fd;        /* ms_kept: per-CPU counts of frames taken from it */
};

/* Open the object ($MINISTACK_STEER_OBJ, else MS_STEER_OBJ_PATH) and load it with program
 * `prog` ("ms_xdp" or "ms_tc") to run; 0, or -errno with err saying why and what to do. */
int ms_bpf_steer_load(struct ms_bpf_steer *s, const char *prog, char *err, size_t errlen);
/* Add (add=1) or remove a binding's key in ms_bindings; 0 or -errno. */
int ms_bpf_steer_binding(struct ms_bpf_steer *s, int add, int family, int proto,
                         const uint8_t *ip, uint16_t port);
/* Run the loaded program on a copy of a frame (BPF_PROG_TEST_RUN): 1 when it returns
 * `take` (the frame is the switch's), 0 when it returns `keep` (the host stack's), else
 * -errno (-EPROTO for any other return). */
int ms_bpf_steer_test(struct ms_bpf_steer *s, const uint8_t *frame, uint32_t len,
                      uint32_t take, uint32_t keep);
/* Add a per-CPU count map's totals to *frames and *bytes. */
void ms_bpf_steer_count(int map_fd, uint64_t *frames, uint64_t *bytes);
void ms_bpf_steer_close(struct ms_bpf_steer *s);
/* Write an error message into err (errlen bytes; nothing when err is NULL). */
void ms_bpf_say(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
