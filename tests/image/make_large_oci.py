#!/usr/bin/env python3
"""Writes an OCI image layout with one large, incompressible gzip layer (a
file of MIB MiB of pseudo-random bytes from a fixed seed), for tests that
need a blob big enough to interrupt mid-download.

usage: make_large_oci.py OUTPUT_DIR TAG MIB
prints: the manifest digest, then the layer digest
"""
import gzip
import io
import os
import random
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_hostile_oci import MTIME, Layout, sha  # noqa: E402


def main():
    out, tag, mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
    data = random.Random(42).randbytes(mib << 20)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        ti = tarfile.TarInfo("large.bin")
        ti.size, ti.mode, ti.mtime = len(data), 0o644, MTIME
        tar.addfile(ti, io.BytesIO(data))
    raw = buf.getvalue()
    layer = gzip.compress(raw, compresslevel=1, mtime=0)
    layout = Layout(out)
    manifest = layout.image(tag, [(layer, sha(raw), True)])
    layout.write_index()
    print(manifest["digest"])
    print(sha(layer))


if __name__ == "__main__":
    main()
