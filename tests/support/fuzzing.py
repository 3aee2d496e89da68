"""Structure-aware mutation fuzzing of `inspect` and `bundle` on real ELF files.

The corpus is real: programs and libraries built here with gcc (threads, libm, symbol
versions, a DT_NEEDED chain), Debian's sqlite3 and libz, and the Go agent when its cached
build exists (for .go.buildinfo). Each case mutates one to three places chosen inside the
structures the tool reads: the ELF header, program and section header tables, the dynamic
section, the string tables (.dynstr, .shstrtab, .strtab), the version sections, notes,
.interp, .dynsym, .go.buildinfo, .gopclntab; or cuts the file short. It then runs
`inspect` (text and JSON) and, for some cases, `bundle` in this process. A failure is
anything but a clean result or a `BundleError`: a traceback, a run over the time limit, or
files left in the output directory (after a failure anything; after a success, anything
but a complete artifact whose files match its manifest).

Used by tests/integration/test_fuzz.py (a fast seeded subset) and ./scripts/fuzz (the long
run, as `python -m support.fuzzing` with tests/ on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

TIME_LIMIT = 10  # seconds per case
MEMORY_LIMIT = 4 << 30  # address space: a lying size must be a MemoryError, not the OOM killer
INTERESTING = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF,
               0x80000000, 0xFFFFFFFF, 0x7FFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF)

PROGRAM_C = r"""
#include <math.h>
#include <pthread.h>
#include <stdio.h>
int lib_value(void);
static void *work(void *p) { return p; }
int main(int argc, char **argv) {
    pthread_t t; pthread_create(&t, 0, work, 0); pthread_join(t, 0);
    printf("%d %f %s\n", lib_value(), sqrt((double)argc), argv[0]);
    return 0;
}
"""
LIBRARY_C = r"""
int inner_value(void);
__asm__(".symver lib_value_1, lib_value@LIB_1.0");
__asm__(".symver lib_value_2, lib_value@@LIB_2.0");
int lib_value_1(void) { return 1; }
int lib_value_2(void) { return inner_value() + 2; }
"""
INNER_C = "int inner_value(void) { return 40; }\n"
VERSION_SCRIPT = ("LIB_1.0 { global: lib_value; local: *; };\n"
                  "LIB_2.0 { global: lib_value; } LIB_1.0;\n")


class CaseTimeout(Exception):
    """The case ran over TIME_LIMIT (raised by SIGALRM)."""


@dataclass(frozen=True)
class Region:
    """A structure inside a file: a table of `stride`-byte entries, or a blob (stride 0)."""

    kind: str
    offset: int
    size: int
    stride: int = 0


@dataclass(frozen=True)
class Seed:
    name: str
    data: bytes
    regions: tuple[Region, ...]
    library_dir: str | None  # where its own libraries live (for --library-path)


@dataclass
class Tally:
    cases: int = 0
    builds: int = 0
    outcomes: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


# --- the corpus -------------------------------------------------------------------------


def build_corpus(work: Path, extra: tuple[str, ...] = ()) -> list[Seed]:
    """Real ELF files: gcc-built ones, Debian's, the Go agent when it is cached, and any
    `extra` files given (`--binary`, to fuzz other programs than the tests do)."""
    libs = work / "corpus-libs"
    libs.mkdir(parents=True, exist_ok=True)
    (work / "v.map").write_text(VERSION_SCRIPT)
    for name, source in (("inner.c", INNER_C), ("lib.c", LIBRARY_C), ("prog.c", PROGRAM_C)):
        (work / name).write_text(source)
    gcc = ["gcc", "-O1"]
    subprocess.run([*gcc, "-shared", "-fPIC", "-o", str(libs / "libinner.so"),
                    str(work / "inner.c"), "-Wl,-soname,libinner.so"], check=True)
    subprocess.run([*gcc, "-shared", "-fPIC", "-o", str(libs / "liblib.so"), str(work / "lib.c"),
                    f"-Wl,--version-script={work / 'v.map'}", "-Wl,-soname,liblib.so",
                    f"-L{libs}", "-linner", "-Wl,--enable-new-dtags,-rpath,$ORIGIN"], check=True)
    subprocess.run([*gcc, "-o", str(work / "prog"), str(work / "prog.c"), f"-L{libs}", "-llib",
                    "-lm", "-pthread", f"-Wl,-rpath,{libs}"], check=True)
    files = [(work / "prog", str(libs)), (libs / "liblib.so", str(libs)),
             (Path("/usr/bin/sqlite3"), None),
             (Path(os.path.realpath("/lib/x86_64-linux-gnu/libz.so.1")), None)]
    agent = _go_agent()
    if agent is not None:
        files.append((agent, None))
    files += [(Path(os.path.realpath(path)), None) for path in extra]
    seeds = []
    for path, library_dir in files:
        try:
            seeds.append(Seed(path.name, path.read_bytes(), tuple(regions_of(path)),
                              library_dir))
        except (OSError, ELFError, ValueError) as exc:
            print(f"fuzz: {path} left out of the corpus: {exc}", file=sys.stderr)
    if not seeds:
        raise SystemExit("fuzz: no usable ELF file in the corpus")
    return seeds


def _go_agent() -> Path | None:
    """The stripped Go agent from tests/support/gobuild.py's cache, if it was built."""
    cache = Path(os.environ.get("BUNDLE_CACHE_DIR", Path.home() / ".cache" / "bundle-dev"))
    found = sorted((cache / "go-builds").glob("stripped-*/myagent"))
    return found[0] if found else None


def regions_of(path: Path) -> Iterator[Region]:
    """Where the structures the tool reads are, in the pristine file."""
    with path.open("rb") as handle:
        elf = ELFFile(handle)
        header = elf.header
        yield Region("ehdr", 0, header["e_ehsize"])
        if header["e_phnum"]:
            yield Region("phdr", header["e_phoff"], header["e_phentsize"] * header["e_phnum"],
                         header["e_phentsize"])
        if header["e_shnum"]:
            yield Region("shdr", header["e_shoff"], header["e_shentsize"] * header["e_shnum"],
                         header["e_shentsize"])
        wanted = {".dynamic": "dynamic", ".dynstr": "dynstr", ".gnu.version_r": "verneed",
                  ".gnu.version_d": "verdef", ".gnu.version": "versym", ".interp": "interp",
                  ".dynsym": "dynsym", ".go.buildinfo": "buildinfo", ".gnu.hash": "gnuhash",
                  ".shstrtab": "shstrtab", ".strtab": "strtab", ".gopclntab": "pclntab"}
        for section in elf.iter_sections():
            kind = wanted.get(section.name) or ("note" if section.name.startswith(".note")
                                                else None)
            if kind and section["sh_type"] != "SHT_NOBITS" and section["sh_size"]:
                yield Region(kind, section["sh_offset"], section["sh_size"],
                             section["sh_entsize"] if kind in ("dynamic", "dynsym", "versym")
                             else 0)


# --- mutations ---------------------------------------------------------------------------


def mutate(seed: Seed, rng: random.Random) -> tuple[bytes, str]:
    """One to three mutations inside the seed's structures; returns data and a description."""
    data = bytearray(seed.data)
    done = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        region = rng.choice(seed.regions)
        operation = rng.choice(("field", "field", "field", "bitflip", "bytes", "zero",
                                "swap", "truncate"))
        done.append(f"{operation}@{region.kind}")
        data = _apply(operation, region, data, rng)
    return bytes(data), "+".join(done)


def _apply(operation: str, region: Region, data: bytearray, rng: random.Random) -> bytearray:
    end = min(region.offset + region.size, len(data))
    if end <= region.offset:
        return data
    if operation == "truncate":
        return data[: rng.randrange(region.offset, end)]
    if operation == "swap" and region.stride and region.size >= 2 * region.stride:
        count = region.size // region.stride
        a, b = rng.randrange(count), rng.randrange(count)
        src = region.offset + a * region.stride
        dst = region.offset + b * region.stride
        data[dst:dst + region.stride] = data[src:src + region.stride]
        return data
    if operation == "field":
        width = rng.choice((1, 2, 4, 8))
        base = region.offset
        if region.stride:
            base += rng.randrange(max(1, region.size // region.stride)) * region.stride
            span = region.stride
        else:
            span = min(region.size, 64)
        at = base + rng.randrange(max(1, span // width)) * width
        if at + width > len(data):
            return data
        value = rng.choice((*INTERESTING, len(data), len(data) + 1, len(data) - 1,
                            rng.getrandbits(64)))
        data[at:at + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
        return data
    at = rng.randrange(region.offset, end)
    length = min(rng.randint(1, 16), len(data) - at)
    if operation == "bitflip":
        for _ in range(rng.randint(1, 8)):
            spot = rng.randrange(region.offset, end)
            data[spot] ^= 1 << rng.randrange(8)
    elif operation == "zero":
        data[at:at + length] = bytes(length)
    else:  # bytes
        data[at:at + length] = rng.randbytes(length)
    return data


# --- running a case ----------------------------------------------------------------------


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def expired(_signum, _frame) -> None:
        raise CaseTimeout(f"over {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


class Runner:
    """Runs cases in this process, reusing one patch worker (LIEF imported once)."""

    def __init__(self, work: Path) -> None:
        from bundler.patch_worker import PatchWorker

        self.work = work
        self.out = work / "out"
        self.out.mkdir(parents=True, exist_ok=True)
        self.worker_type = PatchWorker
        self.worker = PatchWorker()

    def close(self) -> None:
        self.worker.close()

    def case(self, data: bytes, seed: Seed, index: int, build: bool) -> tuple[str, str]:
        """(outcome, detail): ok, error (a clean BundleError), or a failure kind."""
        from bundler.errors import BundleError
        from bundler.text import one_line

        path = self.work / f"case-{index}"
        path.write_bytes(data)
        path.chmod(0o755)
        outcome, detail = "ok", ""
        try:
            with time_limit(TIME_LIMIT):
                self._inspect(path, seed)
                if build:
                    self._build(path, seed)
        except BundleError as exc:
            outcome, detail = "error", exc.message
            if "\n" in one_line(exc.message):  # what the CLI prints must be one line
                outcome, detail = "FAIL-multiline-error", exc.message
        except CaseTimeout as exc:
            outcome, detail = "FAIL-timeout", str(exc)
        except Exception:  # a traceback is the finding
            outcome, detail = "FAIL-traceback", traceback.format_exc()
        finally:
            path.unlink(missing_ok=True)
        left = self._leftovers(outcome, build)
        if left and not outcome.startswith("FAIL"):
            outcome, detail = "FAIL-leftover", left
        if not self.worker.alive:
            self.worker.close()
            self.worker = self.worker_type()
        return outcome, detail

    def _inspect(self, path: Path, seed: Seed) -> None:
        from bundler.inspection import inspect_program, inspection_json, inspection_text
        from bundler.resolve import ResolveOptions
        from bundler.sysroot import Sysroot

        options = ResolveOptions(library_path=(seed.library_dir,) if seed.library_dir else (),
                                 allow_missing=True)
        result = inspect_program(str(path), Sysroot("/"), options)
        inspection_text(result)
        inspection_json(result)

    def _build(self, path: Path, seed: Seed) -> None:
        from bundler.build import BuildRequest, build
        from bundler.resolve import ResolveOptions

        request = BuildRequest(
            binaries=(str(path),), out=str(self.out / "case.tar.zst"),
            resolve=ResolveOptions(
                library_path=(seed.library_dir,) if seed.library_dir else ()))
        build(request, self.worker)
        self._check_artifact(self.out / "case.tar.zst")

    def _check_artifact(self, artifact: Path) -> None:
        """A success must be whole: unpacks safely and matches its manifest."""
        from bundler.integrity import check_tree
        from bundler.manifest import load as load_manifest
        from bundler.safe_unpack import unpack_artifact

        with tempfile.TemporaryDirectory(dir=self.work) as scratch:
            unpacked = unpack_artifact(str(artifact), scratch)
            problems = check_tree(unpacked.top, load_manifest(unpacked.top, str(artifact)),
                                  unpacked.modes).problems
        if problems:
            raise AssertionError(f"incomplete artifact: {problems[:3]}")

    def _leftovers(self, outcome: str, build: bool) -> str:
        names = sorted(os.listdir(self.out))
        whole = ["case.tar.zst", "case.tar.zst.cdx.json", "case.tar.zst.sha256",
                 "case.tar.zst.spdx.json"]
        ok = build and outcome == "ok" and names == whole
        for name in names:
            target = self.out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        return "" if ok or not names else f"left in the output directory: {names}"


def run(cases: int, seed: int, build_every: int, work: Path, report=print,
        extra: tuple[str, ...] = ()) -> Tally:
    """Run `cases` seeded cases; every `build_every`-th also bundles."""
    previous_limit = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, previous_limit[1]))
    try:
        return _run(cases, seed, build_every, work, report, extra)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, previous_limit)


def _run(cases: int, seed: int, build_every: int, work: Path, report,
         extra: tuple[str, ...]) -> Tally:
    rng = random.Random(seed)
    corpus = build_corpus(work, extra)
    report(f"fuzz: corpus {', '.join(f'{s.name} ({len(s.data)} bytes)' for s in corpus)}")
    runner = Runner(work)
    tally = Tally()
    findings = work / "findings"
    started = time.monotonic()
    try:
        for index in range(cases):
            chosen = rng.choice(corpus)
            data, description = mutate(chosen, rng)
            build = build_every > 0 and index % build_every == 0
            outcome, detail = runner.case(data, chosen, index, build)
            tally.cases += 1
            tally.builds += build
            tally.outcomes[outcome] += 1
            if outcome.startswith("FAIL"):
                findings.mkdir(exist_ok=True)
                saved = findings / f"{index}-{chosen.name}"
                saved.write_bytes(data)
                tally.failures.append(f"case {index} ({chosen.name}: {description}) "
                                      f"{outcome}: {detail.strip().splitlines()[-1][:200]}"
                                      f" [saved as {saved}]")
                report(tally.failures[-1])
            if (index + 1) % 1000 == 0:
                report(f"fuzz: {index + 1} cases, {time.monotonic() - started:.0f} s, "
                       f"{dict(tally.outcomes)}")
    finally:
        runner.close()
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--build-every", type=int, default=20,
                        help="also bundle every Nth case (0: never)")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep findings there")
    parser.add_argument("--binary", action="append", default=[], metavar="PATH",
                        help="add an ELF file to the corpus (repeatable)")
    options = parser.parse_args(argv)
    work = Path(options.keep or tempfile.mkdtemp(prefix="bundle-fuzz."))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    tally = run(options.cases, options.seed, options.build_every, work,
                report=lambda line: print(line, flush=True), extra=tuple(options.binary))
    elapsed = time.monotonic() - started
    print(f"fuzz: {tally.cases} cases ({tally.builds} also bundled), seed {options.seed}, "
          f"{elapsed:.0f} s ({tally.cases / elapsed:.0f} cases/s): {dict(tally.outcomes)}")
    print(f"fuzz: {len(tally.failures)} failures" + (f"; inputs kept in {work}/findings"
                                                    if tally.failures else ""))
    if not tally.failures and not options.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if tally.failures else 0


if __name__ == "__main__":
    sys.exit(main())
