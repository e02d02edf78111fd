#!/usr/bin/env python3
"""Derives a test image from an OCI layout: same layers, a config with extra
Env entries, another WorkingDir, User, Entrypoint or Cmd. Writes a new
layout (blobs hardlinked or copied) whose only tag is NEW_TAG.

usage: derive_image.py SRC_LAYOUT SRC_TAG DST_LAYOUT NEW_TAG
         [--env K=V]... [--workdir DIR] [--user USER]
         [--entrypoint JSON_LIST] [--cmd JSON_LIST]
"""
import argparse
import hashlib
import json
import os
import shutil


def blob_path(layout, digest):
    algo, hexd = digest.split(":", 1)
    return os.path.join(layout, "blobs", algo, hexd)


def put_blob(layout, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(blob_path(layout, digest), "wb") as f:
        f.write(data)
    return digest


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("src_tag")
    ap.add_argument("dst")
    ap.add_argument("new_tag")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--workdir")
    ap.add_argument("--user")
    ap.add_argument("--entrypoint")
    ap.add_argument("--cmd")
    a = ap.parse_args()

    os.makedirs(os.path.join(a.dst, "blobs", "sha256"), exist_ok=True)
    for name in os.listdir(os.path.join(a.src, "blobs", "sha256")):
        src = os.path.join(a.src, "blobs", "sha256", name)
        dst = os.path.join(a.dst, "blobs", "sha256", name)
        if not os.path.exists(dst):
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
    with open(os.path.join(a.src, "index.json")) as f:
        index = json.load(f)
    desc = next(m for m in index["manifests"]
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == a.src_tag)
    with open(blob_path(a.src, desc["digest"]), "rb") as f:
        manifest = json.load(f)
    with open(blob_path(a.src, manifest["config"]["digest"]), "rb") as f:
        config = json.load(f)
    c = config.setdefault("config", {})
    c["Env"] = c.get("Env", []) + a.env
    if a.workdir is not None:
        c["WorkingDir"] = a.workdir
    if a.user is not None:
        c["User"] = a.user
    if a.entrypoint is not None:
        c["Entrypoint"] = json.loads(a.entrypoint)
    if a.cmd is not None:
        c["Cmd"] = json.loads(a.cmd)
    config_bytes = json.dumps(config, sort_keys=True).encode()
    manifest["config"]["digest"] = put_blob(a.dst, config_bytes)
    manifest["config"]["size"] = len(config_bytes)
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    out_desc = {
        "mediaType": desc["mediaType"],
        "digest": put_blob(a.dst, manifest_bytes),
        "size": len(manifest_bytes),
        "annotations": {"org.opencontainers.image.ref.name": a.new_tag},
    }
    with open(os.path.join(a.dst, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": [out_desc]}, f)
    with open(os.path.join(a.dst, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


if __name__ == "__main__":
    main()
