"""What a statically linked program carries inside, read from its bytes.

A static glibc program still needs the build host's glibc at run time for NSS lookups
and dlopen (GLIBC-NOTES section 3), so `inspect` says which libc and runtime it holds
and whether it contains the NSS machinery. The markers are strings glibc and Go always
embed; they survive `strip`.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

_GLIBC_MARKERS = (b"GLIBC_TUNABLES", b"glibc detected")
_MUSL_MARKERS = (b"musl libc",)
_GO_MARKER = b"\xff Go buildinf:"
_NSS_MARKERS = (b"libnss_%s.so", b"nsswitch.conf")


@dataclass(frozen=True)
class StaticContents:
    libc: str | None  # "glibc", "musl" or None (e.g. a pure Go program)
    go_runtime: bool
    nss_markers: tuple[str, ...] = ()  # strings of glibc's NSS loader found inside

    @property
    def nss(self) -> bool:
        """glibc's NSS loader is inside: lookups load the host's libnss_*.so.2."""
        return bool(self.nss_markers)

    def describe(self) -> list[str]:
        parts = []
        if self.libc:
            parts.append(f"{self.libc} (linked in)")
        if self.go_runtime:
            parts.append("the Go runtime")
        if not parts:
            parts.append("no libc that could be recognised")
        if self.nss:
            parts.append("glibc's NSS loader: lookups through modules other than files and "
                         "dns dlopen the target's libnss_*.so.2, which need the build host's "
                         "glibc")
        return parts


def static_contents(path: str) -> StaticContents:
    with open(path, "rb") as handle:
        try:
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # empty file
            return StaticContents(None, False)
        with data:
            libc = None
            if any(data.find(m) >= 0 for m in _GLIBC_MARKERS):
                libc = "glibc"
            elif any(data.find(m) >= 0 for m in _MUSL_MARKERS):
                libc = "musl"
            go = data.find(_GO_MARKER) >= 0
            markers = tuple(m.decode() for m in _NSS_MARKERS if data.find(m) >= 0)
            return StaticContents(libc, go, markers if libc == "glibc" else ())
