// moat's C++ API: create a microVM sandbox, run commands in it, stop it.
//
//   auto sb = moat::Sandbox::create({.rootfs_dir = "/srv/rootfs"});
//   moat::ExecIo io;
//   io.on_stdout = [](std::string_view s) { fwrite(s.data(), 1, s.size(), stdout); };
//   auto st = sb->exec({.argv = {"echo", "hi"}}, io);
//   sb->stop();
//
// A Sandbox handle runs one exec() at a time; start_exec() gives handles on
// commands that run at once (exec.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "moat/duration.h"
#include "moat/exec.h"
#include "moat/images.h"
#include "moat/network.h"
#include "moat/result.h"
#include "moat/stats.h"

namespace moat {

// A change written into a sandbox's writable disk before its first boot
// (no VM needed): `moat create --copy/--mkdir/--write/--rm`.
struct RootPatch {
  enum class Kind { kCopy, kMkdir, kWrite, kRemove };
  Kind kind = Kind::kMkdir;
  std::string guest_path;  // absolute
  std::string host_path;   // kCopy: a file or directory on the host
  std::string text;        // kWrite: the file's contents
  std::optional<std::uint32_t> mode;  // permission bits; default per kind
  std::optional<std::uint32_t> uid;   // default 0
  std::optional<std::uint32_t> gid;   // default 0
};

// The command-line forms of patches (docs/sandbox-patches.md): kCopy
// "HOST:GUEST" (split at the last ":/"), kMkdir and kRemove "GUEST", kWrite
// "GUEST=TEXT" (split at the first "="). Guest paths must be absolute and
// may not climb out of "/".
Result<RootPatch> parse_root_patch(RootPatch::Kind kind, std::string_view text);

// An owner and mode given once for all patches (`--chown`, `--chmod`).
struct PatchDefaults {
  std::optional<std::uint32_t> mode;
  std::optional<std::uint32_t> uid, gid;
};
// "UID" or "UID:GID", numeric (a lone UID also sets the GID).
Result<PatchDefaults> parse_patch_owner(std::string_view text);
// Octal permission bits, at most 07777.
Result<std::uint32_t> parse_patch_mode(std::string_view text);
// Fills each patch's unset mode, uid and gid from `defaults`.
void apply_patch_defaults(std::vector<RootPatch>& patches, const PatchDefaults& defaults);

enum class PullPolicy { kMissing, kAlways, kNever };

// How the VM runs: kvm (hardware virtualization), tcg (QEMU's software
// emulation, slow but available everywhere), or auto: kvm where it can run
// the guest, else tcg. Asking for kvm where it cannot work is an error, not a
// silent fallback.
enum class Accel { kAuto, kKvm, kTcg };
const char* to_string(Accel accel);
// "auto", "kvm" or "tcg"; EINVAL for anything else.
Result<Accel> parse_accel(std::string_view text);

// A host directory or a named volume (volumes.h) shared into the sandbox
// over virtio-fs: `moat run -v SOURCE:GUEST[:ro]`. The shim serves it; the
// guest sees ownership and modes kept in an xattr, so the host files stay
// the host user's.
struct VolumeMount {
  std::string source;      // an absolute host directory, or a volume name (made if missing)
  std::string guest_path;  // absolute
  bool read_only = false;  // enforced by the host-side server
  // What the guest may store in it (`:size=1g`), enforced by the server with
  // ENOSPC (docs/volumes.md); 0: no limit.
  std::uint64_t size_bytes = 0;
};

// The bounds of VolumeMount::size_bytes: one 4 KiB entry, and 1 PiB.
inline constexpr std::uint64_t kMinVolumeSize = 4096;
inline constexpr std::uint64_t kMaxVolumeSize = 1ull << 50;

// A tmpfs in the guest: `--tmpfs GUEST[:SIZE]`.
struct TmpfsMount {
  std::string guest_path;
  std::uint64_t size_bytes = 0;  // 0: the kernel's default, half the guest memory
};

// The command-line forms (docs/volumes.md), which the C ABI takes too:
//   "SOURCE:GUEST[:OPTIONS]"  OPTIONS: ro, rw, size=SIZE, comma-separated
//   "GUEST[:SIZE]"            SIZE: bytes, or with k/m/g/t (64m), or size=64m
// Guest paths must be absolute, without "..". Errors name the flag (-v,
// --tmpfs) and the text.
Result<VolumeMount> parse_volume_mount(const std::string& text);
Result<TmpfsMount> parse_tmpfs_mount(const std::string& text);
// "4096", "64k", "64m", "2g", "1t" (binary units; upper case too).
Result<std::uint64_t> parse_byte_size(std::string_view text);

// A secret the guest uses without seeing it (docs/tls.md): the guest's
// environment holds NAME=<placeholder>, random per sandbox, and its shim
// puts `value` in the placeholder's place in the request headers (an
// `Authorization: Basic` credential included) it sends over intercepted TLS
// to the hosts the secret is bound to. The placeholder in a request to any
// other host resets that connection. Declaring a secret turns interception
// on for its hosts (on NetworkOptions::tls.ports).
struct Secret {
  std::string name;                // an environment variable's name: [A-Za-z_][A-Za-z0-9_]*
  std::string value;               // kept on the host only; no CR, LF or NUL
  std::vector<std::string> hosts;  // NAME or *.suffix (the apex and its subdomains)
  // Also in query strings (percent-encoded) and in request bodies with a
  // Content-Length of at most 1 MiB (`:query`, `:body` in the CLI form).
  bool in_query = false;
  bool in_body = false;
  // Also on plain HTTP to port 80 of its hosts (`:http`), where anyone on
  // the path can read it: only when asked.
  bool plain_http = false;
};
inline constexpr std::size_t kMaxSecrets = 64;
inline constexpr std::size_t kMaxSecretValue = 16 * 1024;
// What a violation does besides resetting the connection and a log line.
enum class SecretViolation { kBlock, kBlockAndStop };
// "block" or "block-and-stop"; EINVAL naming the choices otherwise.
Result<SecretViolation> parse_secret_violation(std::string_view text);
// The CLI form NAME@HOST[,HOST...][:body,query,http] with the value given apart
// (the CLI reads it from the environment variable NAME).
Result<Secret> parse_secret(std::string_view spec, std::string value);

struct SandboxOptions {
  // An OCI image reference ("python:3.12", "registry:5000/app@sha256:…"):
  // the root is the image's read-only EROFS under a fresh writable upper, and
  // the image config gives the default command, environment, working
  // directory and user.
  std::string image;
  PullPolicy pull = PullPolicy::kMissing;
  bool insecure_registry = false;  // plain HTTP to the image's registry
  std::string platform;            // default linux/amd64
  // Called while a pull the create needs downloads (moat/images.h).
  std::function<void(const PullProgress&)> on_pull_progress;
  // Unique among this $MOAT_HOME's sandboxes; default: the id.
  std::string name;
  std::map<std::string, std::string> labels;
  // Replace the image's Cmd / Entrypoint for the sandbox's command.
  std::vector<std::string> command;
  std::optional<std::vector<std::string>> entrypoint;
  std::vector<RootPatch> patches;
  std::vector<Secret> secrets;
  SecretViolation on_secret_violation = SecretViolation::kBlock;
  std::vector<VolumeMount> volumes;
  std::vector<TmpfsMount> tmpfs;
  // The shim stops the sandbox after this long without any command or file
  // transfer running / after this long in total (whole seconds; zero:
  // never).
  Duration idle_timeout{0};
  Duration max_duration{0};
  // Remove the sandbox (disk, logs, state) as soon as it stops.
  bool auto_remove = false;
  // Warm start (docs/sandboxes.md): a sandbox on a fresh root, without
  // volumes, root patches or TLS interception, is restored from a template
  // saved right after the first boot of the same root, kernel and
  // resources instead of booting (the first such sandbox boots and saves
  // it). false: always boot afresh. $MOAT_WARM_START=0 turns it off for the
  // whole process.
  bool warm_start = true;

  // Without an image: a host directory (packed into a cached EROFS image),
  // or an image file (ext4 or EROFS). None: the bundled default root.
  std::string rootfs_dir;
  std::string rootfs_image;
  // A host directory that is the root itself, served writable over virtio-fs
  // (as volumes are): nothing copied or packed, the guest's writes land in
  // it. What an OCI runtime's bundle gives (moat-runtime). It shows as the
  // volume at "/" in the sandbox's info; snapshots, diff, export, commit and
  // root patches need a disk root and refuse such a sandbox.
  std::string rootfs_share;
  // Serve rootfs_share read-only (the OCI bundle's root.readonly): the
  // guest's root refuses writes (EROFS), enforced by the host-side server.
  bool rootfs_share_read_only = false;
  // Boot rootfs_image itself as the only, writable root (ext4 only) instead
  // of a read-only lower under a fresh writable upper.
  bool writable_root = false;
  int cpus = 1;
  // The sandbox's share of the host's CPUs when they are contended, against
  // other sandboxes (cgroup cpu.weight; 1 to 10000, 100 the default: a
  // sandbox of weight 200 gets twice the CPU time of one of 100). --cpus
  // stays its ceiling.
  std::uint32_t cpu_weight = 100;
  // --io-weight: QEMU's share of the host's disks when they are contended
  // (1-10000, as cgroup v2's io.weight): the root and upper disks' I/O;
  // volumes are served by processes of the shim outside QEMU's group. 0
  // leaves the kernel's default. The host's kernel must offer a weight (the
  // BFQ scheduler, or v2's io.cost): elsewhere the start fails saying so
  // (docs/security.md).
  std::uint32_t io_weight = 0;
  int memory_mib = 256;
  std::uint64_t disk_size_mib = 4096;  // the writable upper disk (sparse)
  Accel accel = Accel::kAuto;
  std::string hostname;                // default: "moat-" + id
  Duration boot_timeout = std::chrono::seconds(60);  // 1 s to 1 day
  // Stop the sandbox when the handle that created it is closed (or its
  // process dies). `moat run` uses this; `moat create` does not.
  bool ephemeral = false;
  // How long a graceful stop may take before the VM is killed (at most a
  // day).
  Duration stop_timeout = std::chrono::seconds(10);
  // The cap of each log the guest can fill (console, QEMU's output, the
  // shim's log, the exec history): past it the file becomes <name>.1 and a
  // new one starts. 4 KiB to 1 GiB; 0: the default, 1 MiB.
  std::uint64_t log_max_bytes = 0;
  // What the guest may reach, the names it resolves, the ports the host
  // publishes (moat/network.h). Checked by create: EINVAL with the reason.
  NetworkOptions network;
  // A disk snapshot (id or name, moat/snapshots.h) to start from: the root is
  // the snapshot's image (or lower disk) under a copy of its upper disk, and
  // its command the default. Excludes `image`, `rootfs_dir` and
  // `rootfs_image`; `disk_size_mib` is the snapshot's.
  std::string from_snapshot;
};

// Where Sandbox::exec()'s streams go. Callbacks run on the thread calling
// exec(). For signals, resizes, stdin written piecewise or several commands
// at once, use a handle (Sandbox::start_exec, exec.h).
struct ExecIo {
  int stdin_fd = -1;  // read to EOF as the command's stdin (with stdin_open)
  std::function<void(std::string_view)> on_stdout;
  std::function<void(std::string_view)> on_stderr;
  std::function<void(int pid)> on_started;
};

// ---- Files in the guest: types (methods below in Sandbox) ----

enum class FileType { kFile, kDir, kSymlink, kChar, kBlock, kFifo, kSocket };

struct FileInfo {
  FileType type = FileType::kFile;
  std::uint32_t mode = 0;  // permission bits (07777)
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::uint64_t size = 0;
  std::uint64_t nlink = 1;
  std::int64_t mtime_ns = 0;
  std::string target;  // symlinks: what they point to
};

struct DirEntry {
  std::string name;
  FileInfo info;  // of the entry itself (symlinks are not followed)
};

struct WriteFileOptions {
  std::uint32_t mode = 0;  // 0: 0644 for a new file, an existing file keeps its mode
  std::optional<std::uint32_t> uid;
  std::optional<std::uint32_t> gid;
  bool append = false;     // otherwise the file is truncated
  bool exclusive = false;  // fail with EEXIST if the file exists
};

struct CopyOptions {
  // Keep owners as they are in the source (and, copying in, setuid/setgid
  // bits); by default files copied in belong to root and files copied out to
  // the caller. Copying out never sets setuid/setgid/sticky bits on the host
  // nor makes anything group- or other-writable.
  bool preserve_owner = false;
};

// What a tar stream moved (Sandbox::read_archive, write_archive).
struct ArchiveTotals {
  std::uint64_t entries = 0;  // files, directories, links, ...
  std::uint64_t bytes = 0;    // of file contents
};

// ---- end of files in the guest: types ----

struct SandboxInfo;

// How pause_sandbox (moat/sandboxes.h) keeps a sandbox: its vCPUs stopped
// with its memory held, or (to_disk) its whole VM saved to disk and ended.
struct PauseOptions {
  bool to_disk = false;
};

class Sandbox {
 public:
  // Boots a new sandbox and returns once it runs commands.
  static Result<Sandbox> create(const SandboxOptions& options);
  // Attaches to a running sandbox by id.
  static Result<Sandbox> open(const std::string& id);

  Sandbox(Sandbox&&) noexcept;
  Sandbox& operator=(Sandbox&&) noexcept;
  ~Sandbox();

  const std::string& id() const;
  // Accelerator in use and why it was chosen (set by create()).
  const std::string& accel_reason() const;

  // The sandbox's record as it is now (state reconciled with its shim),
  // read through this handle's own connection to the records. SandboxInfo
  // is defined in moat/sandboxes.h.
  Result<SandboxInfo> info();

  // Starts a command and returns a handle on it (exec.h), on a connection of
  // its own: any number may run at once, also beside exec().
  Result<Exec> start_exec(const ExecOptions& options, const ExecCallbacks& callbacks = {});

  // Runs a command and waits for it to end: the blocking helper over an Exec
  // handle, on this handle's connection (one at a time). The guest is not
  // trusted to answer: with a timeout the host stops waiting 5 s after it
  // (error code ETIMEDOUT) and cancels the command.
  Result<ExitStatus> exec(const ExecOptions& options, ExecIo& io);

  // Asks the guest to power off (filesystems synced), kills the VM if it has
  // not within `timeout`, and waits until nothing of the sandbox remains.
  // A timeout of 0 (and any stop of a sandbox whose disk is discarded) skips
  // the power-off: the guest's processes are killed at once, what they wrote
  // to volumes (and to a kept disk) is flushed, then the VM is ended.
  Status stop(Duration timeout = std::chrono::seconds(10));

  // Replaces the sandbox's network mode (if given) and its whole rule list
  // (moat/network.h). Checked first (EINVAL with the reason); the running
  // shim must take the new policy (its error otherwise, and nothing
  // changes), then the record keeps it, so a restart applies it too.
  // update_sandbox_network (moat/sandboxes.h) does the same by id or name,
  // also for a sandbox that is not running.
  Status update_network(const NetworkPolicyUpdate& update);

  // pause_sandbox / resume_sandbox (moat/sandboxes.h) of this sandbox. After
  // a pause to disk the handle's calls fail (not running) until resume,
  // which restores the sandbox and connects the handle to it again.
  Status pause(const PauseOptions& options = {});
  Status resume();

  // What the sandbox uses now: CPU time, memory and tasks against its
  // limits, the guest's network traffic (moat/stats.h).
  Result<SandboxStats> stats();

  // ---- Files in the guest ----
  // Guest paths are absolute and resolved as the guest itself sees them.
  // Errors carry the guest's errno in Error::code (ENOENT, ENOSPC, ...).
  // Transfers stream in bounded chunks: memory stays flat for any size.
  Result<FileInfo> stat(const std::string& guest_path, bool follow_symlink = false);
  Result<std::vector<DirEntry>> list_dir(const std::string& guest_path);
  // The whole file, to a host fd (written at its current offset) or a callback.
  Status read_file(const std::string& guest_path, int host_fd);
  Status read_file(const std::string& guest_path, const std::function<Status(std::string_view)>& sink);
  // Creates or replaces a guest file from a host fd (read to EOF) or bytes.
  Status write_file(const std::string& guest_path, int host_fd, const WriteFileOptions& options = {});
  Status write_file(const std::string& guest_path, std::string_view bytes,
                    const WriteFileOptions& options = {});
  Status mkdir(const std::string& guest_path, bool parents = false, std::uint32_t mode = 0755);
  Status remove(const std::string& guest_path, bool recursive = false);
  Status rename(const std::string& from, const std::string& to);
  Status chmod(const std::string& guest_path, std::uint32_t mode);
  Status chown(const std::string& guest_path, std::optional<std::uint32_t> uid,
               std::optional<std::uint32_t> gid, bool follow_symlink = false);
  // Files and directory trees with `docker cp` semantics: into an existing
  // directory the source keeps its name; to a missing path it takes that name.
  // copy_out is all or nothing: on an error the host is left as it was.
  Status copy_in(const std::string& host_path, const std::string& guest_path,
                 const CopyOptions& options = {});
  Status copy_out(const std::string& guest_path, const std::string& host_path,
                  const CopyOptions& options = {});
  // Trees as tar streams, for callers that move them without a host path
  // (moat serve's archive route). read_archive streams `guest_path` (a file,
  // a symlink itself or a directory tree; symlinks below it are not
  // followed) as a pax tar whose top-level entry is the path's own name
  // ("root" for "/"), with the guest's owners and modes. write_archive
  // extracts a tar read from `host_fd` to its end into the existing guest
  // directory `guest_dir`, with the archive's owners and modes; nothing
  // the archive names is followed (no "..", no absolute names, no writing
  // through a symlink it planted or that was there). It is not all or
  // nothing: on an error (a malformed archive, ENOSPC) the entries
  // extracted before it stay.
  Result<ArchiveTotals> read_archive(const std::string& guest_path,
                                     const std::function<Status(std::string_view)>& sink);
  Result<ArchiveTotals> write_archive(const std::string& guest_dir, int host_fd);
  // ---- end of files in the guest ----

 private:
  struct Impl;
  explicit Sandbox(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace moat
