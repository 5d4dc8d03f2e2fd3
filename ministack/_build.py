"""cffi build script (API mode): compiles native/ into the extension ministack._native.

setup.py names this file in ``cffi_modules``, so ``pip install .`` and ``pip install -e .``
build the datapath and its helper programs; importing it (the tests read its declarations)
builds nothing. The declarations come from native/include/ministack.h itself, so the C
header stays the single description of the interface.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent
NATIVE = ROOT / "native"


def make_lists(text: str) -> dict[str, list[str]]:
    """The ``NAME := words`` lines of native/sources.mk, which the Makefile includes.

    >>> make_lists("# a comment\nSRCS := a.c b.c\n")
    {'SRCS': ['a.c', 'b.c']}
    """
    return {m[0]: m[1].split() for m in re.findall(r"^(\w+)\s*:=\s*(.*)$", text, re.M)}


LISTS = make_lists((NATIVE / "sources.mk").read_text())
# The extension holds the datapath and the benchmark drivers.
SOURCES = LISTS["CORE_SRCS"] + LISTS["TOOL_SRCS"]
APP_SOURCES = LISTS["APP_SRCS"]
PLUGIN_SOURCES = LISTS["PLUGIN_SRCS"]
WARN = LISTS["WARN"]
FLAGS = WARN + ["-O2"]
# One shared object: internal calls need no PLT, and link-time optimisation inlines the
# parser, filter and table into the switch loop.
EXTENSION_FLAGS = FLAGS + ["-fvisibility=hidden", "-flto"]
LINK_FLAGS = ["-flto", "-O2"]


def reason_rows(text: str) -> list[tuple[int, str]]:
    """(number, ID) of each row of ms_reasons.h's table."""
    return [(int(n), ident) for n, ident in re.findall(r"^\s*R\((\d+), (\w+),", text, re.M)]


def cdef_from_header(text: str, reasons: str = "") -> str:
    """Keep declarations and integer #defines; drop guards, includes and comments. The
    enum that ms_reasons.h's table generates is written out from its rows (cdef() takes
    no macros)."""
    rows = reason_rows(reasons)
    enum = "enum ms_reason {\n" + "".join(f"    MS_R_{ident} = {n},\n" for n, ident in rows)
    text = re.sub(r"enum ms_reason \{.*?\};", enum + f"    MS_R_COUNT = {len(rows)}\n}};",
                  text, flags=re.S)
    text = text.replace("[MS_R_COUNT]", f"[{len(rows)}]")
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    keep = []
    for line in text.splitlines():
        if line.startswith("#"):
            if re.match(r"#define\s+\w+\s+\d+\s*$", line):
                keep.append(line)
            elif m := re.match(r"#define\s+(\w+)\s+_IO", line):  # an ioctl's number
                keep.append(f"#define {m[1]} ...")
            continue
        keep.append(line)
    return "\n".join(keep)


def netmap_include() -> str | None:
    """Where netmap's public user header is (net/netmap_user.h): $MINISTACK_NETMAP_INCLUDE
    (a netmap tree's sys/, say), or where ./setup.sh --netmap installs it. Then the VALE
    backend's ports (native/app_netmap.c) are built in."""
    import os

    for d in [os.environ.get("MINISTACK_NETMAP_INCLUDE", ""), "/usr/local/include"]:
        if d and (Path(d) / "net" / "netmap_user.h").exists():
            return d
    return None


def bpf_buildable() -> bool:
    """libxdp, libbpf and a clang that targets BPF: then the BPF plugin (AF_XDP, and
    AF_PACKET's steering) and the steering program are built in."""
    if shutil.which("clang") is None or shutil.which("pkg-config") is None:
        return False
    return subprocess.run(["pkg-config", "--exists", "libxdp", "libbpf"]).returncode == 0


def compile_steering_program(out: Path, clang: str = "clang") -> None:
    """Compile native/xdp/ministack_steer.bpf.c into `out` (the tests try every clang)."""
    arch = subprocess.run(["gcc", "-print-multiarch"], capture_output=True,
                          text=True).stdout.strip()
    cmd = [clang, "-O2", "-g", "-target", "bpf", "-Wall", "-Wextra", "-Werror",
           "-I", str(NATIVE / "include")]
    if arch:
        cmd.append(f"-I/usr/include/{arch}")
    subprocess.run(cmd + ["-c", str(NATIVE / "xdp" / "ministack_steer.bpf.c"), "-o", str(out)],
                   check=True)


def build_steering_program() -> None:
    """Compile the steering program into the package (ministack/ministack_steer.bpf.o)."""
    compile_steering_program(ROOT / "ministack" / STEER_OBJ)


def build_pktgen() -> None:
    """Compile ms-pktgen, a C application on the port library, into the package."""
    srcs = [str(NATIVE / f) for f in ["tools/pktgen.c", *APP_SOURCES]]
    subprocess.run(["cc", *FLAGS, "-I", str(NATIVE / "include"), "-I", str(NATIVE),
                    *srcs, "-o", str(ROOT / "ministack" / "ms-pktgen"), "-lpthread"],
                   check=True)


def lwip_available() -> bool:
    """Debian's liblwip-dev (lwIP 2.1): then ms-lwip-echo is built."""
    return shutil.which("pkg-config") is not None and subprocess.run(
        ["pkg-config", "--exists", "lwip"]).returncode == 0


def build_lwip_echo() -> None:
    """Compile ms-lwip-echo: lwIP on a port through the daemon (native/lwip/)."""
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "lwip"], capture_output=True,
                           text=True, check=True).stdout.split()
    srcs = [str(NATIVE / f) for f in ["lwip/lwip_echo.c", *APP_SOURCES]]
    # gnu11, not c11: lwIP's headers use POSIX and GNU declarations.
    std = [f for f in FLAGS if not f.startswith("-std=")]
    subprocess.run(["cc", "-std=gnu11", *std, "-I", str(NATIVE / "include"), *srcs,
                    "-o", str(ROOT / "ministack" / "ms-lwip-echo"), *flags, "-lpthread"],
                   check=True)


def build_bpf_plugin() -> None:
    """Compile the BPF plugin (the AF_XDP backend and the steering program's loader, which
    AF_PACKET uses too) into its own shared object, the only one linked with libxdp and
    libbpf (bpf_plugin.c loads it when first asked), so that a wheel installed without
    them still imports."""
    libs = subprocess.run(["pkg-config", "--libs", "libxdp", "libbpf"], capture_output=True,
                          text=True, check=True).stdout.split()
    subprocess.run(["cc", "-shared", "-fPIC", *FLAGS, "-fvisibility=hidden",
                    "-I", str(NATIVE / "include"),
                    "-I", str(NATIVE), *(str(NATIVE / f) for f in PLUGIN_SOURCES),
                    "-o", str(ROOT / "ministack" / BPF_PLUGIN), *libs], check=True)


STEER_OBJ = "ministack_steer.bpf.o"
BPF_PLUGIN = "libms_bpf.so"


def build_helpers() -> None:
    """The programs and objects installed beside the extension: ms-pktgen, ms-lwip-echo
    (with liblwip-dev), the steering program and the BPF plugin (with libxdp)."""
    build_pktgen()
    if lwip_available():
        build_lwip_echo()
    if bpf_buildable():
        build_steering_program()
        build_bpf_plugin()
    else:  # a plugin of an earlier build with BPF must not outlive it
        (ROOT / "ministack" / BPF_PLUGIN).unlink(missing_ok=True)


# cffi runs this file as "__cffi__" when setuptools builds the package (setup.py names it
# in cffi_modules): only then are the helpers compiled, never when a test imports it.
if __name__ in ("__cffi__", "__main__"):
    build_helpers()

NETMAP_INCLUDE = netmap_include()
ffibuilder = FFI()
ffibuilder.cdef(cdef_from_header((NATIVE / "include" / "ministack.h").read_text(),
                                 (NATIVE / "include" / "ms_reasons.h").read_text()) +
                cdef_from_header((NATIVE / "tools" / "bench.h").read_text()) +
                # The VALE module's ioctls, which ministack.vale makes with fcntl.ioctl.
                cdef_from_header((NATIVE / "vale" / "ministack_vale.h").read_text()) + """
static char *const ms_vale_switch;
static char *const ms_vale_device;
int ms_proto_has_ports(int family, int proto);
int ms_ipv6_is_ext_header(int proto);
void ms_parse(const uint8_t *frame, uint32_t len, struct ms_parsed *p);
""")
ffibuilder.set_source(
    "ministack._native",
    '#include "ministack.h"\n#include "parse.h"\n#include "bench.h"\n'
    '#include "vale/ministack_vale.h"\n'
    'static char *const ms_vale_switch = MS_VALE_SWITCH;\n'
    'static char *const ms_vale_device = MS_VALE_DEVICE;\n',
    # Relative to the project root, where setuptools runs the build.
    sources=[f"native/{s}" for s in SOURCES],
    include_dirs=["native/include", "native", "native/tools"] + (
        [NETMAP_INCLUDE] if NETMAP_INCLUDE else []),
    define_macros=[("MS_HAVE_NETMAP", "1")] if NETMAP_INCLUDE else [],
    extra_compile_args=EXTENSION_FLAGS,
    extra_link_args=LINK_FLAGS,
    libraries=["pthread", "dl"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
