"""Real Go builds for tests: the myagent CGO fixture (go-sqlite3, net, os/user) in the ways
people ship it (dynamic, "static", static with the pure-Go tags), plus tiny pure-Go
cross builds (32-bit, big endian).

Builds are offline (GOPROXY=off; go-sqlite3 comes from Debian's
golang-github-mattn-go-sqlite3-dev through a `replace` in the fixture's go.mod) and cached
in $BUNDLE_CACHE_DIR/go-builds/<variant>-<key>/, keyed by the fixture's sources, the
go-sqlite3 sources, the variant's environment and flags, and `go version`. The fixture is
copied there and built from the copy, so nothing is written into the clone (GOFLAGS=-mod=mod
may rewrite go.mod), and GOCACHE/GOPATH live under go-builds/ too, not in $HOME.

    path = build_agent("static-tags")          # the cached binary: read-only, do not modify
    path = build_agent("dynamic", tmp_path)    # a private copy in tmp_path, free to patch
    info = go_build("static-notags")           # GoBuild: path, link log, seconds, cached

Scripts that need the agent but run no tests (scripts/bench) call it as
`PYTHONPATH=tests python -m support.gobuild VARIANT...`, which prints the cached paths.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from support.needs import need, need_tool
from support.paths import FIXTURES

AGENT_DIR = FIXTURES / "myagent"
PUREGO_DIR = FIXTURES / "purego"
REEXEC_DIR = FIXTURES / "reexec"
# Where Debian's golang-github-mattn-go-sqlite3-dev puts the source (the go.mod `replace`).
SQLITE_SRC = Path("/usr/share/gocode/src/github.com/mattn/go-sqlite3")

# Debian's libsqlite3.a needs libm (log, pow, sqrt... from SQLite's math functions); a
# plain `-extldflags -static` fails with "undefined reference to `log'".
STATIC_LDFLAGS = "-linkmode external -extldflags '-static -lm'"
STATIC_TAGS = "netgo,osusergo,sqlite_omit_load_extension"


@dataclass(frozen=True)
class Variant:
    fixture: Path
    env: tuple[tuple[str, str], ...]
    flags: tuple[str, ...]


VARIANTS: dict[str, Variant] = {
    "dynamic": Variant(AGENT_DIR, (("CGO_ENABLED", "1"),), ()),
    "stripped": Variant(AGENT_DIR, (("CGO_ENABLED", "1"),), ("-ldflags", "-s -w")),
    "trimpath": Variant(AGENT_DIR, (("CGO_ENABLED", "1"),), ("-trimpath",)),
    "static-notags": Variant(AGENT_DIR, (("CGO_ENABLED", "1"),), ("-ldflags", STATIC_LDFLAGS)),
    "static-tags": Variant(AGENT_DIR, (("CGO_ENABLED", "1"),),
                           ("-tags", STATIC_TAGS, "-ldflags", STATIC_LDFLAGS)),
    "reexec": Variant(REEXEC_DIR, (("CGO_ENABLED", "1"),), ()),
    # The agent for arm64 (the release tests' second target): the Debian cross compiler,
    # and go-sqlite3 against the multiarch libsqlite3-dev:arm64 that scripts/test installs.
    "arm64-dynamic": Variant(AGENT_DIR, (("CGO_ENABLED", "1"), ("GOARCH", "arm64"),
                                         ("CC", "aarch64-linux-gnu-gcc")), ()),
    "386-purego": Variant(PUREGO_DIR, (("CGO_ENABLED", "0"), ("GOARCH", "386")), ()),
    "s390x-purego": Variant(PUREGO_DIR, (("CGO_ENABLED", "0"), ("GOARCH", "s390x")), ()),
}


@dataclass(frozen=True)
class GoBuild:
    variant: str
    path: Path        # the cached binary (read-only)
    log: str          # what `go build` printed: the link warnings of the static variants
    command: tuple[str, ...]
    seconds: float    # how long the build took (when it was made, also if now cached)
    cached: bool      # True when this call reused an earlier build


def cache_root() -> Path:
    value = os.environ.get("BUNDLE_CACHE_DIR")
    if value:
        return Path(value)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bundle-dev"


def go_env() -> dict[str, str]:
    """The environment for every go command: offline, hermetic, caches under go-builds/."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GO", "CGO_")) and k not in ("CC", "CXX")}
    root = cache_root() / "go-builds"
    env.update({
        "GOCACHE": str(root / "gocache"),
        "GOPATH": str(root / "gopath"),
        "GOENV": "off",            # ignore the user's `go env -w` settings
        "GOFLAGS": "-mod=mod",
        "GOPROXY": "off",
        "GOSUMDB": "off",
        "GONOSUMDB": "*",
        "GOTOOLCHAIN": "local",    # Go >= 1.21: never fetch another toolchain
        "GOTELEMETRY": "off",      # Go >= 1.23: no writes to ~/.config/go
    })
    return env


@cache
def go_version() -> str:
    go = shutil.which("go")
    if go is None:
        return ""
    return subprocess.run([go, "version"], capture_output=True, text=True, env=go_env(),
                          check=True).stdout.strip()


def _hash_tree(digest: hashlib._Hash, top: Path, suffixes: tuple[str, ...]) -> None:
    for path in sorted(p for p in top.rglob("*") if p.is_file() and p.name.endswith(suffixes)):
        digest.update(str(path.relative_to(top)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")


def build_key(variant: str) -> str:
    spec = VARIANTS[variant]
    digest = hashlib.sha256()
    digest.update(repr((variant, spec.env, spec.flags, go_version())).encode())
    _hash_tree(digest, spec.fixture, (".go", ".mod", ".sum"))
    if spec.fixture == AGENT_DIR and SQLITE_SRC.is_dir():
        _hash_tree(digest, SQLITE_SRC, (".go", ".c", ".h", ".mod"))
    return digest.hexdigest()[:16]


def _need_toolchain(variant: str) -> str:
    go = need_tool("go")
    compiler = dict(VARIANTS[variant].env).get("CC", "gcc")
    if VARIANTS[variant].fixture == AGENT_DIR:
        need_tool(compiler)
        need(SQLITE_SRC.is_dir(), f"golang-github-mattn-go-sqlite3-dev is not installed "
             f"(no {SQLITE_SRC})")
    return go


@contextlib.contextmanager
def _locked(lock: Path) -> Iterator[None]:
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def go_build(variant: str) -> GoBuild:
    """Build `variant` (or reuse the cached build); fails with go's output if it fails."""
    if variant not in VARIANTS:
        raise KeyError(f"unknown Go build variant {variant!r}; known: {sorted(VARIANTS)}")
    go = _need_toolchain(variant)
    spec = VARIANTS[variant]
    out_dir = cache_root() / "go-builds" / f"{variant}-{build_key(variant)}"
    binary = out_dir / spec.fixture.name
    command = (go, "build", "-buildvcs=false", *spec.flags, "-o", str(binary), ".")
    with _locked(out_dir.with_name(out_dir.name + ".lock")):
        if (out_dir / ".complete").is_file():
            return GoBuild(variant, binary, (out_dir / "build.log").read_text(), command,
                           float((out_dir / "seconds").read_text()), cached=True)
        shutil.rmtree(out_dir, ignore_errors=True)
        src = out_dir / "src"
        shutil.copytree(spec.fixture, src)
        env = go_env()
        env.update(spec.env)
        start = time.monotonic()
        result = subprocess.run(command, cwd=src, env=env, capture_output=True, text=True)
        seconds = time.monotonic() - start
        log = result.stdout + result.stderr
        if result.returncode != 0:
            raise AssertionError(f"go build of {variant} failed ({result.returncode}):\n"
                                 f"{' '.join(command)}\n{log}")
        binary.chmod(0o555)
        (out_dir / "build.log").write_text(log)
        (out_dir / "command").write_text(shlex.join(command) + "\n")
        (out_dir / "seconds").write_text(f"{seconds:.3f}\n")
        (out_dir / ".complete").touch()
    return GoBuild(variant, binary, log, command, seconds, cached=False)


def build_agent(variant: str, dest: Path | None = None) -> Path:
    """The binary of `variant`: the cached one (read-only), or a writable copy in `dest`."""
    path = go_build(variant).path
    if dest is None:
        return path
    dest.mkdir(parents=True, exist_ok=True)
    copy = dest / f"{path.name}-{variant}"
    shutil.copyfile(path, copy)
    copy.chmod(0o755)
    return copy


def assert_agent_output(stdout: str, binary: Path | str) -> None:
    """The four lines the example agent prints when everything works, run as `binary`."""
    lines = stdout.splitlines()
    assert len(lines) == 4, stdout
    assert lines[0] == "sqlite: hello"
    assert lines[1].startswith("lookup: ok ")
    assert lines[2] == f"user: {pwd.getpwuid(os.getuid()).pw_name}"
    assert lines[3] == f"exe: {binary}"


def main(variants: list[str]) -> int:
    """Build (or reuse) each variant and print its cached binary's path, one a line; a
    missing toolchain or a failed build is one line on stderr and exit status 1."""
    try:
        paths = [go_build(variant).path for variant in variants]
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        print(f"gobuild: cannot build: {exc.msg}", file=sys.stderr)
        return 1
    except (KeyError, AssertionError) as exc:  # an unknown variant; go build's own failure
        print(f"gobuild: {exc.args[0]}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
