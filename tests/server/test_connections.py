"""Many clients: 1000 idle connections leave the server answering; past
--max-connections a client gets one typed 503 and is closed; an idle
connection is dropped after --idle-timeout; nothing stays open after."""
import json
import os
import resource
import socket
import time

from conftest import Client, Server


def raise_fd_limit(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def connect(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    return s


def open_fds(server):
    return len(os.listdir("/proc/%d/fd" % server.proc.pid))


def settled_fds(server):
    """The server's fd count without a transient one (a request's socket
    still closing, a file read by a worker): the least of a few samples."""
    samples = []
    for _ in range(5):
        samples.append(open_fds(server))
        time.sleep(0.05)
    return min(samples)


def test_thousand_idle_connections(api, server):
    raise_fd_limit(4096)
    before = settled_fds(server)
    idle = [connect(server.socket_path) for _ in range(1000)]
    time.sleep(0.5)
    assert api.json("GET", "/v1/health") == {"status": "ok"}
    assert settled_fds(server) >= before + 1000
    status, _, data = api.request("GET", "/metrics")
    assert "moat_server_connections 1001" in data.decode()
    for s in idle:
        s.close()
    deadline = time.time() + 10
    while time.time() < deadline and open_fds(server) > before:
        time.sleep(0.2)
    assert open_fds(server) <= before


def test_over_the_connection_limit_is_shed_with_a_typed_503(home):
    os.makedirs(home + "/limited", exist_ok=True)
    limited = Server(home + "/limited", ["--max-connections", "5", "--idle-timeout", "2"])
    try:
        held = [connect(limited.socket_path) for _ in range(5)]
        time.sleep(0.3)
        extra = connect(limited.socket_path)
        reply = extra.recv(4096)
        assert reply.startswith(b"HTTP/1.1 503")
        body = json.loads(reply.split(b"\r\n\r\n", 1)[1])
        assert body["error"]["kind"] == "busy"
        assert extra.recv(10) == b""  # closed after the answer
        extra.close()
        # Idle ones are dropped after --idle-timeout; then clients get in again.
        time.sleep(3)
        for s in held:
            assert s.recv(10) == b""
            s.close()
        assert Client(limited).json("GET", "/v1/health") == {"status": "ok"}
    finally:
        limited.stop()
