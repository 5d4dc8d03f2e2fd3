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

# Tested on Debian 12. Ubuntu is let through but untested (a few package names differ there;
# apt then says which); anything without apt is refused.
[ -r /etc/os-release ] || die "cannot tell which system this is (no /etc/os-release); MiniStack needs Debian 12 or Ubuntu 22.04 or newer"
. /etc/os-release
case "${ID:-} ${ID_LIKE:-}" in
    *debian*|*ubuntu*) ;;
    *) die "this is ${PRETTY_NAME:-an unknown system}; MiniStack's set-up supports Debian 12 and Ubuntu 22.04 or newer (apt)" ;;
esac
[ "$(uname -s)" = Linux ] || die "MiniStack needs Linux (AF_XDP, AF_PACKET, memfd)"
command -v apt-get >/dev/null || die "apt-get not found; MiniStack's set-up needs Debian or Ubuntu"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "run as root, or install sudo"
    SUDO="sudo"
fi

PACKAGES=(python3 python3-venv python3-dev gcc make pkg-config clang llvm libclang-rt-14-dev
          libbpf-dev libxdp-dev iproute2 iputils-ping nftables tcpdump chromium debootstrap)
missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
    say "system packages already present"
fi

[ -x .venv/bin/python ] || { say "creating .venv"; python3 -m venv .venv; }
.venv/bin/pip install -q --upgrade pip
say "installing MiniStack (compiles the datapath)"
.venv/bin/pip install -q -e '.[test]'
.venv/bin/python -c "import ministack; print('setup: MiniStack', ministack.__version__, 'ready')"
say "next: .venv/bin/ministack demo   (or: .venv/bin/ministack lab)"
