/* moat's C ABI: libmoat.so, for languages that cannot call C++ (the Python and
 * TypeScript SDKs, anything with an FFI). Everything the C++ API in
 * include/moat/ offers, as plain C:
 *
 *   moat_sandbox_options o = {0};
 *   o.struct_size = sizeof o;
 *   o.image = "busybox";
 *   moat_sandbox* sb;
 *   moat_error* err = NULL;
 *   if (moat_sandbox_create(&o, &sb, &err) != 0) {
 *     fprintf(stderr, "%s\n", moat_error_message(err));
 *     moat_error_free(err);
 *     return 1;
 *   }
 *   const char* argv[] = {"echo", "hi", NULL};
 *   moat_exec_options x = {0};
 *   x.struct_size = sizeof x;
 *   x.argv = argv;
 *   moat_exec_callbacks cb = {0};
 *   cb.struct_size = sizeof cb;
 *   cb.on_stdout = write_out;             (void (*)(void*, const char*, size_t))
 *   moat_exit_status st;
 *   moat_sandbox_exec(sb, &x, &cb, -1, &st, NULL);
 *   moat_sandbox_close(sb);
 *
 * Conventions (the same for every function):
 *   - Fallible functions return 0 on success, else a nonzero code: the
 *     errno-style code of the error (ENOENT, EINVAL, ...), or -1 when it has
 *     none. With a non-NULL `err`, *err is then set to an error the caller
 *     frees with moat_error_free(); on success *err is left alone.
 *   - Structures the caller fills begin with `struct_size`, set to
 *     sizeof(the structure) as the caller compiled it: fields added later
 *     at the end are read as zero from older callers. A zero field is the
 *     default stated beside it. NULL for a whole options pointer: all
 *     defaults.
 *   - String lists are NULL-terminated arrays of NUL-terminated strings.
 *   - Strings returned as `char*` belong to the caller: moat_string_free().
 *     Structured results (a sandbox's record, an image, a directory
 *     listing) are JSON text in the forms `moat inspect` and friends print
 *     (docs/json.md).
 *   - Durations are milliseconds; a negative timeout means no limit where
 *     a function says so.
 *   - Nothing is thrown or longjmp'd across this boundary; a callback must
 *     not unwind through it either.
 *
 * Threads: distinct handles may be used from distinct threads at once. A
 * moat_sandbox is used by one thread at a time (its exec runs one command at
 * a time on its connection; moat_exec_start opens a connection per command,
 * so any number run at once). Of a moat_exec, the input and control
 * functions (write_stdin, close_stdin, signal, resize, kill, cancel) may be
 * called from any thread, also while another waits in moat_exec_wait or
 * moat_exec_read. Callbacks run on the thread of the call that reads the
 * stream (wait, write_stdin, exec), never on a thread of the library's own,
 * except pull progress (the download threads, one call at a time) and the
 * runtime's log callback (any thread).
 */
#ifndef MOAT_MOAT_H
#define MOAT_MOAT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI's version: its soname is libmoat.so.MOAT_ABI_VERSION. Raised only
 * when a function's meaning or a structure's existing fields change. */
#define MOAT_ABI_VERSION 1

/* The library's version ("0.1.0") and ABI version, as built. */
const char* moat_version(void);
int moat_abi_version(void);

/* ---- Errors and strings ---- */

typedef struct moat_error moat_error;

/* The errno-style code (0 when none applies). */
int moat_error_code(const moat_error* err);
/* The kind, for branching without reading the message: "not_found",
 * "already_exists", "invalid_argument", "busy", "not_running", "timed_out",
 * "interrupted", "permission_denied", "resource_exhausted", "unsupported",
 * "protocol", "io" or "unknown" (moat/result.h's ErrorKind). */
const char* moat_error_kind(const moat_error* err);
/* What went wrong, with its context ("inspect web: no such sandbox"). */
const char* moat_error_message(const moat_error* err);
void moat_error_free(moat_error* err);

void moat_string_free(char* s);

/* ---- The runtime: where state lives, what boots a VM ---- */

typedef enum moat_log_level { MOAT_LOG_DEBUG, MOAT_LOG_INFO, MOAT_LOG_WARNING, MOAT_LOG_ERROR } moat_log_level;

typedef struct moat_runtime_options {
  size_t struct_size;
  /* Each NULL or "": its MOAT_* environment variable, else the built-in
   * place (moat/runtime.h). Paths must be absolute. */
  const char* home;
  const char* cache_dir;
  const char* qemu;
  const char* kernel;
  const char* initramfs;
  const char* shim;
  const char* default_rootfs;
  /* What the library reports that is not the error of a call (a sandbox
   * found crashed). Called from any thread; `message` is not
   * NUL-terminated. NULL: dropped. */
  void (*log)(void* user_data, moat_log_level level, const char* message, size_t length);
  void* log_user_data;
} moat_runtime_options;

/* Once, before the first other call. */
int moat_configure_runtime(const moat_runtime_options* options, moat_error** err);
/* `moat doctor` as JSON: {"ready": bool, "accel": ..., "checks": [...]}. */
int moat_check_runtime(char** report_json, moat_error** err);

/* ---- Images ---- */

typedef struct moat_pull_progress {
  size_t struct_size;
  size_t layer, layers; /* 1-based layer this report is about, of `layers` */
  const char* digest;   /* that layer's digest */
  uint64_t layer_done, layer_total;
  int layer_complete;
  uint64_t done, total; /* bytes, all layers this pull downloads */
  size_t layers_done;
} moat_pull_progress;

typedef void (*moat_pull_progress_fn)(void* user_data, const moat_pull_progress* progress);

typedef struct moat_pull_options {
  size_t struct_size;
  const char* platform;   /* "os/arch[/variant]"; NULL: linux/amd64 */
  int insecure_registry;  /* plain HTTP */
  int parallel_downloads; /* 0: 3 */
  moat_pull_progress_fn on_progress;
  void* user_data;
} moat_pull_options;

/* Result: {"ref", "digest", "manifestDigest", "erofs", "builtRoot", "bytesDownloaded"}. */
int moat_image_pull(const char* ref, const moat_pull_options* options, char** pulled_json, moat_error** err);
/* A JSON array of {"ref", "digest", "manifestDigest", "platform", "size"}. */
int moat_image_list(char** images_json, moat_error** err);
/* `moat image inspect`'s object. `image`: a reference, digest or id. */
int moat_image_inspect(const char* image, char** image_json, moat_error** err);
int moat_image_remove(const char* ref, moat_error** err);
int moat_image_tag(const char* source, const char* target, moat_error** err);
/* Re-verifies blobs and roots (NULL or empty: every image): a JSON array of
 * {"ref", "digest", "ok", "problems": []}. */
int moat_image_check(const char* const* images, char** checks_json, moat_error** err);
/* Removes what no reference leads to: {"images", "blobs", "roots", "tempFiles", "bytes"}. */
int moat_image_prune(char** report_json, moat_error** err);
/* Reads a docker-archive or OCI layout tar from fd: a JSON array of
 * {"names", "digest", "manifestDigest", "erofs", "builtRoot"}. */
int moat_image_load(int fd, char** loaded_json, moat_error** err);
/* Writes images as one archive ("oci" or "docker") to fd. */
int moat_image_save(const char* const* images, const char* format, int fd, moat_error** err);
/* Checks the credentials, then keeps them in $MOAT_HOME/auth.json; logout
 * forgets them (ENOENT: none were kept). */
int moat_registry_login(const char* registry, const char* username, const char* password, int insecure,
                        moat_error** err);
int moat_registry_logout(const char* registry, moat_error** err);

/* Serving an image read-only on a host directory (FUSE; `moat image
 * mount`). moat_image_mount mounts `image` (a reference, digest, id or the
 * path of an EROFS file) on the existing directory `dir`;
 * moat_mount_serve then answers the kernel on the calling thread (and
 * `threads` workers, 0: the CPUs, 2 to 8) until the filesystem is unmounted
 * (moat_image_unmount, or umount). Freeing a handle that was never served
 * unmounts it. */
typedef struct moat_mount moat_mount;
int moat_image_mount(const char* image, const char* dir, unsigned threads, moat_mount** out, moat_error** err);
int moat_mount_serve(moat_mount* mount, moat_error** err);
void moat_mount_free(moat_mount* mount);
int moat_image_unmount(const char* dir, int lazy, moat_error** err);

/* ---- Sandboxes ---- */

typedef enum moat_pull_policy { MOAT_PULL_MISSING, MOAT_PULL_ALWAYS, MOAT_PULL_NEVER } moat_pull_policy;
typedef enum moat_accel { MOAT_ACCEL_AUTO, MOAT_ACCEL_KVM, MOAT_ACCEL_TCG } moat_accel;

typedef struct moat_sandbox_options {
  size_t struct_size;
  const char* image;          /* an OCI reference; NULL: rootfs_dir/rootfs_image, else the bundled root */
  moat_pull_policy pull;
  int insecure_registry;
  const char* platform;
  moat_pull_progress_fn on_pull_progress;
  void* pull_user_data;
  const char* name;           /* NULL: the id */
  const char* const* labels;  /* "KEY=VALUE" */
  const char* const* command; /* replaces the image's Cmd */
  const char* const* entrypoint; /* replaces the image's Entrypoint (with has_entrypoint) */
  int has_entrypoint;         /* nonzero: entrypoint given, even empty */
  /* The CLI's forms (docs/volumes.md, docs/sandboxes.md):
   * volumes "SOURCE:GUEST[:ro][:size=SIZE]", tmpfs "GUEST[:SIZE]". */
  const char* const* volumes;
  const char* const* tmpfs;
  /* The network, as moat/json.h prints it: {"mode": "public", "rules":
   * [{"allow": true, "rule": "*.pypi.org:443"}], ...} (docs/json.md); a
   * missing field is its default, NULL all defaults (docs/network.md). */
  const char* network_json;
  int cpus;                   /* 0: 1 */
  uint32_t cpu_weight;        /* 0: 100 */
  int memory_mib;             /* 0: 256 */
  uint64_t disk_size_mib;     /* 0: 4096 */
  moat_accel accel;
  const char* hostname;       /* NULL: "moat-" + id */
  int64_t idle_timeout_ms;    /* 0: none (whole seconds) */
  int64_t max_duration_ms;    /* 0: none (whole seconds) */
  int64_t boot_timeout_ms;    /* 0: 60 s */
  int64_t stop_timeout_ms;    /* 0: 10 s */
  int auto_remove;            /* removed as soon as it stops */
  int ephemeral;              /* stopped when the handle is closed or its process dies */
  const char* rootfs_dir;
  const char* rootfs_image;
  int writable_root;
  uint64_t log_max_bytes;     /* 0: 1 MiB */
  /* Secrets the guest uses without seeing (docs/tls.md): specs in the
   * CLI's form "NAME@HOST[,HOST...][:body,query,http]", and their values at
   * the same index (kept on the host only). */
  const char* const* secrets;
  const char* const* secret_values;
  int stop_on_secret_violation; /* a violation also stops the sandbox */
  /* A disk snapshot (id or name) to start from: its root and files, its
   * command the default; no image, rootfs_dir or rootfs_image then
   * (docs/snapshots.md). */
  const char* from_snapshot;
  /* Boot afresh instead of a warm start from the template of an earlier
   * boot of the same root, kernel and resources (docs/sandboxes.md). */
  int cold;
  /* --io-weight: the share of the host's disks when contended, 1-10000;
   * 0: the kernel's default (docs/security.md). */
  uint32_t io_weight;
} moat_sandbox_options;

typedef struct moat_sandbox moat_sandbox;

/* Boots a new sandbox and returns once it runs commands. */
int moat_sandbox_create(const moat_sandbox_options* options, moat_sandbox** out, moat_error** err);
/* Attaches to a running sandbox by id or name. */
int moat_sandbox_open(const char* id_or_name, moat_sandbox** out, moat_error** err);
/* Closes the handle (an ephemeral sandbox stops). NULL is fine. */
void moat_sandbox_close(moat_sandbox* sandbox);
/* Valid while the handle is. */
const char* moat_sandbox_id(const moat_sandbox* sandbox);
/* The record as `moat inspect` shows it. */
int moat_sandbox_info(moat_sandbox* sandbox, char** info_json, moat_error** err);
/* Powers off (filesystems synced), killing the VM after timeout_ms (0: 10 s). */
int moat_sandbox_stop(moat_sandbox* sandbox, int64_t timeout_ms, moat_error** err);
/* Pause (to_disk: the whole VM saved to disk and ended) and resume of the
 * handle's sandbox; a resume that restores it from disk connects the handle
 * to it again (moat/sandbox.h). */
int moat_sandbox_pause(moat_sandbox* sandbox, int to_disk, moat_error** err);
int moat_sandbox_resume(moat_sandbox* sandbox, moat_error** err);
/* `moat stats --json`'s numbers (moat/stats.h). */
int moat_sandbox_stats(moat_sandbox* sandbox, char** stats_json, moat_error** err);
/* Replaces the mode (if "mode" is given) and the rule list:
 * {"mode": "none", "rules": [{"allow": true, "rule": "db.test:5432"}]}. */
int moat_sandbox_update_network(moat_sandbox* sandbox, const char* policy_json, moat_error** err);

/* The manager (moat/sandboxes.h): sandboxes by id or name, handle or not. */
/* Defines a sandbox without booting it; its record. */
int moat_define_sandbox(const moat_sandbox_options* options, char** info_json, moat_error** err);
int moat_start_sandbox(const char* id_or_name, moat_error** err);
int moat_restart_sandbox(const char* id_or_name, int64_t timeout_ms, moat_error** err);
int moat_stop_sandbox(const char* id_or_name, int64_t timeout_ms, moat_error** err);
/* vCPUs stopped where they are, memory kept / run again (moat/sandboxes.h):
 * a paused sandbox's record says "paused": true. */
int moat_pause_sandbox(const char* id_or_name, moat_error** err);
/* The whole VM saved to the sandbox's directory and ended: the record says
 * "state": "stopped", "saved": true; moat_resume_sandbox (or start)
 * restores it, stop discards it. */
int moat_pause_sandbox_to_disk(const char* id_or_name, moat_error** err);
int moat_resume_sandbox(const char* id_or_name, moat_error** err);
int moat_remove_sandbox(const char* id_or_name, int force, moat_error** err);
int moat_inspect_sandbox(const char* id_or_name, char** info_json, moat_error** err);
/* A JSON array of records, oldest first; labels "KEY=VALUE" all must match (NULL: all). */
int moat_list_sandboxes(const char* const* labels, char** list_json, moat_error** err);
/* A running sandbox's stats by id or name (moat_sandbox_stats's form). */
int moat_stats_sandbox(const char* id_or_name, char** stats_json, moat_error** err);

/* Sandbox events, oldest first, after sequence number `after` (0: all
 * kept): {"seq", "time", "event": "created"|"started"|"stopped"|"crashed"|
 * "removed"|"network_denied", "id", "name", "reason"}. With `follow`, then
 * new ones as they happen. on_event returning nonzero ends the watch (not
 * an error); so does moat_events_cancel from any thread. */
typedef struct moat_events moat_events;
/* A cancel token for a watch (may be NULL in moat_watch_sandbox_events). */
int moat_events_new(moat_events** out, moat_error** err);
void moat_events_cancel(moat_events* token);
void moat_events_free(moat_events* token);
int moat_watch_sandbox_events(uint64_t after, int follow, moat_events* token,
                              int (*on_event)(void* user_data, const char* event_json), void* user_data,
                              moat_error** err);

/* The console (the older generation first), then the exec history
 * (`moat logs`); with `follow`, then the console's new output as it comes,
 * until the sandbox is no longer running. Exec events are JSON objects
 * ({"time", "stream", "event": "exec"|"exit"|"error"|"network", ...}). */
typedef struct moat_log_callbacks {
  size_t struct_size;
  void (*on_console)(void* user_data, const char* data, size_t length);
  void (*on_exec_event)(void* user_data, const char* event_json);
  void* user_data;
  /* Asked between polls while following (every 200 ms): nonzero ends the
   * follow. NULL (or a struct_size without it): follow to the end. */
  int (*stop)(void* user_data);
} moat_log_callbacks;
int moat_sandbox_logs(const char* id_or_name, const moat_log_callbacks* callbacks, int follow, moat_error** err);

/* ---- Commands ---- */

typedef struct moat_exec_options {
  size_t struct_size;
  const char* const* argv;  /* required */
  const char* const* env;   /* "KEY=VALUE", on top of the sandbox's */
  const char* cwd;          /* NULL: the sandbox's working directory */
  const char* user;         /* NULL: the sandbox's user */
  int tty;                  /* a pseudo-terminal (stdout only) */
  uint16_t rows, cols;      /* 0: 24 x 80 */
  int stdin_open;           /* otherwise stdin is /dev/null */
  int64_t timeout_ms;       /* 0: none; the command is killed when it passes */
} moat_exec_options;

typedef struct moat_exec_callbacks {
  size_t struct_size;
  void (*on_stdout)(void* user_data, const char* data, size_t length);
  void (*on_stderr)(void* user_data, const char* data, size_t length);
  void (*on_started)(void* user_data, int pid);
  void* user_data;
} moat_exec_callbacks;

typedef struct moat_exit_status {
  int code;      /* the exit code, 0 when a signal ended it */
  int signal;    /* the signal that ended it, else 0 */
  int timed_out; /* its timeout_ms passed and it was killed */
} moat_exit_status;

/* Runs a command to its end on the handle's connection. stdin_fd >= 0 is
 * read to EOF as its stdin (with stdin_open). */
int moat_sandbox_exec(moat_sandbox* sandbox, const moat_exec_options* options, const moat_exec_callbacks* callbacks,
                      int stdin_fd, moat_exit_status* status, moat_error** err);

typedef struct moat_exec moat_exec;

/* Starts a command on a connection of its own. Without callbacks its output
 * is read with moat_exec_read (the guest sends more only as it is read: a
 * reader that stops holds the command back, and memory stays bounded). */
int moat_exec_start(moat_sandbox* sandbox, const moat_exec_options* options, const moat_exec_callbacks* callbacks,
                    moat_exec** out, moat_error** err);
/* Kills the command if it has not ended, and frees the handle. NULL is fine. */
void moat_exec_free(moat_exec* exec);
/* Its pid in the guest once started, else 0. */
int moat_exec_pid(const moat_exec* exec);
/* Blocks while the command has not read what was sent before. EPIPE once
 * stdin is closed or the command ended. */
int moat_exec_write_stdin(moat_exec* exec, const char* data, size_t length, moat_error** err);
int moat_exec_close_stdin(moat_exec* exec, moat_error** err);
int moat_exec_signal(moat_exec* exec, int signal, moat_error** err);
int moat_exec_kill(moat_exec* exec, moat_error** err);
int moat_exec_resize(moat_exec* exec, uint16_t rows, uint16_t cols, moat_error** err);
/* Stops waiting: a wait or read in progress or to come fails with EINTR,
 * and the command is killed. */
void moat_exec_cancel(moat_exec* exec);
/* Reads output into the callbacks until the command ends (*ended = 1,
 * *status set) or timeout_ms passes (*ended = 0; negative: no limit). */
int moat_exec_wait(moat_exec* exec, int64_t timeout_ms, int* ended, moat_exit_status* status, moat_error** err);

typedef enum moat_output_kind { MOAT_OUTPUT_NONE, MOAT_OUTPUT_STDOUT, MOAT_OUTPUT_STDERR, MOAT_OUTPUT_EXIT } moat_output_kind;
typedef struct moat_exec_output {
  moat_output_kind kind; /* NONE: timeout_ms passed first */
  char* data;            /* STDOUT, STDERR: the bytes (moat_string_free; NUL added) */
  size_t length;
  moat_exit_status status; /* EXIT: the last piece */
} moat_exec_output;
/* The pull interface, for a command started without callbacks: the next
 * piece of output, in the order the guest sent it. */
int moat_exec_read(moat_exec* exec, int64_t timeout_ms, moat_exec_output* out, moat_error** err);

/* ---- Files in the guest ----
 * Guest paths are absolute, resolved as the guest sees them; errors carry
 * the guest's errno (ENOENT, ENOSPC, ...). Transfers stream in bounded
 * chunks. */

typedef struct moat_write_file_options {
  size_t struct_size;
  uint32_t mode;          /* 0: 0644 for a new file; an existing file keeps its mode */
  int64_t uid, gid;       /* negative: root for a new file, unchanged otherwise; set both to -1 */
  int append;
  int exclusive;          /* EEXIST if it exists */
} moat_write_file_options;

/* The whole file, to a callback (return nonzero to stop: ECANCELED) or a fd. */
int moat_sandbox_read_file(moat_sandbox* sandbox, const char* guest_path,
                           int (*sink)(void* user_data, const char* data, size_t length), void* user_data,
                           moat_error** err);
int moat_sandbox_read_file_to_fd(moat_sandbox* sandbox, const char* guest_path, int fd, moat_error** err);
int moat_sandbox_write_file(moat_sandbox* sandbox, const char* guest_path, const char* data, size_t length,
                            const moat_write_file_options* options, moat_error** err);
int moat_sandbox_write_file_from_fd(moat_sandbox* sandbox, const char* guest_path, int fd,
                                    const moat_write_file_options* options, moat_error** err);
/* {"type": "file"|"dir"|"symlink"|..., "mode", "uid", "gid", "size", "nlink", "mtime_ns"[, "target"]}. */
int moat_sandbox_stat(moat_sandbox* sandbox, const char* guest_path, int follow_symlink, char** info_json,
                      moat_error** err);
/* A JSON array of stat's objects, each with its "name". */
int moat_sandbox_list_dir(moat_sandbox* sandbox, const char* guest_path, char** entries_json, moat_error** err);
int moat_sandbox_mkdir(moat_sandbox* sandbox, const char* guest_path, int parents, uint32_t mode, moat_error** err);
int moat_sandbox_remove(moat_sandbox* sandbox, const char* guest_path, int recursive, moat_error** err);
int moat_sandbox_rename(moat_sandbox* sandbox, const char* from, const char* to, moat_error** err);
int moat_sandbox_chmod(moat_sandbox* sandbox, const char* guest_path, uint32_t mode, moat_error** err);
/* `docker cp` semantics, both ways (moat/sandbox.h). */
int moat_sandbox_copy_in(moat_sandbox* sandbox, const char* host_path, const char* guest_path, int preserve_owner,
                         moat_error** err);
int moat_sandbox_copy_out(moat_sandbox* sandbox, const char* guest_path, const char* host_path, int preserve_owner,
                          moat_error** err);
/* Trees as tar streams (moat/sandbox.h: read_archive, write_archive). The
 * tar of guest_path (its top-level entry the path's own name) to a callback
 * (return nonzero to stop: ECANCELED); a tar read from fd to its end,
 * extracted into the existing directory guest_dir (not all or nothing).
 * `entries` (may be NULL) receives how many entries moved. */
int moat_sandbox_read_archive(moat_sandbox* sandbox, const char* guest_path,
                              int (*sink)(void* user_data, const char* data, size_t length), void* user_data,
                              uint64_t* entries, moat_error** err);
int moat_sandbox_write_archive_from_fd(moat_sandbox* sandbox, const char* guest_dir, int fd, uint64_t* entries,
                                       moat_error** err);

/* ---- Volumes ---- */

/* {"name", "path", "created_at", "labels", "used_by"}. */
int moat_volume_create(const char* name, const char* const* labels, char** volume_json, moat_error** err);
int moat_volume_inspect(const char* name, char** volume_json, moat_error** err);
int moat_volume_list(char** volumes_json, moat_error** err);
int moat_volume_remove(const char* name, int force, moat_error** err);

/* ---- Disk snapshots and forks (moat/snapshots.h, docs/snapshots.md) ---- */

/* A snapshot of a sandbox's disk (frozen for the copy while it runs, at most
 * freeze_timeout_ms; 0: 60 s). labels "KEY=VALUE" (NULL: none). The JSON:
 * {"id", "name", "created_at", "labels", "source_id", "source_name", "image",
 * "image_digest", "lower_path", "disk_size_mib", "allocated_bytes",
 * "content_digest", "command", "used_by"}. */
int moat_snapshot_create(const char* sandbox, const char* name, const char* const* labels, int64_t freeze_timeout_ms,
                         char** snapshot_json, moat_error** err);
int moat_snapshot_inspect(const char* id_or_name, char** snapshot_json, moat_error** err);
int moat_snapshot_list(char** snapshots_json, moat_error** err);
/* EBUSY while sandboxes made from it exist. */
int moat_snapshot_remove(const char* id_or_name, moat_error** err);
/* `count` (1 to 64) new sandboxes from a consistent copy of `sandbox`'s disk,
 * named PREFIX-1 ... (name_prefix NULL: the source's name + "-fork"),
 * booted unless no_start: a JSON array of their records. */
int moat_sandbox_fork(const char* sandbox, int count, const char* name_prefix, int no_start, char** sandboxes_json,
                      moat_error** err);
/* A warm fork (ForkOptions::memory): as moat_sandbox_fork, but the running
 * sandbox's VM is saved too and each child goes on from that moment instead
 * of booting, sharing the saved RAM's pages until it writes them. ENOTCONN if
 * the sandbox does not run, EOPNOTSUPP if it has volumes. */
int moat_sandbox_fork_warm(const char* sandbox, int count, const char* name_prefix, int no_start,
                           char** sandboxes_json, moat_error** err);

/* ---- A sandbox's root read from its disks (moat/root_changes.h) ---- */

/* What it changed against its image: [{"kind": "A"|"C"|"D", "path"}]. */
int moat_sandbox_diff(const char* id_or_name, char** changes_json, moat_error** err);
/* Its root as the guest sees it, a pax tar written to fd. */
int moat_sandbox_export_to_fd(const char* id_or_name, int fd, moat_error** err);

typedef struct moat_commit_options {
  size_t struct_size;
  const char* const* changes; /* "CMD [...]", "ENV K=V", "WORKDIR /w", ... (NULL: none) */
  const char* const* env;     /* "KEY=VALUE" */
  const char* workdir;        /* NULL: the image's */
  const char* message;        /* the history entry's comment */
} moat_commit_options;

/* Its changes as a new image named ref (options may be NULL):
 * {"ref", "manifest_digest", "layer_digest", "layer_size"}. */
int moat_sandbox_commit(const char* id_or_name, const char* ref, const moat_commit_options* options,
                        char** image_json, moat_error** err);

#ifdef __cplusplus
}
#endif

#endif /* MOAT_MOAT_H */
