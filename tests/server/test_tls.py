"""`moat serve --listen --tls-cert --tls-key`: HTTPS and WSS with the bearer
token, a client that does not trust the certificate refused, plain HTTP to
the TLS port answered with nothing (and counted), a key that does not match
its certificate refused at start."""
import http.client
import json
import os
import socket
import ssl
import subprocess
import time

import pytest
import websocket

from conftest import MOAT, Server, free_port
from test_attach import collect


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def pki(home):
    """A self-signed certificate for 127.0.0.1 and its key, and a second
    self-signed certificate (for the same address, its own key) that a client
    can trust instead. The tests never rely on the system's CA store: a
    machine without ca-certificates must give the same answers."""
    d = os.path.join(home, "tls")
    os.makedirs(d)
    cert, key, other_cert, other = (os.path.join(d, n)
                                    for n in ("cert.pem", "key.pem", "other-cert.pem", "other-key.pem"))
    for c, k in ((cert, key), (other_cert, other)):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-subj", "/CN=moat-test", "-addext", "subjectAltName=IP:127.0.0.1", "-days", "2",
                "-keyout", k, "-out", c)
    return {"cert": cert, "key": key, "other_cert": other_cert, "other_key": other}


@pytest.fixture(scope="module")
def tls_server(home, pki):
    port = free_port()
    s = Server(home, ["--listen", "127.0.0.1:%d" % port, "--tls-cert", pki["cert"], "--tls-key", pki["key"]],
               tcp_port=port)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def token(home, tls_server):
    with open(os.path.join(home, "server.token")) as f:
        return f.read().strip()


def trusting(pki):
    return ssl.create_default_context(cafile=pki["cert"])


def https(tls_server, pki, method, path, token=None, body=None):
    c = http.client.HTTPSConnection("127.0.0.1", tls_server.tcp_port, timeout=300, context=trusting(pki))
    headers = {"Authorization": "Bearer " + token} if token else {}
    if body is not None:
        body = json.dumps(body)
        headers["Content-Type"] = "application/json"
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    version = c.sock.version() if c.sock else None  # a 401 closes the connection
    c.close()
    return r.status, data, version


def metric(tls_server, pki, token, name):
    status, data, _ = https(tls_server, pki, "GET", "/metrics", token)
    assert status == 200
    for line in data.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(name + " not in /metrics")


def test_https_with_the_token(tls_server, pki, token):
    status, data, version = https(tls_server, pki, "GET", "/v1/health", token)
    assert (status, json.loads(data)) == (200, {"status": "ok"})
    assert version in ("TLSv1.2", "TLSv1.3")
    assert https(tls_server, pki, "GET", "/v1/health")[0] == 401
    assert https(tls_server, pki, "GET", "/v1/health", "x" * len(token))[0] == 401


def test_the_listening_line_says_https(tls_server):
    with open(tls_server.log_path) as f:
        log = f.read()
    assert "listening on https://127.0.0.1:%d" % tls_server.tcp_port in log


def test_curl_with_the_certificate(tls_server, pki, token):
    url = "https://127.0.0.1:%d/v1/version" % tls_server.tcp_port
    r = subprocess.run(["curl", "-sS", "--cacert", pki["cert"], "-H", "Authorization: Bearer " + token, url],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["api"] == "v1"
    # Trusting another certificate, curl does not trust the server (exit 60:
    # peer certificate cannot be authenticated).
    r = subprocess.run(["curl", "-sS", "--cacert", pki["other_cert"], "-H", "Authorization: Bearer " + token, url],
                       capture_output=True, timeout=60)
    assert r.returncode == 60, (r.returncode, r.stderr)


def test_a_client_that_does_not_trust_the_certificate_is_refused(tls_server, pki):
    c = http.client.HTTPSConnection("127.0.0.1", tls_server.tcp_port, timeout=60,
                                    context=ssl.create_default_context(cafile=pki["other_cert"]))
    with pytest.raises(ssl.SSLCertVerificationError):
        c.request("GET", "/v1/health")
    c.close()


def test_plain_http_gets_no_http_answer(tls_server, pki, token):
    before = metric(tls_server, pki, token, "moat_server_tls_handshake_failures_total")
    s = socket.create_connection(("127.0.0.1", tls_server.tcp_port), timeout=30)
    s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: moat\r\n\r\n")
    answer = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        answer += chunk
    s.close()
    assert not answer.startswith(b"HTTP/"), answer
    assert b"ok" not in answer
    deadline = time.time() + 10
    while metric(tls_server, pki, token, "moat_server_tls_handshake_failures_total") < before + 1:
        assert time.time() < deadline, "the failed handshake was not counted"
        time.sleep(0.1)
    # The server still serves.
    assert https(tls_server, pki, "GET", "/v1/health", token)[0] == 200


def test_a_client_that_never_says_hello_does_not_hold_a_slot(tls_server, pki, token):
    """A connection that sends nothing is closed by the handshake timeout;
    meanwhile others are served."""
    idle = socket.create_connection(("127.0.0.1", tls_server.tcp_port), timeout=60)
    assert https(tls_server, pki, "GET", "/v1/health", token)[0] == 200
    start = time.time()
    assert idle.recv(1) == b""
    assert time.time() - start < 30
    idle.close()


def test_exec_and_attach_over_wss(tls_server, pki, token):
    status, data, _ = https(tls_server, pki, "POST", "/v1/sandboxes", token, {"name": "tls-test", "memory_mib": 256})
    assert status == 201, data
    sandbox = json.loads(data)["id"]
    try:
        status, data, _ = https(tls_server, pki, "POST", "/v1/sandboxes/%s/exec" % sandbox, token,
                                {"argv": ["sh", "-c", "cat; echo bye >&2"]})
        assert status == 201, data
        exec_id = json.loads(data)["id"]
        ws = websocket.WebSocket(sslopt={"ca_certs": pki["cert"]})
        ws.settimeout(120)
        ws.connect("wss://127.0.0.1:%d/v1/sandboxes/%s/execs/%s/attach" % (tls_server.tcp_port, sandbox, exec_id),
                   header=["Authorization: Bearer " + token])
        assert json.loads(ws.recv())["type"] == "attached"
        ws.send_binary(b"over tls\n")
        ws.send(json.dumps({"type": "stdin_close"}))
        out, err, m = collect(ws)
        ws.close()
        assert (out, err, m["exit_code"]) == (b"over tls\n", b"bye\n", 0)
    finally:
        assert tls_server.proc.poll() is None, open(tls_server.log_path).read()[-3000:]
        assert https(tls_server, pki, "DELETE", "/v1/sandboxes/%s?force=true" % sandbox, token)[0] == 204


def serve_fails(home, args):
    r = subprocess.run([MOAT, "serve"] + args, capture_output=True, timeout=60, env=dict(os.environ, MOAT_HOME=home))
    return r.returncode, r.stderr.decode()


def test_a_key_that_does_not_match_is_refused(home, pki):
    code, err = serve_fails(home, ["--listen", "127.0.0.1:%d" % free_port(), "--tls-cert", pki["cert"],
                                   "--tls-key", pki["other_key"]])
    assert code != 0
    assert "mismatch" in err or "does not match" in err, err


def test_tls_needs_listen_and_both_files(home, pki):
    code, err = serve_fails(home, ["--tls-cert", pki["cert"], "--tls-key", pki["key"]])
    assert code != 0 and "--listen" in err, err
    code, err = serve_fails(home, ["--listen", "127.0.0.1:%d" % free_port(), "--tls-cert", pki["cert"]])
    assert code != 0 and "--tls-key" in err, err
    code, err = serve_fails(home, ["--listen", "127.0.0.1:%d" % free_port(), "--tls-cert", "/nonexistent.pem",
                                   "--tls-key", pki["key"]])
    assert code != 0 and "/nonexistent.pem" in err, err
