#!/usr/bin/env bash
# MiniStack set-up: the system packages (apt), then a virtual environment in .venv with
# MiniStack, its lab and its test tools. Safe to run again. Works as root or with sudo.
#
#   ./setup.sh            (asks sudo for the apt step when not root)
#
# Then: .venv/bin/ministack demo   or   .venv/bin/ministack lab
set -euo pipefail
cd "$(dirname "$0")"

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

# Tested on Debian 12 (CI, as root and as a sudo user) and Ubuntu 24.04 (by hand, in a
# chroot). Older releases lack Python 3.11 (Ubuntu 22.04 has 3.10, and no libxdp); anything
# without apt is refused.
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
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "run as root, or install sudo"
    SUDO="sudo"
fi

# Build and run: a C compiler, clang for the XDP program, libbpf and libxdp for AF_XDP, the
# kernel's tools. Tests: tcpdump, debootstrap (the course VM's test), chromium (the browser
# test; on Ubuntu `chromium` is only a snap wrapper, so Playwright brings its own there).
PACKAGES=(python3 python3-venv python3-dev gcc make pkg-config clang llvm libbpf-dev
          iproute2 iputils-ping nftables tcpdump debootstrap)
if [ "${ID:-}" = debian ]; then PACKAGES+=(chromium); fi

apt_install() {
    say "installing $*"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}
apt_updated=no
apt_update() {
    [ $apt_updated = yes ] && return
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=yes
}
missing() { for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done; }
# Installable: a name apt merely mentions has "Candidate: (none)".
known() {
    for p in "$@"; do
        if apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [0-9]'; then echo "$p"; fi
    done
}

need=($(missing "${PACKAGES[@]}"))
if [ ${#need[@]} -gt 0 ]; then
    apt_update
    apt_install "${need[@]}"
fi
# Then, each only where the distribution has it: libxdp for AF_XDP (Ubuntu 22.04 has none:
# real interfaces then use AF_PACKET); the installed clang's compiler runtime (libFuzzer and
# the sanitizers, for the fuzz test); and clang 19, with which the tests also build and load
# the XDP program, since newer clangs emit code the verifier judges differently.
extra=(libxdp-dev "libclang-rt-$(clang -dumpversion | cut -d. -f1)-dev" clang-19)
need=($(missing "${extra[@]}"))
if [ ${#need[@]} -gt 0 ]; then
    ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1 || apt_update   # a fresh container
    need=($(known "${need[@]}"))
    [ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
fi
[ $apt_updated = yes ] || say "system packages already present"
dpkg -s libxdp-dev >/dev/null 2>&1 ||
    say "this system has no libxdp: AF_XDP is left out, real interfaces will use AF_PACKET"

# Derivatives (Mint, Raspberry Pi OS, ...) pass the checks above by ID_LIKE: judge their Python.
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "MiniStack needs Python 3.11 or newer, and this system's python3 is $(python3 -V 2>&1 | cut -d' ' -f2); use $SUPPORTED"
[ -x .venv/bin/python ] || { say "creating .venv"; python3 -m venv .venv; }
.venv/bin/pip install -q --upgrade pip
say "installing MiniStack (compiles the datapath)"
.venv/bin/pip install -q -e '.[test]'
if [ ! -x /usr/bin/chromium ] && ! ls ~/.cache/ms-playwright/chromium-* >/dev/null 2>&1; then
    say "installing Playwright's chromium for the browser test"
    .venv/bin/python -m playwright install --with-deps chromium ||
        say "could not fetch Playwright's chromium: everything works, but the browser test will skip"
fi
.venv/bin/python -c "import ministack; print('setup: MiniStack', ministack.__version__, 'ready')"
say "next: .venv/bin/ministack demo   (or: .venv/bin/ministack lab)"
