#!/usr/bin/env python3
"""Host-side servers for the network VM tests, on loopback only.

Usage: net_servers.py MODE BIND_ADDRESS [ARGS...]
  http DIR        serves DIR over HTTP; /slow streams a byte every 100 ms,
                  /echo-auth answers with the request's Authorization header
  http80 DIR      the same on port 80 (plain HTTP as :http secrets see it)
  https DIR CERT KEY
                  the same over TLS with the PEM certificate and key given
  https11 DIR CERT KEY
                  the same with HTTP/1.1 keep-alive; POST answers, in a
                  chunked response, the body's length and sha256 and the
                  Authorization header (bodies chunked or with a length)
  h2 DIR CERT KEY nghttpd serving DIR over TLS with HTTP/2 only
  proxy           an HTTP proxy: CONNECT HOST:PORT tunnels to BIND_ADDRESS:PORT
                  whatever HOST is (the tests' names exist only in guests);
                  logs "connect HOST:PORT" and the Proxy-Authorization header
  echo            TCP: echoes what it reads until EOF, then closes
  hold            TCP: accepts and keeps connections open, never answers
  udp-echo        UDP: answers each datagram with its bytes upper-cased
  dns NAME=IP...  UDP DNS: answers A/AAAA for the names given (NAME "*": any
                  other name), NXDOMAIN else

Prints the port it listens on, then serves until killed. Every accepted
connection (or datagram) appends a line to $NET_SERVER_LOG if set, so a test
can tell that nothing arrived; HTTP requests add their Authorization header.
"""
import hashlib
import http.server
import ipaddress
import os
import selectors
import socket
import socketserver
import struct
import sys
import threading
import time

LOG = os.environ.get("NET_SERVER_LOG")
log_lock = threading.Lock()


def note(what):
    if LOG:
        with log_lock, open(LOG, "a") as f:
            f.write(what + "\n")


def family_of(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET


class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        note("http " + self.path)

    def do_GET(self):
        if "Authorization" in self.headers:
            note("auth " + self.headers["Authorization"])
        if self.path == "/echo-auth":
            body = self.headers.get("Authorization", "").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", "600")
            self.end_headers()
            for _ in range(600):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.1)
            return
        super().do_GET()


class KeepAliveHandler(Handler):
    protocol_version = "HTTP/1.1"

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body, "chunked"
                body += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0"))), "length"

    def do_POST(self):
        note("http POST " + self.path)
        auth = self.headers.get("Authorization", "")
        if auth:
            note("auth " + auth)
        body, framing = self.read_body()
        answer = "%s %d %s %s\n" % (framing, len(body), hashlib.sha256(body).hexdigest(), auth)
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part in (answer[:10], answer[10:]):
            data = part.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")


def serve_http(bind, directory, cert=None, key=None, port=0, keep_alive=False):
    class Server(http.server.ThreadingHTTPServer):
        address_family = family_of(bind)
        daemon_threads = True

    kind = KeepAliveHandler if keep_alive else Handler
    handler = lambda *a, **k: kind(*a, directory=directory, **k)
    server = Server((bind, port), handler)
    if cert:
        import ssl
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


def serve_tcp(bind, hold):
    class Echo(socketserver.BaseRequestHandler):
        def handle(self):
            note("tcp")
            if hold:
                while self.request.recv(65536):
                    pass
                return
            while True:
                data = self.request.recv(65536)
                if not data:
                    break
                self.request.sendall(data)
            self.request.shutdown(socket.SHUT_WR)

    class Server(socketserver.ThreadingTCPServer):
        address_family = family_of(bind)
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 512

    server = Server((bind, 0), Echo)
    print(server.server_address[1], flush=True)
    server.serve_forever()


def serve_h2(bind, directory, cert, key):
    # nghttpd takes this process's place, so killing it kills the server.
    probe = socket.socket(family_of(bind), socket.SOCK_STREAM)
    probe.bind((bind, 0))
    port = probe.getsockname()[1]
    probe.close()
    print(port, flush=True)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # the port's reader closes its end
    os.execvp("nghttpd", ["nghttpd", "--address=" + bind, "--htdocs=" + directory, str(port), key, cert])


def serve_proxy(bind):
    def relay(a, b):
        sel = selectors.DefaultSelector()
        sel.register(a, selectors.EVENT_READ, b)
        sel.register(b, selectors.EVENT_READ, a)
        open_ends = 2
        while open_ends:
            for key, _ in sel.select():
                data = key.fileobj.recv(65536)
                if data:
                    key.data.sendall(data)
                else:
                    sel.unregister(key.fileobj)
                    try:
                        key.data.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass  # the other side is gone already
                    open_ends -= 1

    class Tunnel(socketserver.StreamRequestHandler):
        def handle(self):
            line = self.rfile.readline(65536).decode("latin-1").split()
            headers = []
            while True:
                h = self.rfile.readline(65536)
                if h in (b"\r\n", b"\n", b""):
                    break
                headers.append(h.decode("latin-1").strip())
            if len(line) != 3 or line[0] != "CONNECT":
                self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            note("connect " + line[1])
            for h in headers:
                if h.lower().startswith("proxy-authorization:"):
                    note("proxy-auth " + h.split(":", 1)[1].strip())
            port = int(line[1].rsplit(":", 1)[1])
            upstream = socket.create_connection((bind, port))
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            relay(self.connection, upstream)
            upstream.close()

    class Server(socketserver.ThreadingTCPServer):
        address_family = family_of(bind)
        daemon_threads = True
        allow_reuse_address = True

    server = Server((bind, 0), Tunnel)
    print(server.server_address[1], flush=True)
    server.serve_forever()


def serve_udp_echo(bind):
    s = socket.socket(family_of(bind), socket.SOCK_DGRAM)
    s.bind((bind, 0))
    print(s.getsockname()[1], flush=True)
    while True:
        data, peer = s.recvfrom(65536)
        note("udp")
        s.sendto(data.upper(), peer)


def dns_answer(query, table):
    qid, flags, qd = struct.unpack(">HHH", query[:6])
    pos, labels = 12, []
    while query[pos]:
        n = query[pos]
        labels.append(query[pos + 1:pos + 1 + n].decode().lower())
        pos += 1 + n
    qtype, _ = struct.unpack(">HH", query[pos + 1:pos + 5])
    question = query[12:pos + 5]
    name = ".".join(labels)
    records = []
    if name not in table and "*" in table:
        name_addresses = table["*"]
    else:
        name_addresses = table.get(name, [])
    for address in name_addresses:
        ip = ipaddress.ip_address(address)
        if (qtype == 1 and ip.version == 4) or (qtype == 28 and ip.version == 6):
            records.append(b"\xc0\x0c" + struct.pack(">HHIH", qtype, 1, 60, len(ip.packed)) + ip.packed)
    rcode = 0 if name in table or "*" in table else 3
    header = struct.pack(">HHHHHH", qid, 0x8180 | rcode, 1, len(records), 0, 0)
    return header + question + b"".join(records)


def serve_dns(bind, pairs):
    table = {}
    for pair in pairs:
        name, address = pair.split("=", 1)
        table.setdefault(name.lower(), []).append(address)
    s = socket.socket(family_of(bind), socket.SOCK_DGRAM)
    s.bind((bind, 0))
    print(s.getsockname()[1], flush=True)
    while True:
        data, peer = s.recvfrom(4096)
        note("dns")
        try:
            s.sendto(dns_answer(data, table), peer)
        except (IndexError, struct.error, UnicodeDecodeError):
            pass


def main():
    mode, bind = sys.argv[1], sys.argv[2]
    if not ipaddress.ip_address(bind).is_loopback:
        sys.exit("net_servers.py: tests listen on loopback only")
    if mode == "http":
        serve_http(bind, sys.argv[3])
    elif mode == "http80":
        serve_http(bind, sys.argv[3], port=80)
    elif mode == "https":
        serve_http(bind, sys.argv[3], sys.argv[4], sys.argv[5])
    elif mode == "https11":
        serve_http(bind, sys.argv[3], sys.argv[4], sys.argv[5], keep_alive=True)
    elif mode == "h2":
        serve_h2(bind, sys.argv[3], sys.argv[4], sys.argv[5])
    elif mode == "proxy":
        serve_proxy(bind)
    elif mode in ("echo", "hold"):
        serve_tcp(bind, mode == "hold")
    elif mode == "udp-echo":
        serve_udp_echo(bind)
    elif mode == "dns":
        serve_dns(bind, sys.argv[3:])
    else:
        sys.exit("net_servers.py: unknown mode " + mode)


if __name__ == "__main__":
    main()
