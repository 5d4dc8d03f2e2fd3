#!/usr/bin/env bash
# MiniStack set-up: the system packages (apt), then a virtual environment in .venv with
# MiniStack, its lab and its test tools, then `ministack doctor`. Safe to run again. Works as
# root or with sudo.
#
#   ./setup.sh             (asks sudo for the apt step when not root)
#   ./setup.sh --dry-run   says which packages it would install, and touches nothing
#   ./setup.sh --netmap    also the VALE kernel switch: builds netmap and ministack_vale.ko
#                          for this kernel (its headers from apt), installs them and netmap's
#                          user headers, loads both (nic=$MINISTACK_VALE_NIC, if set) and
#                          has them load at boot; MiniStack is built with backend="vale".
#                          netmap comes from $MINISTACK_NETMAP_SRC (a tarball or a tree) or
#                          its pinned commit (git); $MINISTACK_KERNEL builds for another
#                          installed or installable kernel release, loaded when it boots.
#
# One line per step; apt's and pip's own output goes to setup.log, shown when a step fails.
# Exit status: doctor's (0 when everything this distribution can have works).
#
# Then: .venv/bin/ministack demo   or   .venv/bin/ministack lab
set -euo pipefail
cd "$(dirname "$0")"

DRY_RUN=no
NETMAP=no
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=yes ;;
        --netmap) NETMAP=yes ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) printf 'setup: unknown option %s (try --help)\n' "$arg" >&2; exit 2 ;;
    esac
done

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

# Tested on Debian 12 (CI, as root and as a sudo user, in fresh debootstrapped systems) and
# Ubuntu 24.04 (by hand, in a chroot). Older releases lack Python 3.11 (Ubuntu 22.04 has
# 3.10, and no libxdp); anything without apt is refused.
SUPPORTED="Debian 12 or newer, or Ubuntu 24.04 or newer"
[ -r /etc/os-release ] || die "cannot tell which system this is (no /etc/os-release); MiniStack needs $SUPPORTED"
. /etc/os-release
case "${ID:-} ${ID_LIKE:-}" in
    *debian*|*ubuntu*) ;;
    *) die "this is ${PRETTY_NAME:-an unknown system}; MiniStack's set-up needs $SUPPORTED (apt)" ;;
esac
release=${VERSION_ID:-99}   # Debian testing and unstable have none
case "${ID:-}" in
    debian) [ "${release%%.*}" -ge 12 ] 2>/dev/null ||
        die "this is ${PRETTY_NAME:-Debian $release}; MiniStack needs $SUPPORTED (Python 3.11)" ;;
    ubuntu) [ "${release%%.*}" -ge 24 ] 2>/dev/null ||
        die "this is ${PRETTY_NAME:-Ubuntu $release}; MiniStack needs $SUPPORTED (Python 3.11)" ;;
esac
[ "$(uname -s)" = Linux ] || die "MiniStack needs Linux (AF_XDP, AF_PACKET, memfd)"
command -v apt-get >/dev/null || die "apt-get not found; MiniStack's set-up needs Debian or Ubuntu"

SUDO=""
if [ "$(id -u)" -ne 0 ] && [ $DRY_RUN = no ]; then
    command -v sudo >/dev/null || die "run as root, or install sudo"
    SUDO="sudo"
fi

LOG=$PWD/setup.log
# Runs a step with its output in the log; on failure shows the log's end and stops.
step() {
    local what=$1; shift
    say "$what"
    { printf '\n=== %s\n$ %s\n' "$what" "$*"; } >> "$LOG"
    local t0=$SECONDS
    if ! "$@" >> "$LOG" 2>&1; then
        printf 'setup: failed: %s; the end of %s:\n' "$what" "$LOG" >&2
        tail -n 30 "$LOG" | sed 's/^/    /' >&2
        exit 1
    fi
    # Where an install's minutes went, for whoever reads the log of a slow one.
    printf '=== %s: done in %d s\n' "$what" $((SECONDS - t0)) >> "$LOG"
}

# Build and run: a C compiler, clang for the XDP program, libbpf for AF_XDP, lwIP (a real
# user-space stack to run on ports: ministack lwip-echo), the kernel's tools. Tests: tcpdump,
# tshark (reads back the captures with reasons), ethtool (the peer's offloads),
# debootstrap, git and slirp4netns (the fresh-machine and course VM tests copy the checkout
# into a new Debian, networked through slirp4netns so that what it sets up stays out of
# this machine's network), chromium (the browser test; on Ubuntu `chromium` is only a snap
# wrapper, so Playwright brings its own), QEMU, busybox, cpio and Debian's kernel headers (the
# VALE module is built for that kernel and tested in it, booted under QEMU).
REQUIRED=(python3 python3-venv python3-dev gcc make pkg-config clang llvm libbpf-dev
          liblwip-dev iproute2 iputils-ping tcpdump tshark ethtool debootstrap git
          slirp4netns nodejs qemu-system-x86 busybox-static cpio linux-headers-amd64)
# --netmap: the kernel's headers (netmap and the module are built against them) and kmod
# (depmod, modprobe).
KREL=${MINISTACK_KERNEL:-$(uname -r)}
if [ $NETMAP = yes ] && [ ! -f "/lib/modules/$KREL/build/Makefile" ]; then
    REQUIRED+=("linux-headers-$KREL")
fi
[ $NETMAP = no ] || REQUIRED+=(kmod)
# Debian's npm, unless npm came with another nodejs (NodeSource's bundles it, and conflicts).
command -v npm >/dev/null || REQUIRED+=(npm)
if [ "${ID:-}" = debian ]; then REQUIRED+=(chromium); fi
# Each only where the distribution has it: libxdp for AF_XDP (without it real interfaces
# use AF_PACKET); the installed clang's compiler runtime (libFuzzer and the sanitizers, for
# the fuzz test); clang 19, with which the tests also build and load the XDP program, since
# newer clangs emit code the verifier judges differently.
clang_major() { clang -dumpversion 2>/dev/null | cut -d. -f1; }
optional() {
    echo libxdp-dev clang-19
    # Before clang is installed: the runtime that goes with the distribution's default clang.
    local n; n=$(clang_major) || true
    if [ -z "$n" ]; then
        n=$(apt-cache depends clang 2>/dev/null || true)
        [[ $n =~ Depends:\ clang-([0-9]+) ]] && n=${BASH_REMATCH[1]} || n=""
    fi
    if [ -n "$n" ]; then echo "libclang-rt-$n-dev"; fi
}

missing() { local p; for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done; }
# "PACKAGE VERSION" for each package apt would install (one apt-cache call: each costs half a
# second). The whole output is captured before it is read: `apt-cache policy | grep -q`
# under pipefail dies of SIGPIPE (exit 141) whenever grep stops reading early, and once
# judged every package uninstallable.
candidates() {
    local out line pkg=""
    out=$(apt-cache policy "$@" 2>/dev/null) || true
    while IFS= read -r line; do
        if [[ $line =~ ^([^[:space:]]+):$ ]]; then
            pkg=${BASH_REMATCH[1]}
        elif [[ -n $pkg && $line =~ ^[[:space:]]+Candidate:\ ([0-9][^[:space:]]*)$ ]]; then
            echo "$pkg ${BASH_REMATCH[1]}"
            pkg=""
        fi
    done <<< "$out"
}
have_lists() { compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; }
# cand[PACKAGE]=VERSION for what apt would install of the packages named.
declare -A cand=()
load_candidates() { local p v; while read -r p v; do cand[$p]=$v; done < <(candidates "$@"); }

if [ $DRY_RUN = yes ]; then
    have_lists || say "apt has no package lists yet: 'apt-get update' first, or the candidates below are unknown"
    # The same judgement the real run makes, for every package, installed or not.
    all=("${REQUIRED[@]}" $(optional))
    load_candidates "${all[@]}"
    for p in "${all[@]}"; do
        v=${cand[$p]:-}
        if dpkg -s "$p" >/dev/null 2>&1; then state="installed"
        elif [ -n "$v" ]; then state="would install"
        else state="not in this distribution"; fi
        printf 'setup: %-22s %-26s candidate %s\n' "$p" "$state" "${v:-(none)}"
    done
    exit 0
fi

: > "$LOG"
say "system: ${PRETTY_NAME:-$ID $release}; apt's and pip's output goes to $LOG"
apt_updated=no
apt_update() {
    [ $apt_updated = yes ] && return
    step "updating apt's package lists" $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update
    apt_updated=yes
}
apt_install() {
    step "installing $*" $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}

need=($(missing "${REQUIRED[@]}"))
if [ ${#need[@]} -gt 0 ]; then
    apt_update
    if [ $NETMAP = yes ] && [[ " ${need[*]} " == *" linux-headers-$KREL "* ]]; then
        load_candidates "linux-headers-$KREL"
        [ -n "${cand[linux-headers-$KREL]:-}" ] ||
            die "--netmap: this system's apt has no linux-headers-$KREL, so netmap cannot be built for kernel $KREL (MINISTACK_KERNEL=<release> builds for another kernel)"
    fi
    apt_install "${need[@]}"
fi
need=($(missing $(optional)))
if [ ${#need[@]} -gt 0 ]; then
    apt_update   # fresh lists: a stale one names versions the mirror no longer has
    load_candidates "${need[@]}"
    avail=()
    for p in "${need[@]}"; do
        if [ -n "${cand[$p]:-}" ]; then avail+=("$p"); else say "$p: not in this distribution, left out"; fi
    done
    [ ${#avail[@]} -eq 0 ] || apt_install "${avail[@]}"
fi
[ $apt_updated = yes ] || [ ${#need[@]} -gt 0 ] || say "system packages already present"
dpkg -s libxdp-dev >/dev/null 2>&1 ||
    say "this system has no libxdp: AF_XDP is left out, real interfaces will use AF_PACKET"

# Derivatives (Mint, Raspberry Pi OS, ...) pass the checks above by ID_LIKE: judge their Python.
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "MiniStack needs Python 3.11 or newer, and this system's python3 is $(python3 -V 2>&1 | cut -d' ' -f2); use $SUPPORTED"
# --netmap, before MiniStack is built: it finds netmap's user header in /usr/local/include.
netmap_setup() {
    local kdir=/lib/modules/$KREL/build tree=$PWD/.netmap/netmap
    step "building netmap and ministack_vale.ko for kernel $KREL (native/vale/build.sh)" \
        native/vale/build.sh "$kdir" "$PWD/.netmap"
    step "installing netmap's user headers in /usr/local/include/net" \
        $SUDO install -D -m 0644 -t /usr/local/include/net "$tree"/sys/net/netmap*.h
    local mods=/lib/modules/$KREL/updates/ministack
    step "installing netmap.ko and ministack_vale.ko in $mods" \
        $SUDO install -D -m 0644 -t "$mods" "$tree/netmap.ko" native/build/vale/ministack_vale.ko
    step "updating the module index (depmod $KREL)" $SUDO depmod -a "$KREL"
    # Loaded at every boot (systemd-modules-load), attached to the NIC asked for, if any.
    local nic=${MINISTACK_VALE_NIC:-}
    printf 'netmap\nministack_vale\n' | $SUDO tee /etc/modules-load.d/ministack-vale.conf >/dev/null
    if [ -n "$nic" ]; then
        printf 'options ministack_vale nic=%s\n' "$nic" | $SUDO tee /etc/modprobe.d/ministack-vale.conf >/dev/null
    else
        $SUDO rm -f /etc/modprobe.d/ministack-vale.conf
    fi
    if [ "$KREL" != "$(uname -r)" ]; then
        say "built for kernel $KREL, not this one ($(uname -r)): the modules load when it boots"
    elif [ ! -e /proc/modules ]; then
        say "this kernel cannot load modules: netmap and ministack_vale are installed, not loaded"
    else
        # A module of an earlier build must not stay loaded under the new one.
        $SUDO modprobe -r ministack_vale 2>/dev/null || true
        step "loading netmap and ministack_vale${nic:+ (nic=$nic)}" $SUDO modprobe ministack_vale
    fi
}
[ $NETMAP = no ] || netmap_setup

# A venv interrupted while it was made has python but no pip: make it again.
if [ -x .venv/bin/python ] && [ -x .venv/bin/pip ]; then
    say "keeping .venv"
else
    step "creating .venv" python3 -m venv --clear .venv
fi
step "upgrading pip in .venv" .venv/bin/pip install --upgrade pip
step "installing MiniStack, its lab and its test tools (compiles the datapath)" \
    .venv/bin/pip install -e '.[test]'
# JupyterHub's proxy, for the class server (ministack course serve): from npm, as
# JupyterHub's documentation has it, but into .venv (no sudo; it goes with the venv).
if [ -x .venv/node_modules/.bin/configurable-http-proxy ] || command -v configurable-http-proxy >/dev/null; then
    say "keeping configurable-http-proxy"
else
    say "installing JupyterHub's proxy into .venv (npm install --prefix .venv configurable-http-proxy)"
    npm install --prefix .venv --no-fund --no-audit configurable-http-proxy >> "$LOG" 2>&1 ||
        say "could not install configurable-http-proxy: everything works but the class server (ministack course serve; see $LOG)"
fi
if [ ! -x /usr/bin/chromium ] && ! compgen -G ~/'.cache/ms-playwright/chromium-*' >/dev/null; then
    say "installing Playwright's chromium for the browser test"
    .venv/bin/python -m playwright install --with-deps chromium >> "$LOG" 2>&1 ||
        say "could not fetch Playwright's chromium: everything works, but the browser test cannot run (see $LOG)"
fi
say "MiniStack $(.venv/bin/python -c 'import ministack; print(ministack.__version__)') installed; checking what works here:"
echo
status=0
.venv/bin/ministack doctor || status=$?
echo
if [ $status -eq 0 ]; then
    say "next: .venv/bin/ministack demo   (or: .venv/bin/ministack lab)"
else
    say "ministack doctor found something missing or broken (above, with the command that fixes it)"
fi
exit $status
