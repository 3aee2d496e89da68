"""dpkg's own answers, the oracle for provenance: who installed a file, at which version."""

from __future__ import annotations

import os
import subprocess


def dpkg_owners(host_file: str, root: str = "/") -> set[str]:
    """The packages dpkg names for a file: `dpkg -S '*/NAME'` (with --admindir for a root),
    keeping the listed paths that are this very file (not a symlink to it)."""
    admin = [] if root == "/" else [f"--admindir={root}/var/lib/dpkg"]
    command = ["dpkg", "-S"] if root == "/" else ["dpkg-query", *admin, "-S"]
    name = os.path.basename(os.path.realpath(host_file))
    done = subprocess.run([*command, f"*/{name}"], capture_output=True, text=True)
    owners = set()
    for line in done.stdout.splitlines():
        packages, separator, listed = line.partition(": ")
        if not separator or packages.startswith("diversion by"):
            continue
        full = root.rstrip("/") + listed
        if os.path.exists(full) and not os.path.islink(full) and os.path.samefile(full, host_file):
            owners.update(p.strip() for p in packages.split(","))
    return owners


def dpkg_query_w(package: str, root: str = "/") -> str:
    admin = [] if root == "/" else [f"--admindir={root}/var/lib/dpkg"]
    done = subprocess.run(
        ["dpkg-query", *admin, "-W", "-f",
         "${Version} ${Architecture} ${source:Package} ${source:Version} ${Maintainer}",
         package],
        capture_output=True, text=True, check=True)
    return done.stdout
