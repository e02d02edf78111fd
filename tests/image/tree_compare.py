#!/usr/bin/env python3
"""Compares two root filesystem trees on everything an image must preserve:
path, type, mode (incl. setuid/setgid/sticky), uid, gid, size, content hash,
mtime, symlink target, rdev, xattrs and hardlink groups (and link counts).
Never follows symlinks. Exits 1 and lists differences if the trees differ.

usage: tree_compare.py [--ignore-root-times] TREE_A TREE_B
"""
import hashlib
import os
import stat
import sys


def describe(root, ignore_root_times):
    entries, inodes = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames + ([] if dirpath != root else [""]):
            path = os.path.join(dirpath, name) if name else dirpath
            rel = "/" + os.path.relpath(path, root) if path != root else "/"
            st = os.lstat(path)
            kind = stat.S_IFMT(st.st_mode)
            e = {"type": kind, "mode": oct(stat.S_IMODE(st.st_mode)), "uid": st.st_uid,
                 "gid": st.st_gid}
            if not (rel == "/" and ignore_root_times):
                e["mtime"] = st.st_mtime_ns
            if stat.S_ISREG(kind):
                h = hashlib.sha256()
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                e["size"], e["sha256"], e["nlink"] = st.st_size, h.hexdigest(), st.st_nlink
            elif stat.S_ISLNK(kind):
                e["target"] = os.readlink(path)
            elif stat.S_ISCHR(kind) or stat.S_ISBLK(kind):
                e["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
            if not stat.S_ISDIR(kind):
                inodes.setdefault(st.st_ino, []).append(rel)
            xattrs = {}
            for key in os.listxattr(path, follow_symlinks=False):
                xattrs[key] = os.getxattr(path, key, follow_symlinks=False).hex()
            e["xattrs"] = xattrs
            entries[rel] = e
    groups = sorted(tuple(sorted(paths)) for paths in inodes.values() if len(paths) > 1)
    return entries, groups


def main():
    args = sys.argv[1:]
    ignore = "--ignore-root-times" in args
    args = [a for a in args if not a.startswith("--")]
    (a, ga), (b, gb) = describe(args[0], ignore), describe(args[1], ignore)
    diffs = []
    for path in sorted(set(a) | set(b)):
        if path not in a or path not in b:
            diffs.append(f"{path}: only in {'A' if path in a else 'B'}")
        elif a[path] != b[path]:
            for key in sorted(set(a[path]) | set(b[path])):
                if a[path].get(key) != b[path].get(key):
                    diffs.append(f"{path}: {key} {a[path].get(key)!r} != {b[path].get(key)!r}")
    if ga != gb:
        diffs.append(f"hardlink groups differ: {ga} != {gb}")
    for d in diffs:
        print(d)
    print(f"{len(a)} entries, {len(ga)} hardlink groups, {len(diffs)} differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
