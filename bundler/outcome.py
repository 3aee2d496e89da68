"""What a build wrote and found: the result the command line summarises and reports."""

from __future__ import annotations

from dataclasses import dataclass

from bundler.manifest import Manifest
from bundler.native_launcher import Launchers
from bundler.plan import BundlePlan
from bundler.report_model import Report
from bundler.resolve import Closure


@dataclass(frozen=True)
class BuildResult:
    plan: BundlePlan
    launchers: Launchers  # what each bin/NAME is
    out: str
    format: str  # output_format(out): zst, gz, xz, tar or dir
    manifest: Manifest  # as the artifact holds it
    raw_size: int  # the files' bytes
    output_size: int  # OUT's bytes (raw_size for a directory)
    sha256: str | None  # OUT's (None for a directory)
    closures: tuple[Closure, ...]
    report: Report
