"""The one-screen summary printed when an artifact has been written: the verdict first
(what to ship, and why), then what was written and how to install it."""

from __future__ import annotations

import shlex

from bundler.carry import expand
from bundler.compiled_paths import SHOWN, remedy
from bundler.manifest import BUNDLE_KINDS, SBOM_KIND, SBOM_PATHS, SBOM_SUFFIXES
from bundler.native_launcher import launcher_note
from bundler.outcome import BuildResult
from bundler.plan import privileges
from bundler.report_model import glibc_text
from bundler.units import human_size


def summary_text(result: BuildResult) -> str:
    plan = result.plan
    files = [r for r in result.manifest.files
             if r.type == "file" and r.kind not in BUNDLE_KINDS]
    libraries = [r for r in files if r.kind in ("library", "loader")]
    ratio = f" ({result.output_size / result.raw_size:.0%})" if result.raw_size else ""
    lines = [f"bundle: wrote {result.out}", *_verdict_lines(result), *_uncarried(result)]
    lines += [
        f"  programs       {', '.join(plan.programs)} ({plan.arch})",
        f"  files          {len(files)} ({len(libraries)} in lib/, loader {plan.loader_name})",
        f"  size           {human_size(result.raw_size)} raw, "
        f"{human_size(result.output_size)} {result.format}{ratio}",
        f"  glibc bundled  {_glibc(result)}; needs kernel "
        f"{plan.min_kernel or 'unknown'} or newer",
        f"  launcher       {plan.launcher}"
        + ("  (exports LD_LIBRARY_PATH: child processes inherit it)"
           if plan.launcher == "env" else ""),
        "  bin/ launcher  "
        + launcher_note(result.launchers.kind, result.launchers.why,
                        plan.loader_supports_argv0),
    ]
    lines += _licence_lines(result)
    if result.sha256:
        lines.append(f"  sha256         {result.sha256}  ({result.out}.sha256)")
    for closure in result.closures:
        held = privileges(closure.program)
        if held:
            lines.append(f"  PRIVILEGED     {closure.program_label} has {' and '.join(held)}: it "
                         "keeps it only installed at the prefix (tar as root keeps the setuid "
                         "bit; file capabilities need setcap again) and started directly")
    if plan.excluded:
        lines.append(f"  LEFT TO HOST   {', '.join(plan.excluded)} (--exclude): every target "
                     "must have them, built for a glibc no newer than the bundled one")
    for missing in plan.missing:
        lines.append(f"  LEFT OUT       {missing}")
    program = plan.programs[0]
    out, prefix = shlex.quote(result.out), shlex.quote(plan.prefix)
    unpack = {
        "zst": f"tar --zstd -xf {out}",
        "gz": f"tar -xzf {out}",
        "xz": f"tar -xJf {out}",
        "tar": f"tar -xf {out}",
    }.get(result.format)
    tree = shlex.quote(f"{result.out.rstrip('/')}/{plan.name}")
    install = {
        "deb": f"dpkg -i {out}   (or apt-get install ./{result.out.lstrip('./')})",
        "rpm": f"rpm -i {out}   (or dnf install {out})",
        "oci": f"podman load -i {out}   (or skopeo copy oci-archive:{out} ...)",
    }.get(result.format) or (
        f"mkdir -p {prefix} && {unpack} -C {prefix} --strip-components=1"
        if unpack else f"mkdir -p {prefix} && cp -a {tree}/. {prefix}/")
    launcher = shlex.quote(f"{plan.prefix}/bin/{program}")
    direct = shlex.quote(f"{plan.prefix}/libexec/{program}")
    lines += ["", f"  install:  {install}"]
    if result.format == "oci":
        lines.append(f"  run:      podman run --rm IMAGE ARGS   (entrypoint {direct})")
    else:
        lines += [f"  run:      {launcher} ARGS   (or from wherever it is unpacked)",
                  f"  systemd:  ExecStart={direct} (direct start at the prefix)"]
    if plan.env:
        settings = " ".join(f'"{e.variable}={expand(e.template, plan.prefix)}"'
                            for e in plan.env)
        lines.append(f"            Environment={settings}")
    if result.format == "zst":
        lines.append("  old hosts without a zstd-aware tar: use -o NAME.tar.gz")
    return "\n".join(lines) + "\n"


def _verdict_lines(result: BuildResult) -> list[str]:
    """The verdict's headline; its reasons and fixes too unless the report follows (on
    stdout, where a static build is compared: its first section holds them)."""
    verdict = result.report.verdict
    lines = [f"  verdict        {verdict.headline}"]
    if result.report.static is not None:
        return [*lines, "                 (its reasons and fixes: in the report on stdout)"]
    lines += [f"                 - {reason}" for reason in verdict.reasons]
    lines += [f"                 - fix: {fix}" for fix in verdict.fixes]
    return lines


def _uncarried(result: BuildResult) -> list[str]:
    """The compiled-in paths the programs likely need and the artifact does not carry, one
    line each (the first few), and what the scan suggests but cannot decide."""
    scan = result.report.compiled_paths
    if scan is None:
        return []
    missing = scan.uncarried
    lines = [f"  NOT CARRIED    {p.path} ({p.kind}, in {', '.join(p.found_in)}): "
             f"{remedy(p)}" for p in missing[:SHOWN]]
    if len(missing) > SHOWN:
        lines.append(f"                 and {len(missing) - SHOWN} more (the report's "
                     "Compiled-in paths)")
    lines += [f"  SUGGESTION     {line}" for line in scan.suggestions]
    return lines


def _glibc(result: BuildResult) -> str:
    artifact = result.report.artifact
    return glibc_text(artifact) if artifact else result.plan.glibc_release or "unknown"


def _licence_lines(result: BuildResult) -> list[str]:
    """Whose the files are (the report's licence section, counted) and the SBOMs written."""
    lines = []
    found = result.report.licences
    if found is not None:
        lines.append(f"  packages       {len(found.packages)} (copyleft {found.copyleft}, "
                     f"permissive {found.permissive}, unknown {found.unknown}): copyright "
                     "files in .bundle/licenses/, sources named in .bundle/SOURCES")
    sboms = [r.path for r in result.manifest.files if r.kind == SBOM_KIND]
    beside = [f"{result.out.rstrip('/')}{suffix}" for name, suffix in SBOM_SUFFIXES.items()
              if SBOM_PATHS[name] in sboms]
    if beside:
        lines.append(f"  SBOM           {', '.join(beside)} (and in .bundle/)")
    return lines
