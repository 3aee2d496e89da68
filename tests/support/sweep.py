"""Bundle every program of a machine's directories and hold each artifact to its program.

Each ELF executable of the directories (default /usr/bin; symlinks given by their own
names, as a user would) is bundled by `python -m bundler` in its own process, several at
once. A build ends one of three ways: an artifact; a refusal (exit 2, one line: a static
program, a privileged one, a library); anything else is a crash, the failure this sweep
looks for (a traceback, another exit code). Each artifact is then unpacked and its
`bin/NAME --version` run in a bubblewrap sandbox (the host's root read-only, no network,
its own /tmp) on this host and, with --root, on that root (an old Debian, say), against
the program itself run the same way on this host: same exit code and the same stdout,
once the program's own path is written alike on both sides.

A difference is reported, not failed: some are by design and README says so (a locale
that is not bundled falls back to C, so `cmp --version` writes "Torbjorn" where the host's
C.UTF-8 gives "Torbjörn"; programs that find their runtime beside their own executable,
the JDK's, need their tree). Run by ./scripts/sweep; exits 1 when a build crashed.
First run (2026-11-28, Debian 12, 1,124 files of /usr/bin, /usr/sbin and
/usr/lib/x86_64-linux-gnu/*/): three crashes, the git-* links (fixed since).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from support.cli import cli_command, cli_env

RUN_SECONDS = 5  # for one `--version`
BUILD_SECONDS = 300
SANDBOX = ("bwrap", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--unshare-all",
           "--die-with-parent", "--new-session")


@dataclass(frozen=True)
class Built:
    program: str
    code: int  # bundle's exit code
    said: str  # its stderr's first line (a refusal's reason, or the traceback's start)
    artifact: Path | None


@dataclass(frozen=True)
class Ran:
    code: int | str  # "timeout" when it ran over RUN_SECONDS
    stdout: bytes
    stderr: bytes


def programs_in(directories: Sequence[str]) -> Iterator[str]:
    """The ELF executables of `directories` (not below them), by the names found there."""
    for directory in directories:
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            if not entry.is_file() or not os.access(entry.path, os.X_OK):
                continue
            try:
                with open(entry.path, "rb") as handle:
                    if handle.read(4) == b"\x7fELF":
                        yield entry.path
            except OSError:
                continue


def build(program: str, out: Path) -> Built:
    artifact = out / (program.strip("/").replace("/", "_") + ".tar.zst")
    try:
        done = subprocess.run(cli_command(program, "-o", str(artifact), "--sbom", "cyclonedx"),
                              capture_output=True, text=True, env=cli_env(),
                              timeout=BUILD_SECONDS, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Built(program, -1, f"over {BUILD_SECONDS} s", None)
    lines = done.stderr.strip().splitlines() or [""]
    said = lines[0] if done.returncode in (0, 2) else lines[-1]  # a traceback's exception
    return Built(program, done.returncode, said, artifact if done.returncode == 0 else None)


def run(root: str, binds: Sequence[tuple[str, str]], argv: Sequence[str]) -> Ran:
    command = [SANDBOX[0], "--ro-bind", root, "/", *SANDBOX[1:]]
    for source, dest in binds:
        command += ["--ro-bind", source, dest]
    try:
        done = subprocess.run([*command, *argv], capture_output=True, timeout=RUN_SECONDS,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Ran("timeout", b"", b"")
    return Ran(done.returncode, done.stdout[:4096], done.stderr[:4096])


def held_to(built: Built, roots: Sequence[str], scratch: Path) -> list[str]:
    """How the artifact's `--version` differs from the program's, on each root ([]: not)."""
    assert built.artifact is not None
    place = Path(tempfile.mkdtemp(dir=scratch))
    try:
        subprocess.run(["tar", "--zstd", "-xf", str(built.artifact), "-C", str(place)],
                       check=True)
        top = next(place.iterdir())
        name = os.path.basename(built.program)
        where = os.path.dirname(built.program)  # (under /tmp too, which is the sandbox's)
        home = run("/", [(where, where)], [built.program, "--version"])
        differences = []
        for root in roots:
            there = run(root, [(str(top), "/tmp/swept")], ["/tmp/swept/bin/" + name,
                                                           "--version"])
            ours = there.stdout.replace(b"/tmp/swept/bin/" + name.encode(), b"PROGRAM")
            theirs = home.stdout.replace(built.program.encode(), b"PROGRAM")
            if (there.code, ours) != (home.code, theirs):
                reason = there.stderr.decode(errors="replace").strip().splitlines()[:1]
                differences.append(f"on {root}: exit {there.code} (at home {home.code})"
                                   f"{', stdout differs' if ours != theirs else ''}"
                                   f"{': ' + reason[0][:160] if reason else ''}")
        return differences
    finally:
        shutil.rmtree(place, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directories", nargs="*", default=["/usr/bin"])
    parser.add_argument("--root", action="append", default=[],
                        help="also run each artifact on this root (repeatable)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--keep", help="write the artifacts here (else a temporary dir)")
    args = parser.parse_args(argv)
    if shutil.which("bwrap") is None:
        print("sweep: needs bwrap (Debian's bubblewrap)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bundle-sweep-") as scratch:
        out = Path(args.keep or scratch) / "artifacts"
        out.mkdir(parents=True, exist_ok=True)
        programs = list(programs_in(args.directories))
        print(f"sweep: {len(programs)} programs, {args.jobs} at a time", flush=True)
        roots = ["/", *args.root]
        outcomes: Counter[str] = Counter()
        crashes, differing = [], []
        with ThreadPoolExecutor(args.jobs) as pool:
            for built in pool.map(lambda p: build(p, out), programs):
                if built.code == 2:
                    reason = built.said.removeprefix("bundle: error: ")
                    outcomes["refused: " + reason.removeprefix(built.program + ": ")[:60]] += 1
                elif built.code != 0:
                    outcomes["CRASHED"] += 1
                    crashes.append(f"{built.program}: exit {built.code}: {built.said}")
                else:
                    differences = held_to(built, roots, Path(scratch))
                    outcomes["built, runs alike" if not differences else "built, differs"] += 1
                    differing += [f"{built.program}: {d}" for d in differences]
                    if not args.keep:
                        built.artifact.unlink()  # type: ignore[union-attr]
        for outcome, count in sorted(outcomes.items(), key=lambda item: -item[1]):
            print(f"{count:6}  {outcome}")
        for line in differing:
            print(f"differs  {line}")
        for line in crashes:
            print(f"CRASHED  {line}")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
