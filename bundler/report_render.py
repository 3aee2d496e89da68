"""The report's three renderings: terminal text, Markdown and JSON.

Pure functions of the `Report` model. JSON keys are the dataclass field names (stable);
Markdown is what goes into release notes and `.bundle/report.md`; terminal text is
aligned and coloured only on a terminal, and never when NO_COLOR is set. Text and
Markdown open with the verdict and its reasons (what a reader acts on, in the first
lines), then the details that back it, section by section.
"""

from __future__ import annotations

import dataclasses
import json
import os

from bundler import nss
from bundler.compiled_paths import remedy
from bundler.diagnose import Diagnosis
from bundler.golang import BuildInfo
from bundler.hazards import Hazard
from bundler.package_meta import HOST_NEEDS
from bundler.report_model import Report, glibc_text
from bundler.text import one_line
from bundler.units import human_size

SECTIONS = ("Verdict", "The input", "What it needs unbundled", "The artifact", "Hazards",
            "Against the static build", "Runs side by side", "Licences and sources",
            "Compiled-in paths")

SYMBOLS_SHOWN = 8  # of the symbols that force a glibc version


def report_json(report: Report) -> str:
    data = dataclasses.asdict(report)
    if report.static and report.static.contents is not None:
        data["static"]["contents"]["nss"] = report.static.contents.nss
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def use_color(stream_is_tty: bool) -> bool:
    # no-color.org: NO_COLOR set to a non-empty value turns colour off.
    return stream_is_tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def report_text(report: Report, color: bool = False) -> str:
    def heading(number: int) -> str:
        text = f"{number}. {SECTIONS[number - 1]}"
        return f"\033[1m{text}\033[0m" if color else text

    verdict = f"=> {one_line(report.verdict.headline.upper())}"
    if color:
        tint = "32" if report.verdict.ship == "static" else "33"
        verdict = f"\033[1;{tint}m{verdict}\033[0m"
    lines: list[str] = []
    for number, body in enumerate(_sections(report), start=1):
        lines.append(heading(number))
        if number == 1:
            lines.append(f"  {verdict}")
        # Names, symbols and paths come from the files read: one line each, inert (text.py).
        lines += [f"  {one_line(line)}" if line else "" for line in body]
        lines.append("")
    lines.append(verdict)  # again where the terminal's scrolling stops
    return "\n".join(lines) + "\n"


def _pairs(rows: list[tuple[str, str]]) -> list[str]:
    width = max((len(k) for k, _ in rows), default=0)
    return [f"{key:<{width}}  {value}" for key, value in rows]


def _sections(report: Report) -> list[list[str]]:
    """The sections' bodies in SECTIONS order; the verdict's without its headline, which
    each rendering shows in its own way."""
    return [_verdict(report), _input(report), _needs(report), _artifact(report),
            _hazards(report.hazards), _static(report), _runs(report), _licences(report),
            _compiled(report)]


def _compiled(report: Report) -> list[str]:
    """What the artifact carries besides libraries (recipes, files and trees, helpers,
    variables), then the paths compiled into its objects: what it does not carry first."""
    lines = _carrying(report)
    scan = report.compiled_paths
    if scan is None:
        return [*lines, "compiled-in paths: not scanned (the artifact was written before "
                "bundle scanned them)"]
    lines.append(f"compiled-in paths found in the build root ({len(scan.scanned)} "
                 f"object{'s' if len(scan.scanned) != 1 else ''} scanned):"
                 if scan.paths else f"compiled-in paths: none found in the build root "
                 f"outside the artifact ({len(scan.scanned)} objects scanned)")
    for path in scan.paths:
        state = ("NOT CARRIED" if path.load_bearing and not path.carried else
                 "carried" if path.carried else "not needed")
        where = ", ".join(path.found_in)
        fix = f" -> {remedy(path)}" if path.load_bearing and not path.carried else ""
        lines.append(f"    {state}: {path.path} [{path.kind}, in {where}]: {path.why}{fix}")
    lines += [f"suggestion: {line}" for line in scan.suggestions]
    return lines


def _carrying(report: Report) -> list[str]:
    found = report.carrying
    if found is None:
        return ["carried besides libraries: not recorded"]
    if not (found.recipes or found.carried or found.helpers or found.env or found.notes):
        return ["carried besides libraries: nothing (no recipe applied, no --data, --helper "
                "or --env)"]
    lines = ["carried besides libraries:"]
    for recipe in found.recipes:
        lines.append(f"    recipe {recipe.name}: {recipe.recognised}")
        lines += [f"        {note}" for note in recipe.notes]
    lines += [f"    {c.source} -> {c.dest} ({c.why})" for c in found.carried]
    lines += [f"    helper {name}" for name in found.helpers]
    for env in found.env:
        reach = (f"scoped: only {', '.join(env.scoped_in) or 'the program'} reads it"
                 if env.scoped else "inherited by programs it starts")
        lines.append(f"    {env.variable}={env.template} ({env.why}; {reach})")
    lines += [f"    left out: {note}" for note in found.notes]
    return lines


def _licences(report: Report) -> list[str]:
    found = report.licences
    if found is None:
        return ["not recorded (the artifact was written before bundle recorded packages)"]
    lines = [f"packages: {len(found.packages)} (copyleft {found.copyleft}, permissive "
             f"{found.permissive}, unknown {found.unknown}); their copyright files are in "
             ".bundle/licenses/, their source packages and versions in .bundle/SOURCES"]
    for package in found.packages:
        source = ("" if (package.source, package.source_version) == (package.name,
                                                                      package.version)
                  else f", source {package.source} {package.source_version}")
        lines.append(f"    {package.name} {package.version} {package.architecture}{source}: "
                     f"{package.licence} [{package.kind}; {package.files} "
                     f"file{'s' if package.files != 1 else ''}]")
    if found.unpackaged:
        lines.append(f"not from a package: {', '.join(found.unpackaged)} (their licence and "
                     "source are their builder's to state)")
    if found.copyleft:
        lines.append("copyleft: ship each package's copyright file (carried) and offer the "
                     "exact source (SOURCES names it); the libraries stay replaceable files")
    lines.append(f"package database: {found.note}")
    return lines


def _input(report: Report) -> list[str]:
    i = report.input
    return _pairs([("path", i.path), ("sha256", i.sha256), ("arch", i.arch),
                   ("size", f"{i.size} bytes ({human_size(i.size)})"),
                   ("linkage", f"{i.linkage}, {i.kind}"),
                   ("interpreter", i.interpreter or "none")])


def _needs(report: Report) -> list[str]:
    n = report.needs
    lines = []
    for label, need in (("program", n.glibc_program), ("with its libraries", n.glibc_closure)):
        if need is None:
            lines.append(f"glibc ({label}): no versioned glibc symbols")
            continue
        lines.append(f"glibc ({label}): >= {need.release}, forced by")
        for forced in need.forced_by:
            lines.append(f"    {forced.object}: {forced.version} {symbols_text(forced.symbols)}")
    for other in n.other:
        lines.append(f"needs {other.highest} from {other.library} "
                     f"(by {', '.join(other.needed_by)})")
    if n.libraries:
        lines.append(f"libraries ({len(n.libraries)}):")
        lines += _pairs([(f"    {lib.name}", f"{lib.realpath}  [{lib.reason}]"
                          + ("  (glibc)" if lib.glibc else "")) for lib in n.libraries])
    lines += [f"MISSING {u}" for u in n.unresolved]
    return lines


def _artifact(report: Report) -> list[str]:
    a = report.artifact
    if a is None:
        return ["no artifact (nothing to bundle)"]
    size = f"{human_size(a.raw_size)} raw"
    if a.compressed_size is not None:
        size += f", {human_size(a.compressed_size)} as {a.format}"
    rows = [("output", a.out or "(this artifact: report written at build time, before "
                                 "compression; run results are in the --report file)"),
            *([("sha256", a.sha256)] if a.sha256 else []),
            ("files", str(a.files)), ("size", size),
            ("launcher", a.launcher), ("bin/ launcher", a.launcher_note or a.launcher_type),
            ("interpreter", a.interpreter), ("prefix", a.prefix),
            ("glibc bundled", glibc_text(a)), ("minimum kernel", a.min_kernel or "?")]
    if a.format == "zst":
        rows.append(("note", ".tar.zst needs a zstd-aware tar; old hosts: -o NAME.tar.gz"))
    lines = _pairs(rows)
    lines.append("loaded at run time:")
    lines += [f"    {'included' if p.included else 'left out'}: {p.name} ({p.note})"
              for p in a.runtime_parts]
    if a.sealed or a.unsealed:
        lines.append("sealed (the bundled glibc never opens these host paths):")
        lines += [f"    {item}" for item in a.sealed]
        lines += [f"    NOT SEALED: {item}" for item in a.unsealed]
    if a.start_modes:
        lines.append("start modes:")
        lines += [f"    {mode.how}: {mode.holds}" for mode in a.start_modes]
    return lines


def _hazards(hazards: tuple[Hazard, ...]) -> list[str]:
    if not hazards:
        return ["none found"]
    lines = []
    for hazard in hazards:
        lines.append(f"[{hazard.severity}] {hazard.subject}: {hazard.code}")
        lines.append(f"    evidence: {', '.join(hazard.evidence)}")
        lines.append(f"    effect:   {hazard.effect}")
        lines.append(f"    action:   {hazard.action}")
    return lines


def _static(report: Report) -> list[str]:
    s, a = report.static, report.artifact
    go = ([f"diagnosis of the program given ({os.path.basename(report.input.path)}), "
           "not of the static build:"]
          + [line[2:] if line.startswith("  ") else line
             for line in go_lines(report.go, report.diagnosis) if line]
          if report.go is not None else [])
    if s is None:
        return ["no static build given (--static STATIC_BINARY compares one)", *go]
    rows = [("path", s.path), ("really static", "yes" if s.really_static else
                                "NO: " + "; ".join(s.not_static_because)),
            ("same program", s.identity)]
    if s.contents is not None:
        rows.append(("contains", "; ".join(s.contents.describe()[:2])))
        rows.append(("NSS lookups", nss.static_lookups(nss.static_kind(
            s.contents.go_runtime, any(h.code == "static-nss" for h in s.hazards)))))
    lines = _pairs(rows)
    needed = "nothing at start-up" if s.really_static else "the host's, at start-up"
    if s.hazards:
        needed += "; the build host's glibc for NSS/dlopen"
    # The seed's third route, a container image of the artifact (-o NAME.oci.tar): the
    # same files FROM scratch, so the same sizes but its compression (gzip layers).
    image = a is not None and a.format == "oci"
    table = [("", "static build", "artifact", "container image"),
             ("size raw", human_size(s.size), human_size(a.raw_size) if a else "-",
              human_size(a.raw_size) if a else "-"),
             ("size compressed", f"{human_size(s.compressed_size)} zst",
              f"{human_size(a.compressed_size)} {a.format}"
              if a and a.compressed_size and not image else "-",
              f"{human_size(a.compressed_size)} oci.tar" if image and a and a.compressed_size
              else "about the artifact's .tar.gz"),
             ("glibc on the host", needed,
              f"nothing (brings {a.glibc})" if a and a.glibc else "-",
              "nothing (in the image)"),
             ("minimum kernel", s.min_kernel or "?", (a.min_kernel or "?") if a else "-",
              (a.min_kernel or "?") if a else "-"),
             ("the host needs", "nothing",
              f"tar (or {HOST_NEEDS['deb']}, {HOST_NEEDS['rpm']}: -o NAME.deb, NAME.rpm)",
              f"{HOST_NEEDS['oci']} (-o NAME.oci.tar)")]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    lines += [f"{k:<{widths[0]}}  {v:<{widths[1]}}  {w:<{widths[2]}}  {x}".rstrip()
              for k, v, w, x in table]
    lines.append("hazards inside:" if s.hazards else "hazards inside: none found")
    lines += [f"    [{h.severity}] {h.code}: {', '.join(h.evidence)}" for h in s.hazards]
    lines += go
    return lines


def _runs(report: Report) -> list[str]:
    """Both builds run side by side (--run): exit codes, times, and how the outputs of
    the first runs differ, line by line, with the cause when it is known (run_diff.py)."""
    r = report.runs
    if r is None:
        if report.artifact is not None and report.artifact.out is None:
            return ["none here: this report was written into the artifact before any run; "
                    "runs (--run ARGS) are in the build's own report output (the terminal, "
                    "or --report FILE.md)"]
        return ["not run (with a static build, --run ARGS runs both side by side)"]
    from bundler.run_diff import diff_lines, differences  # runs only: off a plain build's start

    found = differences(r)
    stdout = next((d for d in found if d.stream == "stdout"), None)
    outputs = ("match" if r.outputs_match else
               "DIFFER only in the program's own path (see below)"
               if stdout is not None and stdout.explained else "DIFFER (see below)")
    lines = [f"{r.runs} run{'s' if r.runs != 1 else ''} each, args: "
             f"{' '.join(r.args) or '(none)'}"]
    lines += _pairs([
        ("static", f"exit {list(r.static.exit_codes)}, median "
                   f"{r.static.median_seconds * 1000:.1f} ms"),
        ("artifact", f"exit {list(r.artifact.exit_codes)}, median "
                     f"{r.artifact.median_seconds * 1000:.1f} ms"),
        ("exit codes", "match" if r.exit_codes_match else "DIFFER"),
        ("outputs", outputs),
    ])
    for difference in found:
        lines.append(f"{difference.stream} of the first runs, line by line:")
        lines += [f"    {line}" for line in diff_lines(difference)]
    return lines


def _verdict(report: Report) -> list[str]:
    """The reasons and fixes (the headline is the rendering's own first line)."""
    v = report.verdict
    lines = [f"- {reason}" for reason in v.reasons]
    if v.fixes:
        lines.append("fixes:")
        lines += [f"- {fix}" for fix in v.fixes]
    lines.append(f"(the details: sections 2 to {len(SECTIONS)} below)")
    return lines


def report_markdown(report: Report) -> str:
    """Markdown for release notes: the verdict first as a list (artifact_inspection reads
    it back), then each section preformatted."""
    verdict = report.verdict
    out = [f"# bundle report: {os.path.basename(report.input.path)}", "",
           f"## 1. {SECTIONS[0]}", "", f"**{verdict.headline}**", ""]
    out += [f"- {reason}" for reason in verdict.reasons]
    if verdict.fixes:
        out += ["", "Fixes:", ""] + [f"- {fix}" for fix in verdict.fixes]
    out += ["", f"The details: sections 2 to {len(SECTIONS)} below.", ""]
    for number, body in enumerate(_sections(report)[1:], start=2):
        out += [f"## {number}. {SECTIONS[number - 1]}", "", "```text", *body, "```", ""]
    return "\n".join(out) + "\n"


def go_lines(info: BuildInfo, diagnosis: Diagnosis | None) -> list[str]:
    """The Go build info and the static-readiness diagnosis, for inspect and the report."""
    module = info.main.path if info.main else info.path
    lines = ["", f"Go: {info.go_version}, module {module}, CGO_ENABLED="
                 f"{info.setting('CGO_ENABLED') or '?'}, tags {','.join(info.tags) or '(none)'}"]
    if diagnosis is None:
        return lines
    if not diagnosis.causes:
        lines.append("  static build: nothing found that keeps it from a clean static link")
    else:
        lines.append("  what keeps a static build from being clean, and the fix:")
        for cause in diagnosis.causes:
            lines.append(f"    - {cause.code}: {cause.explanation}")
            lines.append(f"      evidence: {', '.join(cause.evidence)}")
            lines.append(f"      fix: {cause.fix}")
            if cause.rule:
                lines.append(f"      rule: {cause.rule}")
    lines.append("  static build command:")
    lines.append(f"    {diagnosis.command}")
    lines += [f"  this warning will remain: {r}" for r in diagnosis.remaining]
    lines += [f"  note: {n}" for n in diagnosis.notes]
    return lines


def symbols_text(symbols: tuple[str, ...]) -> str:
    """The symbols that force a glibc version, the first SYMBOLS_SHOWN of them (the report
    and `bundle inspect` alike)."""
    more = len(symbols) - SYMBOLS_SHOWN
    return ", ".join(symbols[:SYMBOLS_SHOWN]) + (f" (+{more} more)" if more > 0 else "")
