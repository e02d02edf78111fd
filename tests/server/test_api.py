"""The REST API over the unix socket: a sandbox's whole life, commands,
files (50 MiB by sha256, with curl), bad input answered with typed errors."""
import hashlib
import json
import os
import socket
import stat
import subprocess

from conftest import MOAT, UnixHTTPConnection


def test_socket_is_private(server):
    mode = stat.S_IMODE(os.stat(server.socket_path).st_mode)
    assert mode == 0o600


def test_health_and_version(api):
    assert api.json("GET", "/v1/health") == {"status": "ok"}
    v = api.json("GET", "/v1/version")
    assert v["api"] == "v1" and v["version"]


def test_exec_without_streaming(api, sandbox):
    r = api.json("POST", "/v1/sandboxes/%s/exec" % sandbox["name"],
                 {"argv": ["sh", "-c", "read x; echo out:$x; echo err >&2; exit 7"], "stdin": "hi\n", "wait": True})
    assert r["exit_code"] == 7 and r["signal"] == 0 and r["timed_out"] is False
    assert r["stdout"] == "out:hi\n" and r["stderr"] == "err\n"
    assert r["stdout_truncated"] is False


def test_exec_output_as_base64_and_limited(api, sandbox):
    r = api.json("POST", "/v1/sandboxes/%s/exec" % sandbox["id"],
                 {"argv": ["sh", "-c", "printf '\\377\\000abc'; head -c 5000 /dev/zero"], "wait": True,
                  "output": "base64", "output_limit_bytes": 100})
    import base64
    out = base64.b64decode(r["stdout_base64"])
    assert out[:5] == b"\xff\x00abc" and len(out) == 100 and r["stdout_truncated"] is True


def test_exec_timeout_and_signal(api, sandbox):
    r = api.json("POST", "/v1/sandboxes/%s/exec" % sandbox["id"],
                 {"argv": ["sleep", "30"], "timeout_s": 1, "wait": True})
    assert r["timed_out"] is True


def test_files_round_trip_50_mib_with_curl(server, sandbox, tmp_path):
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(50 << 20))
    want = hashlib.sha256(src.read_bytes()).hexdigest()
    base = "http://moat/v1/sandboxes/%s" % sandbox["id"]
    out = subprocess.run(["curl", "-sS", "--fail-with-body", "--unix-socket", server.socket_path, "-T", str(src),
                          base + "/files/root/big.bin?mode=0640"], capture_output=True, check=True)
    info = json.loads(out.stdout)
    assert info["size"] == 50 << 20 and info["mode"] == 0o640 and info["type"] == "file"
    back = tmp_path / "back.bin"
    subprocess.run(["curl", "-sS", "--fail", "--unix-socket", server.socket_path, "-o", str(back),
                    base + "/files/root/big.bin"], check=True)
    assert hashlib.sha256(back.read_bytes()).hexdigest() == want


def test_files_stat_list_mkdir_remove(api, sandbox):
    base = "/v1/sandboxes/%s" % sandbox["id"]
    d = api.json("POST", base + "/dirs/work/a/b?parents=true&mode=0700", expect=201)
    assert d["type"] == "dir" and d["mode"] == 0o700
    status, _, _ = api.request("PUT", base + "/files/work/a/b/x.txt", body=b"hello")
    assert status == 201
    status, _, data = api.request("GET", base + "/files/work/a/b/x.txt")
    assert status == 200 and data == b"hello"
    entries = api.json("GET", base + "/dirs/work/a/b")["entries"]
    assert [(e["name"], e["size"]) for e in entries] == [("x.txt", 5)]
    assert api.json("GET", base + "/stat/work/a/b/x.txt")["size"] == 5
    status, _, _ = api.request("DELETE", base + "/files/work/a?recursive=true")
    assert status == 204
    status, _, data = api.request("GET", base + "/stat/work/a")
    assert status == 404 and json.loads(data)["error"]["kind"] == "not_found"


def test_archive_of_a_tree_and_back(api, server, sandbox, tmp_path):
    """GET a tree as a tar (owners, modes, symlinks, hardlinks exact), PUT
    it back elsewhere; a hostile tar writes nothing outside its directory."""
    import io
    import tarfile
    base = "/v1/sandboxes/%s" % sandbox["id"]
    made = api.json("POST", base + "/exec", {"wait": True, "argv": ["sh", "-c", (
        "set -e; mkdir -p /tree/sub/deep; echo one > /tree/a.txt; chmod 0750 /tree/sub; "
        "printf x%.0s $(seq 1 3000) > /tree/sub/deep/big; chown 1000:2000 /tree/sub/deep/big; "
        "ln -s ../a.txt /tree/sub/link; ln /tree/a.txt /tree/hard; mkdir /dest")]})
    assert made["exit_code"] == 0, made
    status, hdrs, data = api.request("GET", base + "/archive/tree")
    assert status == 200 and hdrs["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        members = {m.name: m for m in t.getmembers()}
        assert sorted(members) == ["tree", "tree/a.txt", "tree/hard", "tree/sub", "tree/sub/deep",
                                   "tree/sub/deep/big", "tree/sub/link"]
        assert members["tree/sub"].isdir() and members["tree/sub"].mode == 0o750
        big = members["tree/sub/deep/big"]
        assert (big.size, big.uid, big.gid) == (3000, 1000, 2000)
        assert t.extractfile(big).read() == b"x" * 3000
        assert members["tree/sub/link"].issym() and members["tree/sub/link"].linkname == "../a.txt"
        hard = [n for n in ("tree/a.txt", "tree/hard") if members[n].islnk()]
        assert len(hard) == 1
    status, _, data = api.request("PUT", base + "/archive/dest", body=data, headers={"Content-Type": "application/x-tar"})
    assert status == 200, data
    totals = json.loads(data)
    assert totals["entries"] == 7 and totals["bytes"] >= 3004, totals
    check = api.json("POST", base + "/exec", {"wait": True, "argv": ["sh", "-c", (
        "cd /dest/tree && stat -c '%n %a %u:%g %s %h' a.txt hard sub/deep/big && stat -c '%n %a' sub && "
        "readlink sub/link && cat a.txt")]})
    assert check["stdout"] == ("a.txt 644 0:0 4 2\nhard 644 0:0 4 2\nsub/deep/big 644 1000:2000 3000 1\n"
                               "sub 750\n../a.txt\none\n"), check
    # The root: its top-level entry is "root".
    status, _, data = api.request("GET", base + "/archive/tree/a.txt")
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        assert t.getnames() == ["a.txt"]
    # Hostile archives: a name climbing out, an absolute name, a symlink then
    # a file through it. Refused; nothing lands outside /dest.
    for name, extra in (("../escaped", None), ("/escaped", None), ("lnk/escaped", "lnk")):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
            if extra:
                info = tarfile.TarInfo(extra)
                info.type = tarfile.SYMTYPE
                info.linkname = "/"
                t.addfile(info)
            info = tarfile.TarInfo(name)
            info.size = 3
            t.addfile(info, io.BytesIO(b"bad"))
        status, _, data = api.request("PUT", base + "/archive/dest", body=buf.getvalue())
        assert status == 400 or status == 403, (name, status, data)
        assert json.loads(data)["error"]["kind"] in ("invalid_argument", "permission_denied"), data
    gone = api.json("POST", base + "/exec", {"wait": True, "argv": ["sh", "-c", "ls /escaped /dest/../escaped"]})
    assert gone["exit_code"] != 0
    # Not a directory, a missing path, garbage.
    assert api.request("PUT", base + "/archive/tree/a.txt", body=b"")[0] == 400
    assert api.request("GET", base + "/archive/nosuch")[0] == 404
    status, _, data = api.request("PUT", base + "/archive/dest", body=b"not a tar" * 100)
    assert status == 400, data


def test_upload_cut_short_leaves_the_old_file(api, server, sandbox):
    base = "/v1/sandboxes/%s" % sandbox["id"]
    assert api.request("PUT", base + "/files/root/keep.txt", body=b"original")[0] == 201
    s = socket.socket(socket.AF_UNIX)
    s.connect(server.socket_path)
    s.sendall(("PUT %s/files/root/keep.txt HTTP/1.1\r\nHost: moat\r\nContent-Length: 1000000\r\n\r\n" % base)
              .encode() + b"x" * 1000)
    s.close()
    import time
    time.sleep(1)
    status, _, data = api.request("GET", base + "/files/root/keep.txt")
    assert (status, data) == (200, b"original")
    names = [e["name"] for e in api.json("GET", base + "/dirs/root")["entries"]]
    assert not [n for n in names if n.startswith(".moat-upload-")], names


def test_lifecycle_stop_start_restart_delete(api):
    info = api.json("POST", "/v1/sandboxes", {"name": "life", "labels": {"team": "a"}, "start": False}, expect=201)
    assert info["state"] == "created"
    assert [s["name"] for s in api.json("GET", "/v1/sandboxes?label=team=a")["sandboxes"]] == ["life"]
    assert api.json("GET", "/v1/sandboxes?label=team=b")["sandboxes"] == []
    assert api.json("POST", "/v1/sandboxes/life/start")["state"] == "running"
    assert api.json("POST", "/v1/sandboxes/life/restart")["state"] == "running"
    paused = api.json("POST", "/v1/sandboxes/life/pause")
    assert paused["state"] == "running" and paused["paused"] is True
    status, _, data = api.request("POST", "/v1/sandboxes/life/exec", {"argv": ["true"], "wait": True})
    error = json.loads(data)["error"]
    assert status == 409 and error["kind"] == "busy" and "paused" in error["message"], (status, data)
    assert api.json("POST", "/v1/sandboxes/life/resume")["paused"] is False
    assert api.json("POST", "/v1/sandboxes/life/exec", {"argv": ["true"], "wait": True})["exit_code"] == 0
    stats = api.json("GET", "/v1/sandboxes/life/stats")
    assert stats["name"] == "life" and stats["memory_bytes"] > 0
    assert api.json("POST", "/v1/sandboxes/life/stop")["state"] == "stopped"
    status, _, data = api.request("POST", "/v1/sandboxes/life/exec", {"argv": ["true"], "wait": True})
    assert status == 409 and json.loads(data)["error"]["kind"] == "not_running"
    assert api.request("DELETE", "/v1/sandboxes/life")[0] == 204
    status, _, data = api.request("GET", "/v1/sandboxes/life")
    assert status == 404 and json.loads(data)["error"]["kind"] == "not_found"
    events = [json.loads(l) for l in api.request("GET", "/v1/events")[2].splitlines()]
    mine = [e["event"] for e in events if e["name"] == "life"]
    assert mine == ["created", "started", "stopped", "started", "stopped", "removed"], mine
    after = events[-1]["seq"]
    assert api.request("GET", "/v1/events?after=%d" % after)[2] == b""


def test_idempotency_key_makes_one_sandbox(api):
    body = {"name": "idem", "start": False}
    h = {"Idempotency-Key": "k-1"}
    first = api.json("POST", "/v1/sandboxes", body, headers=h, expect=201)
    status, headers, data = api.request("POST", "/v1/sandboxes", body, headers=h)
    assert status == 201 and json.loads(data)["id"] == first["id"] and headers["idempotent-replayed"] == "true"
    status, _, data = api.request("POST", "/v1/sandboxes", {"name": "idem2", "start": False}, headers=h)
    assert status == 422
    assert len([s for s in api.json("GET", "/v1/sandboxes")["sandboxes"] if s["name"].startswith("idem")]) == 1
    assert api.request("DELETE", "/v1/sandboxes/idem")[0] == 204


def test_bad_input_gets_typed_errors(api, server):
    def error(method, path, body=None, headers=None):
        status, _, data = api.request(method, path, body, headers)
        return status, json.loads(data)["error"]["kind"]

    assert error("GET", "/v1/nothing") == (404, "not_found")
    assert error("DELETE", "/v1/health") == (405, "unsupported")
    assert error("POST", "/v1/sandboxes", b"{not json") == (400, "invalid_argument")
    assert error("POST", "/v1/sandboxes", {"memory_mb": 256}) == (400, "invalid_argument")
    assert error("POST", "/v1/sandboxes", {"memory_mib": "lots"}) == (400, "invalid_argument")
    s = socket.socket(socket.AF_UNIX)
    s.connect(server.socket_path)
    s.sendall(b"POST /v1/sandboxes HTTP/1.1\r\nHost: m\r\nContent-Length: %d\r\n\r\n{" % (9 << 20))
    assert s.recv(100).startswith(b"HTTP/1.1 413")
    s.close()
    assert error("GET", "/v1/sandboxes/nosuch") == (404, "not_found")
    assert error("GET", "/v1/sandboxes?label=") == (400, "invalid_argument")
    assert error("GET", "/v1/sandboxes/x/execs/y/attach") == (426, "invalid_argument")
    assert error("POST", "/v1/volumes", {"name": "v", "color": "red"}) == (400, "invalid_argument")
    # A head over 16 KiB, and bytes that are not HTTP: answered, and the server stays up.
    s = socket.socket(socket.AF_UNIX)
    s.connect(server.socket_path)
    s.sendall(b"GET /v1/health HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n")
    assert s.recv(100).startswith(b"HTTP/1.1 431")
    s.close()
    s = socket.socket(socket.AF_UNIX)
    s.connect(server.socket_path)
    s.sendall(b"\x00\x01garbage\r\n\r\n")
    assert s.recv(100).startswith(b"HTTP/1.1 400")
    s.close()
    assert api.json("GET", "/v1/health") == {"status": "ok"}


def test_deeply_nested_bodies_are_refused(api, sandbox):
    """200k levels of "[" (well under the body limit) would overflow the
    stack of a recursive writer: refused as read, and the server stays up."""
    deep = b"[" * 200000 + b"]" * 200000
    for path, body in (("/v1/sandboxes", b'{"network": ' + deep + b"}"),
                       ("/v1/sandboxes/%s/exec" % sandbox["id"], b'{"argv": ["true"], "env": ' + deep + b"}"),
                       ("/v1/volumes", b'{"name": "deep", "labels": ' + deep + b"}"),
                       ("/v1/images/pull", b'{"ref": "x", "platform": ' + deep + b"}")):
        status, _, data = api.request("POST", path, body, {"Content-Type": "application/json"})
        assert (status, json.loads(data)["error"]["kind"]) == (400, "invalid_argument"), (path, data[:200])
    assert api.json("GET", "/v1/health") == {"status": "ok"}


def test_keep_alive_serves_many_requests_on_one_connection(server):
    c = UnixHTTPConnection(server.socket_path)
    for _ in range(20):
        c.request("GET", "/v1/health")
        r = c.getresponse()
        assert r.status == 200 and r.read() == b'{"status":"ok"}'
    c.close()


def test_volumes(api):
    v = api.json("POST", "/v1/volumes", {"name": "data", "labels": {"a": "b"}}, expect=201)
    assert v["name"] == "data" and v["labels"] == {"a": "b"}
    assert [x["name"] for x in api.json("GET", "/v1/volumes")["volumes"]] == ["data"]
    assert api.json("GET", "/v1/volumes/data")["name"] == "data"
    assert api.request("DELETE", "/v1/volumes/data")[0] == 204
    assert api.request("GET", "/v1/volumes/data")[0] == 404


def test_snapshots_and_forks(api):
    def sh(name, script):
        r = api.json("POST", "/v1/sandboxes/%s/exec" % name, {"argv": ["sh", "-c", script], "wait": True})
        assert r["exit_code"] == 0, r["stderr"]
        return r["stdout"]

    api.json("POST", "/v1/sandboxes", {"name": "snapsrc"}, expect=201)
    sh("snapsrc", "echo before > /root/state")
    snap = api.json("POST", "/v1/snapshots", {"sandbox": "snapsrc", "name": "s1", "labels": {"k": "v"}}, expect=201)
    assert snap["name"] == "s1" and snap["source_name"] == "snapsrc" and snap["labels"] == {"k": "v"}
    sh("snapsrc", "echo after > /root/state")
    assert [x["name"] for x in api.json("GET", "/v1/snapshots")["snapshots"]] == ["s1"]
    child = api.json("POST", "/v1/sandboxes", {"name": "snapchild", "from_snapshot": "s1"}, expect=201)
    assert child["snapshot"] == snap["id"]
    assert sh("snapchild", "cat /root/state") == "before\n"
    status, _, data = api.request("DELETE", "/v1/snapshots/s1")
    assert status == 409 and json.loads(data)["error"]["kind"] == "busy"
    assert api.json("GET", "/v1/snapshots/s1")["used_by"] == ["snapchild"]
    kids = api.json("POST", "/v1/sandboxes/snapsrc/fork", {"count": 2, "name_prefix": "kid"}, expect=201)["sandboxes"]
    assert [k["name"] for k in kids] == ["kid-1", "kid-2"] and all(k["state"] == "running" for k in kids)
    assert sh("kid-2", "cat /root/state") == "after\n"
    for bad in ({"sandbox": "snapsrc"}, {"sandbox": "snapsrc", "name": "x", "color": 1},
                {"sandbox": "snapsrc", "name": "x", "freeze_timeout_s": 0}):
        status, _, data = api.request("POST", "/v1/snapshots", bad)
        assert status == 400 and json.loads(data)["error"]["kind"] == "invalid_argument", bad
    status, _, _ = api.request("POST", "/v1/sandboxes/snapsrc/fork", {"count": 65})
    assert status == 400
    status, _, data = api.request("POST", "/v1/snapshots", {"sandbox": "snapsrc", "name": "s1"})
    assert status == 409 and json.loads(data)["error"]["kind"] == "already_exists"
    changes = api.json("GET", "/v1/sandboxes/snapsrc/changes")["changes"]
    assert {"kind": "A", "path": "/root/state"} in changes
    status, headers, tar = api.request("GET", "/v1/sandboxes/snapsrc/export")
    assert status == 200 and headers["content-type"] == "application/x-tar"
    import io
    import tarfile
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        assert t.extractfile("root/state").read() == b"after\n"
    status, _, data = api.request("POST", "/v1/sandboxes/snapsrc/commit", {"ref": "local/x:1"})
    assert status == 400 and "moat export" in json.loads(data)["error"]["message"]
    status, _, data = api.request("POST", "/v1/sandboxes/snapsrc/commit", {"ref": "local/x:1", "color": 1})
    assert status == 400 and json.loads(data)["error"]["kind"] == "invalid_argument"
    assert api.request("GET", "/v1/sandboxes/nosuch/changes")[0] == 404
    for name in ("snapchild", "kid-1", "kid-2", "snapsrc"):
        assert api.request("DELETE", "/v1/sandboxes/%s?force=true" % name)[0] == 204
    assert api.request("DELETE", "/v1/snapshots/s1")[0] == 204
    assert api.request("GET", "/v1/snapshots/s1")[0] == 404


def test_logs_and_history(api, sandbox):
    api.json("POST", "/v1/sandboxes/%s/exec" % sandbox["id"], {"argv": ["echo", "logged"], "wait": True})
    status, headers, data = api.request("GET", "/v1/sandboxes/%s/logs" % sandbox["id"])
    assert status == 200 and headers["content-type"].startswith("text/plain")
    # The console only (the CLI's `moat logs` adds the history after it).
    cli = subprocess.run([MOAT, "logs", sandbox["id"]], capture_output=True, check=True,
                         env=dict(os.environ, MOAT_HOME=os.path.dirname(api.server.socket_path)))
    assert cli.stdout.startswith(data)
    history = [json.loads(l) for l in api.request("GET", "/v1/sandboxes/%s/history" % sandbox["id"])[2].splitlines()]
    assert any(e["event"] == "exec" and e["argv"] == ["echo", "logged"] for e in history)


def test_a_followed_log_ends_when_its_client_leaves(api, server, sandbox):
    """A quiet console: nothing to write, yet the follow stops once the
    client hung up (in-flight requests back to where they were)."""
    import time

    def in_flight():
        for line in api.request("GET", "/metrics")[2].decode().splitlines():
            if line.startswith("moat_server_requests_in_flight "):
                return float(line.split()[1])
        raise AssertionError("no moat_server_requests_in_flight")

    def threads():
        return len(os.listdir("/proc/%d/task" % server.proc.pid))

    before, threads_before = in_flight(), threads()
    s = socket.socket(socket.AF_UNIX)
    s.connect(server.socket_path)
    s.sendall(b"GET /v1/sandboxes/%s/logs?follow=true HTTP/1.1\r\nHost: moat\r\n\r\n" % sandbox["id"].encode())
    assert s.recv(100).startswith(b"HTTP/1.1 200")
    deadline = time.time() + 10
    while in_flight() < before + 1:
        assert time.time() < deadline
        time.sleep(0.05)
    s.close()
    deadline = time.time() + 5
    while in_flight() > before or threads() > threads_before:
        assert time.time() < deadline, "the follow went on after its client left"
        time.sleep(0.05)


def test_request_log_has_no_query_or_token(server, api):
    api.request("GET", "/v1/sandboxes?label=secret=shh")
    log = open(server.log_path).read().splitlines()
    lines = [json.loads(l) for l in log if l.startswith("{")]
    assert any(l["path"] == "/v1/sandboxes" and l["status"] == 200 for l in lines)
    assert "shh" not in "\n".join(log)
