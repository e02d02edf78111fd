#!/usr/bin/env python3
"""Writes an OCI image layout of hostile images, one tag per attack, for the
hostile-pull tests. Every path an attack aims at lies under CANARY, an
absolute directory the test watches: an unpacker that followed any of them
would write there.

tags:
  traversal         a file at ../../(...)/CANARY/traversal
  absolute          a file at /CANARY/absolute (re-rooted by OCI rules: it
                    must end up inside the image, not at CANARY)
  symlink-write     symlink a -> CANARY, then a file a/passwd (one layer)
  symlink-write-2   the symlink in layer 1, a/passwd in layer 2
  hardlink-escape   hardlink h -> ../../(...)/CANARY/outside-target
  hardlink-missing  hardlink h -> does/not/exist
  hardlink-symlink  symlink s -> CANARY, hardlink h -> s/outside-target
  gzip-bomb         one file of BOMB_MIB MiB of zeros, gzipped to ~1/1000
  huge-header       a file whose header declares 100 GiB, then a few bytes
  truncated-gzip    a gzip layer cut in half (its digest is of the cut bytes)
  wrong-diff-id     a valid layer, but the config's diff_id is another one's
  tamper            a valid image; the test overwrites its layer in the
                    registry's storage afterwards (digest mismatch on pull)
  short-size        a valid layer whose manifest descriptor declares one
                    byte less than the blob has (skopeo copies it as it is)

usage: make_hostile_oci.py layout OUT CANARY [--bomb-mib N]
prints: "TAG MANIFEST_DIGEST" per tag
"""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import zlib

MTIME = 1700000000
GIB = 1 << 30


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Tar:
    def __init__(self):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def add(self, name, kind=tarfile.REGTYPE, data=b"", link=""):
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime, ti.linkname = kind, 0o644, MTIME, link
        if kind == tarfile.SYMTYPE:
            ti.mode = 0o777
        ti.size = len(data) if kind == tarfile.REGTYPE else 0
        self.tar.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        return self

    def file(self, name, data=b"x\n"):
        return self.add(name, data=data)

    def dir(self, name):
        self.add(name, tarfile.DIRTYPE)
        return self

    def symlink(self, name, target):
        return self.add(name, tarfile.SYMTYPE, link=target)

    def hardlink(self, name, target):
        return self.add(name, tarfile.LNKTYPE, link=target)

    def bytes(self):
        self.tar.close()
        return self.buf.getvalue()


def gz(data):
    return gzip.compress(data, compresslevel=6, mtime=0)


def bomb_layer(mib):
    """(gzip bytes, diff_id) of a tar holding one file of `mib` MiB of
    zeros, compressed in a stream so the bomb is never held in memory."""
    size = mib << 20
    header = tarfile.TarInfo("bomb")
    header.size, header.mode, header.mtime = size, 0o644, MTIME
    head = header.tobuf(tarfile.PAX_FORMAT)
    tail = b"\0" * (1024 + (-size) % 512)  # padding and the end-of-archive blocks
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip wrapper
    h = hashlib.sha256(head)
    out = [comp.compress(head)]
    zeros = b"\0" * (1 << 20)
    for _ in range(mib):
        h.update(zeros)
        out.append(comp.compress(zeros))
    h.update(tail)
    out.append(comp.compress(tail))
    out.append(comp.flush())
    return b"".join(out), "sha256:" + h.hexdigest()


def huge_header_layer():
    """A header declaring a 100 GiB file followed by 4 KiB of data and the
    end: a bound check must reject it from the header alone."""
    header = tarfile.TarInfo("huge")
    header.size, header.mode, header.mtime = 100 * GIB, 0o644, MTIME
    raw = header.tobuf(tarfile.PAX_FORMAT) + b"\0" * 4096
    return gz(raw), sha(raw)


class Layout:
    def __init__(self, root):
        self.root = root
        self.tags = []
        os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)

    def blob(self, data, media_type):
        digest = sha(data)
        with open(os.path.join(self.root, "blobs", "sha256", digest[7:]), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def image(self, tag, layers):
        """layers: (blob bytes, diff_id, compressed?) each."""
        descs = [self.blob(b, "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if z else ""))
                 for b, _, z in layers]
        config = {"created": "2023-11-14T22:13:20Z", "architecture": "amd64", "os": "linux",
                  "config": {"Cmd": ["/bin/sh"]},
                  "rootfs": {"type": "layers", "diff_ids": [d for _, d, _ in layers]}}
        cfg = self.blob(json.dumps(config, sort_keys=True).encode(),
                        "application/vnd.oci.image.config.v1+json")
        return self.manifest(tag, {"schemaVersion": 2,
                                   "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                   "config": cfg, "layers": descs})

    def manifest(self, tag, body):
        desc = self.blob(json.dumps(body, sort_keys=True).encode(),
                         "application/vnd.oci.image.manifest.v1+json")
        desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
        self.tags.append(desc)
        return desc

    def write_index(self):
        with open(os.path.join(self.root, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": self.tags}, f, sort_keys=True)
        with open(os.path.join(self.root, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)


def plain(tar_bytes):
    return gz(tar_bytes), sha(tar_bytes), True


def write_layout(out, canary, bomb_mib):
    canary = canary.strip("/")
    up = "../" * 24
    layout = Layout(out)
    layout.image("traversal", [plain(Tar().dir("etc").file(up + canary + "/traversal").bytes())])
    layout.image("absolute", [plain(Tar().file("/" + canary + "/absolute").bytes())])
    layout.image("symlink-write", [plain(Tar().symlink("a", "/" + canary).file("a/passwd").bytes())])
    layout.image("symlink-write-2", [plain(Tar().symlink("a", "/" + canary).bytes()),
                                     plain(Tar().file("a/passwd").bytes())])
    layout.image("hardlink-escape", [plain(Tar().file("inside")
                                           .hardlink("h", up + canary + "/outside-target").bytes())])
    layout.image("hardlink-missing", [plain(Tar().hardlink("h", "does/not/exist").bytes())])
    layout.image("hardlink-symlink", [plain(Tar().symlink("s", "/" + canary)
                                            .hardlink("h", "s/outside-target").bytes())])
    bomb, bomb_id = bomb_layer(bomb_mib)
    layout.image("gzip-bomb", [(bomb, bomb_id, True)])
    huge, huge_id = huge_header_layer()
    layout.image("huge-header", [(huge, huge_id, True)])
    whole = Tar().dir("data").file("data/random", os.urandom(256 << 10)).bytes()
    cut = gz(whole)
    layout.image("truncated-gzip", [(cut[: len(cut) // 2], sha(whole), True)])
    other = Tar().file("other").bytes()
    layout.image("wrong-diff-id", [(gz(whole), sha(other), True)])
    layout.image("tamper", [plain(Tar().file("victim", os.urandom(64 << 10)).bytes())])
    # short-size: a manifest whose layer descriptor is one byte short.
    data = Tar().file("short", b"s" * 5000).bytes()
    manifest = layout.image("short-size-ok", [(gz(data), sha(data), True)])
    with open(os.path.join(out, "blobs", "sha256", manifest["digest"][7:]), "rb") as f:
        body = json.load(f)
    body["layers"][0]["size"] -= 1
    layout.tags.pop()
    layout.manifest("short-size", body)
    layout.write_index()
    for t in layout.tags:
        print(t["annotations"]["org.opencontainers.image.ref.name"], t["digest"])


def main():
    args = sys.argv[1:]
    if args and args[0] == "layout":
        bomb_mib = 256
        if "--bomb-mib" in args:
            i = args.index("--bomb-mib")
            bomb_mib = int(args[i + 1])
            del args[i:i + 2]
        write_layout(args[1], args[2], bomb_mib)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
