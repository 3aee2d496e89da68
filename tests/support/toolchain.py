"""The host's own tools as builders and oracles: real gcc builds, binutils, and the host
loader's `--list` to check what the resolver says against what glibc really maps."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from support.needs import need_tool

HOST_LOADER = "/lib64/ld-linux-x86-64.so.2"


def gcc(
    out: Path, sources: dict[str, str] | str, *flags: str, shared: bool = False,
    cwd: Path | None = None,
) -> Path:
    """Compile C source text with gcc into `out`; `flags` go last (e.g. -L, -l, -Wl,...)."""
    compiler = need_tool("gcc")
    work = cwd or out.parent
    work.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(sources, str):
        sources = {f"{out.name}.c": sources}
    files = []
    for name, text in sources.items():
        source = work / name
        source.write_text(text)
        files.append(str(source))
    command = [compiler, "-o", str(out), *files]
    if shared:
        command[1:1] = ["-shared", "-fPIC"]
    command += list(flags)
    subprocess.run(command, check=True, capture_output=True, text=True)
    return out


def tool(name: str, *args: str) -> str:
    """stdout of a system tool that must succeed (readelf, patchelf, objdump ...)."""
    result = subprocess.run([need_tool(name), *args], capture_output=True, text=True)
    assert result.returncode == 0, (name, args, result.stderr)
    return result.stdout


def ld_so_list(program: Path | str, *, library_path: Sequence[str] = (), loader: str = HOST_LOADER,
               ) -> set[str]:
    """Real paths of everything the host loader maps for `program` (vdso aside)."""
    command = [loader]
    if library_path:
        command += ["--library-path", ":".join(library_path)]
    command += ["--list", str(program)]
    result = subprocess.run(command, capture_output=True, text=True, env={})
    if result.returncode != 0:
        raise AssertionError(f"ld.so --list failed: {result.stdout}{result.stderr}")
    paths = set()
    for line in result.stdout.splitlines():
        match = re.search(r"(?:=> )?(/\S+) \(0x", line)
        if match:
            paths.add(os.path.realpath(match.group(1)))
    return paths
