#!/usr/bin/env bash
# DTP against rsync on this machine, in one run: the same tree served by a
# local `rsync --daemon` and by the DTP service on 127.0.0.1, each mirrored
# three times (initial full sync, no-change sync, 1%-changed sync).
#
#   bench/dtp-vs-rsync.sh [-n SMALL_FILES] [-r MIN-MAX] [-f FOLDERS]
#                         [-l LARGE_FILES] [-s LARGE_MB] [-D] [-w] [-k]
#
#   -n  small files (default 20000)
#   -r  size range of the small files in bytes (default 1024-16384)
#   -f  folders they are spread over (default: one per 100 files)
#   -l  large files (default 3)
#   -s  size of each large file in MiB (default 64)
#   -D  DTP alone: rsync is not run (on a busy machine, one side at a time)
#   -w  before each side's full sync, write and delete as many bytes as the
#       tree beside it: in a VM, the first touch of memory the host has not
#       backed yet (a fresh tmpfs page) costs more than the copy, and which
#       side pays it depends on the order; warmed, both measure the transfer
#   -k  keep the work folder (printed at the end)
#
# Issue 13's tree: -n 50000 -r 200-4096 -f 50 -l 0. The client's peak RSS
# (/usr/bin/time -v) is printed beside each time.
#
# Needs rsync, python3 and cargo. Everything runs on loopback, so this
# measures per-file overhead and local throughput, not a real WAN. The DTP
# times are those of `dsync -sync` (scheduler, worker, client) and include
# no manifest generation: that is upstream work, timed on its own line.
set -euo pipefail

small=20000
range=1024-16384
folders=""
large=3
large_mb=64
keep=0
rsync_too=1
warm=0
while getopts "n:r:f:l:s:Dwkh" opt; do
    case "$opt" in
        n) small=$OPTARG ;;
        r) range=$OPTARG ;;
        f) folders=$OPTARG ;;
        l) large=$OPTARG ;;
        s) large_mb=$OPTARG ;;
        D) rsync_too=0 ;;
        w) warm=1 ;;
        k) keep=1 ;;
        *) sed -n '2,/^set /{/^set /!p}' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done

min_size=${range%-*}
max_size=${range#*-}
[ -n "$folders" ] || folders=$(( (small + 99) / 100 ))
source "$(dirname "$0")/lib.sh"
need rsync python3 cargo /usr/bin/time
dsync_bin=$(build_dsync)

work=$(mktemp -d "${TMPDIR:-/tmp}/dtp-bench.XXXXXX")
# Run as root, both servers serve as nobody: let it read the tree.
chmod 755 "$work"
rsyncd_pid=""
service_pid=""
cleanup() {
    # Only the two servers this script started, by their own pids.
    [ -n "$rsyncd_pid" ] && kill "$rsyncd_pid" 2>/dev/null && wait "$rsyncd_pid" 2>/dev/null
    [ -n "$service_pid" ] && kill "$service_pid" 2>/dev/null && wait "$service_pid" 2>/dev/null
    if [ "$keep" = 1 ]; then
        echo "work folder kept: $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }

src="$work/www/bench"
mkdir -p "$src"

echo "== making the tree: $small small files ($range bytes, $folders folders), $large x $large_mb MiB"
python3 - "$src" "$small" "$large" "$large_mb" "$min_size" "$max_size" "$folders" <<'EOF'
import os, random, sys
root = sys.argv[1]
small, large, large_mb, lo, hi, folders = map(int, sys.argv[2:8])
rng = random.Random(1)
per = -(-small // folders)
for i in range(small):
    d = os.path.join(root, "pool", f"d{i // per:04d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:06d}.deb"), "wb") as f:
        f.write(rng.randbytes(rng.randint(lo, hi)))
os.makedirs(os.path.join(root, "big"), exist_ok=True)
for i in range(large):
    with open(os.path.join(root, "big", f"image{i}.iso"), "wb") as f:
        for _ in range(large_mb):
            f.write(rng.randbytes(1 << 20))
EOF

# rsync daemon.
rsync_port=$(free_port)
cat >"$work/rsyncd.conf" <<EOF
use chroot = no
pid file = $work/rsyncd.pid
log file = $work/rsyncd.log
[bench]
    path = $src
    read only = yes
    exclude = data.dsync .dsync-cache
EOF
rsync --daemon --no-detach --port="$rsync_port" --address=127.0.0.1 --config="$work/rsyncd.conf" &
rsyncd_pid=$!

# DTP host: the service, and dsync=true for -gendsync.
dtp_port=$(free_port)
host="$work/host"
mkdir -p "$host/dtp" "$host/repos"
printf 'webroot=%s\ndtp-listen=127.0.0.1:%s\n' "$work/www" "$dtp_port" >"$host/xync.conf"
echo bench >"$host/dtp/list.conf"
printf 'repo=bench\nsave=%s\ndsync=true\n' "$src" >"$host/repos/bench.conf"
t0=$(now)
"$dsync_bin" -home "$host" -gendsync >/dev/null
gen_first=$(elapsed "$t0" "$(now)")
"$dsync_bin" -home "$host" -service -foreground >"$work/service.out" 2>&1 &
service_pid=$!
wait_port "$rsync_port"
wait_port "$dtp_port"

# DTP client home.
client="$work/client"
dtp_mirror="$work/mirror-dtp"
rsync_mirror="$work/mirror-rsync"
mkdir -p "$client/repos" "$dtp_mirror" "$rsync_mirror"
: >"$client/xync.conf"
printf 'repo=bench\nsave=%s\ndsync-url=dtp://127.0.0.1:%s/bench\n' "$dtp_mirror" "$dtp_port" \
    >"$client/repos/bench.conf"

# Peak RSS of the last run, in MiB (rsync: its client process; DTP: the
# largest of scheduler and worker, which /usr/bin/time sees as the maximum).
rss_file="$work/rss"
run_rsync() {
    /usr/bin/time -f %M -o "$rss_file" \
        rsync -a --delete "rsync://127.0.0.1:$rsync_port/bench/" "$rsync_mirror/"
}
run_dtp() {
    DSYNC_SENDMAIL=/bin/true /usr/bin/time -f %M -o "$rss_file" \
        "$dsync_bin" -home "$client" -sync bench >/dev/null || {
        echo "bench: the DTP sync failed; its log:" >&2
        tail -20 "$client/logs/bench.log" >&2
        exit 1
    }
}
timed() {
    local t0
    t0=$(now)
    "$@"
    elapsed "$t0" "$(now)"
}

declare -A result
rss_mib() { echo $(( $(tail -1 "$rss_file") / 1024 )); }
# -w: the pages of a file as large as the tree, touched and freed again.
warm_memory() {
    [ "$warm" = 1 ] && [ "$1" = initial ] || return 0
    head -c "$(du -sb "$src" | cut -f1)" /dev/zero >"$work/warm"
    rm "$work/warm"
}
measure() {
    local name=$1
    result[$name,rsync]=-
    result[$name,rsync_rss]=-
    if [ "$rsync_too" = 1 ]; then
        warm_memory "$name"
        result[$name,rsync]=$(timed run_rsync)
        result[$name,rsync_rss]=$(rss_mib)
    fi
    warm_memory "$name"
    result[$name,dtp]=$(timed run_dtp)
    result[$name,dtp_rss]=$(rss_mib)
}

echo "== initial full sync"
measure initial
echo "== no-change sync"
measure unchanged
echo "== changing 1% of the small files"
python3 - "$src" "$small" "$min_size" "$max_size" "$folders" <<'EOF'
import os, random, sys, time
root = sys.argv[1]
small, lo, hi, folders = map(int, sys.argv[2:6])
rng = random.Random(2)
per = -(-small // folders)
for i in rng.sample(range(small), max(1, small // 100)):
    p = os.path.join(root, "pool", f"d{i // per:04d}", f"f{i:06d}.deb")
    with open(p, "wb") as f:
        f.write(rng.randbytes(rng.randint(lo, hi)))
    t = time.time() + 120
    os.utime(p, (t, t))
EOF
t0=$(now)
"$dsync_bin" -home "$host" -gendsync >/dev/null
gen_change=$(elapsed "$t0" "$(now)")
measure changed

# Both mirrors must equal the source.
if [ "$rsync_too" = 1 ]; then
    diff -r --exclude=data.dsync --exclude=.dsync-cache "$src" "$rsync_mirror" >/dev/null \
        || { echo "bench: the rsync mirror differs" >&2; exit 1; }
fi
diff -r --exclude=data.dsync --exclude=.dsync-cache "$src" "$dtp_mirror" >/dev/null \
    || { echo "bench: the DTP mirror differs" >&2; exit 1; }

echo
echo "tree: $small small files ($range bytes, $folders folders), $large x $large_mb MiB; loopback; $(nproc) CPUs"
printf '%-22s %9s %9s %10s %10s %10s\n' scenario "rsync s" "dtp s" "rsync/dtp" "rsync MiB" "dtp MiB"
for name in initial unchanged changed; do
    case $name in
        initial) label="initial full sync" ;;
        unchanged) label="no-change sync" ;;
        changed) label="1% changed" ;;
    esac
    r=${result[$name,rsync]}
    d=${result[$name,dtp]}
    # How many times faster DTP is: above 1, DTP wins.
    ratio=-
    [ "$r" = - ] || ratio=$(python3 -c "print(f'{$r / $d:.2f}' if $d > 0 else '-')")
    printf '%-22s %9s %9s %10s %10s %10s\n' "$label" "$r" "$d" "$ratio" \
        "${result[$name,rsync_rss]}" "${result[$name,dtp_rss]}"
done
echo "upstream -gendsync: $gen_first s first (hashing all), $gen_change s after the change (cache)"
