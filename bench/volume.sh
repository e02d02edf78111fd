#!/usr/bin/env bash
# A volume inside a sandbox: moat's virtio-fs server (the shim's
# vhost-user-fs device over a host directory) next to QEMU's built-in
# virtio-9p on a directory of the same host filesystem, in the same VM.
#
# Workloads, timed inside the guest (/proc/uptime, 10 ms resolution):
#   write 1G   dd of 1 GiB zeros in 1 MiB blocks, conv=fsync (each server fsyncs the host file)
#   read 1G    the same file after dropping the guest's page cache
#   create 10k tar extraction of 10,000 small files (1-4 KiB) in 100 dirs
#              (no sync: a guest `sync` is a host syncfs for moat's server and
#              nothing for 9p, which would not compare like with like)
#   stat 10k   find | xargs stat of those files (fresh mount: cold caches)
#   read 10k   find | xargs cat of those files
# The 9p peer is mounted with version=9p2000.L, msize=512 KiB, no cache (its
# default); its device is added to the created sandbox's config.json
# (vm.extra_qemu_args) before the first start.
#
# Usage: bench/volume.sh BUILD_DIR [RUNS]     prints medians and 9p/moat ratios
set -euo pipefail
build=$(cd "${1:?usage: volume.sh BUILD_DIR [RUNS]}" && pwd)
runs=${2:-3}
moat=$build/bin/moat
work=$(mktemp -d /var/tmp/moat-volbench.XXXXXX)
export MOAT_HOME=$work/home
cleanup() {
  "$moat" rm -f volbench >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/moatvol" "$work/p9vol" "$work/small"
# 10k small files in 100 directories, packed once on the host.
python3 - "$work/small" <<'PY'
import os, random, sys
random.seed(7)
root = sys.argv[1]
for d in range(100):
    os.makedirs(f"{root}/d{d:03}")
    for f in range(100):
        with open(f"{root}/d{d:03}/f{f:03}", "wb") as out:
            out.write(os.urandom(random.randint(1024, 4096)))
PY
tar -C "$work/small" -cf "$work/small.tar" .

"$moat" create --name volbench --memory 1024 --cpus 2 --rootfs-dir "$build/share/moat/rootfs-busybox" \
  -v "$work/moatvol:/moat" >/dev/null
dir=$("$moat" inspect volbench | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["dir"])')
python3 - "$dir/config.json" "$work/p9vol" <<'PY'
import json, sys
path, share = sys.argv[1], sys.argv[2]
cfg = json.load(open(path))
cfg["vm"]["extra_qemu_args"] = [
    "-fsdev", f"local,id=p9,path={share},security_model=mapped-xattr",
    "-device", "virtio-9p-device,fsdev=p9,mount_tag=p9"]
json.dump(cfg, open(path, "w"), indent=2)
PY
"$moat" start volbench >/dev/null
"$moat" cp "$work/small.tar" volbench:/tmp/small.tar
"$moat" exec volbench -- sh -c 'mkdir -p /p9 && mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 p9 /p9'

# One round on one mount point; prints "phase seconds" lines.
round() {
  local mnt=$1
  "$moat" exec volbench -- sh -c '
    m='"$mnt"'
    t() { cut -d" " -f1 /proc/uptime; }
    phase() { a=$(t); eval "$2" >/dev/null 2>&1; b=$(t); echo "$1 $(awk -v a=$a -v b=$b "BEGIN{print b-a}")"; }
    rm -rf $m/big $m/small; sync
    phase write1g "dd if=/dev/zero of=$m/big bs=1M count=1024 conv=fsync"
    echo 3 > /proc/sys/vm/drop_caches
    phase read1g "cat $m/big > /dev/null"
    mkdir $m/small
    phase create10k "tar -xf /tmp/small.tar -C $m/small"
    echo 3 > /proc/sys/vm/drop_caches
    phase stat10k "find $m/small -type f | xargs stat > /dev/null"
    phase read10k "find $m/small -type f | xargs cat > /dev/null"
    rm -rf $m/big $m/small'
}

declare -A samples
for ((i = 1; i <= runs; i++)); do
  for fs in moat p9; do
    while read -r phase secs; do samples[$fs.$phase]+="$secs "; done < <(round "/$fs")
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
printf '%-10s %10s %10s %12s\n' phase "moat s" "9p s" "9p/moat"
for phase in write1g read1g create10k stat10k read10k; do
  m=$(echo "${samples[moat.$phase]}" | median)
  p=$(echo "${samples[p9.$phase]}" | median)
  awk -v ph=$phase -v m="$m" -v p="$p" 'BEGIN {printf "%-10s %10.2f %10.2f %12.2f\n", ph, m, p, (m > 0 ? p/m : 0)}'
done
echo "($runs runs each, medians; guest: 2 vCPUs, 1 GiB, TCG unless KVM is usable)"
