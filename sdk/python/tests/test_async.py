import asyncio

import moat


def test_async_create_exec_stream_files():
    async def main():
        async with await moat.AsyncSandbox.create() as sb:
            r = await sb.exec(["sh", "-c", "echo async; exit 4"])
            assert (r.exit_code, r.stdout) == (4, b"async\n")
            pieces = [d async for s, d in sb.stream("echo a; echo b")]
            assert b"".join(pieces) == b"a\nb\n"
            await sb.files.write("/tmp/x", b"async file")
            assert await sb.files.read("/tmp/x") == b"async file"
            p = await sb.spawn(["cat"], stdin=True)
            await p.write_stdin(b"in\n")
            await p.close_stdin()
            out = [d async for _, d in p.output()]
            assert b"".join(out) == b"in\n" and p.result.exit_code == 0
            await p.close()

    asyncio.run(main())


def test_ten_sandboxes_from_ten_tasks_at_once():
    async def one(i):
        async with await moat.AsyncSandbox.create(memory_mib=128) as sb:
            r = await sb.exec(["sh", "-c", "echo task-%d" % i])
            return r.stdout

    async def main():
        return await asyncio.gather(*(one(i) for i in range(10)))

    outs = asyncio.run(main())
    assert outs == [b"task-%d\n" % i for i in range(10)]
    assert moat.list_sandboxes() == [] or all(s["state"] != "running" for s in moat.list_sandboxes())


def test_async_errors_are_the_same_types():
    async def main():
        try:
            await moat.AsyncSandbox.open("nope")
        except moat.NotFoundError:
            return True
        return False

    assert asyncio.run(main())
