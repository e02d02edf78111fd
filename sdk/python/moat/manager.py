"""Sandboxes by id or name, images and volumes: the module-level functions.

    moat.define_sandbox(image="busybox", name="web")   # no boot
    moat.start_sandbox("web"); moat.stop_sandbox("web"); moat.remove_sandbox("web")
    moat.list_sandboxes(labels={"team": "a"})
    moat.pull_image("127.0.0.1:5000/app:1", insecure_registry=True)
"""
from __future__ import annotations

import ctypes
import json
import threading
from typing import Callable, Dict, List, Optional

from . import _native as n
from .errors import MoatError
from .sandbox import _Keep, _ms, _progress_callback, _sandbox_options


def version() -> str:
    """libmoat's version."""
    return n.lib().moat_version().decode()


def configure(*, home: Optional[str] = None, cache_dir: Optional[str] = None, qemu: Optional[str] = None,
              kernel: Optional[str] = None, initramfs: Optional[str] = None, shim: Optional[str] = None,
              default_rootfs: Optional[str] = None) -> None:
    """Where state lives and what boots a VM (absolute paths); call once,
    before anything else. Unset: the MOAT_* variables, else the defaults."""
    keep = _Keep()
    o = n.new(n.RuntimeOptions)
    for key, value in dict(home=home, cache_dir=cache_dir, qemu=qemu, kernel=kernel, initramfs=initramfs,
                           shim=shim, default_rootfs=default_rootfs).items():
        setattr(o, key, keep.text(value))
    n.call("moat_configure_runtime", ctypes.byref(o))


def doctor() -> dict:
    """`moat doctor`: {"ready": bool, "accel": ..., "checks": [...]}."""
    return json.loads(n.call_string("moat_check_runtime"))


def define_sandbox(image: Optional[str] = None, **options) -> dict:
    """Defines a sandbox without booting it (Sandbox.create's options);
    returns its record."""
    keep = _Keep()
    o = _sandbox_options(keep, dict(options, image=image))
    return json.loads(n.call_string("moat_define_sandbox", ctypes.byref(o)))


def start_sandbox(id_or_name: str) -> None:
    n.call("moat_start_sandbox", n.encode(id_or_name))


def stop_sandbox(id_or_name: str, timeout: float = 10) -> None:
    n.call("moat_stop_sandbox", n.encode(id_or_name), _ms(timeout))


def pause_sandbox(id_or_name: str, to_disk: bool = False) -> None:
    """Stops the sandbox's vCPUs where they are, memory kept; with to_disk,
    saves the whole VM to disk and ends it (resume restores it)."""
    n.call("moat_pause_sandbox_to_disk" if to_disk else "moat_pause_sandbox", n.encode(id_or_name))


def resume_sandbox(id_or_name: str) -> None:
    """Runs a paused sandbox's vCPUs again, or restores one paused to disk;
    its clock is set from the host's."""
    n.call("moat_resume_sandbox", n.encode(id_or_name))


def restart_sandbox(id_or_name: str, timeout: float = 10) -> None:
    n.call("moat_restart_sandbox", n.encode(id_or_name), _ms(timeout))


def sandbox_stats(id_or_name: str) -> dict:
    return json.loads(n.call_string("moat_stats_sandbox", n.encode(id_or_name)))


def watch_events(on_event: Callable[[dict], Optional[bool]], after: int = 0, follow: bool = False,
                 stop: Optional["threading.Event"] = None) -> None:
    """Calls on_event with each sandbox event (oldest first, after sequence
    number ``after``); with ``follow``, then new ones until on_event returns
    False or ``stop`` (a threading.Event) is set."""
    token = ctypes.c_void_p()
    n.call("moat_events_new", ctypes.byref(token))
    failure = []

    def cb(_user, text):
        try:
            return 1 if on_event(json.loads(text.decode("utf-8", "replace"))) is False else 0
        except BaseException as e:  # raised again below
            failure.append(e)
            return 1

    watcher = None
    if stop is not None:
        def watch_stop():
            stop.wait()
            n.lib().moat_events_cancel(token)
        watcher = threading.Thread(target=watch_stop, daemon=True)
        watcher.start()
    try:
        n.call("moat_watch_sandbox_events", after, int(follow), token, n.EVENT_CB(cb), None)
    finally:
        if stop is not None:
            stop.set()
            watcher.join()
        n.lib().moat_events_free(token)
    if failure:
        raise failure[0]


def events(after: int = 0) -> List[dict]:
    """The sandbox events kept, oldest first."""
    out: List[dict] = []
    watch_events(out.append, after=after)
    return out


def remove_sandbox(id_or_name: str, force: bool = False) -> None:
    n.call("moat_remove_sandbox", n.encode(id_or_name), int(force))


def inspect_sandbox(id_or_name: str) -> dict:
    return json.loads(n.call_string("moat_inspect_sandbox", n.encode(id_or_name)))


def list_sandboxes(labels: Optional[Dict[str, str]] = None) -> List[dict]:
    keep = _Keep()
    wanted = keep.strs(["%s=%s" % kv for kv in labels.items()]) if labels else None
    return json.loads(n.call_string("moat_list_sandboxes", wanted))


def sandbox_logs(id_or_name: str, follow: bool = False, on_console: Optional[Callable[[bytes], None]] = None,
                 on_exec_event: Optional[Callable[[dict], None]] = None) -> None:
    """The console output and the exec history (`moat logs`)."""
    def console(_u, data, length):
        if on_console:
            on_console(ctypes.string_at(data, length))

    def event(_u, text):
        if on_exec_event:
            on_exec_event(json.loads(text.decode("utf-8", "replace")))

    cb = n.new(n.LogCallbacks, on_console=n.DATA_FN(console), on_exec_event=n.EVENT_FN(event))
    n.call("moat_sandbox_logs", n.encode(id_or_name), ctypes.byref(cb), int(follow))


def pull_image(ref: str, *, platform: Optional[str] = None, insecure_registry: bool = False,
               parallel_downloads: int = 0, on_progress: Optional[Callable[[dict], None]] = None) -> dict:
    keep = _Keep()
    o = n.new(n.PullOptions, platform=keep.text(platform), insecure_registry=int(insecure_registry),
              parallel_downloads=parallel_downloads)
    if on_progress is not None:
        o.on_progress = _progress_callback(keep, on_progress)
    return json.loads(n.call_string("moat_image_pull", n.encode(ref), ctypes.byref(o)))


def list_images() -> List[dict]:
    return json.loads(n.call_string("moat_image_list"))


def inspect_image(image: str) -> dict:
    return json.loads(n.call_string("moat_image_inspect", n.encode(image)))


def remove_image(ref: str) -> None:
    n.call("moat_image_remove", n.encode(ref))


def tag_image(source: str, target: str) -> None:
    n.call("moat_image_tag", n.encode(source), n.encode(target))


def check_images(images: Optional[List[str]] = None) -> List[dict]:
    keep = _Keep()
    return json.loads(n.call_string("moat_image_check", keep.strs(images or [])))


def prune_images() -> dict:
    return json.loads(n.call_string("moat_image_prune"))


def load_images(path: str) -> List[dict]:
    """Loads a docker-archive or OCI layout tar."""
    with open(path, "rb") as f:
        return json.loads(n.call_string("moat_image_load", f.fileno()))


def save_images(images: List[str], path: str, format: str = "oci") -> None:
    keep = _Keep()
    with open(path, "wb") as f:
        n.call("moat_image_save", keep.strs(images), n.encode(format), f.fileno())


class ImageMount:
    """An image served read-only on a host directory (FUSE). serve() answers
    the kernel until the filesystem is unmounted; serve_in_background() does
    so on a thread. Use as a context manager to unmount on exit."""

    def __init__(self, handle, directory: str):
        self._h = handle
        self.dir = directory
        self._thread: Optional[threading.Thread] = None
        self._error: Optional[BaseException] = None

    def serve(self) -> None:
        n.call("moat_mount_serve", self._h)

    def serve_in_background(self) -> "ImageMount":
        def run():
            try:
                self.serve()
            except BaseException as e:  # seen by close()
                self._error = e
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def close(self, lazy: bool = False) -> None:
        """Unmounts (if still mounted), waits for the server, frees the handle."""
        if self._h is None:
            return
        if self._thread is not None:
            try:
                unmount_image(self.dir, lazy=lazy)
            except MoatError:
                pass  # already unmounted
            self._thread.join()
        h, self._h = self._h, None
        n.lib().moat_mount_free(h)
        if self._error is not None:
            raise self._error

    def __enter__(self) -> "ImageMount":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def mount_image(image: str, directory: str, threads: int = 0) -> ImageMount:
    """Mounts an image (reference, digest, id or EROFS file) on an existing
    directory; call serve() or serve_in_background() on the result."""
    h = ctypes.c_void_p()
    n.call("moat_image_mount", n.encode(image), n.encode(directory), threads, ctypes.byref(h))
    return ImageMount(h, directory)


def unmount_image(directory: str, lazy: bool = False) -> None:
    n.call("moat_image_unmount", n.encode(directory), int(lazy))


def registry_login(registry: str, username: str, password: str, insecure: bool = False) -> None:
    n.call("moat_registry_login", n.encode(registry), n.encode(username), n.encode(password), int(insecure))


def registry_logout(registry: str) -> None:
    n.call("moat_registry_logout", n.encode(registry))


def create_volume(name: str, labels: Optional[Dict[str, str]] = None) -> dict:
    keep = _Keep()
    wanted = keep.strs(["%s=%s" % kv for kv in labels.items()]) if labels else None
    return json.loads(n.call_string("moat_volume_create", n.encode(name), wanted))


def inspect_volume(name: str) -> dict:
    return json.loads(n.call_string("moat_volume_inspect", n.encode(name)))


def list_volumes() -> List[dict]:
    return json.loads(n.call_string("moat_volume_list"))


def remove_volume(name: str, force: bool = False) -> None:
    n.call("moat_volume_remove", n.encode(name), int(force))


def create_snapshot(sandbox: str, name: str, labels: Optional[Dict[str, str]] = None,
                    freeze_timeout: Optional[float] = None) -> dict:
    """A disk snapshot of a sandbox (docs/snapshots.md): its record."""
    keep = _Keep()
    wanted = keep.strs(["%s=%s" % kv for kv in labels.items()]) if labels else None
    return json.loads(n.call_string("moat_snapshot_create", n.encode(sandbox), n.encode(name), wanted,
                                    _ms(freeze_timeout)))


def inspect_snapshot(id_or_name: str) -> dict:
    return json.loads(n.call_string("moat_snapshot_inspect", n.encode(id_or_name)))


def list_snapshots() -> List[dict]:
    return json.loads(n.call_string("moat_snapshot_list"))


def remove_snapshot(id_or_name: str) -> None:
    """BusyError while sandboxes made from it exist."""
    n.call("moat_snapshot_remove", n.encode(id_or_name))


def fork_sandbox(sandbox: str, count: int = 1, name_prefix: Optional[str] = None, start: bool = True,
                 memory: bool = False) -> List[dict]:
    """`count` new sandboxes from a consistent copy of `sandbox`'s disk: their records.
    memory=True: a warm fork of a running sandbox; the children go on from this
    moment (its processes and memory) instead of booting."""
    fn = "moat_sandbox_fork_warm" if memory else "moat_sandbox_fork"
    return json.loads(n.call_string(fn, n.encode(sandbox), int(count),
                                    n.encode(name_prefix) if name_prefix else None, 0 if start else 1))


def diff_sandbox(sandbox: str) -> List[dict]:
    """What the sandbox changed in its root: [{"kind": "A"|"C"|"D", "path"}]."""
    return json.loads(n.call_string("moat_sandbox_diff", n.encode(sandbox)))


def export_sandbox(sandbox: str, host_file) -> None:
    """Writes the sandbox's root as a tar into an open binary host file."""
    host_file.flush()
    n.call("moat_sandbox_export_to_fd", n.encode(sandbox), host_file.fileno())


def commit_sandbox(sandbox: str, ref: str, changes: Optional[List[str]] = None, env: Optional[Dict[str, str]] = None,
                   workdir: Optional[str] = None, message: Optional[str] = None) -> dict:
    """The sandbox's changes as a new image named ref (docs/snapshots.md, "Commit")."""
    keep = _Keep()
    o = n.new(n.CommitOptions)
    o.changes = keep.strs(changes)
    o.env = keep.strs(["%s=%s" % kv for kv in env.items()]) if env else None
    o.workdir = keep.text(workdir)
    o.message = keep.text(message)
    return json.loads(n.call_string("moat_sandbox_commit", n.encode(sandbox), n.encode(ref), ctypes.byref(o)))
