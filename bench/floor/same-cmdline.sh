# Sourced by benchmarks: turns a sandbox's qemu.cmdline into the cold-start
# floor, the very same QEMU command line booting an init that resets the VM
# at once (bench/floor/init.c), so that the difference to a moat run is what
# moat itself costs.
#
#   floor_command WORK CMDLINE_FILE   fills the array `floor` with the command
#   median                            stdin: nanoseconds, one per line; prints seconds
floor_command() {
  local work=$1 cmdline=$2 a
  local src
  src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  mkdir -p "$work/floor"
  gcc -static -Os -s -o "$work/floor/init" "$src/init.c"
  (cd "$work/floor" && echo init | cpio --quiet -o -H newc) > "$work/floor.cpio"
  truncate -s 4G "$work/upper.img"
  local cmd=()
  mapfile -t cmd < "$cmdline"
  floor=()
  for a in "${cmd[@]}"; do
    case $a in
      *initramfs.cpio) a=$work/floor.cpio ;;
      socket,id=agent,fd=3) a=null,id=agent ;;
      socket,id=console,fd=4) a=file,id=console,path=$work/floor-console.log ;;
      *upper.ext4,if=none*) a="file=$work/upper.img,if=none,id=disk1,format=raw" ;;
    esac
    floor+=("$a")
  done
}

median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m/1e9}'; }
