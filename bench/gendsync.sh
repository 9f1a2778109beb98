#!/usr/bin/env bash
# How long `dsync -gendsync` takes to (re)make a manifest, beside rsync finding
# what changed in the same tree. Ratios matter, not absolute times.
#
#   bench/gendsync.sh [N]        N files (default 100000), small, in nested folders
#
# Environment: N (same as the argument), DSYNC (a dsync binary to use instead
# of building one with `cargo build --release`), TMPDIR (where the trees go).
#
# Steps: a tree of N files and a copy of it (the rsync side); cold run (every
# file hashed); 1% of the files rewritten with a new mtime; warm run (cache
# reused); then `rsync -a --dry-run --itemize-changes` from the tree to the
# copy (finds the same 1% from metadata) and the same with --checksum (reads
# every file on both sides: what the cold run compares to). The page cache is
# warm for every run alike.
set -euo pipefail

n=${1:-${N:-100000}}
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [N]  (N files, a positive number)" >&2; exit 64; }
command -v rsync >/dev/null || { echo "$0: rsync is needed for the comparison" >&2; exit 1; }

repo_dir=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z ${DSYNC:-} ]]; then
    echo "building dsync (release)..." >&2
    cargo build --release --quiet --bin dsync --manifest-path "$repo_dir/Cargo.toml"
    DSYNC=$repo_dir/target/release/dsync
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/dsync-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
tree=$work/tree copy=$work/copy home=$work/home
mkdir -p "$tree" "$home/repos"
printf 'save=%s\ndsync=true\n' "$tree" >"$home/repos/bench.conf"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

# 100 files a folder, 100 folders a parent: d/NN/NNNNN.
echo "making $n files..." >&2
for ((i = 0; i < n; i++)); do
    dir=$tree/d$((i / 10000))/$((i / 100 % 100))
    ((i % 100 == 0)) && mkdir -p "$dir"
    printf 'file %d of the benchmark tree\n' "$i" >"$dir/f$i"
done
rsync -a "$tree/" "$copy/"
# Files changed in the last two seconds are not trusted to the hash cache
# (coarse file clocks); let the new tree settle so the warm run can reuse it.
sleep 2.1

gendsync() {
    local out
    out=$("$DSYNC" -home "$home" -gendsync) || { echo "$out" >&2; return 1; }
    echo "    $out" >&2
}

t0=$(now); gendsync; t1=$(now)
cold=$(secs "$t0" "$t1")

changed=0
for ((i = 0; i < n; i += 100)); do
    f=$tree/d$((i / 10000))/$((i / 100 % 100))/f$i
    echo changed >>"$f"
    touch -d '@1600000000' "$f"
    changed=$((changed + 1))
done

t0=$(now); gendsync; t1=$(now)
warm=$(secs "$t0" "$t1")

ours=(--exclude=/data.dsync --exclude=/.dsync-cache)
t0=$(now)
found=$(rsync -a --dry-run --itemize-changes "${ours[@]}" "$tree/" "$copy/" | grep -c '^>f' || true)
t1=$(now)
rsync_meta=$(secs "$t0" "$t1")
t0=$(now)
rsync -a --checksum --dry-run --itemize-changes "${ours[@]}" "$tree/" "$copy/" >/dev/null
t1=$(now)
rsync_sum=$(secs "$t0" "$t1")

echo
echo "files: $n, changed: $changed (rsync found $found)"
printf '%-44s %8s s\n' \
    "dsync -gendsync, cold (hash everything)" "$cold" \
    "rsync -a -c -n -i (read everything)" "$rsync_sum" \
    "dsync -gendsync, warm (1% changed)" "$warm" \
    "rsync -a -n -i (compare metadata)" "$rsync_meta"
echo "cold / rsync --checksum: $(ratio "$cold" "$rsync_sum")"
echo "warm / rsync metadata:   $(ratio "$warm" "$rsync_meta")"
