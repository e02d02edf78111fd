#include "vm/qemu_command.h"

#include "proto/boot_args.h"
#include "proto/guest_network.h"

namespace moat::vm {
namespace {

// QEMU option values separate keys with commas; a literal comma is doubled.
std::string qemu_escape(const std::string& value) {
  std::string out;
  for (char ch : value) {
    out += ch;
    if (ch == ',') out += ',';
  }
  return out;
}

// Printable ASCII without spaces or quotes: the kernel reads it as one word.
bool plain_kernel_word(const std::string& word) {
  if (word.empty()) return false;
  for (char c : word) {
    if (c <= ' ' || c > '~' || c == '"' || c == '\'') return false;
  }
  return true;
}

// The -object of the guest's RAM (VmSpec::ram_fd). Always a backend named
// `mem`, even for QEMU's own anonymous memory: a saved stream names its RAM
// block, and a restore must find the same name whichever kind it maps.
std::string memory_backend(const VmSpec& spec) {
  std::string size = ",id=mem,size=" + std::to_string(spec.memory_mib) + "M";
  if (!spec.ram_file.empty())
    return "memory-backend-file" + size + ",mem-path=" + qemu_escape(spec.ram_file) + ",share=off";
  if (spec.ram_fd >= 0)
    return "memory-backend-file" + size + ",mem-path=/proc/self/fd/" + std::to_string(spec.ram_fd) + ",share=on";
  if (!spec.fs_shares.empty()) return "memory-backend-memfd" + size + ",share=on";
  return "memory-backend-ram" + size;
}

}  // namespace

std::vector<std::string> qemu_environment(const VmSpec& spec) {
  if (spec.ram_file.empty() || spec.ram_open_preload.empty()) return {};
  return {"LD_PRELOAD=" + spec.ram_open_preload, "MOAT_READ_ONLY_RAM=" + spec.ram_file};
}

std::string kernel_command_line(const VmSpec& spec) {
  // quiet: every console byte is a VM exit. reboot=t + panic=-1: a reset or
  // panic ends QEMU at once (it runs with -no-reboot).
  std::string cmd = "console=ttyS0 quiet reboot=t panic=-1";
  // Under TCG the local APIC timer's calibration and check cost ~150 ms of
  // every boot; without it all vCPUs take their ticks from the emulated
  // IO-APIC timer (broadcast), which is fine for an emulated guest. On KVM
  // the per-CPU timer is cheap and better, so it stays.
  //
  // tsc=reliable: TCG's TSC is the host's clock, constant and monotonic, but
  // on a loaded host a starved guest's clocksource watchdog (which compares
  // it with jiffies, late by whatever ticks the guest missed) marks it
  // unstable and falls back to refined-jiffies, and from then on the
  // guest's clock loses the time it waits for a CPU: ten restored children
  // on two cores fell 3-15 s behind within two minutes.
  //
  // tsc_early_khz: the guest's own measurement of that rate, against the
  // emulated PIT, fails when the guest is starved while it boots, and then
  // it gives up the TSC before the watchdog is even asked (vm/host_tsc.h).
  if (spec.accel == Accel::kTcg) {
    cmd += " noapictimer tsc=reliable";
    if (spec.tsc_khz != 0) cmd += " tsc_early_khz=" + std::to_string(spec.tsc_khz);
  }
  // Every value is encoded so that none can add words (proto/boot_args.h).
  cmd += " " + proto::boot_word("moat.root", spec.root_mode);
  cmd += " " + proto::boot_word("moat.lowerfs", spec.lower_fs);
  cmd += " " + proto::boot_word("moat.hostname", spec.hostname);
  for (const auto& m : spec.mounts) cmd += " " + proto::boot_word("moat.mount", proto::encode_guest_mount(m));
  // The agent configures eth0 with the fixed addresses of guest_network.h.
  if (spec.net_fd >= 0) cmd += " moat.net=1";
  // Extra words are whole words by design (edited into config.json for
  // experiments, e.g. moat.debug=1): one that is not a single plain word
  // is left out rather than allowed to split into several.
  for (const auto& a : spec.extra_kernel_args) {
    if (plain_kernel_word(a)) cmd += " " + a;
  }
  return cmd;
}

std::vector<std::string> build_qemu_command(const VmSpec& spec) {
  std::vector<std::string> c = {spec.qemu};
  auto add = [&](std::initializer_list<std::string> args) {
    for (const auto& a : args) c.push_back(a);
  };
  if (!spec.name.empty()) add({"-name", qemu_escape(spec.name)});
  std::string machine = "microvm,acpi=off,x-option-roms=off,isa-serial=on,rtc=on";
  std::string ram = memory_backend(spec);
  machine += ",memory-backend=mem";
  add({"-M", machine});
  if (spec.accel == Accel::kKvm) {
    add({"-accel", "kvm", "-cpu", "host"});
  } else {
    // Without ERMS/FSRM the guest's kernel and libc copy and clear memory
    // with 8-byte string moves or vector loops instead of `rep movsb`, which
    // TCG runs one byte per iteration: the agent channel moved data 1.4-1.8x
    // faster (bench/results/channel-2026-12-07.md). On KVM the host's CPU
    // does these in hardware, so only TCG turns them off.
    add({"-accel", "tcg,thread=multi,tb-size=" + std::to_string(spec.tcg_tb_size_mib), "-cpu",
         "max,erms=off,fsrm=off"});
  }
  add({"-smp", std::to_string(spec.cpus), "-m", std::to_string(spec.memory_mib)});
  add({"-object", ram});
  add({"-nodefaults", "-no-user-config", "-nographic", "-no-reboot"});
  // What the guest could reach through a QEMU bug is smaller by that much.
  add({"-sandbox", kQemuSandboxOptions});
  add({"-kernel", spec.kernel, "-initrd", spec.initrd, "-append", kernel_command_line(spec)});
  // Serial console to the shim (quiet keeps it small). Not a file chardev:
  // the guest could fill the host's disk through it.
  add({"-chardev", "socket,id=console,fd=" + std::to_string(spec.console_fd), "-serial", "chardev:console"});
  // Entropy, so the guest's getrandom() never waits.
  add({"-device", "virtio-rng-device"});
  // The agent channel: a virtio-serial port on a socket QEMU inherits.
  // Few ports: the guest driver allocates buffers for every port the device
  // advertises (31 by default, ~4 MiB of guest memory); agent and net need two.
  add({"-device", "virtio-serial-device,max_ports=4", "-chardev",
       "socket,id=agent,fd=" + std::to_string(spec.agent_fd), "-device",
       "virtserialport,chardev=agent,name=agent"});
  for (std::size_t i = 0; i < spec.disks.size(); ++i) {
    const auto& d = spec.disks[i];
    std::string id = "disk" + std::to_string(i);
    std::string file = qemu_escape(d.path);
    if (d.fd >= 0) {
      // Fd set i + 1 (0 is not a valid set id) holds only this disk's descriptor.
      std::string set = std::to_string(i + 1);
      add({"-add-fd", "fd=" + std::to_string(d.fd) + ",set=" + set});
      if (d.read_only_fd >= 0) add({"-add-fd", "fd=" + std::to_string(d.read_only_fd) + ",set=" + set});
      file = "/dev/fdset/" + set;
    }
    // No image locking: the shim's lock already makes a sandbox's disks its
    // own, and a VM saved while it runs on (a memory snapshot) hands its
    // disks' locks back to QEMU's block layer at the end of the migration,
    // then cannot take the write lock again to continue.
    std::string drive = "file=" + file + ",if=none,id=" + id + ",format=raw,file.locking=off";
    if (d.read_only) drive += ",readonly=on";
    add({"-drive", drive, "-device", "virtio-blk-device,drive=" + id});
  }
  for (std::size_t i = 0; i < spec.fs_shares.size(); ++i) {
    const auto& s = spec.fs_shares[i];
    std::string id = "fs" + std::to_string(i);
    add({"-chardev", "socket,id=" + id + ",fd=" + std::to_string(s.fd), "-device",
         "vhost-user-fs-device,chardev=" + id + ",tag=" + qemu_escape(s.tag)});
  }
  if (spec.net_fd >= 0) {
    add({"-netdev", "stream,id=net0,server=off,addr.type=fd,addr.str=" + std::to_string(spec.net_fd), "-device",
         // status=off: no link-status feature, so the guest's driver
         // takes the link as up at once; with it, the kernel's rate-limited
         // link event lands about a second after boot, and until then eth0
         // reads as down (NO-CARRIER) to programs that ask.
         std::string("virtio-net-device,netdev=net0,status=off,mac=") + proto::kGuestMac});
  }
  if (spec.qmp_fd >= 0) {
    // The machine protocol, for pause and resume (shim/qmp_channel.h).
    add({"-chardev", "socket,id=qmp,fd=" + std::to_string(spec.qmp_fd), "-mon", "chardev=qmp,mode=control"});
  }
  if (spec.incoming) add({"-incoming", "defer"});
  c.insert(c.end(), spec.extra_qemu_args.begin(), spec.extra_qemu_args.end());
  return c;
}

}  // namespace moat::vm
