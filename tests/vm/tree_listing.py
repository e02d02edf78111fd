"""Lists a directory tree as JSON lines, one per entry below ROOT: path
(from ROOT, starting with /), type and permission bits, owner, mtime in
nanoseconds, size (not of directories), symlink target, device number,
xattrs and a sha256 of file contents. A mount point below ROOT (from
/proc/self/mountinfo: on overlayfs st_dev cannot tell, files report their
layer's device) is one line {"path", "mount": true}, not descended.

The oracle of the root-diff test: run over the image's tree (mounted on the
host) and over the sandbox's root (in the guest), the two listings say what
changed."""
import hashlib
import json
import os
import stat
import sys


def record(full, path, st):
    rec = {"path": path, "type": stat.S_IFMT(st.st_mode), "mode": stat.S_IMODE(st.st_mode),
           "uid": st.st_uid, "gid": st.st_gid, "mtime": st.st_mtime_ns}
    if not stat.S_ISDIR(st.st_mode):
        rec["size"] = st.st_size
    if stat.S_ISLNK(st.st_mode):
        rec["target"] = os.readlink(full)
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        rec["rdev"] = st.st_rdev
    names = os.listxattr(full, follow_symlinks=False)
    rec["xattrs"] = sorted([n, os.getxattr(full, n, follow_symlinks=False).hex()] for n in names)
    if stat.S_ISREG(st.st_mode):
        h = hashlib.sha256()
        with open(full, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        rec["sha256"] = h.hexdigest()
    return rec


def mount_points(root):
    """The mount points strictly below root, as paths from it."""
    root = os.path.realpath(root)
    points = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            for esc, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
                point = point.replace(esc, ch)
            if root == "/":
                rel = point
            elif point.startswith(root + "/"):
                rel = point[len(root):]
            else:
                continue
            if rel != "/":
                points.add(rel)
    return points


def walk(root, rel, mounts, out):
    full_dir = os.path.join(root, rel.lstrip("/"))
    for name in sorted(os.listdir(full_dir)):
        path = rel.rstrip("/") + "/" + name
        full = os.path.join(full_dir, name)
        if path in mounts:
            out.write(json.dumps({"path": path, "mount": True}) + "\n")
            continue
        st = os.lstat(full)
        out.write(json.dumps(record(full, path, st)) + "\n")
        if stat.S_ISDIR(st.st_mode):
            walk(root, path, mounts, out)


if __name__ == "__main__":
    root = sys.argv[1]
    walk(root, "/", mount_points(root), sys.stdout)
