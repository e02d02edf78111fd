"""`moat serve` end to end: real sandboxes (QEMU, TCG here) driven over the
server's unix socket and a loopback TCP port. $MOAT_BIN is the build's moat;
each run gets a state directory of its own ($MOAT_HOME)."""
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

MOAT = os.environ.get("MOAT_BIN", "moat")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=300):
        super().__init__("moat", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class Client:
    """A few calls over one kind of connection; a new connection each call
    unless `keep` (keep-alive is tested on its own)."""

    def __init__(self, server, token=None):
        self.server = server
        self.token = token

    def connection(self):
        if self.server.tcp_port and self.token is not None:
            return http.client.HTTPConnection("127.0.0.1", self.server.tcp_port, timeout=300)
        return UnixHTTPConnection(self.server.socket_path)

    def request(self, method, path, body=None, headers=None):
        c = self.connection()
        h = dict(headers or {})
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data

    def json(self, method, path, body=None, headers=None, expect=200):
        status, hdrs, data = self.request(method, path, body, headers)
        assert status == expect, (method, path, status, data[:500])
        return json.loads(data) if data else None


class Server:
    def __init__(self, home, args, tcp_port=None):
        self.home = home
        self.socket_path = os.path.join(home, "moat.sock")
        self.tcp_port = tcp_port
        self.log_path = os.path.join(home, "serve-%s.log" % (tcp_port or "unix"))
        self.log = open(self.log_path, "wb")
        env = dict(os.environ, MOAT_HOME=home)
        self.proc = subprocess.Popen([MOAT, "serve"] + args, stdout=self.log, stderr=self.log, env=env)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.ready():
                return
            assert self.proc.poll() is None, open(self.log_path).read()
            time.sleep(0.05)
        raise AssertionError("moat serve did not start: " + open(self.log_path).read())

    def ready(self):
        try:
            if self.tcp_port:
                socket.create_connection(("127.0.0.1", self.tcp_port), timeout=1).close()
            else:
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.socket_path)
                s.close()
            return True
        except OSError:
            return False

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        # Under `make asan` the server reports memory and undefined-behaviour
        # errors (and leaks, at exit) to its log: any is a failure.
        with open(self.log_path, errors="replace") as f:
            log = f.read()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            assert marker not in log, "moat serve reported: " + log[log.index(marker) - 200:][:4000]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def home():
    h = tempfile.mkdtemp(prefix="moat-serve-test-")
    yield h
    # Nothing the tests made may keep running.
    sandboxes = os.path.join(h, "sandboxes")
    ids = os.listdir(sandboxes) if os.path.isdir(sandboxes) else []
    if ids:
        subprocess.run([MOAT, "rm", "-f"] + ids, env=dict(os.environ, MOAT_HOME=h),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(h, ignore_errors=True)


@pytest.fixture(scope="module")
def server(home):
    s = Server(home, ["--log-format", "json"])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def api(server):
    return Client(server)


@pytest.fixture(scope="module")
def tcp_server(home):
    port = free_port()
    s = Server(home, ["--listen", "127.0.0.1:%d" % port], tcp_port=port)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def token(home, tcp_server):
    with open(os.path.join(home, "server.token")) as f:
        return f.read().strip()


@pytest.fixture(scope="module")
def sandbox(api):
    """One running sandbox for a module's tests (a boot per test would
    dominate the run on TCG)."""
    info = api.json("POST", "/v1/sandboxes", {"name": "srv-test", "memory_mib": 256}, expect=201)
    yield info
    api.request("DELETE", "/v1/sandboxes/%s?force=true" % info["id"])
