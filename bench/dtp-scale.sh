#!/usr/bin/env bash
# DTP against rsync at the scale of a big distribution mirror: a tree of N
# tiny files (default 1,000,000, 0-256 bytes, 1,000 per folder) in tmpfs,
# served by a local `rsync --daemon` and by the DTP service on 127.0.0.1,
# in one run. Prints time and peak RSS of each side for: `-gendsync` cold,
# the first copy, an unchanged upstream (median of 11 runs), `-gendsync`
# warm after 1 % of the files changed, and that 1 %-changed sync.
#
#   bench/dtp-scale.sh [-n FILES] [-k]
#
#   -n  files in the tree (default 1000000)
#   -k  keep the work folder (printed at the end)
#
# Needs rsync, python3, cargo and GNU time (/usr/bin/time). As root the tree
# lives in a tmpfs mounted for the run (every file takes a 4 KiB page: about
# 12 GiB of memory for a million files, three copies), else under /tmp.
# Times are wall-clock seconds on a noisy 2-core machine: compare the ratios.
set -euo pipefail

files=1000000
keep=0
while getopts "n:kh" opt; do
    case "$opt" in
        n) files=$OPTARG ;;
        k) keep=1 ;;
        *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
source "$(dirname "$0")/lib.sh"
need rsync python3 cargo /usr/bin/time
dsync_bin=$(build_dsync)

# A tmpfs of our own as root (dsync refuses mirrors below /dev, so not
# /dev/shm); the disk under /tmp otherwise.
work=$(mktemp -d /tmp/dtp-scale.XXXXXX)
mounted=0
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=14g,nr_inodes=0 tmpfs "$work"; then mounted=1; fi
chmod 755 "$work"
rsyncd_pid=""
cleanup() {
    [ -n "$rsyncd_pid" ] && kill "$rsyncd_pid" 2>/dev/null && wait "$rsyncd_pid" 2>/dev/null
    [ -d "$work/host" ] && "$dsync_bin" -home "$work/host" -stop-service >/dev/null 2>&1
    if [ "$keep" = 1 ]; then echo "work folder kept: $work"; return; fi
    [ "$mounted" = 1 ] && umount "$work"
    rm -rf "$work"
}
trap cleanup EXIT

# `measure NAME CMD…`: wall seconds (GNU time's own resolution is 10 ms, too
# coarse) and peak RSS (MB) of CMD and the children
# it waits for, into time[NAME] and rss[NAME].
declare -A time rss
measure() {
    local name=$1; shift
    local t0 t1
    t0=$(date +%s%N)
    /usr/bin/time -f '%M' -o "$work/time.out" "$@" >/dev/null || {
        echo "bench: $name failed: $*" >&2
        tail -20 "$work/client/logs/big.log" 2>/dev/null >&2
        exit 1
    }
    t1=$(date +%s%N)
    read -r m < <(tail -1 "$work/time.out")
    # Milliseconds matter here: an unchanged DTP upstream takes a few.
    time[$name]=$(python3 -c "print(f'{($t1 - $t0) / 1e9:.3f}')")
    rss[$name]=$((m / 1024))
}

src="$work/www/big"
mkdir -p "$src"
echo "== making the tree: $files files"
python3 - "$src" "$files" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
for i in range(n):
    d = os.path.join(root, "pool", f"d{i // 1000:04d}")
    if i % 1000 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:07d}"), "wb") as f:
        f.write(rng.randbytes(rng.randint(0, 256)))
EOF

rsync_port=$(free_port)
cat >"$work/rsyncd.conf" <<EOF
use chroot = no
pid file = $work/rsyncd.pid
[big]
    path = $src
    read only = yes
    exclude = data.dsync
EOF
rsync --daemon --no-detach --port="$rsync_port" --address=127.0.0.1 --config="$work/rsyncd.conf" &
rsyncd_pid=$!

dtp_port=$(free_port)
host="$work/host"
mkdir -p "$host/dtp" "$host/repos"
user_line=""
[ "$(id -u)" = 0 ] && user_line="dtp-user=nobody"
printf 'webroot=%s\ndtp-listen=127.0.0.1:%s\n%s\n' "$work/www" "$dtp_port" "$user_line" >"$host/xync.conf"
echo big >"$host/dtp/list.conf"
printf 'repo=big\nsave=%s\ndsync=true\n' "$src" >"$host/repos/big.conf"
echo "== -gendsync, cold"
measure gen_cold "$dsync_bin" -home "$host" -gendsync
"$dsync_bin" -home "$host" -service >/dev/null
wait_port "$rsync_port"
wait_port "$dtp_port"

client="$work/client"
mirror_dtp="$work/mirror-dtp"
mirror_rsync="$work/mirror-rsync"
mkdir -p "$client/repos" "$mirror_dtp" "$mirror_rsync"
: >"$client/xync.conf"
printf 'repo=big\nsave=%s\ndsync-url=dtp://127.0.0.1:%s/big\n' "$mirror_dtp" "$dtp_port" \
    >"$client/repos/big.conf"
export DSYNC_SENDMAIL=/bin/true
# GNU time runs programs, not shell functions: the two commands as arrays.
run_dtp=("$dsync_bin" -home "$client" -sync big)
run_rsync=(rsync -a --delete "rsync://127.0.0.1:$rsync_port/big/" "$mirror_rsync/")

echo "== first copy"
measure first_rsync "${run_rsync[@]}"
measure first_dtp "${run_dtp[@]}"

echo "== unchanged upstream, 11 runs each"
median() { sort -n | sed -n 6p; }
for i in $(seq 1 11); do measure u "${run_rsync[@]}"; echo "${time[u]} ${rss[u]}"; done >"$work/u_rsync"
for i in $(seq 1 11); do measure u "${run_dtp[@]}"; echo "${time[u]} ${rss[u]}"; done >"$work/u_dtp"
time[same_rsync]=$(cut -d' ' -f1 "$work/u_rsync" | median)
rss[same_rsync]=$(cut -d' ' -f2 "$work/u_rsync" | sort -n | tail -1)
time[same_dtp]=$(cut -d' ' -f1 "$work/u_dtp" | median)
rss[same_dtp]=$(cut -d' ' -f2 "$work/u_dtp" | sort -n | tail -1)

echo "== 1 % of the files changed"
python3 - "$src" "$files" <<'EOF'
import os, random, sys, time
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(2)
later = time.time() + 120
for i in rng.sample(range(n), max(1, n // 100)):
    p = os.path.join(root, "pool", f"d{i // 1000:04d}", f"f{i:07d}")
    with open(p, "wb") as f:
        f.write(rng.randbytes(rng.randint(0, 256)))
    os.utime(p, (later, later))
EOF
measure gen_warm "$dsync_bin" -home "$host" -gendsync
measure changed_rsync "${run_rsync[@]}"
measure changed_dtp "${run_dtp[@]}"

diff -r --exclude=data.dsync "$src" "$mirror_rsync" >/dev/null || { echo "bench: rsync mirror differs" >&2; exit 1; }
diff -r --exclude=data.dsync --exclude=project "$src" "$mirror_dtp" >/dev/null || { echo "bench: DTP mirror differs" >&2; exit 1; }

ratio() { python3 -c "print(f'{$1 / $2:.2f}x' if $2 > 0 else '-')"; }
echo
echo "tree: $files files of 0-256 bytes in tmpfs; loopback; $(nproc) CPUs; $(date -u +%F)"
printf '%-34s %9s %8s %9s %8s %9s\n' "" "rsync s" "rsync MB" "dtp s" "dtp MB" "speed-up"
row() { printf '%-34s %9s %8s %9s %8s %9s\n' "$1" "${time[$2]:--}" "${rss[$2]:--}" "${time[$3]:--}" "${rss[$3]:--}" "$4"; }
row "-gendsync, cold (upstream)" none gen_cold ""
row "-gendsync, warm, 1 % changed" none gen_warm ""
row "first copy" first_rsync first_dtp "$(ratio "${time[first_rsync]}" "${time[first_dtp]}")"
row "upstream unchanged (median of 11)" same_rsync same_dtp "$(ratio "${time[same_rsync]}" "${time[same_dtp]}")"
row "1 % of the files changed" changed_rsync changed_dtp "$(ratio "${time[changed_rsync]}" "${time[changed_dtp]}")"
