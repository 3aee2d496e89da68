"""Which NSS modules a bundle needs: the services of the build root's nsswitch.conf.

glibc loads `libnss_SERVICE.so.2` at run time for each service a lookup goes through;
since glibc 2.34 `files` and `dns` are built into libc.so.6. The bundled glibc reads the
*target's* /etc/nsswitch.conf, so the build root's is the best guess of what the fleet
uses; the report says which modules were included and which were not found.
"""

from __future__ import annotations

from bundler.errors import InputError
from bundler.sysroot import Sysroot

NSSWITCH = "/etc/nsswitch.conf"
BUILT_IN_SINCE = (2, 34)
BUILT_IN = ("files", "dns")


def nsswitch_services(text: str) -> tuple[str, ...]:
    """Service names in nsswitch.conf order, without `[NOTFOUND=return]` actions."""
    services: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0]
        if ":" not in line:
            continue
        _, sources = line.split(":", 1)
        depth = 0
        for word in sources.replace("[", " [ ").replace("]", " ] ").split():
            if word == "[":
                depth += 1
            elif word == "]":
                depth = max(0, depth - 1)
            elif depth == 0 and word not in services:
                services.append(word)
    return tuple(services)


def module_names(choice: str, sysroot: Sysroot, glibc_release: tuple[int, ...],
                 uses_nss: bool) -> tuple[str, ...]:
    """libnss_*.so.2 names for `--nss auto|none|LIST`."""
    if choice == "none":
        return ()
    if choice == "auto":
        if not uses_nss:
            return ()
        data = sysroot.read_bytes(NSSWITCH)
        services = nsswitch_services(data.decode("utf-8", "replace")) if data else ()
    else:
        services = tuple(s.strip() for s in choice.split(",") if s.strip())
        bad = [s for s in services if not s.replace("_", "").replace("-", "").isalnum()]
        if bad:
            raise InputError(f"--nss {choice}: not a service name: {', '.join(bad)}")
    built_in = BUILT_IN if glibc_release >= BUILT_IN_SINCE else ()
    return tuple(f"libnss_{s}.so.2" for s in services if s not in built_in)
