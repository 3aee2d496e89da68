"""`-o NAME.deb`, `-o NAME.rpm`, `-o NAME.oci.tar`: the artifact in the form a fleet installs.

Each is made from the artifact itself: the build writes it as a directory (the same files,
bytes and manifest as the .tar.zst), and the package writer (deb.py, rpm.py, oci.py) wraps
that tree, installed at the artifact's prefix. Here: which endings name a package, the
package's own facts (package_meta.PackageMeta) and putting the package in place beside
its checksum, atomically, as the archive writer does for an archive.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from bundler.manifest import Manifest
from bundler.package_meta import PackageMeta
from bundler.scratch import Held, directory_lock, make_file, written_file

PACKAGE_FORMATS = ((".deb", "deb"), (".rpm", "rpm"), (".oci.tar", "oci"))


def package_format(out: str | None) -> str | None:
    """The package format OUT's ending names, or None (an archive or a directory)."""
    if out is None:
        return None
    return next((fmt for ending, fmt in PACKAGE_FORMATS if out.endswith(ending)), None)


def _writer(fmt: str) -> Callable[[str, Manifest, PackageMeta, str, int], object]:
    if fmt == "deb":
        from bundler.deb import write_deb
        return write_deb
    if fmt == "rpm":
        from bundler.rpm import write_rpm
        return write_rpm
    from bundler.oci import write_oci
    return write_oci


def write_package(fmt: str, tree: str, manifest: Manifest, meta: PackageMeta, out: str,
                  epoch: int) -> tuple[str, int]:
    """The package of the artifact at `tree` (its top directory) written to OUT with
    OUT.sha256 beside it, both renamed into place together; (sha256, size) of OUT."""
    from bundler.archive import sha256_of

    parent = os.path.dirname(os.path.abspath(out))
    part = make_file(parent, os.path.basename(out))
    assert part.handle is not None
    part.handle.close()
    companion: Held | None = None
    try:
        _writer(fmt)(tree, manifest, meta, part.path, epoch)
        os.chmod(part.path, 0o644)
        digest = sha256_of(part.path)
        size = os.path.getsize(part.path)
        companion = written_file(parent, os.path.basename(out) + ".sha256",
                                 f"{digest}  {os.path.basename(out)}\n".encode())
        with directory_lock(parent):
            os.replace(part.path, out)
            os.replace(companion.path, out + ".sha256")
    except BaseException:
        part.discard()
        if companion is not None:
            companion.discard()
        raise
    part.release()
    companion.release()
    return digest, size
