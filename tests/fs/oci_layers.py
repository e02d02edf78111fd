#!/usr/bin/env python3
"""Prints the layer blob paths of TAG in an OCI image layout, base first.

usage: oci_layers.py LAYOUT TAG
"""
import json
import os
import sys


def blob(layout, digest):
    algo, hexpart = digest.split(":", 1)
    return os.path.join(layout, "blobs", algo, hexpart)


def main():
    layout, tag = sys.argv[1], sys.argv[2]
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    for m in index["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            with open(blob(layout, m["digest"])) as f:
                manifest = json.load(f)
            for layer in manifest["layers"]:
                print(blob(layout, layer["digest"]))
            return 0
    print(f"tag {tag} not in {layout}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
