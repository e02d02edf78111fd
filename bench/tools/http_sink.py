#!/usr/bin/env python3
"""The host side of the network benchmarks, on 127.0.0.1 only.

Usage: http_sink.py PORT_FILE [HOLD_PORT_FILE]
  HTTP: GET /zeros/N streams N zero bytes, any other GET answers 2 bytes,
  POST reads and drops its body. With HOLD_PORT_FILE, also a TCP server that
  accepts connections and keeps them open. Each port is written to its file
  once listening; serves until killed.
"""
import http.server
import socket
import socketserver
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def do_GET(self):
        n = int(self.path.split("/")[2]) if self.path.startswith("/zeros/") else 2
        self.send_response(200)
        self.send_header("Content-Length", str(n))
        self.end_headers()
        chunk = bytes(1 << 20)
        while n > 0:
            k = min(n, len(chunk))
            self.wfile.write(chunk[:k])
            n -= k

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        while n > 0:
            got = self.rfile.read(min(n, 1 << 20))
            if not got:
                break
            n -= len(got)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 128


def hold(port_file):
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    held = []

    def keep():
        while True:
            held.append(listener.accept()[0])

    threading.Thread(target=keep, daemon=True).start()
    with open(port_file, "w") as f:
        f.write(str(listener.getsockname()[1]))


def main():
    if len(sys.argv) > 2:
        hold(sys.argv[2])
    server = Server(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
