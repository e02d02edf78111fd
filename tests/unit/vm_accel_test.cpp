#include <gtest/gtest.h>

#include "vm/accel.h"
#include "vm/qemu_command.h"

namespace moat::vm {
namespace {

KvmProbe working_intel() {
  KvmProbe p;
  p.device_exists = p.device_openable = true;
  p.api_version = 12;
  p.module_intel = true;
  return p;
}

TEST(VmAccel, AutoPicksKvmWhenUsable) {
  auto c = choose_accel(moat::Accel::kAuto, working_intel());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->accel, Accel::kKvm);
  EXPECT_NE(c->reason.find("kvm_intel"), std::string::npos);
}

TEST(VmAccel, PvmOnlyHostFallsBackToTcgAndSaysWhy) {
  KvmProbe p = working_intel();
  p.module_intel = false;
  p.module_pvm = true;
  auto c = choose_accel(moat::Accel::kAuto, p);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->accel, Accel::kTcg);
  EXPECT_NE(c->reason.find("PVM"), std::string::npos);
  auto forced = choose_accel(moat::Accel::kKvm, p);
  ASSERT_FALSE(forced.ok());
  EXPECT_NE(forced.error().message.find("PVM"), std::string::npos);
}

TEST(VmAccel, MissingOrClosedDevice) {
  KvmProbe none;
  EXPECT_EQ(choose_accel(moat::Accel::kAuto, none)->accel, Accel::kTcg);
  KvmProbe closed;
  closed.device_exists = true;
  closed.open_error = "Permission denied";
  std::string why;
  EXPECT_FALSE(kvm_usable(closed, &why));
  EXPECT_NE(why.find("Permission denied"), std::string::npos);
}

TEST(VmAccel, ExplicitTcgAndBadNames) {
  EXPECT_EQ(choose_accel(moat::Accel::kTcg, working_intel())->accel, Accel::kTcg);
  EXPECT_FALSE(moat::parse_accel("hvf").ok());
}

TEST(VmQemuCommand, MicrovmWithDisksAgentAndConsole) {
  VmSpec s;
  s.kernel = "/k/vmlinux";
  s.initrd = "/k/initrd";
  s.cpus = 2;
  s.memory_mib = 512;
  s.disks = {{"/a,b/lower.img", true}, {"/u.img", false}};
  s.console_fd = 4;
  s.hostname = "box";
  auto c = build_qemu_command(s);
  auto joined = [&] {
    std::string all;
    for (auto& a : c) all += a + " ";
    return all;
  }();
  EXPECT_EQ(c[0], "qemu-system-x86_64");
  EXPECT_NE(joined.find("-M microvm,acpi=off"), std::string::npos);
  EXPECT_NE(joined.find("tcg,thread=multi,tb-size=16 -cpu max,erms=off,fsrm=off "), std::string::npos);
  EXPECT_NE(joined.find("-smp 2 -m 512"), std::string::npos);
  EXPECT_NE(joined.find("-no-reboot"), std::string::npos);
  EXPECT_NE(joined.find("-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny "),
            std::string::npos);
  EXPECT_NE(joined.find("socket,id=agent,fd=3"), std::string::npos);
  // The console goes to the shim, which caps it; never to a file QEMU grows.
  EXPECT_NE(joined.find("-chardev socket,id=console,fd=4 -serial chardev:console"), std::string::npos);
  EXPECT_EQ(joined.find("file,"), std::string::npos);
  EXPECT_NE(joined.find("name=agent"), std::string::npos);
  // No monitor unless the shim hands QEMU one.
  EXPECT_EQ(joined.find("-mon"), std::string::npos);
  VmSpec with_monitor = s;
  with_monitor.qmp_fd = 7;
  std::string mon_joined;
  for (auto& a : build_qemu_command(with_monitor)) mon_joined += a + " ";
  EXPECT_NE(mon_joined.find("-chardev socket,id=qmp,fd=7 -mon chardev=qmp,mode=control "), std::string::npos)
      << mon_joined;
  // A restore: QEMU waits for the state the shim feeds it over the monitor.
  EXPECT_EQ(mon_joined.find("-incoming"), std::string::npos);
  VmSpec restoring = with_monitor;
  restoring.incoming = true;
  std::string in_joined;
  for (auto& a : build_qemu_command(restoring)) in_joined += a + " ";
  EXPECT_NE(in_joined.find(" -incoming defer "), std::string::npos) << in_joined;
  // Commas in paths are doubled so QEMU does not split the option there.
  EXPECT_NE(joined.find("file=/a,,b/lower.img,if=none,id=disk0,format=raw,file.locking=off,readonly=on"), std::string::npos);
  EXPECT_NE(joined.find("file=/u.img,if=none,id=disk1,format=raw,file.locking=off "), std::string::npos);
  // A disk the shim opened: QEMU takes the descriptor, in a set of its own.
  VmSpec by_fd = s;
  by_fd.disks[1].fd = 9;
  std::string fd_joined;
  for (auto& a : build_qemu_command(by_fd)) fd_joined += a + " ";
  EXPECT_NE(fd_joined.find("-add-fd fd=9,set=2 -drive file=/dev/fdset/2,if=none,id=disk1,format=raw,file.locking=off "),
            std::string::npos)
      << fd_joined;
  EXPECT_EQ(kernel_command_line(s),
            "console=ttyS0 quiet reboot=t panic=-1 noapictimer tsc=reliable moat.root=overlay moat.lowerfs=ext4 "
            "moat.hostname=box");
  // The host's TSC rate, when known, spares the guest its measurement.
  VmSpec told = s;
  told.tsc_khz = 2096028;
  EXPECT_EQ(kernel_command_line(told),
            "console=ttyS0 quiet reboot=t panic=-1 noapictimer tsc=reliable tsc_early_khz=2096028 moat.root=overlay "
            "moat.lowerfs=ext4 moat.hostname=box");
  told.accel = Accel::kKvm;
  EXPECT_EQ(kernel_command_line(told).find("tsc_early_khz"), std::string::npos) << "KVM guests have kvm-clock";
  s.accel = Accel::kKvm;
  EXPECT_EQ(kernel_command_line(s).find("noapictimer"), std::string::npos);
  EXPECT_EQ(kernel_command_line(s).find("tsc=reliable"), std::string::npos);
  auto k = build_qemu_command(s);
  std::string kvm_joined;
  for (auto& a : k) kvm_joined += a + " ";
  // KVM keeps the host's CPU as it is, fast string moves included.
  EXPECT_NE(kvm_joined.find("-accel kvm -cpu host "), std::string::npos) << kvm_joined;
}

TEST(VmQemuCommand, GuestRamIsTheShimsMemfdOrASnapshotsFileMappedPrivate) {
  auto joined = [](const VmSpec& spec) {
    std::string out;
    for (auto& a : build_qemu_command(spec)) out += a + " ";
    return out;
  };
  VmSpec plain;
  plain.kernel = "/k";
  plain.initrd = "/i";
  // QEMU's own anonymous RAM, under the one block name every restore finds.
  std::string p = joined(plain);
  EXPECT_NE(p.find("-M microvm,acpi=off,x-option-roms=off,isa-serial=on,rtc=on,memory-backend=mem "),
            std::string::npos)
      << p;
  EXPECT_NE(p.find("-object memory-backend-ram,id=mem,size=256M "), std::string::npos) << p;
  EXPECT_TRUE(qemu_environment(plain).empty());
  // The shim's memfd, mapped shared so that its copy is the guest's RAM.
  VmSpec memfd = plain;
  memfd.ram_fd = 11;
  std::string m = joined(memfd);
  EXPECT_NE(m.find("-M microvm,acpi=off,x-option-roms=off,isa-serial=on,rtc=on,memory-backend=mem "),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("-object memory-backend-file,id=mem,size=256M,mem-path=/proc/self/fd/11,share=on "),
            std::string::npos)
      << m;
  EXPECT_TRUE(qemu_environment(memfd).empty());
  // A snapshot's RAM file, private (copy-on-write), opened read-only by
  // the preloaded object; the file wins over a memfd.
  VmSpec child = memfd;
  child.ram_file = "/ram,x";
  child.ram_open_preload = "/read-only-ram.so";
  std::string c = joined(child);
  EXPECT_NE(c.find("-object memory-backend-file,id=mem,size=256M,mem-path=/ram,,x,share=off "), std::string::npos)
      << c;
  EXPECT_EQ(c.find("/proc/self/fd"), std::string::npos) << c;
  EXPECT_EQ(qemu_environment(child),
            (std::vector<std::string>{"LD_PRELOAD=/read-only-ram.so", "MOAT_READ_ONLY_RAM=/ram,x"}));
}

}  // namespace
}  // namespace moat::vm
