"""Everything read about one program, gathered once: `bundle inspect` shows it, the build
plans and reports from it.

The group travels as one record, not as a closure, a libc, its release, the build info and
a diagnosis passed side by side through every call that needs two of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from bundler.diagnose import Diagnosis, go_diagnosis
from bundler.golang import BuildInfo, read_build_info
from bundler.requirements import Requirements, requirements_of
from bundler.resolve import Closure, Library, libc_release
from bundler.static import StaticContents, static_contents
from bundler.sysroot import Sysroot


@dataclass(frozen=True)
class ProgramFacts:
    closure: Closure
    libc: Library | None  # the closure's libc.so.6: the glibc that would be bundled
    glibc_release: str | None  # read from that libc's banner
    requirements: Requirements
    static: StaticContents | None  # what a static program has inside (None: dynamic)
    go: BuildInfo | None = None
    diagnosis: Diagnosis | None = None  # why a Go program's static build is not clean

    @property
    def min_kernel(self) -> str | None:
        """The kernel the bundled glibc needs (its ABI tag)."""
        tag = self.libc.facts.abi_tag if self.libc else None
        return tag.describe() if tag else None


def program_facts(closure: Closure, sysroot: Sysroot) -> ProgramFacts:
    """Read what the closure does not already hold: the libc's release, the static
    contents, the Go build info and, for Go, the diagnosis (static archives in `sysroot`)."""
    path = closure.program.path
    static = static_contents(path) if closure.program.is_static else None
    libc, release = libc_release(closure)
    go = read_build_info(path)
    diagnosis = go_diagnosis(closure, go, sysroot) if go is not None else None
    return ProgramFacts(closure, libc, release, requirements_of(closure, libc, release), static,
                        go, diagnosis)
