"""Exec attach over a real WebSocket client (python3-websocket): typed
frames both ways, 50 attaches on 5 sandboxes at once, a reader that stops,
a client killed mid-stream; server memory bounded and nothing left after."""
import json
import os
import socket
import subprocess
import sys
import threading
import time

import websocket

from conftest import Client


def start(api, sandbox, argv, **extra):
    body = {"argv": argv}
    body.update(extra)
    return api.json("POST", "/v1/sandboxes/%s/exec" % sandbox, body, expect=201)["id"]


def attach(server, sandbox, exec_id, timeout=120):
    s = socket.socket(socket.AF_UNIX)
    s.connect(server.socket_path)
    ws = websocket.WebSocket()
    ws.settimeout(timeout)
    ws.connect("ws://moat/v1/sandboxes/%s/execs/%s/attach" % (sandbox, exec_id), socket=s)
    first = json.loads(ws.recv())
    assert first["type"] == "attached" and first["id"] == exec_id
    return ws


def collect(ws):
    """stdout, stderr, the exit message."""
    out, err = b"", b""
    while True:
        op, data = ws.recv_data()
        if op == websocket.ABNF.OPCODE_BINARY:
            if data[:1] == b"\x01":
                out += data[1:]
            else:
                assert data[:1] == b"\x02"
                err += data[1:]
        elif op == websocket.ABNF.OPCODE_TEXT:
            m = json.loads(data)
            if m["type"] == "exit":
                return out, err, m
            assert m["type"] != "error", m
        elif op == websocket.ABNF.OPCODE_CLOSE:
            raise AssertionError("closed before the exit message")


def test_stdin_stdout_stderr_exit(api, server, sandbox):
    exec_id = start(api, sandbox["id"], ["sh", "-c", "cat; echo done >&2; exit 4"])
    ws = attach(server, sandbox["id"], exec_id)
    ws.send_binary(b"hello ")
    ws.send(json.dumps({"type": "stdin", "data": "world\n"}))
    ws.send(json.dumps({"type": "stdin_close"}))
    out, err, m = collect(ws)
    assert (out, err) == (b"hello world\n", b"done\n")
    assert m == {"type": "exit", "exit_code": 4, "signal": 0, "timed_out": False}
    ws.close()
    # Ended commands are gone from the server.
    assert api.request("GET", "/v1/sandboxes/%s/execs/%s" % (sandbox["id"], exec_id))[0] == 404


def test_tty_resize_and_signal(api, server, sandbox):
    exec_id = start(api, sandbox["id"], ["sh", "-c", "stty size; read x; stty size; sleep 60"], tty=True, rows=20,
                    cols=70)
    ws = attach(server, sandbox["id"], exec_id)
    text = b""
    while b"20 70" not in text:
        op, data = ws.recv_data()
        text += data[1:] if op == websocket.ABNF.OPCODE_BINARY else b""
    ws.send(json.dumps({"type": "resize", "rows": 33, "cols": 99}))
    ws.send_binary(b"\n")
    while b"33 99" not in text:
        op, data = ws.recv_data()
        text += data[1:] if op == websocket.ABNF.OPCODE_BINARY else b""
    ws.send(json.dumps({"type": "signal", "signal": 9}))
    _, _, m = collect(ws)
    assert m["exit_code"] == 137 and m["signal"] == 9


def test_bad_messages_are_typed_errors(api, server, sandbox):
    exec_id = start(api, sandbox["id"], ["cat"])
    ws = attach(server, sandbox["id"], exec_id)
    ws.send("not json")
    m = json.loads(ws.recv())
    assert m["type"] == "error" and m["kind"] == "invalid_argument"
    ws.send(json.dumps({"type": "resize", "rows": 0, "cols": 5}))
    assert json.loads(ws.recv())["kind"] == "invalid_argument"
    # A second client on the same command is refused while one is attached.
    status, _, data = api.request("GET", "/v1/sandboxes/%s/execs/%s/attach" % (sandbox["id"], exec_id),
                                  headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                           "Sec-WebSocket-Version": "13",
                                           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert status == 409 and json.loads(data)["error"]["kind"] == "busy"
    ws.send(json.dumps({"type": "kill"}))
    _, _, m = collect(ws)
    assert m["signal"] == 9


def guest_processes(api, sandbox, pattern):
    r = api.json("POST", "/v1/sandboxes/%s/exec" % sandbox, {"argv": ["sh", "-c", "ps -o args | grep -c '^%s'" % pattern],
                                                            "wait": True})
    return int(r["stdout"].strip() or 0)


def test_client_killed_mid_stream_kills_the_command(api, server, sandbox):
    exec_id = start(api, sandbox["id"], ["sh", "-c", "while true; do echo tick; sleep 0.1; done"])
    script = ("import socket,websocket,json,sys\n"
              "s=socket.socket(socket.AF_UNIX); s.connect(%r)\n"
              "ws=websocket.WebSocket(); ws.connect('ws://moat/v1/sandboxes/%s/execs/%s/attach', socket=s)\n"
              "print(ws.recv(), flush=True)\n"
              "while True: ws.recv()\n") % (server.socket_path, sandbox["id"], exec_id)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert b"attached" in p.stdout.readline()
    time.sleep(0.5)
    p.kill()
    p.wait()
    deadline = time.time() + 20
    while time.time() < deadline and guest_processes(api, sandbox["id"], "sh -c while true") > 0:
        time.sleep(0.5)
    assert guest_processes(api, sandbox["id"], "sh -c while true") == 0
    assert api.request("GET", "/v1/sandboxes/%s/execs/%s" % (sandbox["id"], exec_id))[0] == 404


def test_continue_on_disconnect_and_reattach(api, server, sandbox):
    exec_id = start(api, sandbox["id"], ["sh", "-c", "read x; echo got:$x"], on_disconnect="continue")
    ws = attach(server, sandbox["id"], exec_id)
    ws.close()
    time.sleep(0.5)
    assert api.json("GET", "/v1/sandboxes/%s/execs/%s" % (sandbox["id"], exec_id))["attached"] is False
    ws = attach(server, sandbox["id"], exec_id)
    ws.send_binary(b"later\n")
    out, _, m = collect(ws)
    assert out == b"got:later\n" and m["exit_code"] == 0


def test_slow_reader_holds_the_command_back(api, server, sandbox):
    """A client that reads nothing for a while: the server's memory stays
    flat (the guest is held back), and everything arrives once it reads."""
    exec_id = start(api, sandbox["id"], ["sh", "-c", "head -c 67108864 /dev/zero"])
    ws = attach(server, sandbox["id"], exec_id)
    before = server.rss_kib()
    time.sleep(3)
    held = server.rss_kib()
    assert held - before < 32 * 1024, (before, held)
    total = 0
    while True:
        op, data = ws.recv_data()
        if op == websocket.ABNF.OPCODE_BINARY:
            total += len(data) - 1
        elif json.loads(data)["type"] == "exit":
            break
    assert total == 64 << 20


def live_fds(server):
    """The server's descriptors but SQLite's: a closed connection's fd stays
    open while another connection to moat.db holds a lock (SQLite's POSIX
    lock workaround) and is reused by the next one, so those count the
    most connections ever open at once, not a leak."""
    d = "/proc/%d/fd" % server.proc.pid
    n = 0
    for f in os.listdir(d):
        try:
            n += not os.path.basename(os.readlink(os.path.join(d, f))).startswith("moat.db")
        except OSError:
            pass
    return n


def test_fifty_attaches_on_five_sandboxes(api, server):
    boxes = [api.json("POST", "/v1/sandboxes", {"name": "many-%d" % i, "memory_mib": 128}, expect=201)["id"]
             for i in range(5)]
    fds_before = live_fds(server)
    idle_rss = server.rss_kib()
    results, errors = {}, []
    peak = [0]

    def one(i):
        try:
            box = boxes[i % 5]
            exec_id = start(api, box, ["sh", "-c", "read x; sleep 2; echo $x-%d" % i])
            ws = attach(server, box, exec_id)
            ws.send_binary(b"hi\n")
            out, _, m = collect(ws)
            results[i] = (out, m["exit_code"])
            ws.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        peak[0] = max(peak[0], server.rss_kib())
        time.sleep(0.2)
    assert errors == []
    assert results == {i: (b"hi-%d\n" % i, 0) for i in range(50)}
    print("server RSS idle %d KiB, peak with 50 attaches %d KiB" % (idle_rss, peak[0]))
    assert peak[0] < idle_rss + 64 * 1024
    for box in boxes:
        assert api.request("DELETE", "/v1/sandboxes/%s?force=true" % box)[0] == 204
    deadline = time.time() + 15
    while time.time() < deadline and live_fds(server) > fds_before:
        time.sleep(0.5)
    assert live_fds(server) <= fds_before
    metrics = api.request("GET", "/metrics")[2].decode()
    assert "moat_server_exec_attaches 0" in metrics
