#!/usr/bin/env python3
"""A tiny read-only registry on 127.0.0.1 that misbehaves on purpose, for
the pull tests. It serves one OCI image layout under every repository name;
the first path component of the repository picks the behaviour:

  plain/…     a well-behaved registry
  flaky/…     every manifest and blob GET fails with 500 twice, then works
  drop/…      the first GET of each layer sends half the body and hangs up;
              later GETs honour Range (206), as all GETs do
  stall/…     the first GET of each layer sends half the body, then nothing
  slow/…      layer bodies trickle in 64 KiB pieces, 10 ms apart (~6 MB/s),
              honouring Range, so a client can be killed at any point
  corrupt/…   layer blobs arrive with one byte flipped (same size)
  forbidden/… blob GETs answer 403
  bearer/…    needs "Bearer good-token"; the token comes from /token with
              Basic user:pass (401 otherwise)
  basic/…     needs Basic user:pass
  redirect/…  like bearer/, and blob GETs redirect to http://localhost:PORT
              (another origin), which must not see the Authorization header

GET /_requests returns what was asked so far: [{path, auth, range}].

usage: fault_registry.py --port PORT --layout DIR --tag TAG
"""
import argparse
import base64
import hashlib
import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BASIC = "Basic " + base64.b64encode(b"user:pass").decode()
TOKEN = "good-token"


class State:
    def __init__(self, layout, tag, port):
        self.layout, self.port = layout, port
        self.lock = threading.Lock()
        self.counts = {}
        self.requests = []
        with open(os.path.join(layout, "index.json")) as f:
            index = json.load(f)
        desc = next(m for m in index["manifests"]
                    if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
        self.tag, self.top = tag, desc

    def blob(self, digest):
        if not digest.startswith("sha256:") or "/" in digest:
            return None
        path = os.path.join(self.layout, "blobs", "sha256", digest[7:])
        if not os.path.exists(path):
            return None
        with open(path, "rb") as f:
            return f.read()

    def bump(self, key):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            return self.counts[key]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body=b"", ctype="application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code, message, headers=()):
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self.send(status, body, headers=headers)

    def do_GET(self):
        st = self.server.state
        auth = self.headers.get("Authorization", "")
        with st.lock:
            st.requests.append({"path": self.path, "auth": auth,
                                "range": self.headers.get("Range", "")})
        if self.path == "/_requests":
            with st.lock:
                return self.send(200, json.dumps(st.requests).encode())
        if self.path.startswith("/token"):
            if auth != BASIC:
                return self.error(401, "UNAUTHORIZED", "bad credentials")
            return self.send(200, json.dumps({"token": TOKEN}).encode())
        if self.path.startswith("/storage/"):
            return self.serve_blob(self.path[len("/storage/"):], "storage")
        if self.path == "/v2/":
            # The API version check `moat registry login` starts with: a
            # Bearer challenge, as token-auth registries answer.
            if auth != "Bearer " + TOKEN:
                realm = "http://127.0.0.1:%d/token" % st.port
                return self.error(401, "UNAUTHORIZED", "token needed", headers=[
                    ("WWW-Authenticate", 'Bearer realm="%s",service="fault"' % realm)])
            return self.send(200, b"{}")
        if not self.path.startswith("/v2/"):
            return self.error(404, "NOT_FOUND", "no such path")
        parts = self.path[4:].split("/")
        mode = parts[0]
        if len(parts) < 4 or parts[-2] not in ("manifests", "blobs"):
            return self.send(200, b"{}")
        repo = "/".join(parts[:-2])
        kind, ref = parts[-2], parts[-1]
        if mode in ("bearer", "redirect") and auth != "Bearer " + TOKEN:
            realm = "http://127.0.0.1:%d/token" % st.port
            challenge = 'Bearer realm="%s",service="fault",scope="repository:%s:pull"' % (realm, repo)
            return self.error(401, "UNAUTHORIZED", "token needed",
                              headers=[("WWW-Authenticate", challenge)])
        if mode == "basic" and auth != BASIC:
            return self.error(401, "UNAUTHORIZED", "credentials needed",
                              headers=[("WWW-Authenticate", 'Basic realm="fault"')])
        if mode == "flaky" and st.bump(self.path) <= 2:
            return self.error(500, "UNKNOWN", "try again")
        if kind == "manifests":
            digest = st.top["digest"] if ref == st.tag else ref
            data = st.blob(digest)
            if data is None:
                return self.error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            return self.send(200, data, ctype=st.top["mediaType"] if digest == st.top["digest"]
                             else json.loads(data).get("mediaType", ""),
                             headers=[("Docker-Content-Digest", digest)])
        if mode == "forbidden":
            return self.error(403, "DENIED", "no blobs for you")
        if mode == "redirect":
            return self.send(307, b"", headers=[
                ("Location", "http://localhost:%d/storage/%s" % (st.port, ref))])
        return self.serve_blob(ref, mode)

    do_HEAD = do_GET

    def serve_blob(self, digest, mode):
        st = self.server.state
        data = st.blob(digest)
        if data is None:
            return self.error(404, "BLOB_UNKNOWN", "blob unknown")
        is_layer = len(data) > 4096
        if mode == "corrupt" and is_layer:
            data = data[:100] + bytes([data[100] ^ 0xff]) + data[101:]
        rng = self.headers.get("Range", "")
        if mode == "drop" and is_layer and st.bump(self.path) == 1:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if mode == "stall" and is_layer and st.bump(self.path) == 1:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            time.sleep(120)  # the client is killed meanwhile
            return
        status, body, headers = 200, data, []
        if rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            status, body = 206, data[start:]
            headers = [("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))]
        if mode == "slow" and is_layer:
            return self.trickle(status, body, headers)
        return self.send(status, body, ctype="application/octet-stream", headers=headers)

    def trickle(self, status, body, headers):
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        try:
            for off in range(0, len(body), 64 << 10):
                self.wfile.write(body[off:off + (64 << 10)])
                self.wfile.flush()
                time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client was killed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--layout", required=True)
    ap.add_argument("--tag", required=True)
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.state = State(args.layout, args.tag, args.port)
    server.serve_forever()


if __name__ == "__main__":
    main()
