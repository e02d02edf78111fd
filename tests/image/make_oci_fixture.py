#!/usr/bin/env python3
"""Writes a crafted multi-layer OCI image layout that exercises every layer
rule moat implements: whiteouts of files and directories, opaque directories
(marker before and after same-layer siblings), re-creation after deletion,
file <-> directory replacement, directory metadata replacement,
hardlinks within and across layers, symlink chains, device nodes and fifos,
xattrs (security.capability, user.*, trusted.*), setuid/setgid/sticky modes,
large ids, sub-second mtimes, UTF-8 and 255-byte names, and an empty layer.

usage: make_oci_fixture.py OUTPUT_DIR [TAG]
"""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

MTIME = 1700000000
CAP_NET_RAW = "\x01\x00\x00\x02\x00\x20\x00\x00" + "\x00" * 12


class Layer:
    def __init__(self):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def add(self, name, kind=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0,
            link="", mtime=MTIME, xattrs=None, dev=(0, 0)):
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.mode = mode
        ti.uid, ti.gid = uid, gid
        ti.mtime = mtime
        ti.linkname = link
        ti.devmajor, ti.devminor = dev
        if xattrs:
            ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in xattrs.items()}
        ti.size = len(data) if kind == tarfile.REGTYPE else 0
        self.tar.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        return self

    def dir(self, name, mode=0o755, **kw):
        return self.add(name, tarfile.DIRTYPE, mode=mode, **kw)

    def file(self, name, data, mode=0o644, **kw):
        return self.add(name, data=data, mode=mode, **kw)

    def symlink(self, name, target):
        return self.add(name, tarfile.SYMTYPE, link=target, mode=0o777)

    def hardlink(self, name, target):
        return self.add(name, tarfile.LNKTYPE, link=target)

    def whiteout(self, name):
        return self.add(name, mode=0o600)

    def bytes(self):
        self.tar.close()
        return self.buf.getvalue()


def layers():
    long_name = "L" * 255
    l1 = (Layer()
          .dir("./", mode=0o755)
          .dir("etc", mode=0o755)
          .file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
          .file("etc/shadow", b"root:*:19000::::::\n", mode=0o640, gid=42)
          .dir("usr").dir("usr/bin").dir("usr/lib")
          .file("usr/bin/busybox", b"\x7fELF" + bytes(range(256)) * 40, mode=0o755)
          .hardlink("usr/bin/sh", "usr/bin/busybox")
          .hardlink("usr/bin/ls", "usr/bin/busybox")
          .file("usr/bin/ping", b"ping", mode=0o4755, xattrs={"security.capability": CAP_NET_RAW})
          .file("usr/bin/wall", b"wall", mode=0o2755, gid=5)
          .symlink("bin", "usr/bin")
          .file("usr/lib/libfoo.so.1.2", b"lib" * 2000)
          .symlink("usr/lib/libfoo.so.1", "libfoo.so.1.2")
          .symlink("usr/lib/libfoo.so", "libfoo.so.1")
          .dir("dev")
          .add("dev/null", tarfile.CHRTYPE, mode=0o666, dev=(1, 3))
          .add("dev/sda", tarfile.BLKTYPE, mode=0o660, gid=6, dev=(8, 0))
          .add("dev/big", tarfile.CHRTYPE, mode=0o600, dev=(4095, 0xFFFFF))
          .dir("run")
          .add("run/initctl", tarfile.FIFOTYPE, mode=0o600)
          .dir("tmp", mode=0o1777)
          .dir("srv", mode=0o2775, gid=50)
          .dir("var").dir("var/cache").dir("var/cache/apt")
          .file("var/cache/apt/pkgcache.bin", b"c" * 10000)
          .file("var/cache/old", b"old")
          .dir("opt").dir("opt/app")
          .file("opt/app/v1", b"version 1")
          .file("x", b"x is a file")
          .dir("y").file("y/child", b"child of y")
          .dir("home").dir("home/user", uid=100000, gid=100000)
          .file("home/user/notes.txt", b"notes", uid=100000, gid=100000,
                mtime=1600000000.123456789)
          .file("xattrs", b"x", xattrs={"user.mime_type": "text/plain",
                                        "trusted.secret": "t"})
          .dir("donn\u00e9es")
          .file("donn\u00e9es/\u65e5\u672c\u8a9e.txt", "utf-8 \u2713".encode())
          .file(long_name, b"long name")
          .file("empty", b"")
          .file("exact-block", b"b" * 4096)
          .file("big-sparse", b"\0" * (1 << 20) + b"end"))
    l2 = (Layer()
          .whiteout("etc/.wh.shadow")
          .dir("etc", mode=0o751, mtime=MTIME + 1)
          .file("var/cache/new", b"new")
          .whiteout("var/cache/.wh..wh..opq")
          .hardlink("usr/bin/ash", "usr/bin/busybox")
          .whiteout("opt/.wh.app")
          .dir("x").file("x/inside", b"x is a dir now")
          .file("y", b"y is a file now")
          .file("dup", b"first")
          .file("dup", b"second"))
    l3 = Layer()  # empty
    l4 = (Layer()
          .dir("opt/app").file("opt/app/v2", b"version 2")
          .whiteout("usr/bin/.wh.ls"))
    return [(l1.bytes(), True), (l2.bytes(), False), (l3.bytes(), False), (l4.bytes(), True)]


def blob(out, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(out, "blobs", "sha256", digest)
    with open(path, "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def main():
    out = sys.argv[1]
    tag = sys.argv[2] if len(sys.argv) > 2 else "latest"
    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
    descs, diff_ids = [], []
    for raw, compress in layers():
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        data = gzip.compress(raw, mtime=0) if compress else raw
        digest, size = blob(out, data)
        media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compress else "")
        descs.append({"mediaType": media, "digest": digest, "size": size})
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/bin:/bin"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    cdigest, csize = blob(out, json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": cdigest, "size": csize},
                "layers": descs}
    mdigest, msize = blob(out, json.dumps(manifest).encode())
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "digest": mdigest, "size": msize,
                            "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    for d in descs:
        print(os.path.join(out, "blobs", "sha256", d["digest"].split(":")[1]))


if __name__ == "__main__":
    main()
