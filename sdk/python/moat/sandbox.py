"""Sandboxes: create one, run commands in it, move files, stop it.

    with moat.Sandbox.create(image="python:3.12", memory_mib=512) as sb:
        r = sb.exec(["python3", "-c", "print(1)"])     # r.exit_code, r.stdout
        p = sb.spawn(["sh", "-c", "..."], on_stdout=print)
        sb.files.write("/work/a.py", b"...")

A Sandbox made by ``create`` is ephemeral unless ``keep=True``: leaving the
``with`` block, ``close()``, or this process dying stops and removes it.
"""
from __future__ import annotations

import ctypes
import json
import os
import threading
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from . import _native as n
from .errors import CommandTimedOut, InvalidArgumentError, MoatError, NotRunningError

Bytes = Union[bytes, str]
OutputCallback = Callable[[bytes], None]


@dataclass
class ExecResult:
    """How a command ended and what it wrote."""

    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""
    signal: int = 0
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.signal == 0

    def check(self) -> "ExecResult":
        """Raises CommandFailed unless the command exited 0."""
        if not self.ok:
            raise CommandFailed(self)
        return self


class CommandFailed(Exception):
    """ExecResult.check() on a command that did not exit 0."""

    def __init__(self, result: ExecResult):
        what = "signal %d" % result.signal if result.signal else "exit code %d" % result.exit_code
        super().__init__("command failed with %s: %s" % (what, result.stderr[-400:].decode("utf-8", "replace")))
        self.result = result


def _status(st: n.ExitStatus) -> Tuple[int, int, bool]:
    code = 128 + st.signal if st.signal else st.code
    return code, st.signal, bool(st.timed_out)


class _Keep:
    """Holds the ctypes objects a call's structures point into."""

    def __init__(self):
        self.items = []

    def strs(self, items) -> Optional[ctypes.Array]:
        if items is None:
            return None
        if isinstance(items, (str, bytes)):
            raise InvalidArgumentError("expected a list of strings, not one string: %r" % (items,), 22, "invalid_argument")
        ptr, arr = n.str_list(list(items))
        self.items.append(arr)
        return ptr

    def text(self, s) -> Optional[bytes]:
        b = n.encode(s)
        if b is not None:
            self.items.append(b)
        return b


def _ms(seconds: Optional[float]) -> int:
    if seconds is None:
        return 0
    if seconds < 0:
        raise InvalidArgumentError("a time must not be negative: %r" % (seconds,), 22, "invalid_argument")
    return int(round(seconds * 1000))


def _exec_options(keep: _Keep, argv, env, cwd, user, tty, rows, cols, stdin, timeout) -> n.ExecOptions:
    if isinstance(argv, (str, bytes)):
        argv = ["sh", "-c", argv]
    env_list = None
    if env is not None:
        env_list = ["%s=%s" % (k, v) for k, v in env.items()] if isinstance(env, dict) else list(env)
    return n.new(
        n.ExecOptions,
        argv=keep.strs(argv),
        env=keep.strs(env_list),
        cwd=keep.text(cwd),
        user=keep.text(user),
        tty=1 if tty else 0,
        rows=rows or 0,
        cols=cols or 0,
        stdin_open=1 if stdin else 0,
        timeout_ms=_ms(timeout),
    )


def _sandbox_options(keep: _Keep, kw) -> n.SandboxOptions:
    o = n.new(n.SandboxOptions)
    pull = kw.pop("pull", "missing")
    o.pull = {"missing": 0, "always": 1, "never": 2}.get(pull, -1)
    if o.pull < 0:
        raise InvalidArgumentError("pull: expected missing, always or never, not %r" % (pull,), 22, "invalid_argument")
    accel = kw.pop("accel", "auto")
    o.accel = {"auto": 0, "kvm": 1, "tcg": 2}.get(accel, -1)
    if o.accel < 0:
        raise InvalidArgumentError("accel: expected auto, kvm or tcg, not %r" % (accel,), 22, "invalid_argument")
    for key in ("image", "platform", "name", "hostname", "rootfs_dir", "rootfs_image", "from_snapshot"):
        setattr(o, key, keep.text(kw.pop(key, None)))
    labels = kw.pop("labels", None)
    if labels is not None:
        o.labels = keep.strs(["%s=%s" % (k, v) for k, v in labels.items()])
    o.command = keep.strs(kw.pop("command", None))
    entrypoint = kw.pop("entrypoint", None)
    if entrypoint is not None:
        o.entrypoint = keep.strs(entrypoint)
        o.has_entrypoint = 1
    volumes = kw.pop("volumes", None)
    if volumes is not None:
        if isinstance(volumes, dict):  # {source: guest_path}
            volumes = ["%s:%s" % (k, v) for k, v in volumes.items()]
        o.volumes = keep.strs(volumes)
    o.tmpfs = keep.strs(kw.pop("tmpfs", None))
    network = kw.pop("network", None)
    if network is not None:
        o.network_json = keep.text(network if isinstance(network, (str, bytes)) else json.dumps(network))
    for key in ("cpus", "cpu_weight", "io_weight", "memory_mib", "disk_size_mib", "log_max_bytes"):
        value = kw.pop(key, None)
        if value is not None:
            if not isinstance(value, int) or value < 0:
                raise InvalidArgumentError("%s: expected a whole number >= 0, not %r" % (key, value), 22, "invalid_argument")
            setattr(o, key, value)
    for key in ("idle_timeout", "max_duration", "boot_timeout", "stop_timeout"):
        setattr(o, key + "_ms", _ms(kw.pop(key, None)))
    secrets = kw.pop("secrets", None)
    if secrets is not None:
        if not isinstance(secrets, dict):
            raise InvalidArgumentError("secrets: expected {\"NAME@HOST[,HOST][:body,query,http]\": value}",
                                       22, "invalid_argument")
        o.secrets = keep.strs(list(secrets.keys()))
        o.secret_values = keep.strs(list(secrets.values()))
    o.stop_on_secret_violation = 1 if kw.pop("stop_on_secret_violation", False) else 0
    o.insecure_registry = 1 if kw.pop("insecure_registry", False) else 0
    o.writable_root = 1 if kw.pop("writable_root", False) else 0
    o.auto_remove = 1 if kw.pop("auto_remove", False) else 0
    o.ephemeral = 1 if kw.pop("ephemeral", False) else 0
    o.cold = 1 if kw.pop("cold", False) else 0
    progress = kw.pop("on_pull_progress", None)
    if progress is not None:
        o.on_pull_progress = _progress_callback(keep, progress)
    if kw:
        raise InvalidArgumentError("unknown sandbox option(s): %s" % ", ".join(sorted(kw)), 22, "invalid_argument")
    return o


def _progress_callback(keep: _Keep, fn):
    def cb(_user, p):
        v = p.contents
        try:
            fn({"layer": v.layer, "layers": v.layers, "digest": (v.digest or b"").decode(),
                "layer_done": v.layer_done, "layer_total": v.layer_total,
                "layer_complete": bool(v.layer_complete), "done": v.done, "total": v.total,
                "layers_done": v.layers_done})
        except Exception:  # a progress display must not fail the pull
            pass

    c = n.PROGRESS_FN(cb)
    keep.items.append(c)
    return c


class Process:
    """A command started with Sandbox.spawn: running in the background, on a
    connection of its own.

    With ``on_stdout``/``on_stderr`` its output goes to them while
    ``wait()`` runs; without, read it with ``output()`` (the guest sends
    more only as it is read, so an unread command is held back, and memory
    stays bounded). An exception raised by a callback kills the command and
    is raised again by ``wait()``. Closing the handle, or dropping the last
    reference to it, kills a command that still runs.
    """

    def __init__(self, handle, callbacks, keep):
        self._h = handle
        self._callbacks = callbacks
        self._keep = keep
        self._error: Optional[BaseException] = None
        self._result: Optional[ExecResult] = None
        self._lock = threading.Lock()
        # Calls running on the handle (from any thread): close() waits for
        # them before it frees it.
        self._busy = 0
        self._idle = threading.Condition(self._lock)

    def _call(self, name, *args):
        with self._lock:
            if self._h is None:
                raise NotRunningError("the process handle is closed", 107, "not_running")
            h = self._h
            self._busy += 1
        try:
            n.call(name, h, *args)
        finally:
            with self._lock:
                self._busy -= 1
                self._idle.notify_all()

    @property
    def pid(self) -> int:
        """The command's pid in the guest (0 until it started)."""
        return n.lib().moat_exec_pid(self._handle())

    def _handle(self):
        if self._h is None:
            raise NotRunningError("the process handle is closed", 107, "not_running")
        return self._h

    def write_stdin(self, data: Bytes) -> None:
        """Sends bytes to the command's stdin (spawn(stdin=True)); blocks
        while the command has not read what was sent before."""
        b = n.encode(data)
        self._call("moat_exec_write_stdin", b, len(b))

    def close_stdin(self) -> None:
        self._call("moat_exec_close_stdin")

    def signal(self, sig: int) -> None:
        self._call("moat_exec_signal", int(sig))

    def kill(self) -> None:
        self._call("moat_exec_kill")

    def resize(self, rows: int, cols: int) -> None:
        """The terminal's new size (spawn(tty=True))."""
        self._call("moat_exec_resize", rows, cols)

    def wait(self, timeout: Optional[float] = None) -> Optional[ExecResult]:
        """Runs the callbacks until the command ends and returns how it
        ended; None when ``timeout`` seconds passed first."""
        if self._result is not None:
            return self._result
        ended = ctypes.c_int(0)
        st = n.ExitStatus()
        limit = -1 if timeout is None else _ms(timeout)
        try:
            self._call("moat_exec_wait", limit, ctypes.byref(ended), ctypes.byref(st))
        except Exception:
            if self._error is not None:
                raise self._error
            raise
        if self._error is not None:
            raise self._error
        if not ended.value:
            return None
        code, sig, timed_out = _status(st)
        self._result = ExecResult(code, signal=sig, timed_out=timed_out)
        return self._result

    def output(self, timeout: Optional[float] = None) -> Iterator[Tuple[str, bytes]]:
        """Yields ("stdout" | "stderr", bytes) as the command writes, then
        returns when it ends (its result then in ``result``). With
        ``timeout``, TimedOutError if no output came for that long."""
        limit = -1 if timeout is None else _ms(timeout)
        while self._result is None:
            out = n.ExecOutput()
            self._call("moat_exec_read", limit, ctypes.byref(out))
            if out.kind == n.OUTPUT_NONE:
                from .errors import TimedOutError
                raise TimedOutError("no output for %s s" % timeout, 110, "timed_out")
            if out.kind == n.OUTPUT_EXIT:
                code, sig, timed_out = _status(out.status)
                self._result = ExecResult(code, signal=sig, timed_out=timed_out)
                return
            try:
                data = ctypes.string_at(out.data, out.length)
            finally:
                n.lib().moat_string_free(out.data)
            yield ("stdout" if out.kind == n.OUTPUT_STDOUT else "stderr", data)

    @property
    def result(self) -> Optional[ExecResult]:
        return self._result

    def close(self) -> None:
        """Kills the command if it still runs, waits for calls other threads
        have running on it (they fail with InterruptedError), and frees the
        handle."""
        with self._lock:
            h, self._h = self._h, None
            if h is None:
                return
            if self._result is None:
                n.lib().moat_exec_cancel(h)
            while self._busy:
                self._idle.wait()
        n.lib().moat_exec_free(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class Files:
    """Files in the guest (``sb.files``). Paths are absolute guest paths;
    errors carry the guest's errno (NotFoundError for ENOENT, ...)."""

    def __init__(self, sandbox: "Sandbox"):
        self._sb = sandbox

    def read(self, path: str) -> bytes:
        chunks: List[bytes] = []

        def sink(_user, data, length):
            chunks.append(ctypes.string_at(data, length))
            return 0

        cb = n.SINK_FN(sink)
        n.call("moat_sandbox_read_file", self._sb._handle(), n.encode(path), cb, None)
        return b"".join(chunks)

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return self.read(path).decode(encoding)

    def write(self, path: str, data: Bytes, mode: Optional[int] = None, append: bool = False,
              exclusive: bool = False, uid: Optional[int] = None, gid: Optional[int] = None) -> None:
        b = n.encode(data)
        o = n.new(n.WriteFileOptions, mode=mode or 0, uid=-1 if uid is None else uid,
                  gid=-1 if gid is None else gid, append=int(append), exclusive=int(exclusive))
        n.call("moat_sandbox_write_file", self._sb._handle(), n.encode(path), b, len(b), ctypes.byref(o))

    def download(self, path: str, host_file) -> None:
        """Streams a guest file into an open binary host file (flat memory)."""
        host_file.flush()
        n.call("moat_sandbox_read_file_to_fd", self._sb._handle(), n.encode(path), host_file.fileno())

    def upload(self, host_file, path: str, mode: Optional[int] = None) -> None:
        """Streams an open binary host file (from its position) into the guest."""
        o = n.new(n.WriteFileOptions, mode=mode or 0, uid=-1, gid=-1)
        n.call("moat_sandbox_write_file_from_fd", self._sb._handle(), n.encode(path), host_file.fileno(), ctypes.byref(o))

    def stat(self, path: str, follow_symlinks: bool = False) -> dict:
        """{"type", "mode", "uid", "gid", "size", "nlink", "mtime_ns"[, "target"]}"""
        return json.loads(n.call_string("moat_sandbox_stat", self._sb._handle(), n.encode(path), int(follow_symlinks)))

    def exists(self, path: str) -> bool:
        from .errors import NotFoundError
        try:
            self.stat(path)
            return True
        except NotFoundError:
            return False

    def list(self, path: str) -> List[dict]:
        """The entries of a directory: stat()'s dicts, each with its "name"."""
        return json.loads(n.call_string("moat_sandbox_list_dir", self._sb._handle(), n.encode(path)))

    def mkdir(self, path: str, parents: bool = False, mode: int = 0o755) -> None:
        n.call("moat_sandbox_mkdir", self._sb._handle(), n.encode(path), int(parents), mode)

    def remove(self, path: str, recursive: bool = False) -> None:
        n.call("moat_sandbox_remove", self._sb._handle(), n.encode(path), int(recursive))

    def rename(self, src: str, dst: str) -> None:
        n.call("moat_sandbox_rename", self._sb._handle(), n.encode(src), n.encode(dst))

    def chmod(self, path: str, mode: int) -> None:
        n.call("moat_sandbox_chmod", self._sb._handle(), n.encode(path), mode)

    def copy_in(self, host_path: str, guest_path: str, preserve_owner: bool = False) -> None:
        """`docker cp` semantics: files and directory trees."""
        n.call("moat_sandbox_copy_in", self._sb._handle(), n.encode(host_path), n.encode(guest_path), int(preserve_owner))

    def copy_out(self, guest_path: str, host_path: str, preserve_owner: bool = False) -> None:
        n.call("moat_sandbox_copy_out", self._sb._handle(), n.encode(guest_path), n.encode(host_path), int(preserve_owner))

    def read_archive(self, path: str, host_file=None) -> Optional[bytes]:
        """A guest file or tree as a tar (its top-level entry the path's own
        name): returned as bytes, or streamed into an open binary host file."""
        chunks: List[bytes] = []

        def sink(_user, data, length):
            if host_file is None:
                chunks.append(ctypes.string_at(data, length))
            else:
                host_file.write(ctypes.string_at(data, length))
            return 0

        cb = n.SINK_FN(sink)
        n.call("moat_sandbox_read_archive", self._sb._handle(), n.encode(path), cb, None, None)
        return None if host_file is not None else b"".join(chunks)

    def write_archive(self, path: str, host_file) -> int:
        """Extracts a tar, read from an open binary host file (from its
        position), into the existing guest directory `path`; returns the
        number of entries."""
        entries = ctypes.c_uint64(0)
        n.call("moat_sandbox_write_archive_from_fd", self._sb._handle(), n.encode(path), host_file.fileno(),
               ctypes.byref(entries))
        return entries.value


class Sandbox:
    """A running microVM sandbox. Use one handle from one thread at a time;
    spawn() gives commands that run at once."""

    def __init__(self, handle, owned: bool = False):
        self._h = handle
        self._owned = owned
        self._id = n.lib().moat_sandbox_id(handle).decode()
        self._lock = threading.Lock()
        self.files = Files(self)

    @classmethod
    def create(cls, image: Optional[str] = None, *, keep: bool = False, **options) -> "Sandbox":
        """Boots a sandbox and returns once it runs commands.

        Options (all optional): name, labels (dict), command, entrypoint,
        cpus, cpu_weight, io_weight, memory_mib,
        disk_size_mib, volumes (["SRC:/guest[:ro]"] or {src: guest}), tmpfs
        (["/guest[:size]"]), network (dict, docs/network.md), idle_timeout,
        max_duration, boot_timeout, stop_timeout (seconds), hostname, pull
        ("missing" | "always" | "never"), insecure_registry, platform,
        accel ("auto" | "kvm" | "tcg"), rootfs_dir, rootfs_image,
        on_pull_progress (called with a dict), secrets ({"NAME@host": value}:
        the guest sees a placeholder, docs/tls.md), stop_on_secret_violation,
        from_snapshot (a disk snapshot's name: its root and files,
        docs/snapshots.md; no image then), cold (boot afresh rather than
        restore the warm-start template, docs/sandboxes.md).

        Unless ``keep``, the sandbox is ephemeral and removed when it stops:
        close() (or the end of a ``with`` block, or this process exiting)
        ends it.
        """
        if not keep:
            options.setdefault("ephemeral", True)
            options.setdefault("auto_remove", True)
        keep_alive = _Keep()
        o = _sandbox_options(keep_alive, dict(options, image=image))
        h = ctypes.c_void_p()
        n.call("moat_sandbox_create", ctypes.byref(o), ctypes.byref(h))
        return cls(h, owned=bool(o.ephemeral))

    @classmethod
    def open(cls, id_or_name: str) -> "Sandbox":
        """Attaches to a running sandbox."""
        h = ctypes.c_void_p()
        n.call("moat_sandbox_open", n.encode(id_or_name), ctypes.byref(h))
        return cls(h)

    @property
    def id(self) -> str:
        return self._id

    def _handle(self):
        if self._h is None:
            raise NotRunningError("sandbox %s: the handle is closed" % self._id, 107, "not_running")
        return self._h

    def info(self) -> dict:
        """The record as `moat inspect` shows it."""
        return json.loads(n.call_string("moat_sandbox_info", self._handle()))

    def stats(self) -> dict:
        return json.loads(n.call_string("moat_sandbox_stats", self._handle()))

    def snapshot(self, name: str, labels: Optional[Dict[str, str]] = None,
                 freeze_timeout: Optional[float] = None) -> dict:
        """A disk snapshot of this sandbox (its disk frozen for the copy while
        it runs); new sandboxes start from it with from_snapshot=name."""
        from .manager import create_snapshot
        return create_snapshot(self._id, name, labels=labels, freeze_timeout=freeze_timeout)

    def diff(self) -> List[dict]:
        """What this sandbox changed in its root: [{"kind": "A"|"C"|"D", "path"}]."""
        from .manager import diff_sandbox
        return diff_sandbox(self._id)

    def export(self, host_file) -> None:
        """Writes this sandbox's root as a tar into an open binary host file."""
        from .manager import export_sandbox
        export_sandbox(self._id, host_file)

    def commit(self, ref: str, **options) -> dict:
        """This sandbox's changes as a new image named ref (changes=, env=,
        workdir=, message=)."""
        from .manager import commit_sandbox
        return commit_sandbox(self._id, ref, **options)

    def fork(self, count: int = 1, name_prefix: Optional[str] = None, start: bool = True,
             memory: bool = False) -> List[dict]:
        """`count` new sandboxes from a consistent copy of this one's disk, with
        its settings: their records (open them with Sandbox.open). memory=True:
        a warm fork; the children go on from this moment instead of booting."""
        from .manager import fork_sandbox
        return fork_sandbox(self._id, count=count, name_prefix=name_prefix, start=start, memory=memory)

    def update_network(self, rules: Sequence[dict], mode: Optional[str] = None) -> None:
        """Replaces the rule list (and the mode if given):
        rules=[{"allow": True, "rule": "db.test:5432"}]."""
        policy = {"rules": list(rules)}
        if mode is not None:
            policy["mode"] = mode
        n.call("moat_sandbox_update_network", self._handle(), json.dumps(policy).encode())

    def exec(self, argv: Union[Sequence[str], str], *, env=None, cwd: Optional[str] = None,
             user: Optional[str] = None, stdin: Optional[Bytes] = None, timeout: Optional[float] = None,
             tty: bool = False, on_stdout: Optional[OutputCallback] = None,
             on_stderr: Optional[OutputCallback] = None) -> ExecResult:
        """Runs a command to its end and returns its ExecResult (stdout and
        stderr collected, unless callbacks take them). A string is run with
        ``sh -c``. With ``timeout`` (seconds) the command is killed when it
        passes and CommandTimedOut is raised, holding what it wrote."""
        keep = _Keep()
        o = _exec_options(keep, argv, env, cwd, user, tty, 0, 0, stdin is not None, timeout)
        out: List[bytes] = []
        err: List[bytes] = []
        failure: List[BaseException] = []

        def sink(target, fn):
            def cb(_user, data, length):
                chunk = ctypes.string_at(data, length)
                if fn is None:
                    target.append(chunk)
                    return
                if failure:
                    return
                try:
                    fn(chunk)
                except BaseException as e:  # raised again below
                    failure.append(e)
            return n.DATA_FN(cb)

        cbs = n.new(n.ExecCallbacks, on_stdout=sink(out, on_stdout), on_stderr=sink(err, on_stderr))
        st = n.ExitStatus()
        feeder = None
        stdin_fd = -1
        if stdin is not None:
            data = n.encode(stdin)
            r, w = os.pipe()
            stdin_fd = r

            def feed():
                try:
                    with os.fdopen(w, "wb") as f:
                        f.write(data)
                except OSError:  # the command did not read it all
                    pass

            feeder = threading.Thread(target=feed, daemon=True)
            feeder.start()
        try:
            with self._lock:
                n.call("moat_sandbox_exec", self._handle(), ctypes.byref(o), ctypes.byref(cbs), stdin_fd,
                       ctypes.byref(st))
        finally:
            if stdin_fd >= 0:
                os.close(stdin_fd)
                feeder.join()
        if failure:
            raise failure[0]
        code, sig, timed_out = _status(st)
        result = ExecResult(code, b"".join(out), b"".join(err), sig, timed_out)
        if timed_out:
            raise CommandTimedOut("command timed out after %s s and was killed" % timeout, result)
        return result

    def spawn(self, argv: Union[Sequence[str], str], *, env=None, cwd: Optional[str] = None,
              user: Optional[str] = None, stdin: bool = False, timeout: Optional[float] = None,
              tty: bool = False, rows: int = 0, cols: int = 0,
              on_stdout: Optional[OutputCallback] = None, on_stderr: Optional[OutputCallback] = None) -> Process:
        """Starts a command in the background and returns its Process."""
        keep = _Keep()
        o = _exec_options(keep, argv, env, cwd, user, tty, rows, cols, stdin, timeout)
        proc_box: List[Process] = []

        def wrap(fn):
            if fn is None:
                return n.DATA_FN()

            def cb(_user, data, length):
                proc = proc_box[0]
                if proc._error is not None:
                    return
                try:
                    fn(ctypes.string_at(data, length))
                except BaseException as e:  # kills the command; wait() raises it
                    proc._error = e
                    h = proc._h
                    if h is not None:
                        n.lib().moat_exec_cancel(h)
            return n.DATA_FN(cb)

        cbs = None
        if on_stdout is not None or on_stderr is not None:
            cbs = n.new(n.ExecCallbacks, on_stdout=wrap(on_stdout), on_stderr=wrap(on_stderr))
            keep.items.append(cbs)
        h = ctypes.c_void_p()
        n.call("moat_exec_start", self._handle(), ctypes.byref(o), ctypes.byref(cbs) if cbs is not None else None,
               ctypes.byref(h))
        proc = Process(h, cbs, keep)
        proc_box.append(proc)
        return proc

    def stream(self, argv: Union[Sequence[str], str], **kw) -> Iterator[Tuple[str, bytes]]:
        """Runs a command and yields ("stdout" | "stderr", bytes) as it
        writes; the ExecResult is the generator's return value."""
        with self.spawn(argv, **kw) as p:
            yield from p.output()
            return p.result

    def pause(self, to_disk: bool = False) -> None:
        """Stops the vCPUs where they are, memory kept (moat pause); with
        to_disk, saves the whole VM to disk and ends it (moat pause
        --to-disk): resume() restores it."""
        n.call("moat_sandbox_pause", self._handle(), int(to_disk))

    def resume(self) -> None:
        """Runs the vCPUs again, or restores a sandbox paused to disk (and
        connects this handle to it again); the guest's clock is set from
        the host's."""
        n.call("moat_sandbox_resume", self._handle())

    def stop(self, timeout: float = 10) -> None:
        """Powers the guest off (filesystems synced), killing it after
        ``timeout`` seconds."""
        n.call("moat_sandbox_stop", self._handle(), _ms(timeout))

    def close(self) -> None:
        """Closes the handle. An ephemeral sandbox (create without keep) is
        stopped and removed first, so when close() returns it is gone."""
        with self._lock:
            h, self._h = self._h, None
        if h is None:
            return
        try:
            if self._owned:
                try:
                    n.call("moat_sandbox_stop", h, 0)
                except MoatError:
                    pass  # already stopped or gone: closing is all that is left
        finally:
            n.lib().moat_sandbox_close(h)

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        # Not close(): a collector must not block on a stop. The shim stops
        # an ephemeral sandbox whose owning handle went away by itself.
        h, self._h = getattr(self, "_h", None), None
        if h is not None:
            try:
                n.lib().moat_sandbox_close(h)
            except Exception:
                pass

    def __repr__(self) -> str:
        return "<moat.Sandbox %s>" % self._id
