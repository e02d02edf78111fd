#!/usr/bin/env python3
"""Writes a small busybox OCI image layout for the registry tests.

Layer 1: the host's static busybox as /bin/busybox, a symlink per applet,
/etc/hello.txt, /etc/gone.txt and /opt/old/file. Layer 2 deletes
/etc/gone.txt (whiteout) and /opt/old (whiteout of a directory) and adds
/etc/new.txt. Both layers are gzipped; everything is deterministic (fixed
mtimes, gzip mtime 0), so the same host busybox gives the same digests.

With --multi, the tag names an image index of two platforms: linux/amd64
(the image above) and linux/arm64 (one layer with /etc/arch = "arm64"),
plus an attestation-like manifest with platform unknown/unknown.

usage: make_busybox_oci.py [--multi] [--busybox PATH] OUTPUT_DIR TAG
prints: the digest the tag points at
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile

MTIME = 1700000000


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Layout:
    def __init__(self, root):
        self.root = root
        os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(root, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)

    def blob(self, data, media_type, **extra):
        digest = sha(data)
        with open(os.path.join(self.root, "blobs", "sha256", digest[7:]), "wb") as f:
            f.write(data)
        desc = {"mediaType": media_type, "digest": digest, "size": len(data)}
        desc.update(extra)
        return desc

    def index(self, desc, tag):
        desc = dict(desc)
        desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
        body = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [desc]}
        with open(os.path.join(self.root, "index.json"), "w") as f:
            json.dump(body, f)


def tar_layer(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            ti = tarfile.TarInfo(e["name"])
            ti.mtime = MTIME
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            kind = e.get("type", "file")
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(ti)
            elif kind == "symlink":
                ti.type, ti.mode, ti.linkname = tarfile.SYMTYPE, 0o777, e["target"]
                tar.addfile(ti)
            else:
                data = e.get("data", b"")
                ti.mode, ti.size = e.get("mode", 0o644), len(data)
                tar.addfile(ti, io.BytesIO(data))
    plain = buf.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, compresslevel=6) as g:
        g.write(plain)
    return plain, gz.getvalue()


def image(layout, arch, layers):
    descs, diff_ids = [], []
    for entries in layers:
        plain, gz = tar_layer(entries)
        diff_ids.append(sha(plain))
        descs.append(layout.blob(gz, "application/vnd.oci.image.layer.v1.tar+gzip"))
    config = {
        "created": "2023-11-14T22:13:20Z",
        "architecture": arch,
        "os": "linux",
        "config": {
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["echo hello"],
            "Env": ["PATH=/bin", "GREETING=hi there"],
            "WorkingDir": "/etc",
            "User": "0:0",
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    cfg = layout.blob(json.dumps(config, sort_keys=True).encode(),
                      "application/vnd.oci.image.config.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": cfg, "layers": descs}
    return layout.blob(json.dumps(manifest, sort_keys=True).encode(),
                       "application/vnd.oci.image.manifest.v1+json")


def busybox_layers(busybox):
    with open(busybox, "rb") as f:
        bb = f.read()
    applets = subprocess.run([busybox, "--list"], check=True, capture_output=True,
                             text=True).stdout.split()
    l1 = [{"name": "bin", "type": "dir"},
          {"name": "bin/busybox", "data": bb, "mode": 0o755}]
    l1 += [{"name": "bin/" + a, "type": "symlink", "target": "busybox"}
           for a in sorted(set(applets)) if a != "busybox"]
    l1 += [{"name": "etc", "type": "dir"},
           {"name": "etc/hello.txt", "data": b"hello from layer 1\n"},
           {"name": "etc/gone.txt", "data": b"deleted by layer 2\n"},
           {"name": "opt", "type": "dir"},
           {"name": "opt/old", "type": "dir"},
           {"name": "opt/old/file", "data": b"old\n"}]
    l2 = [{"name": "etc", "type": "dir"},
          {"name": "etc/.wh.gone.txt"},
          {"name": "etc/new.txt", "data": b"added by layer 2\n"},
          {"name": "opt", "type": "dir"},
          {"name": "opt/.wh.old"}]
    return [l1, l2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--multi", action="store_true")
    ap.add_argument("--busybox", default="/bin/busybox")
    ap.add_argument("output")
    ap.add_argument("tag")
    args = ap.parse_args()
    layout = Layout(args.output)
    amd64 = image(layout, "amd64", busybox_layers(args.busybox))
    if not args.multi:
        layout.index(amd64, args.tag)
        print(amd64["digest"])
        return
    arm64 = image(layout, "arm64", [[{"name": "etc", "type": "dir"},
                                     {"name": "etc/arch", "data": b"arm64\n"}]])
    amd64["platform"] = {"os": "linux", "architecture": "amd64"}
    arm64["platform"] = {"os": "linux", "architecture": "arm64", "variant": "v8"}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [arm64, amd64]}
    desc = layout.blob(json.dumps(index, sort_keys=True).encode(),
                       "application/vnd.oci.image.index.v1+json")
    layout.index(desc, args.tag)
    print(desc["digest"])


if __name__ == "__main__":
    main()
