"""moat: run untrusted code in microVMs started from OCI images.

    import moat
    with moat.Sandbox.create(image="python:3.12", memory_mib=512) as sb:
        r = sb.exec(["python3", "-c", "print(1)"])
        print(r.exit_code, r.stdout)

The SDK is a thin layer over libmoat's C ABI (no daemon): see
sdk/python/README.md.
"""
from .aio import AsyncFiles, AsyncProcess, AsyncSandbox
from .errors import (AlreadyExistsError, BusyError, CommandTimedOut, InterruptedError, InvalidArgumentError,
                     IoError, MoatError, NotFoundError, NotRunningError, PermissionDeniedError, ProtocolError,
                     ResourceExhaustedError, TimedOutError, UnsupportedError)
from .manager import (ImageMount, check_images, configure, create_snapshot, create_volume, fork_sandbox,
                      inspect_snapshot, list_snapshots, remove_snapshot, diff_sandbox, export_sandbox,
                      commit_sandbox, define_sandbox, doctor, events, inspect_image,
                      inspect_sandbox, inspect_volume, list_images, list_sandboxes, list_volumes, load_images,
                      mount_image, prune_images, pull_image, registry_login, registry_logout, remove_image, remove_sandbox,
                      remove_volume, restart_sandbox, pause_sandbox, resume_sandbox, sandbox_logs, sandbox_stats, save_images, start_sandbox,
                      stop_sandbox, tag_image, unmount_image, version, watch_events)
from .sandbox import CommandFailed, ExecResult, Files, Process, Sandbox

__all__ = [
    "AsyncFiles", "AsyncProcess", "AsyncSandbox", "AlreadyExistsError", "BusyError", "CommandFailed",
    "CommandTimedOut", "ExecResult", "Files", "InterruptedError", "InvalidArgumentError", "IoError", "MoatError",
    "NotFoundError", "NotRunningError", "PermissionDeniedError", "Process", "ProtocolError",
    "ResourceExhaustedError", "Sandbox", "TimedOutError", "UnsupportedError", "configure", "create_volume",
    "define_sandbox", "doctor", "inspect_image", "inspect_sandbox", "inspect_volume", "list_images",
    "list_sandboxes", "list_volumes", "pull_image", "remove_image", "remove_sandbox", "remove_volume",
    "sandbox_logs", "start_sandbox", "stop_sandbox", "tag_image", "version", "check_images", "events",
    "load_images", "prune_images", "registry_login", "registry_logout", "restart_sandbox", "sandbox_stats",
    "save_images", "watch_events", "ImageMount", "mount_image", "unmount_image", "create_snapshot",
    "inspect_snapshot", "list_snapshots", "remove_snapshot", "fork_sandbox", "diff_sandbox", "export_sandbox",
    "commit_sandbox", "pause_sandbox", "resume_sandbox",
]
