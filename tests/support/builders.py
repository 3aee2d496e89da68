"""Small fact records for the unit tests: what the readers (elf.py, resolve.py, compare.py)
would have produced, built by hand so a pure decision can be tested without gcc, roots or
subprocesses. Every builder gives the plainest record by default; a test names only the
facts its decision turns on.
"""

from __future__ import annotations

import dataclasses
import posixpath

from bundler.diagnose import Diagnosis
from bundler.elf import ElfFacts, ElfIdent
from bundler.hazards import Hazard
from bundler.ldso import LoaderSearchFacts
from bundler.machine import ARCHITECTURES, Architecture
from bundler.report_model import ArtifactSummary, RunComparison, RunResult, StaticSide
from bundler.resolve import Closure, Library, Loader, Unresolved
from bundler.static import StaticContents

X86_64: Architecture = next(a for a in ARCHITECTURES if a.name == "x86-64")
AARCH64: Architecture = next(a for a in ARCHITECTURES if a.machine == "EM_AARCH64")
LOADER_NAME = "ld-linux-x86-64.so.2"
LOADER_PATH = f"/lib64/{LOADER_NAME}"
DIGEST = "0" * 64


def elf(path: str, *, needed: tuple[str, ...] = (), interpreter: str | None = None,
        soname: str | None = None, file_type: str = "ET_DYN", machine: str = "EM_X86_64",
        rpath: str | None = None, runpath: str | None = None, flags_1: int = 0,
        imported: tuple[str, ...] = (), setuid: bool = False, setgid: bool = False,
        capabilities: bytes | None = None) -> ElfFacts:
    """An ELF file's facts: a shared object unless `interpreter` makes it a program."""
    return ElfFacts(
        path=path, size=1000, ident=ElfIdent(64, True, machine, file_type),
        pie=file_type == "ET_DYN" and interpreter is not None, interpreter=interpreter,
        needed=needed, rpath=rpath, runpath=runpath, flags_1=flags_1, soname=soname,
        version_needs=(), version_definitions=(), abi_tag=None, has_dynamic=True,
        imported_symbols=imported, section_names=(), setuid=setuid, setgid=setgid,
        capabilities=capabilities,
    )


def program(path: str = "/usr/bin/prog", *, needed: tuple[str, ...] = ("libc.so.6",),
            interpreter: str | None = LOADER_PATH, **facts: object) -> ElfFacts:
    return elf(path, needed=needed, interpreter=interpreter, **facts)  # type: ignore[arg-type]


def library(name: str, *, directory: str = "/usr/lib/x86_64-linux-gnu",
            soname: str | None = "", host_path: str | None = None,
            needed: tuple[str, ...] = (), aliases: tuple[str, ...] = (),
            runtime: bool = False, rpath: str | None = None, runpath: str | None = None,
            interpreter: str | None = None) -> Library:
    """A resolved library; `soname` defaults to `name` ("" means: the same as name)."""
    soname = name if soname == "" else soname
    path = posixpath.join(directory, name)
    host = host_path or path
    return Library(
        name=name, soname=soname, path=path, realpath=host, host_path=host,
        found_via="default", via_object=None, search_dir=directory, loaded_by="prog",
        requested_by=("prog",), depth=1, hwcap_variants=(),
        facts=elf(host, needed=needed, soname=soname, rpath=rpath, runpath=runpath,
                  interpreter=interpreter),
        aliases=aliases, runtime=runtime,
    )


LIBC = library("libc.so.6", directory="/lib/x86_64-linux-gnu", needed=(LOADER_NAME,),
               interpreter=LOADER_PATH)


def loader(path: str = LOADER_PATH, realpath: str = "/lib/x86_64-linux-gnu/" + LOADER_NAME
           ) -> Loader:
    return Loader(path=path, realpath=realpath, host_path=realpath,
                  facts=elf(realpath, soname=LOADER_NAME))


def closure(prog: ElfFacts | None = None, libraries: tuple[Library, ...] = (LIBC,), *,
            label: str | None = None, arch: Architecture = X86_64,
            loader_: Loader | bool | None = True,
            unresolved: tuple[Unresolved, ...] = (), argv0: bool = True) -> Closure:
    """The closure of `prog` (default: /usr/bin/prog needing libc.so.6); `argv0`: its
    loader takes --argv0 (glibc >= 2.33)."""
    prog = prog or program()
    the_loader = loader() if loader_ is True else (loader_ or None)
    return Closure(
        program=prog, program_label=label or posixpath.basename(prog.path), arch=arch,
        sysroot="/", loader=the_loader, libraries=libraries, unresolved=unresolved,
        search=LoaderSearchFacts(arch.default_dirs, arch.lib_token, False, argv0), notes=(),
    )


def hazard(code: str = "h", severity: str = "high", *, evidence: tuple[str, ...] = ("e",),
           effect: str | None = None, action: str | None = None,
           subject: str = "static build") -> Hazard:
    return Hazard(code, subject, severity, evidence, effect or f"effect of {code}",
                  action or f"fix {code}")


def static_side(*, really_static: bool = True, same_program: bool = True,
                hazards: tuple[Hazard, ...] = (), size: int = 1000,
                compressed_size: int = 500, contents: StaticContents | None = None,
                min_kernel: str | None = None,
                not_static_because: tuple[str, ...] = (),
                diagnosis: Diagnosis | None = None) -> StaticSide:
    return StaticSide(
        path="/tmp/prog-static", sha256=DIGEST, size=size, compressed_size=compressed_size,
        really_static=really_static, not_static_because=not_static_because,
        same_program=same_program,
        identity=("same file name (prog-static for prog)" if same_program else
                  "warning: other does not look like prog (file names differ); is it the "
                  "same program?"),
        min_kernel=min_kernel, contents=contents, hazards=hazards, diagnosis=diagnosis,
    )


def artifact_summary(*, raw_size: int = 4000, compressed_size: int | None = 2000,
                     glibc: str | None = "2.36", min_kernel: str | None = None,
                     **changes: object) -> ArtifactSummary:
    summary = ArtifactSummary(
        out="/tmp/prog.tar.zst", format="tar.zst", files=10, raw_size=raw_size,
        compressed_size=compressed_size, launcher="loader", interpreter=LOADER_NAME,
        prefix="/opt/prog", glibc=glibc, min_kernel=min_kernel, runtime_parts=(),
    )
    return dataclasses.replace(summary, **changes)  # type: ignore[arg-type]


def runs(static_codes: tuple[int, ...] = (0,), artifact_codes: tuple[int, ...] | None = None,
         *, outputs_match: bool = True, args: tuple[str, ...] = ()) -> RunComparison:
    artifact_codes = static_codes if artifact_codes is None else artifact_codes
    return RunComparison(
        args=args, runs=len(static_codes),
        static=RunResult(static_codes, "out", "", 0.01),
        artifact=RunResult(artifact_codes, "out" if outputs_match else "other", "", 0.02),
        outputs_match=outputs_match, exit_codes_match=static_codes == artifact_codes,
    )
