"""ctypes bindings of libmoat's C ABI (include/moat/moat.h).

The library is found, in this order: $MOAT_LIBRARY (a path), the copy
installed beside this package (moat/_lib/libmoat.so.1), then the system's
linker path (libmoat.so.1). ctypes releases the GIL for every call, so
sandboxes used from several threads (or asyncio's executor) run at once.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

from .errors import error_for

ABI_VERSION = 1

c_char_p = ctypes.c_char_p
c_int = ctypes.c_int
c_size_t = ctypes.c_size_t
c_void_p = ctypes.c_void_p
c_int64 = ctypes.c_int64
c_uint16 = ctypes.c_uint16
c_uint32 = ctypes.c_uint32
c_uint64 = ctypes.c_uint64
POINTER = ctypes.POINTER

StrList = POINTER(c_char_p)
Err = POINTER(c_void_p)  # moat_error** (the error is opaque)

DATA_FN = ctypes.CFUNCTYPE(None, c_void_p, POINTER(ctypes.c_char), c_size_t)
STARTED_FN = ctypes.CFUNCTYPE(None, c_void_p, c_int)
SINK_FN = ctypes.CFUNCTYPE(c_int, c_void_p, POINTER(ctypes.c_char), c_size_t)
EVENT_FN = ctypes.CFUNCTYPE(None, c_void_p, c_char_p)
EVENT_CB = ctypes.CFUNCTYPE(c_int, c_void_p, c_char_p)  # nonzero: stop
LOG_FN = ctypes.CFUNCTYPE(None, c_void_p, c_int, POINTER(ctypes.c_char), c_size_t)


class PullProgress(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("layer", c_size_t),
        ("layers", c_size_t),
        ("digest", c_char_p),
        ("layer_done", c_uint64),
        ("layer_total", c_uint64),
        ("layer_complete", c_int),
        ("done", c_uint64),
        ("total", c_uint64),
        ("layers_done", c_size_t),
    ]


PROGRESS_FN = ctypes.CFUNCTYPE(None, c_void_p, POINTER(PullProgress))


class RuntimeOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("home", c_char_p),
        ("cache_dir", c_char_p),
        ("qemu", c_char_p),
        ("kernel", c_char_p),
        ("initramfs", c_char_p),
        ("shim", c_char_p),
        ("default_rootfs", c_char_p),
        ("log", LOG_FN),
        ("log_user_data", c_void_p),
    ]


class PullOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("platform", c_char_p),
        ("insecure_registry", c_int),
        ("parallel_downloads", c_int),
        ("on_progress", PROGRESS_FN),
        ("user_data", c_void_p),
    ]


class SandboxOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("image", c_char_p),
        ("pull", c_int),
        ("insecure_registry", c_int),
        ("platform", c_char_p),
        ("on_pull_progress", PROGRESS_FN),
        ("pull_user_data", c_void_p),
        ("name", c_char_p),
        ("labels", StrList),
        ("command", StrList),
        ("entrypoint", StrList),
        ("has_entrypoint", c_int),
        ("volumes", StrList),
        ("tmpfs", StrList),
        ("network_json", c_char_p),
        ("cpus", c_int),
        ("cpu_weight", c_uint32),
        ("memory_mib", c_int),
        ("disk_size_mib", c_uint64),
        ("accel", c_int),
        ("hostname", c_char_p),
        ("idle_timeout_ms", c_int64),
        ("max_duration_ms", c_int64),
        ("boot_timeout_ms", c_int64),
        ("stop_timeout_ms", c_int64),
        ("auto_remove", c_int),
        ("ephemeral", c_int),
        ("rootfs_dir", c_char_p),
        ("rootfs_image", c_char_p),
        ("writable_root", c_int),
        ("log_max_bytes", c_uint64),
        ("secrets", StrList),
        ("secret_values", StrList),
        ("stop_on_secret_violation", c_int),
        ("from_snapshot", c_char_p),
        ("cold", c_int),
        ("io_weight", c_uint32),
    ]


class CommitOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("changes", StrList),
        ("env", StrList),
        ("workdir", c_char_p),
        ("message", c_char_p),
    ]


class LogCallbacks(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("on_console", DATA_FN),
        ("on_exec_event", EVENT_FN),
        ("user_data", c_void_p),
    ]


class ExecOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("argv", StrList),
        ("env", StrList),
        ("cwd", c_char_p),
        ("user", c_char_p),
        ("tty", c_int),
        ("rows", c_uint16),
        ("cols", c_uint16),
        ("stdin_open", c_int),
        ("timeout_ms", c_int64),
    ]


class ExecCallbacks(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("on_stdout", DATA_FN),
        ("on_stderr", DATA_FN),
        ("on_started", STARTED_FN),
        ("user_data", c_void_p),
    ]


class ExitStatus(ctypes.Structure):
    _fields_ = [("code", c_int), ("signal", c_int), ("timed_out", c_int)]


OUTPUT_NONE, OUTPUT_STDOUT, OUTPUT_STDERR, OUTPUT_EXIT = 0, 1, 2, 3


class ExecOutput(ctypes.Structure):
    _fields_ = [
        ("kind", c_int),
        ("data", c_void_p),
        ("length", c_size_t),
        ("status", ExitStatus),
    ]


class WriteFileOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("mode", c_uint32),
        ("uid", c_int64),
        ("gid", c_int64),
        ("append", c_int),
        ("exclusive", c_int),
    ]


H = c_void_p  # moat_sandbox*, moat_exec*
OUT_STR = POINTER(c_void_p)  # char** (freed with moat_string_free)

_PROTOTYPES = {
    "moat_version": (c_char_p, []),
    "moat_abi_version": (c_int, []),
    "moat_error_code": (c_int, [c_void_p]),
    "moat_error_kind": (c_char_p, [c_void_p]),
    "moat_error_message": (c_char_p, [c_void_p]),
    "moat_error_free": (None, [c_void_p]),
    "moat_string_free": (None, [c_void_p]),
    "moat_configure_runtime": (c_int, [POINTER(RuntimeOptions), Err]),
    "moat_check_runtime": (c_int, [OUT_STR, Err]),
    "moat_image_pull": (c_int, [c_char_p, POINTER(PullOptions), OUT_STR, Err]),
    "moat_image_list": (c_int, [OUT_STR, Err]),
    "moat_image_inspect": (c_int, [c_char_p, OUT_STR, Err]),
    "moat_image_remove": (c_int, [c_char_p, Err]),
    "moat_image_tag": (c_int, [c_char_p, c_char_p, Err]),
    "moat_sandbox_create": (c_int, [POINTER(SandboxOptions), POINTER(H), Err]),
    "moat_sandbox_open": (c_int, [c_char_p, POINTER(H), Err]),
    "moat_sandbox_close": (None, [H]),
    "moat_sandbox_id": (c_char_p, [H]),
    "moat_sandbox_info": (c_int, [H, OUT_STR, Err]),
    "moat_sandbox_stop": (c_int, [H, c_int64, Err]),
    "moat_sandbox_stats": (c_int, [H, OUT_STR, Err]),
    "moat_sandbox_update_network": (c_int, [H, c_char_p, Err]),
    "moat_define_sandbox": (c_int, [POINTER(SandboxOptions), OUT_STR, Err]),
    "moat_start_sandbox": (c_int, [c_char_p, Err]),
    "moat_restart_sandbox": (c_int, [c_char_p, c_int64, Err]),
    "moat_stats_sandbox": (c_int, [c_char_p, OUT_STR, Err]),
    "moat_events_new": (c_int, [POINTER(H), Err]),
    "moat_events_cancel": (None, [H]),
    "moat_events_free": (None, [H]),
    "moat_watch_sandbox_events": (c_int, [c_uint64, c_int, H, EVENT_CB, c_void_p, Err]),
    "moat_image_check": (c_int, [StrList, OUT_STR, Err]),
    "moat_image_prune": (c_int, [OUT_STR, Err]),
    "moat_image_load": (c_int, [c_int, OUT_STR, Err]),
    "moat_image_save": (c_int, [StrList, c_char_p, c_int, Err]),
    "moat_image_mount": (c_int, [c_char_p, c_char_p, ctypes.c_uint, POINTER(H), Err]),
    "moat_mount_serve": (c_int, [H, Err]),
    "moat_mount_free": (None, [H]),
    "moat_image_unmount": (c_int, [c_char_p, c_int, Err]),
    "moat_registry_login": (c_int, [c_char_p, c_char_p, c_char_p, c_int, Err]),
    "moat_registry_logout": (c_int, [c_char_p, Err]),
    "moat_stop_sandbox": (c_int, [c_char_p, c_int64, Err]),
    "moat_pause_sandbox": (c_int, [c_char_p, Err]),
    "moat_pause_sandbox_to_disk": (c_int, [c_char_p, Err]),
    "moat_sandbox_pause": (c_int, [H, c_int, Err]),
    "moat_sandbox_resume": (c_int, [H, Err]),
    "moat_resume_sandbox": (c_int, [c_char_p, Err]),
    "moat_remove_sandbox": (c_int, [c_char_p, c_int, Err]),
    "moat_inspect_sandbox": (c_int, [c_char_p, OUT_STR, Err]),
    "moat_list_sandboxes": (c_int, [StrList, OUT_STR, Err]),
    "moat_sandbox_logs": (c_int, [c_char_p, POINTER(LogCallbacks), c_int, Err]),
    "moat_sandbox_exec": (c_int, [H, POINTER(ExecOptions), POINTER(ExecCallbacks), c_int, POINTER(ExitStatus), Err]),
    "moat_exec_start": (c_int, [H, POINTER(ExecOptions), POINTER(ExecCallbacks), POINTER(H), Err]),
    "moat_exec_free": (None, [H]),
    "moat_exec_pid": (c_int, [H]),
    "moat_exec_write_stdin": (c_int, [H, c_char_p, c_size_t, Err]),
    "moat_exec_close_stdin": (c_int, [H, Err]),
    "moat_exec_signal": (c_int, [H, c_int, Err]),
    "moat_exec_kill": (c_int, [H, Err]),
    "moat_exec_resize": (c_int, [H, c_uint16, c_uint16, Err]),
    "moat_exec_cancel": (None, [H]),
    "moat_exec_wait": (c_int, [H, c_int64, POINTER(c_int), POINTER(ExitStatus), Err]),
    "moat_exec_read": (c_int, [H, c_int64, POINTER(ExecOutput), Err]),
    "moat_sandbox_read_file": (c_int, [H, c_char_p, SINK_FN, c_void_p, Err]),
    "moat_sandbox_read_file_to_fd": (c_int, [H, c_char_p, c_int, Err]),
    "moat_sandbox_write_file": (c_int, [H, c_char_p, c_char_p, c_size_t, POINTER(WriteFileOptions), Err]),
    "moat_sandbox_write_file_from_fd": (c_int, [H, c_char_p, c_int, POINTER(WriteFileOptions), Err]),
    "moat_sandbox_stat": (c_int, [H, c_char_p, c_int, OUT_STR, Err]),
    "moat_sandbox_list_dir": (c_int, [H, c_char_p, OUT_STR, Err]),
    "moat_sandbox_mkdir": (c_int, [H, c_char_p, c_int, c_uint32, Err]),
    "moat_sandbox_remove": (c_int, [H, c_char_p, c_int, Err]),
    "moat_sandbox_rename": (c_int, [H, c_char_p, c_char_p, Err]),
    "moat_sandbox_chmod": (c_int, [H, c_char_p, c_uint32, Err]),
    "moat_sandbox_copy_in": (c_int, [H, c_char_p, c_char_p, c_int, Err]),
    "moat_sandbox_copy_out": (c_int, [H, c_char_p, c_char_p, c_int, Err]),
    "moat_sandbox_read_archive": (c_int, [H, c_char_p, SINK_FN, c_void_p, POINTER(c_uint64), Err]),
    "moat_sandbox_write_archive_from_fd": (c_int, [H, c_char_p, c_int, POINTER(c_uint64), Err]),
    "moat_volume_create": (c_int, [c_char_p, StrList, OUT_STR, Err]),
    "moat_volume_inspect": (c_int, [c_char_p, OUT_STR, Err]),
    "moat_volume_list": (c_int, [OUT_STR, Err]),
    "moat_volume_remove": (c_int, [c_char_p, c_int, Err]),
    "moat_snapshot_create": (c_int, [c_char_p, c_char_p, StrList, c_int64, OUT_STR, Err]),
    "moat_snapshot_inspect": (c_int, [c_char_p, OUT_STR, Err]),
    "moat_snapshot_list": (c_int, [OUT_STR, Err]),
    "moat_snapshot_remove": (c_int, [c_char_p, Err]),
    "moat_sandbox_fork": (c_int, [c_char_p, c_int, c_char_p, c_int, OUT_STR, Err]),
    "moat_sandbox_fork_warm": (c_int, [c_char_p, c_int, c_char_p, c_int, OUT_STR, Err]),
    "moat_sandbox_diff": (c_int, [c_char_p, OUT_STR, Err]),
    "moat_sandbox_export_to_fd": (c_int, [c_char_p, c_int, Err]),
    "moat_sandbox_commit": (c_int, [c_char_p, c_char_p, ctypes.POINTER(CommitOptions), OUT_STR, Err]),
}

_lib = None
_lock = threading.Lock()


def _candidates():
    env = os.environ.get("MOAT_LIBRARY")
    if env:
        yield env
        return
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_lib", "libmoat.so.%d" % ABI_VERSION)
    if os.path.exists(here):
        yield here
    found = ctypes.util.find_library("moat")
    if found:
        yield found
    yield "libmoat.so.%d" % ABI_VERSION


def lib():
    """The loaded library, its prototypes declared (loaded on first use)."""
    global _lib
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        errors = []
        for path in _candidates():
            try:
                handle = ctypes.CDLL(path)
                break
            except OSError as e:
                errors.append("%s: %s" % (path, e))
        else:
            raise ImportError("libmoat not found (set MOAT_LIBRARY to its path): " + "; ".join(errors))
        for name, (restype, argtypes) in _PROTOTYPES.items():
            fn = getattr(handle, name)
            fn.restype = restype
            fn.argtypes = argtypes
        if handle.moat_abi_version() != ABI_VERSION:
            raise ImportError("libmoat ABI %d, this SDK needs %d" % (handle.moat_abi_version(), ABI_VERSION))
        _lib = handle
        return _lib


def call(name, *args):
    """Calls a fallible function (its last argument the error pointer) and
    raises the matching MoatError when it fails."""
    err = c_void_p()
    rc = getattr(lib(), name)(*args, ctypes.byref(err))
    if rc != 0:
        raise take_error(err, rc)


def take_error(err, rc):
    l = lib()
    if not err.value:
        return error_for("libmoat call failed with code %d" % rc, rc if rc > 0 else 0, "unknown")
    try:
        message = l.moat_error_message(err).decode("utf-8", "replace")
        return error_for(message, l.moat_error_code(err), l.moat_error_kind(err).decode())
    finally:
        l.moat_error_free(err)


def call_string(name, *args):
    """Calls a function whose result is a char** before the error; returns
    the text (decoded)."""
    out = c_void_p()
    call(name, *args, ctypes.byref(out))
    return take_string(out)


def take_string(out):
    if not out.value:
        return ""
    try:
        return ctypes.string_at(out.value).decode("utf-8", "replace")
    finally:
        lib().moat_string_free(out)


def encode(s):
    """str or bytes (or None) to bytes for a char*."""
    if s is None:
        return None
    if isinstance(s, bytes):
        return s
    return os.fsencode(s) if isinstance(s, os.PathLike) else str(s).encode()


def str_list(items):
    """A NULL-terminated char*[] (kept alive by the returned object)."""
    if items is None:
        return None
    encoded = [encode(i) for i in items]
    arr = (c_char_p * (len(encoded) + 1))(*encoded, None)
    return ctypes.cast(arr, StrList), arr


def new(struct_type, **fields):
    s = struct_type()
    s.struct_size = ctypes.sizeof(struct_type)
    for k, v in fields.items():
        setattr(s, k, v)
    return s
