#!/usr/bin/env python3
"""A hostile guest agent for shim tests: run as QEMU (MOAT_QEMU), it speaks
the protocol on fd 3 and sends wrongly typed fields. The command of an exec
says what to answer:
  int-end     end-stream error whose message is an integer
  bytes-end   end-stream error whose message is a text string that is not UTF-8
  int-notice  non-fatal error with an integer message, then output and exit 0
  wedge       nothing at all, ever (signals and cancels are ignored too)
  panic       the console shows a kernel panic (with an escape sequence and a
              byte that is not UTF-8) and "QEMU" exits 0, as -no-reboot does
  flood-console N   N bytes of text on the serial console, then exit 0
  flood-stderr N    N bytes on "QEMU"'s stderr, then exit 0
  flood-errors N    N control-stream errors ("flood 1", "flood 2", ...), then exit 0
  big-error N       end-stream error whose message is N bytes
  anything    `started` with a string pid, the argv echoed, exit 0
"""
import os
import struct
import sys

FD = 3


class Bytes(bytes):
    """Sent as a CBOR byte string."""


class BadText(bytes):
    """Sent as a CBOR text string although it is not UTF-8."""


def head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for extra, code in ((1, 24), (2, 25), (4, 26), (8, 27)):
        if n < 1 << (8 * extra):
            return bytes([major << 5 | code]) + n.to_bytes(extra, "big")
    raise ValueError(n)


def enc(v):
    if isinstance(v, bool):
        return b"\xf5" if v else b"\xf4"
    if isinstance(v, int):
        return head(0, v) if v >= 0 else head(1, -1 - v)
    if isinstance(v, BadText):
        return head(3, len(v)) + v
    if isinstance(v, bytes):
        return head(2, len(v)) + v
    if isinstance(v, str):
        b = v.encode()
        return head(3, len(b)) + b
    if isinstance(v, list):
        return head(4, len(v)) + b"".join(enc(x) for x in v)
    if isinstance(v, dict):
        return head(5, len(v)) + b"".join(enc(k) + enc(x) for k, x in v.items())
    raise TypeError(v)


def dec(b, i):
    major, info = b[i] >> 5, b[i] & 31
    i += 1
    if info < 24:
        n = info
    elif info in (24, 25, 26, 27):
        size = 1 << (info - 24)
        n = int.from_bytes(b[i:i + size], "big")
        i += size
    elif major == 7:
        return {20: False, 21: True, 22: None}.get(info), i
    else:
        raise ValueError("unsupported CBOR")
    if major == 0:
        return n, i
    if major == 1:
        return -1 - n, i
    if major == 2:
        return bytes(b[i:i + n]), i + n
    if major == 3:
        return b[i:i + n].decode("utf-8", "replace"), i + n
    if major == 4:
        out = []
        for _ in range(n):
            x, i = dec(b, i)
            out.append(x)
        return out, i
    if major == 5:
        out = {}
        for _ in range(n):
            k, i = dec(b, i)
            out[k], i = dec(b, i)
        return out, i
    if major == 7:
        return {20: False, 21: True, 22: None}.get(n), i
    raise ValueError("unsupported CBOR")


def send(stream, type_, payload, end=False):
    body = enc({"v": 1, "t": type_, "p": payload})
    data = struct.pack(">IIB", len(body), stream, 1 if end else 0) + body
    while data:
        data = data[os.write(FD, data):]


def read_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = os.read(FD, n - len(buf))
        if not chunk:
            sys.exit(0)
        buf += chunk
    return buf


def console_fd():
    """The serial console: the socket QEMU would have been given."""
    arg = next(a for a in sys.argv if a.startswith("socket,id=console,fd="))
    return int(arg.split("fd=", 1)[1])


def write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def flood(fd, n):
    line = b"x" * 79 + b"\n"
    text = line * (n // len(line)) + line[:n % len(line)]
    write_all(fd, text)


def exit_ok(stream):
    send(stream, "exit", {"code": 0, "signal": 0, "timed_out": False}, end=True)


def answer(stream, argv):
    what = argv[0] if argv else b""
    count = int(argv[1]) if len(argv) > 1 and argv[1].isdigit() else 0
    if what == b"int-end":
        send(stream, "error", {"code": 1, "message": 7}, end=True)
    elif what == b"bytes-end":
        send(stream, "error", {"code": "x", "message": BadText(b"caf\xe9")}, end=True)
    elif what == b"panic":
        write_all(console_fd(),
                  b"[    1.0] moat-agent: bad things\n\x1b[31mred\xff\n"
                  b"[    1.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b\n"
                  b"[    1.2] ---[ end Kernel panic - not syncing: Attempted to kill init! ]---\n")
        os._exit(0)
    elif what == b"wedge":
        pass
    elif what == b"flood-console":
        flood(console_fd(), count)
        exit_ok(stream)
    elif what == b"flood-stderr":
        flood(2, count)
        exit_ok(stream)
    elif what == b"flood-errors":
        for i in range(count):
            send(0, "error", {"code": "x", "message": "flood %d" % (i + 1)})
        exit_ok(stream)
    elif what == b"big-error":
        send(stream, "error", {"code": 1, "message": "e" * count}, end=True)
    elif what == b"int-notice":
        send(stream, "error", {"message": 7})
        send(stream, "stdout", {"d": Bytes(b"ok\n")})
        send(stream, "exit", {"code": 0, "signal": 0, "timed_out": False}, end=True)
    else:
        send(stream, "started", {"pid": "x"})
        send(stream, "stdout", {"d": Bytes(b" ".join(argv) + b"\n")})
        send(stream, "exit", {"code": 0, "signal": 0, "timed_out": False}, end=True)


def main():
    send(0, "hello", {"version": 1, "agent": 7})
    send(0, "error", {"code": "x", "message": 7})
    send(0, "error", {"code": [1], "message": BadText(b"\xff")})
    while True:
        length, stream, _flags = struct.unpack(">IIB", read_exact(9))
        msg, _ = dec(read_exact(length), 0)
        t, p = msg.get("t"), msg.get("p", {})
        if t == "shutdown":
            return
        if t == "exec":
            argv = [a if isinstance(a, bytes) else a.encode() for a in p.get("argv", [])]
            answer(stream, argv)


main()
