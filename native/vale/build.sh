#!/usr/bin/env bash
# Build netmap and ministack_vale.ko for one kernel: what `./setup.sh --netmap` and
# tests/test_vale.py both run, so that the module the tests load is built the way users get it.
#
#   native/vale/build.sh KDIR WORKDIR
#
# KDIR: that kernel's build tree (/lib/modules/RELEASE/build). netmap's source is
# $MINISTACK_NETMAP_SRC, a tarball of it or a tree (built in place, once), or else the pinned
# upstream commit below, fetched with git into WORKDIR. Only netmap.ko is built (no native
# drivers: every NIC runs in netmap's emulated mode, which needs no patched driver), then
# ministack_vale.ko and ms-vale-io in native/build/vale. Prints the netmap tree's path,
# which WORKDIR/netmap links to.
set -euo pipefail

NETMAP_REPO=https://github.com/luigirizzo/netmap.git
NETMAP_COMMIT=89607e1406c1fa5ac2106bd2ff33417f090c0d60   # 2026-02-10, BSD licence

[ $# -eq 2 ] || { echo "usage: $0 KDIR WORKDIR" >&2; exit 2; }
KDIR=$(realpath "$1")
WORK=$(realpath -m "$2")
NATIVE=$(realpath "$(dirname "$0")/..")
[ -f "$KDIR/Makefile" ] || { echo "build.sh: $KDIR is not a kernel build tree (install that kernel's headers)" >&2; exit 1; }
mkdir -p "$WORK"

log() { printf 'build.sh: %s\n' "$*" >&2; }

src=${MINISTACK_NETMAP_SRC:-}
if [ -d "$src" ]; then
    tree=$(realpath "$src")
elif [ -f "$src" ]; then
    # git archive names the commit in the tarball's pax header: say when it is not the pin.
    got=$(python3 -c 'import sys, tarfile; print(tarfile.open(sys.argv[1]).pax_headers.get("comment", "?"))' "$src")
    [ "$got" = "$NETMAP_COMMIT" ] || log "$src is netmap commit $got, not the pinned $NETMAP_COMMIT; building it anyway"
    tree=$WORK/netmap-$got
    if [ ! -d "$tree" ]; then
        rm -rf "$WORK/unpack" && mkdir "$WORK/unpack"
        tar xzf "$src" -C "$WORK/unpack"
        mv "$WORK/unpack"/* "$tree" && rmdir "$WORK/unpack"
    fi
elif [ -n "$src" ]; then
    log "MINISTACK_NETMAP_SRC=$src is neither a tarball nor a directory"; exit 1
else
    tree=$WORK/netmap-$NETMAP_COMMIT
    if [ ! -d "$tree/.git" ]; then
        log "fetching netmap $NETMAP_COMMIT from $NETMAP_REPO"
        rm -rf "$tree" && git init -q "$tree"
        git -C "$tree" fetch -q --depth 1 "$NETMAP_REPO" "$NETMAP_COMMIT"
        git -C "$tree" checkout -q FETCH_HEAD
    fi
fi

# Built once per tree and kernel: configure records the kernel it was made for.
stamp=$tree/.ministack-kdir
if [ ! -f "$tree/netmap.ko" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$KDIR" ]; then
    log "building netmap.ko for $KDIR in $tree"
    (cd "$tree" && ./configure --kernel-dir="$KDIR" --no-drivers --no-apps --no-utils >&2 &&
        make -j"$(nproc)" >&2)
    echo "$KDIR" > "$stamp"
fi
log "building ministack_vale.ko and ms-vale-io"
make -s -C "$NATIVE" vale KDIR="$KDIR" NETMAP="$tree" >&2
ln -sfn "$tree" "$WORK/netmap"   # where ./setup.sh --netmap installs it from
echo "$tree"
