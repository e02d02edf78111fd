#!/usr/bin/env python3
"""Image archives for the `moat image load` tests, made from an OCI layout
(make_busybox_oci.py writes one) with nothing but the standard library.

  legacy LAYOUT OUT NAME [--dup-layer]
      docker-archive as `docker save` wrote it before v25: manifest.json,
      <config-hex>.json, <id>/layer.tar (uncompressed), <id>/json, <id>/VERSION,
      repositories. --dup-layer repeats the last layer as a symlink
      (<id2>/layer.tar -> ../<id>/layer.tar), as docker does for equal layers.
  docker25 LAYOUT OUT NAME
      docker-archive in its OCI-layout form (docker >= 25): uncompressed layer
      blobs, a new manifest, index.json annotated with io.containerd.image.name
      and org.opencontainers.image.ref.name, manifest.json with RepoTags.
  oci LAYOUT OUT [--name NAME]
      the layout as a tar; --name adds io.containerd.image.name to its entry.
  hostile KIND OUT [LAYOUT]
      traversal | absolute | bad-digest | escape-link | missing-layer | device |
      no-index
"""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def read_layout(layout):
    index = json.load(open(os.path.join(layout, "index.json")))
    desc = index["manifests"][0]

    def blob(d):
        return open(os.path.join(layout, "blobs", "sha256", d.split(":")[1]), "rb").read()

    manifest = json.loads(blob(desc["digest"]))
    config = blob(manifest["config"]["digest"])
    layers = []
    for l in manifest["layers"]:
        data = blob(l["digest"])
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        layers.append(data)
    return desc, manifest, config, layers, blob


def add(tar, name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def add_link(tar, name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    tar.addfile(info)


def legacy(layout, out, name, dup):
    _, _, config, layers, _ = read_layout(layout)
    cfg = json.loads(config)
    if dup:
        layers = layers + [layers[-1]]
        cfg["rootfs"]["diff_ids"].append(cfg["rootfs"]["diff_ids"][-1])
        config = json.dumps(cfg).encode()
    cfg_hex = sha(config).split(":")[1]
    paths = []
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        ids = []
        for i, data in enumerate(layers):
            lid = hashlib.sha256(b"%d" % i + data).hexdigest()
            ids.append(lid)
            info = tarfile.TarInfo(lid)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
            add(tar, lid + "/VERSION", b"1.0")
            add(tar, lid + "/json", json.dumps({"id": lid}).encode())
            if dup and i == len(layers) - 1:
                add_link(tar, lid + "/layer.tar", "../" + ids[-2] + "/layer.tar")
            else:
                add(tar, lid + "/layer.tar", data)
            paths.append(lid + "/layer.tar")
        add(tar, cfg_hex + ".json", config)
        manifest = [{"Config": cfg_hex + ".json", "RepoTags": [name], "Layers": paths}]
        add(tar, "manifest.json", json.dumps(manifest).encode())
        repo, tag = name.rsplit(":", 1)
        add(tar, "repositories", json.dumps({repo: {tag: ids[-1]}}).encode())


def docker25(layout, out, name):
    _, manifest, config, layers, _ = read_layout(layout)
    blobs = {}
    new_layers = []
    for data in layers:
        blobs[sha(data)] = data
        new_layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                           "digest": sha(data), "size": len(data)})
    blobs[sha(config)] = config
    m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": sha(config), "size": len(config)},
         "layers": new_layers}
    mdata = json.dumps(m).encode()
    blobs[sha(mdata)] = mdata
    tag = name.rsplit(":", 1)[1]
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{"mediaType": m["mediaType"], "digest": sha(mdata), "size": len(mdata),
                            "annotations": {"io.containerd.image.name": name,
                                            "org.opencontainers.image.ref.name": tag}}]}
    dm = [{"Config": "blobs/sha256/" + sha(config)[7:], "RepoTags": [name],
           "Layers": ["blobs/sha256/" + sha(l)[7:] for l in layers]}]
    with tarfile.open(out, "w") as tar:
        for d, data in sorted(blobs.items()):
            add(tar, "blobs/sha256/" + d[7:], data)
        add(tar, "index.json", json.dumps(index).encode())
        add(tar, "manifest.json", json.dumps(dm).encode())
        add(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        add(tar, "repositories", b"{}")
    print(sha(mdata))


def oci(layout, out, name):
    index = json.load(open(os.path.join(layout, "index.json")))
    if name:
        for d in index["manifests"]:
            d.setdefault("annotations", {})["io.containerd.image.name"] = name
    with tarfile.open(out, "w") as tar:
        add(tar, "oci-layout", open(os.path.join(layout, "oci-layout"), "rb").read())
        add(tar, "index.json", json.dumps(index).encode())
        bdir = os.path.join(layout, "blobs", "sha256")
        for f in sorted(os.listdir(bdir)):
            add(tar, "./blobs/sha256/" + f, open(os.path.join(bdir, f), "rb").read())


def hostile(kind, out, layout):
    layout_file = b'{"imageLayoutVersion": "1.0.0"}'
    with tarfile.open(out, "w") as tar:
        if kind == "traversal":
            add(tar, "../evil", b"x")
        elif kind == "absolute":
            add(tar, "/tmp/evil", b"x")
        elif kind == "escape-link":
            add_link(tar, "layer.tar", "../../../etc/passwd")
        elif kind == "device":
            info = tarfile.TarInfo("dev")
            info.type = tarfile.CHRTYPE
            info.devmajor, info.devminor = 1, 3
            tar.addfile(info)
        elif kind == "bad-digest":
            # A valid layout whose layer blob is replaced by other bytes of the same size.
            desc, manifest, _, _, blob = read_layout(layout)
            add(tar, "oci-layout", layout_file)
            add(tar, "index.json", json.dumps({"schemaVersion": 2, "manifests": [desc]}).encode())
            for d in [desc["digest"], manifest["config"]["digest"]]:
                add(tar, "blobs/sha256/" + d[7:], blob(d))
            for l in manifest["layers"]:
                data = bytearray(blob(l["digest"]))
                if l is manifest["layers"][-1]:
                    data[len(data) // 2] ^= 0xFF
                add(tar, "blobs/sha256/" + l["digest"][7:], bytes(data))
        elif kind == "missing-layer":
            desc, manifest, _, _, blob = read_layout(layout)
            add(tar, "oci-layout", layout_file)
            add(tar, "index.json", json.dumps({"schemaVersion": 2, "manifests": [desc]}).encode())
            for d in [desc["digest"], manifest["config"]["digest"], manifest["layers"][0]["digest"]]:
                add(tar, "blobs/sha256/" + d[7:], blob(d))
        elif kind == "no-index":
            add(tar, "hello.txt", b"hello")
        else:
            sys.exit("unknown kind " + kind)


def main():
    a = sys.argv[1:]
    if a[0] == "legacy":
        legacy(a[1], a[2], a[3], "--dup-layer" in a)
    elif a[0] == "docker25":
        docker25(a[1], a[2], a[3])
    elif a[0] == "oci":
        oci(a[1], a[2], a[a.index("--name") + 1] if "--name" in a else None)
    elif a[0] == "hostile":
        hostile(a[1], a[2], a[3] if len(a) > 3 else None)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
