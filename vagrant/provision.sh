#!/usr/bin/env bash
# Provision the MiniStack course VM (Debian 12). Vagrant runs it as root on every `vagrant up
# --provision`; it is safe to run again: code is refreshed, the student's notebooks and the
# lab's token are kept.
#
#   vagrant/provision.sh [SOURCE]      SOURCE: the project folder (default /vagrant)
#
# It installs only Debian packages and PyPI packages, through the README's one set-up command
# (./setup.sh, run as the VM's user with sudo), then starts JupyterLab as a service and ends
# with a self-test (the demo in a peer namespace) that prints PASS or FAIL.
#
# Environment: MINISTACK_USER (default vagrant), MINISTACK_LAB_PORT (default 8888, the port
# inside the VM; the Vagrantfile forwards it), MINISTACK_HOST_PORT (the port on the host, for
# the printed URL; default the same). MINISTACK_KERNEL, MINISTACK_NETMAP_SRC and
# MINISTACK_VALE_NIC go to ./setup.sh --netmap (./setup.sh --help).
set -euo pipefail

SOURCE=${1:-/vagrant}
VM_USER=${MINISTACK_USER:-vagrant}
LAB_PORT=${MINISTACK_LAB_PORT:-8888}
HOST_PORT=${MINISTACK_HOST_PORT:-$LAB_PORT}

say() { printf 'provision: %s\n' "$*"; }
fail() {
    printf 'provision: %s\n' "$*" >&2
    echo "MiniStack self-test: FAIL"
    exit 1
}

[ "$(id -u)" -eq 0 ] || fail "run me as root (Vagrant does)"
[ -x "$SOURCE/setup.sh" ] || fail "no MiniStack project at $SOURCE (expected $SOURCE/setup.sh)"
getent passwd "$VM_USER" >/dev/null || fail "user $VM_USER does not exist (set MINISTACK_USER)"
HOME_DIR=$(getent passwd "$VM_USER" | cut -d: -f6)
PROJECT=$HOME_DIR/ministack
LABS=$HOME_DIR/labs

# What setup.sh needs before it can run, and rsync for copying the project in: all tiny.
need=()
for p in sudo rsync ca-certificates curl; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The project is built on the VM's own disk, not on the shared folder: a virtual environment
# and a compiler are slow (and symlinks fragile) on VirtualBox and NFS shares. --delete keeps
# the copy exact; the environment and build outputs are excluded, so they survive a rerun.
say "copying $SOURCE to $PROJECT"
install -d -o "$VM_USER" -g "$(id -gn "$VM_USER")" "$PROJECT"
rsync -a --delete --chown="$VM_USER:$(id -gn "$VM_USER")" \
    --exclude=/.venv --exclude=/.git --exclude=/.netmap --exclude=/setup.log --exclude=/native/build --exclude=/artifacts \
    --exclude='*.bpf.o' --exclude=/ministack/ms-pktgen --exclude='*.so' \
    --exclude=__pycache__ --exclude=.ipynb_checkpoints "$SOURCE/" "$PROJECT/"

# The README's set-up command, as the student would run it: an ordinary user with sudo;
# with the VALE kernel switch too (--netmap), so students have both switches, wherever the
# kernel loads modules (a VirtualBox or libvirt guest's does) or one is named to build for.
SETUP_ARGS=""
if [ -e /proc/modules ] || [ -n "${MINISTACK_KERNEL:-}" ]; then
    SETUP_ARGS="--netmap"
else
    say "this kernel cannot load modules: setting up without the VALE kernel switch"
fi
say "running ./setup.sh${SETUP_ARGS:+ $SETUP_ARGS} as $VM_USER"
runuser -u "$VM_USER" -- env HOME="$HOME_DIR" \
    MINISTACK_KERNEL="${MINISTACK_KERNEL:-}" MINISTACK_NETMAP_SRC="${MINISTACK_NETMAP_SRC:-}" \
    MINISTACK_VALE_NIC="${MINISTACK_VALE_NIC:-}" \
    bash -c "cd '$PROJECT' && ./setup.sh $SETUP_ARGS" ||
    fail "./setup.sh failed (its messages are above)"

# The student versions of the labs: copied once, never overwritten, so a rerun keeps their
# work (and a lab added to the course arrives).
install -d -o "$VM_USER" -g "$(id -gn "$VM_USER")" "$LABS"
for nb in "$PROJECT"/labs/release/*/*.ipynb; do
    [ -e "$LABS/$(basename "$nb")" ] || install -o "$VM_USER" -g "$(id -gn "$VM_USER")" -m 0644 "$nb" "$LABS/"
done

# One token for the lifetime of the VM, so the printed URL keeps working after a reboot.
install -d -m 0755 /etc/ministack
if [ ! -s /etc/ministack/lab.env ]; then
    (umask 077; printf 'JUPYTER_TOKEN=%s\n' "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" \
        > /etc/ministack/lab.env)
fi
TOKEN=$(sed -n 's/^JUPYTER_TOKEN=//p' /etc/ministack/lab.env)
URL="http://localhost:$HOST_PORT/lab?token=$TOKEN"

# JupyterLab runs as root: lab 06 and the real-interface cells need namespaces, XDP and raw
# sockets. It is a single-student VM; the files it writes are handed back to the student.
install -d /etc/systemd/system
cat > /etc/systemd/system/ministack-lab.service <<EOF
[Unit]
Description=MiniStack labs (JupyterLab on port $LAB_PORT)
After=network-online.target
Wants=network-online.target

[Service]
EnvironmentFile=/etc/ministack/lab.env
WorkingDirectory=$LABS
ExecStart=$PROJECT/.venv/bin/ministack lab --ip 0.0.0.0 --port $LAB_PORT --no-browser --dir $LABS
ExecStopPost=/bin/chown -R $VM_USER: $LABS
Restart=on-failure

[Install]
WantedBy=multi-user.target
EOF

lab_ok=skipped
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable -q ministack-lab.service
    systemctl restart ministack-lab.service
    lab_ok=no
    for _ in $(seq 120); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$LAB_PORT/api/status?token=$TOKEN"; then
            lab_ok=yes; break
        fi
        sleep 0.5
    done
else
    say "no systemd here (a chroot?): the lab service is installed but not started"
fi

# The self-test: the demo as root, in a peer namespace it creates and removes. Its own checks
# decide (it exits 1 when any fails).
say "self-test: ministack demo (a peer namespace, AF_XDP or AF_PACKET)"
log=/var/log/ministack-selftest.log
if "$PROJECT/.venv/bin/ministack" demo > "$log" 2>&1 && grep -q '^peer namespace' "$log"; then
    demo_ok=yes
else
    demo_ok=no
fi
if [ "$demo_ok" = yes ]; then sed -n '/^switch on/p; /^checks:/,$p' "$log"; else cat "$log"; fi

if [ "$lab_ok" = no ]; then
    journalctl -u ministack-lab.service -n 20 --no-pager || true
    fail "JupyterLab did not answer on port $LAB_PORT (systemctl status ministack-lab)"
fi
[ "$demo_ok" = yes ] || fail "the demo failed; its whole output is in $log"
echo "MiniStack self-test: PASS"
if [ "$lab_ok" = yes ]; then
    echo
    echo "  The labs are ready. Open on this computer:"
    echo "    $URL"
    echo "  (if Vagrant moved the forwarded port, 'vagrant port' shows the one to use)"
fi
