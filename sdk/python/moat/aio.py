"""The asyncio API: the same shape as the sync one, each call run on the
SDK's own thread pool (libmoat's calls block; ctypes lets go of the GIL
while they do, so sandboxes of many tasks boot and run at once).

    async with await moat.AsyncSandbox.create(image="python:3.12") as sb:
        r = await sb.exec(["python3", "-c", "print(1)"])
        async for stream, data in sb.stream(["sh", "-c", "..."]):
            ...
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from typing import AsyncIterator, Optional, Tuple

from .sandbox import ExecResult, Files, Process, Sandbox

# Enough threads for many sandboxes booting and waiting at once: the work
# is in VMs and the shim, the threads mostly wait.
_pool = concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="moat")


async def _run(fn, *args, **kw):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool, functools.partial(fn, *args, **kw))


class AsyncProcess:
    """Process, awaitable."""

    def __init__(self, proc: Process):
        self._p = proc

    @property
    def pid(self) -> int:
        return self._p.pid

    @property
    def result(self) -> Optional[ExecResult]:
        return self._p.result

    async def write_stdin(self, data) -> None:
        await _run(self._p.write_stdin, data)

    async def close_stdin(self) -> None:
        await _run(self._p.close_stdin)

    async def signal(self, sig: int) -> None:
        await _run(self._p.signal, sig)

    async def kill(self) -> None:
        await _run(self._p.kill)

    async def resize(self, rows: int, cols: int) -> None:
        await _run(self._p.resize, rows, cols)

    async def wait(self, timeout: Optional[float] = None) -> Optional[ExecResult]:
        return await _run(self._p.wait, timeout)

    async def output(self) -> AsyncIterator[Tuple[str, bytes]]:
        it = self._p.output()
        sentinel = object()
        while True:
            piece = await _run(next, it, sentinel)
            if piece is sentinel:
                return
            yield piece

    async def close(self) -> None:
        await _run(self._p.close)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()


class AsyncFiles:
    """Files, awaitable: the same methods."""

    def __init__(self, files: Files):
        self._f = files

    def __getattr__(self, name):
        fn = getattr(self._f, name)

        async def call(*args, **kw):
            return await _run(fn, *args, **kw)

        return call


class AsyncSandbox:
    """Sandbox, awaitable."""

    def __init__(self, sandbox: Sandbox):
        self._sb = sandbox
        self.files = AsyncFiles(sandbox.files)

    @classmethod
    async def create(cls, image: Optional[str] = None, **options) -> "AsyncSandbox":
        return cls(await _run(Sandbox.create, image, **options))

    @classmethod
    async def open(cls, id_or_name: str) -> "AsyncSandbox":
        return cls(await _run(Sandbox.open, id_or_name))

    @property
    def id(self) -> str:
        return self._sb.id

    async def info(self) -> dict:
        return await _run(self._sb.info)

    async def stats(self) -> dict:
        return await _run(self._sb.stats)

    async def snapshot(self, name: str, **kw) -> dict:
        return await _run(self._sb.snapshot, name, **kw)

    async def diff(self):
        return await _run(self._sb.diff)

    async def export(self, host_file) -> None:
        await _run(self._sb.export, host_file)

    async def commit(self, ref: str, **kw) -> dict:
        return await _run(self._sb.commit, ref, **kw)

    async def fork(self, count: int = 1, **kw):
        return await _run(self._sb.fork, count, **kw)

    async def update_network(self, rules, mode: Optional[str] = None) -> None:
        await _run(self._sb.update_network, rules, mode)

    async def exec(self, argv, **kw) -> ExecResult:
        return await _run(self._sb.exec, argv, **kw)

    async def spawn(self, argv, **kw) -> AsyncProcess:
        return AsyncProcess(await _run(self._sb.spawn, argv, **kw))

    async def stream(self, argv, **kw) -> AsyncIterator[Tuple[str, bytes]]:
        proc = await self.spawn(argv, **kw)
        async with proc:
            async for piece in proc.output():
                yield piece

    async def pause(self, to_disk: bool = False) -> None:
        await _run(self._sb.pause, to_disk)

    async def resume(self) -> None:
        await _run(self._sb.resume)

    async def stop(self, timeout: float = 10) -> None:
        await _run(self._sb.stop, timeout)

    async def close(self) -> None:
        await _run(self._sb.close)

    async def __aenter__(self) -> "AsyncSandbox":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def __repr__(self) -> str:
        return "<moat.AsyncSandbox %s>" % self.id
