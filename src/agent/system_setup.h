// Bringing the guest up as PID 1: kernel filesystems, the root filesystem
// (overlay of a read-only lower and a writable upper, or one writable root),
// the switch into it, and the orderly way down again.
#pragma once

#include <sys/types.h>

#include <string>

#include "agent/boot_config.h"
#include "util/result.h"

namespace moat::agent {

// Mounts /proc, /sys and /dev inside the initramfs so devices can be found.
Status mount_early_filesystems();

// Mounts the root described by `cfg` and makes it "/" for the agent and every
// process it starts. Keeps what is needed to sync and unmount it later. A
// virtio-fs root takes its mount (the one at "/") out of `cfg.mounts`.
Status enter_root_filesystem(BootConfig& cfg);

// An O_PATH handle on the writable upper filesystem of an overlay root (-1
// for any other root): what the disk freezer freezes.
int upper_filesystem_handle();

// Mounts /proc, /sys, /dev, /dev/pts, /dev/shm, /tmp, /run and cgroup2 in the
// current root, and creates the /dev/fd family of links.
Status mount_guest_filesystems();

// Writes /etc/hostname, /etc/hosts and /etc/resolv.conf into the root
// filesystem; resolv.conf names the sandbox's resolver if the VM has a
// network. Called before any volume or tmpfs is mounted (see main.cpp).
void write_identity_files(const std::string& hostname, bool network);

Status set_hostname(const std::string& hostname);

// Starts bringing up the loopback interface and, with `network`, the guest's
// network interface (network_setup.h) in a child process, whose pid is
// returned (-1 if it was done inline). Commands must not start before that
// child has exited.
pid_t start_interface_setup(bool network);

// Waits for the child start_interface_setup() returned (if any) and says
// whether the network interface was configured.
Status await_network_setup(pid_t setup_pid);

// Sends every other process SIGTERM, then SIGKILL after `grace_ms` (at once
// when 0), and waits up to `wait_ms` for the killed to be gone (one stuck in
// an uninterruptible wait cannot write anything either).
void kill_all_processes(int grace_ms, int wait_ms = 0);

// Flushes and unmounts what can be unmounted, remounts the rest read-only,
// then resets the VM (QEMU runs with -no-reboot, so the reset ends it).
[[noreturn]] void power_off();

// With moat.debug=1 on the kernel command line, boot phases go to the kernel
// log, so `dmesg` in the guest shows where boot time goes.
void enable_boot_trace(bool on);
void trace(const char* phase);

// Writes a line to the console (and so to the shim's console log).
void console_log(const std::string& line);

}  // namespace moat::agent
