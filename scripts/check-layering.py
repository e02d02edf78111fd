#!/usr/bin/env python3
"""The include rules of docs/architecture.md, which a compiler does not enforce.

Every folder under src/ is a component (src/image/<job>/ each one); a file
may include headers of its own component, of the components listed for it
below, and of include/moat/ where allowed. The table is a strict layering
(each component only uses ones listed before it), so no include loop can
form. Front ends (src/cli) use libmoat only through include/moat/.
Prints each offending include and exits 1 if there is one.
"""
import os
import re
import sys

MOAT = "moat"  # include/moat/: the public API

# component: what it may include besides itself, in layering order.
ALLOWED = {
    "util": {MOAT},
    "proto": {"util", MOAT},
    "tree": {"proto", "util"},
    "agent": {"tree", "proto", "util"},
    "store": {"util", MOAT},
    "image/oci": {"store", "util", MOAT},
    "image/erofs": {"util", MOAT},
    "image/layers": {"image/erofs", "util", MOAT},
    "image/registry": {"image/oci", "util", MOAT},
    "image/store": {"image/registry", "image/layers", "image/erofs", "image/oci", "store", "util", MOAT},
    "image/tools": {"image/layers", "image/erofs", "util", MOAT},
    "vhost_user": {"util", MOAT},
    "fs": {"vhost_user", "image/erofs", "util", MOAT},
    "net": {"proto", "util", MOAT},
    "tls": {"net", "util", MOAT},
    "netstack": {"net", "tls", "proto", "util", MOAT},
    "vm": {"proto", "util", MOAT},
    "jail": {"util", MOAT},
    "shim_contract": {"vm", "store", "proto", "util", MOAT},
    "root_view": {"image/erofs", "util", MOAT},
    "shim": {"shim_contract", "netstack", "net", "tls", "fs", "vhost_user", "vm", "jail", "root_view", "image/erofs",
             "store", "proto", "util", MOAT},
    "sandbox": {"shim_contract", "net", "tls", "fs", "vm", "jail", "image/store", "image/oci", "image/erofs", "store", "tree",
                "proto", "util", MOAT},
    "json": {"util", MOAT},
    "capi": {MOAT},
    # The server: a front end like the CLI, plus util's header-only base64 and
    # bounded JSON reader.
    "server": {"util", MOAT},
    "cli": {"server", MOAT},
    # moat-runtime: a front end too, with util's small host helpers (the
    # state files, descriptor passing).
    "oci_runtime": {"util", MOAT},
}
# The agent is a static guest binary: of the public API it shares only the
# result type, and it (with what it links: tree, proto) may use only the
# header-only utilities, since moat_util is a host library.
AGENT_PUBLIC = {"moat/result.h"}
GUEST = {"agent", "tree", "proto"}
HEADER_ONLY_UTIL = {"util/result.h", "util/unique_fd.h", "util/write_all.h", "util/path_names.h", "util/hex.h"}

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def component_of(rel):
    parts = rel.split("/")
    if parts[0] == "image" and len(parts) > 2:
        return "image/" + parts[1]
    return parts[0]


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src = os.path.join(root, "src")
    bad = []
    for folder, _, files in os.walk(src):
        for name in sorted(files):
            if not name.endswith((".h", ".cpp")):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, src)
            comp = component_of(rel)
            if comp not in ALLOWED:
                bad.append(f"src/{rel}: component {comp} is not in scripts/check-layering.py")
                continue
            with open(path, errors="replace") as f:
                for number, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    header = m.group(1)
                    target = MOAT if header.startswith("moat/") else component_of(header)
                    if target == comp:
                        continue
                    if comp == "agent" and target == MOAT and header in AGENT_PUBLIC:
                        continue
                    if comp in GUEST and target == "util" and header not in HEADER_ONLY_UTIL:
                        bad.append(f"src/{rel}:{number}: {comp} is linked into the guest; \"{header}\" is host-only")
                    elif target not in ALLOWED[comp]:
                        bad.append(f"src/{rel}:{number}: {comp} may not include \"{header}\"")
    for line in bad:
        print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
