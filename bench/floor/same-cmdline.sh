# Sourced by benchmarks: turns a sandbox's qemu.cmdline into the cold-start
# floor, the very same QEMU command line booting an init that resets the VM
# at once (bench/floor/init.c), so that the difference to a moat run is what
# moat itself costs.
#
# moat's QEMU runs in a jail and takes everything as descriptors its shim
# opened (kernel and initramfs at /kernel and /initrd inside the jail, disks
# as fd sets, agent, console and network as sockets). The floor runs outside
# any jail with the same devices: the sandbox's kernel, the floor's
# initramfs, the same disk images by path (a fresh upper), the agent port
# on a null chardev, the console to a file, and the network device on a
# hub port with no backend.
#
#   floor_command WORK CMDLINE_FILE CONFIG_JSON   fills the array `floor`
#   median                                        stdin: nanoseconds, one per line; prints seconds
floor_command() {
  local work=$1 cmdline=$2 config=$3
  local src
  src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  mkdir -p "$work/floor"
  gcc -static -Os -s -o "$work/floor/init" "$src/init.c"
  (cd "$work/floor" && echo init | cpio --quiet -o -H newc) > "$work/floor.cpio"
  truncate -s 4G "$work/upper.img"
  mapfile -t floor < <(python3 - "$cmdline" "$config" "$work" <<'PY'
import json, re, sys
cmdline, config, work = sys.argv[1:4]
args = open(cmdline).read().split("\n")
if args and args[-1] == "":
    args.pop()
vm = json.load(open(config))["vm"]
disks = [d["path"] for d in vm["disks"]]
disks[-1] = f"{work}/upper.img"  # the writable upper: a fresh one
out, i = [], 0
while i < len(args):
    a = args[i]
    if a == "-add-fd":  # descriptors the shim passed: the floor opens paths instead
        i += 2
        continue
    if a == "/kernel":
        a = vm["kernel"]
    elif a == "/initrd":
        a = f"{work}/floor.cpio"
    elif a == "socket,id=agent,fd=3":
        a = "null,id=agent"
    elif a == "socket,id=console,fd=4":
        a = f"file,id=console,path={work}/floor-console.log"
    elif a.startswith("socket,id=qmp,fd="):
        a = "null,id=qmp"
    elif a.startswith("stream,id=net0,"):
        a = "hubport,id=net0,hubid=0"
    elif a.startswith("memory-backend-file,id=mem,") and "mem-path=/proc/self/fd/" in a:
        # The shim's memfd: the floor's RAM is QEMU's own (the memfd's cost is moat's).
        a = "memory-backend-ram," + ",".join(p for p in a.split(",")[1:] if p.startswith(("id=", "size=")))
    else:
        m = re.match(r"file=/dev/fdset/\d+,if=none,id=disk(\d+),(.*)", a)
        if m:
            a = f"file={disks[int(m.group(1))]},if=none,id=disk{m.group(1)},{m.group(2)}"
        elif "fd=" in a and a.startswith("socket,"):
            sys.exit(f"same-cmdline.sh: no floor for {a} (volumes are not part of the floor)")
    out.append(a)
    i += 1
print("\n".join(out))
PY
  )
}

median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m/1e9}'; }
