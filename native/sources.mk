# native/'s sources and warning flags, listed once: the Makefile includes this file and
# ministack/_build.py reads it (plain "NAME := words" lines, nothing make-specific).
#
# The datapath: the cffi extension and libministack.a.
CORE_SRCS := reasons.c parse.c table.c filter.c frag.c neigh.c answer.c offload.c port_shm.c app.c app_netmap.c framefd.c framelog.c nic_virtual.c nic_afpacket.c bpf_plugin.c switch.c forward.c
# The BPF plugin, libms_bpf.so (the only object linked with libbpf and libxdp): the
# AF_XDP backend and the steering program's loader, which AF_PACKET uses too.
PLUGIN_SRCS := nic_afxdp.c bpf_steer.c
# The datapath's rules as the VALE kernel module compiles them (native/vale/Kbuild): the
# same files, built against the kernel with native/vale/compat/ for the C library.
VALE_CORE_SRCS := parse.c table.c filter.c frag.c reasons.c answer.c
# The benchmark drivers, which the core does not name (tools/bench.h).
TOOL_SRCS := tools/bench.c tools/bench_veth.c
# The C application library (ministack_app.h), for ms-pktgen and ms-lwip-echo.
APP_SRCS := client.c app.c app_netmap.c framefd.c port_shm.c
WARN := -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
