"""The systemd unit of an artifact's first program: `bundle service ARTIFACT`, and the unit
the .deb ships with `--service`.

The unit starts the program DIRECTLY at the prefix (`ExecStart=PREFIX/libexec/NAME`), not
through bin/NAME: there the kernel starts the program itself, so /proc/self/exe, a self
re-exec, `ps`/`pidof` and systemd's own view of the main process are all the program's
(README "Start modes"). What the launcher would have done for it is then the unit's job:
each variable the launcher exports for the bundled glibc (the manifest's `environment`
records: GCONV_PATH/LOCPATH or their scoped names) becomes an `Environment=` line, read
from the manifest and never re-derived, so the unit and the launcher cannot disagree.

The hardening is what a typical agent (reads the system, talks to the network, writes its
state under /var) keeps working with, on every systemd a bundled program may meet (CentOS
7's systemd 219 and newer; each directive below exists there, which is why it is
ProtectSystem=full and not strict, and Type=simple and not exec):

- NoNewPrivileges=yes: neither the program nor anything it starts can gain privileges
  through setuid/setgid bits or file capabilities (the service runs as root already; a
  program that must start a setuid helper must drop it, and the comment in the unit says so).
- ProtectSystem=full: /usr, /boot and /etc are read-only for it (no rewriting of the system
  or its configuration); /var, /opt and the program's own prefix stay writable. `strict`
  would make everything read-only and break an agent that writes its state or logs where it
  chose to, unless the unit named each path (ReadWritePaths=), which only its author knows.
- ProtectHome=read-only: users' homes can be read (an agent may collect from them), never
  written.
- PrivateTmp=yes: a /tmp and /var/tmp of its own: no symlink races with users' files, and
  its temporary files go when it stops.
- Restart=on-failure (after RestartSec=5s): an agent that crashes or exits non-zero comes
  back; a clean exit (0) or `systemctl stop` is respected, and the pause keeps a program
  that fails at once from spinning into systemd's start limit within a second.
- After=/Wants=network-online.target: an agent's first act is usually to reach its server.

Values are quoted per systemd.syntax(7): a word holding whitespace, quotes or a backslash
is double-quoted with C escapes; `%` (specifiers) is doubled everywhere, and `$` in
ExecStart (variable expansion) too. A prefix may hold spaces (the build accepts them,
manifest.prefix_problem refuses only ':', ';', '$' and controls), so this matters.
"""

from __future__ import annotations

import re

from bundler.errors import InputError
from bundler.manifest import Manifest
from bundler.package_meta import PackageMeta

# A word systemd would split or unescape: whitespace, quotes, a backslash.
NEEDS_QUOTES = re.compile(r"[\s\"'\\]")

HARDENING = (
    ("NoNewPrivileges", "yes"),
    ("ProtectSystem", "full"),
    ("ProtectHome", "read-only"),
    ("PrivateTmp", "yes"),
)


def description(manifest: Manifest, meta: PackageMeta) -> str:
    """The one-line description: the package's own, else one made from its name and
    programs (shared by the unit's Description= and the package's synopsis)."""
    text = meta.description.strip()
    if text:
        return text
    return f"Bundled {', '.join(manifest.programs)}, with its own glibc and loader"


def unit_text(manifest: Manifest, meta: PackageMeta) -> str:
    """The unit file's text for the manifest's first program, started at the prefix."""
    program, environment = manifest.direct_start()
    summary = description(manifest, meta)
    if not summary.isprintable():
        raise InputError("the description holds a control character (a newline?): "
                         "a unit's Description= is one line")
    exec_start = " ".join(_word(word, dollar=True)
                          for word in (program, *manifest.direct_arguments()))
    lines = [
        "[Unit]",
        f"Description={_specifiers(summary)}",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={exec_start}",
    ]
    lines += [f"Environment={_word(setting)}" for setting in environment]
    lines += [
        "Restart=on-failure",
        "RestartSec=5s",
        "# Hardening (bundle's defaults; README \"The systemd unit\" says why each). A program",
        "# that must start a setuid helper needs NoNewPrivileges=no.",
        *(f"{key}={value}" for key, value in HARDENING),
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def _specifiers(value: str) -> str:
    return value.replace("%", "%%")


def _word(value: str, dollar: bool = False) -> str:
    """One word of a unit setting, as systemd.syntax(7) reads it back to `value`."""
    value = _specifiers(value)
    if dollar:
        value = value.replace("$", "$$")
    if not NEEDS_QUOTES.search(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
