"""Disk snapshots and forks through the SDK: a snapshot of a running
sandbox, a sandbox made from it, forks isolated from each other, and the
errors a caller handles (name taken, snapshot in use, no such snapshot)."""
import asyncio

import pytest

import moat


def sh(sb, script):
    r = sb.exec(["sh", "-c", script])
    assert r.exit_code == 0, r.stderr


def test_snapshot_restore_and_fork():
    with moat.Sandbox.create(name="sdk-snap-src", keep=False) as src:
        sh(src, "echo before > /root/state")
        snap = src.snapshot("sdk-snap", labels={"purpose": "test"})
        assert snap["name"] == "sdk-snap"
        assert snap["source_name"] == "sdk-snap-src"
        assert snap["labels"] == {"purpose": "test"}
        assert snap["content_digest"].startswith("sha256:")
        sh(src, "echo after > /root/state")

        with moat.Sandbox.create(from_snapshot="sdk-snap", name="sdk-snap-child") as child:
            assert child.exec(["cat", "/root/state"]).stdout == b"before\n"
            assert child.info()["snapshot"] == snap["id"]
            assert moat.inspect_snapshot("sdk-snap")["used_by"] == ["sdk-snap-child"]
            with pytest.raises(moat.BusyError) as e:
                moat.remove_snapshot("sdk-snap")
            assert "in use by sandbox sdk-snap-child" in str(e.value)
        assert src.exec(["cat", "/root/state"]).stdout == b"after\n"

        kids = src.fork(2, name_prefix="sdk-kid")
        assert [k["name"] for k in kids] == ["sdk-kid-1", "sdk-kid-2"]
        try:
            for k in kids:
                with moat.Sandbox.open(k["name"]) as h:
                    assert h.exec(["cat", "/root/state"]).stdout == b"after\n"
                    sh(h, "echo %s > /root/state" % k["name"])
            for k in kids:
                with moat.Sandbox.open(k["name"]) as h:
                    assert h.exec(["cat", "/root/state"]).stdout == (k["name"] + "\n").encode()
        finally:
            for k in kids:
                moat.remove_sandbox(k["name"], force=True)

        # A warm fork: what the source holds in RAM goes on in the children.
        sh(src, "echo warm > /dev/shm/w")
        warm = src.fork(2, name_prefix="sdk-warm", memory=True)
        assert [k["name"] for k in warm] == ["sdk-warm-1", "sdk-warm-2"]
        try:
            for k in warm:
                with moat.Sandbox.open(k["name"]) as h:
                    assert h.exec(["cat", "/dev/shm/w"]).stdout == b"warm\n"
        finally:
            for k in warm:
                moat.remove_sandbox(k["name"], force=True)

        with pytest.raises(moat.AlreadyExistsError):
            moat.create_snapshot("sdk-snap-src", "sdk-snap")
    assert [s["name"] for s in moat.list_snapshots()] == ["sdk-snap"]
    moat.remove_snapshot("sdk-snap")
    assert moat.list_snapshots() == []
    with pytest.raises(moat.NotFoundError):
        moat.inspect_snapshot("sdk-snap")
    with pytest.raises(moat.NotFoundError):
        moat.Sandbox.create(from_snapshot="sdk-snap")


def test_diff_and_export(tmp_path):
    with moat.Sandbox.create(name="sdk-diff") as sb:
        sh(sb, "echo x > /root/new; rm /etc/hostname.bak 2>/dev/null; chmod 700 /home")
        changes = sb.diff()
        assert {"kind": "A", "path": "/root/new"} in changes
        assert {"kind": "C", "path": "/home"} in changes
        assert moat.diff_sandbox("sdk-diff") == changes
        out = tmp_path / "root.tar"
        with open(out, "wb") as f:
            sb.export(f)
        import tarfile
        with tarfile.open(out) as t:
            assert t.extractfile("root/new").read() == b"x\n"
        # A busybox root has no image to commit onto.
        with pytest.raises(moat.InvalidArgumentError) as e:
            sb.commit("local/nothing:1")
        assert "moat export" in str(e.value)
    with pytest.raises(moat.NotFoundError):
        moat.diff_sandbox("sdk-diff")


def test_async_snapshot():
    async def main():
        async with await moat.AsyncSandbox.create(name="sdk-async-snap") as sb:
            await sb.exec(["sh", "-c", "echo async > /root/a"])
            snap = await sb.snapshot("sdk-async")
            assert snap["name"] == "sdk-async"
        moat.remove_snapshot("sdk-async")

    asyncio.run(main())
