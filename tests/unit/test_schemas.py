"""The shipped JSON Schemas: valid, closed, in step with the code, and not permissive.

The integration tests (tests/integration/test_json_contract.py) validate what real commands
print; these check the schemas themselves, and that a report or verify result built from
small records passes while one with a renamed, added or mistyped key does not.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import typing
from collections.abc import Iterator

import pytest
from jsonschema import Draft202012Validator
from support.builders import DIGEST, artifact_summary, hazard, runs, static_side
from support.schemas import validate, violations

from bundler import nss
from bundler.archive import FORMATS
from bundler.artifact_inspection import ARTIFACT_JSON_FORMAT_VERSION
from bundler.choices import LAUNCHER_MODES, LauncherType
from bundler.cli import main
from bundler.diagnose import Cause, Diagnosis
from bundler.errors import InputError
from bundler.golang import BuildInfo, Module
from bundler.hazards import Severity
from bundler.inspection import JSON_FORMAT_VERSION
from bundler.integrity import IntegrityResult
from bundler.inventory import LICENCE_KINDS
from bundler.isolation import Outcome
from bundler.packaging import PACKAGE_FORMATS
from bundler.release_diff_render import DIFF_JSON_FORMAT_VERSION
from bundler.release_render import RELEASE_FORMAT_VERSION
from bundler.report_model import (
    REPORT_FORMAT_VERSION,
    InputSummary,
    Licensing,
    Needs,
    PackageLine,
    Report,
    RuntimePart,
    Ship,
    assemble,
)
from bundler.report_render import report_json
from bundler.requirements import ForcedBy, GlibcNeed, OtherNeed
from bundler.resolve import FoundVia
from bundler.schemas import ALIASES, load_schema, schema_names
from bundler.signing import SignatureCheck
from bundler.start_modes import StartMode
from bundler.static import StaticContents
from bundler.verdict import decide
from bundler.verify import ChecksumState, RunCheck, VerifyResult
from bundler.verify_json import VERIFY_JSON_FORMAT_VERSION, verify_json

DRAFT = "https://json-schema.org/draft/2020-12/schema"
# The outputs this contract covers, with the version their code writes.
VERSIONS = {"build": REPORT_FORMAT_VERSION, "inspect-program": JSON_FORMAT_VERSION,
            "inspect-artifact": ARTIFACT_JSON_FORMAT_VERSION,
            "verify": VERIFY_JSON_FORMAT_VERSION, "diff": DIFF_JSON_FORMAT_VERSION,
            "release": RELEASE_FORMAT_VERSION}
FILES = sorted(set(schema_names()) - set(ALIASES))


def subschemas(schema: object, where: str = "") -> Iterator[tuple[str, dict]]:
    """Every object schema inside `schema`, with where it is."""
    if isinstance(schema, dict):
        yield where or "(top)", schema
        for key, value in schema.items():
            yield from subschemas(value, f"{where}/{key}")
    elif isinstance(schema, list):
        for number, value in enumerate(schema):
            yield from subschemas(value, f"{where}/{number}")


@pytest.mark.parametrize("name", FILES)
def test_each_shipped_schema_is_a_valid_draft_2020_12_schema(name: str) -> None:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == DRAFT
    version = schema["properties"]["format_version"]["const"]
    assert schema["$id"] == f"urn:bundle:schema:{name}:{version}"
    assert "format_version" in schema["required"]


@pytest.mark.parametrize("name", FILES)
def test_every_object_is_closed_and_every_key_required(name: str) -> None:
    """A key added, renamed or dropped in the output fails validation until the schema
    (and format_version) follow: optional keys would let one go by unnoticed."""
    for where, schema in subschemas(load_schema(name)):
        if "properties" in schema and not where.endswith("/properties"):
            assert schema.get("additionalProperties") is False, where
            assert sorted(schema["required"]) == sorted(schema["properties"]), where


def test_the_format_versions_are_the_codes() -> None:
    for name, version in VERSIONS.items():
        schema = load_schema(name)
        assert schema["properties"]["format_version"]["const"] == version, name
        assert schema["$id"].endswith(f":{version}"), name


def _enum(schema: dict, *path: str) -> set:
    for key in path:
        schema = schema[key]
    return set(schema["enum"])


def test_the_closed_sets_are_the_codes() -> None:
    """Each enum is the code's own set of values (a Literal or the constants it writes)."""
    build, verify = load_schema("build")["$defs"], load_schema("verify")
    artifact = build["ArtifactSummary"]["properties"]
    assert _enum(artifact, "format") == ({f for _, f in FORMATS} | {"dir", None}
                                         | {f for _, f in PACKAGE_FORMATS})
    assert _enum(artifact, "launcher") == set(LAUNCHER_MODES)
    assert _enum(artifact, "launcher_type") == set(typing.get_args(LauncherType))
    assert _enum(build["Verdict"]["properties"], "ship") == set(typing.get_args(Ship))
    assert _enum(build["Hazard"]["properties"], "severity") == set(typing.get_args(Severity))
    assert _enum(build["PackageLine"]["properties"], "kind") == set(LICENCE_KINDS)
    assert _enum(build["SourceFact"]["properties"], "state") == {
        nss.SERVED, nss.DAEMON, nss.NOT_SERVED}
    assert _enum(verify["properties"]["integrity"]["properties"]["checksum"]["properties"],
                 "state") == set(typing.get_args(ChecksumState))
    library = load_schema("inspect-program")["$defs"]["Library"]["properties"]
    assert _enum(library, "found_via") == set(typing.get_args(FoundVia))


def test_compare_is_the_build_report() -> None:
    assert load_schema("compare") == load_schema("build")
    assert {"build", "compare", "inspect-program", "inspect-artifact", "verify"} <= set(
        schema_names())


@pytest.mark.parametrize("name", ["../build", "build.schema", "/etc/passwd", "Build", ""])
def test_a_name_is_never_a_path(name: str) -> None:
    with pytest.raises(InputError, match="no such schema; choose build, compare"):
        load_schema(name)


def _model_classes(root: type) -> dict[str, type]:
    """Every dataclass a Report holds, by name (the build schema's $defs are named so)."""
    found: dict[str, type] = {}
    todo = [root]
    while todo:
        cls = todo.pop()
        if cls.__name__ in found:
            continue
        found[cls.__name__] = cls
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            todo += [t for t in _types_in(hints[field.name]) if dataclasses.is_dataclass(t)]
    return found


def _types_in(hint: object) -> Iterator[object]:
    yield hint
    for argument in typing.get_args(hint):
        yield from _types_in(argument)


def test_the_build_schema_names_every_field_of_the_report_model() -> None:
    """Also the fields no integration test fills (a Go diagnosis, NSS coverage): a field
    added to the model fails here until the schema has it."""
    definitions = load_schema("build")["$defs"]
    classes = _model_classes(Report)
    assert set(definitions) == set(classes) - {"Report"}
    for name, cls in classes.items():
        schema = load_schema("build") if name == "Report" else definitions[name]
        fields = {f.name for f in dataclasses.fields(cls)}
        extra = {"nss"} if cls is StaticContents else set()  # report_json adds the property
        assert set(schema["properties"]) == fields | extra, name


# --- a report built from small records ------------------------------------------------


def full_report() -> Report:
    """A report with every optional part present, so every $def is exercised."""
    need = GlibcNeed("2.34", (ForcedBy("prog", "GLIBC_2.34", ("__libc_start_main",)),))
    needs = Needs(need, need, (OtherNeed("libstdc++.so.6", "GLIBCXX", "GLIBCXX_3.4.30",
                                         ("prog",), ("_ZSt4cout",)),), (), ("libx.so.1",))
    cover = nss.coverage(True, ("libnss_compat.so.2",), "2.36", (2, 36))
    artifact = artifact_summary(
        format="zst", sha256=DIGEST, nss=cover, sealed=("/etc/ld.so.cache",),
        start_modes=(StartMode("PREFIX/bin/prog", "everything"),),
        runtime_parts=(RuntimePart("NSS modules", True, "bundled"),),
        glibc_package="libc6 2.36-9+deb12u14")
    diagnosis = Diagnosis((Cause("cgo-dns", ("getaddrinfo",), "why", "-tags netgo",
                                 ("netgo",), ("-static",), None, "rule"),),
                          "go build -tags netgo", ("warning",), ("note",))
    go = BuildInfo("go1.22.1", "example.com/prog",
                   Module("example.com/prog", "(devel)"),
                   (Module("example.com/dep", "v1.0.0", "h1:x",
                           Module("example.com/fork", "v1.0.1")),),
                   (("CGO_ENABLED", "1"), ("-tags", "sqlite")))
    static = static_side(contents=StaticContents("glibc", False, ("libnss_%s.so",)),
                         hazards=(hazard("static-nss", "high"),), diagnosis=diagnosis)
    both = runs((0,), (0,), args=("--version",))
    licences = Licensing((PackageLine("libc6", "2.36-9", "amd64", "glibc", "2.36-9",
                                      "LGPL-2.1-or-later", "copyleft", 3),),
                         1, 0, 0, ("libexec/prog",), "the build root's dpkg database")
    summary = InputSummary("prog", DIGEST, "x86-64", 100, "PIE executable", "dynamic",
                           "/lib64/ld-linux-x86-64.so.2")
    verdict = decide(artifact, static, both, "2.34", (), diagnosis.command)
    return assemble(summary, needs, artifact, (hazard("dynamic-nss", "medium",
                                                       subject="program"),),
                    static, both, verdict, go, diagnosis, licences)


@functools.cache
def _report_json() -> str:
    return report_json(full_report())


def report_data() -> dict:
    """The full report as --json prints it, parsed afresh (each test changes its copy)."""
    return json.loads(_report_json())


def test_a_full_report_is_valid() -> None:
    validate("build", report_data())


def _changed(data: dict, path: str, value: object) -> dict:
    """A copy of `data` with the key at dotted `path` set to `value` (DELETE: removed)."""
    changed = copy.deepcopy(data)
    *parents, last = path.split(".")
    place = changed
    for key in parents:
        place = place[int(key)] if isinstance(place, list) else place[key]
    if value is DELETE:
        del place[last]
    else:
        place[last] = value
    return changed


def _at(problem: str, path: str) -> bool:
    """The problem is where the change was: at the key, or at its object (a key missing or
    not allowed is the object's fault)."""
    parent = path.rpartition(".")[0] or "(top)"
    return problem.startswith((f"at {path}: ", f"at {parent}: "))


DELETE = object()
REPORT_CHANGES = {
    "an unknown top-level key": ("sha256", DIGEST),
    "an unknown key in the artifact": ("artifact.size", 1),
    "a renamed key (compressed_size removed)": ("artifact.compressed_size", DELETE),
    "a ship value the code does not have": ("verdict.ship", "static-maybe"),
    "another format_version": ("format_version", 1),
    "a severity the code does not have": ("hazards.0.severity", "critical"),
    "an artifact sha256 that is not one": ("artifact.sha256", "abc"),
    "an archive format the writer does not make": ("artifact.format", "tar.zst"),
    "a string where a number is": ("artifact.raw_size", "4000"),
    "an NSS state the code does not have": ("artifact.nss.facts.0.state", "maybe"),
    "an unknown key deep in a Go module": ("go.deps.0.replace.extra", True),
}


@pytest.mark.parametrize("change", sorted(REPORT_CHANGES))
def test_the_build_schema_rejects_a_changed_report(change: str) -> None:
    path, value = REPORT_CHANGES[change]
    problems = violations("build", _changed(report_data(), path, value))
    print(change, "->", problems)
    assert len(problems) == 1 and _at(problems[0], path), problems


# --- verify ---------------------------------------------------------------------------


def verify_result(*, signed: bool = True) -> VerifyResult:
    outcome = Outcome(0, "hello\n", "a warning\n", 0.012, 6, 10)
    run = RunCheck("at its prefix /opt/prog (launcher, direct start)", outcome, True, (),
                   ("/opt/prog/bin/prog", "--version"), 0, "^hello$")
    timed_out = RunCheck("from /tmp/bundle-verify/prog (launcher, loader start)",
                         Outcome(None, "", "", 60.0), False, ("timed out",),
                         ("/tmp/bundle-verify/prog/bin/prog",), 0, None)
    signature = SignatureCheck("minisign", "release.pub", "ABCDEF0123456789",
                               "SHA256SUMS", "prog.tar.zst", DIGEST) if signed else None
    return VerifyResult("prog.tar.zst", "prog", "x86-64", "2.36",
                        "sha256 matches prog.tar.zst.sha256", IntegrityResult(12, ()),
                        "bare", (run, timed_out), ("a note",), "match", DIGEST, signature)


@pytest.mark.parametrize("signed", [True, False])
def test_a_verify_result_is_valid(signed: bool) -> None:
    data = json.loads(json.dumps(verify_json(verify_result(signed=signed))))
    validate("verify", data)
    assert data["passed"] is False and data["runs"][1]["timed_out"] is True
    assert data["runs"][1]["exit_code"] is None
    assert (data["signature"] is not None) == signed


VERIFY_CHANGES = {
    "a checksum state the code does not have": ("integrity.checksum.state", "unknown"),
    "an unknown key in a run": ("runs.0.output", ""),
    "exit_code missing": ("runs.0.exit_code", DELETE),
    "passed as a string": ("passed", "yes"),
    "an unknown key in the signature": ("signature.verified", True),
    "a signature sha256 that is not one": ("signature.artifact_sha256", "0" * 63),
}


@pytest.mark.parametrize("change", sorted(VERIFY_CHANGES))
def test_the_verify_schema_rejects_a_changed_result(change: str) -> None:
    path, value = VERIFY_CHANGES[change]
    data = json.loads(json.dumps(verify_json(verify_result())))
    problems = violations("verify", _changed(data, path, value))
    assert len(problems) == 1 and _at(problems[0], path), problems


# --- the command ----------------------------------------------------------------------


def _bundle(capsys, *args: str) -> tuple[int, str, str]:
    """`bundle ARGS` in this process (cli.main, as the console script runs it)."""
    with pytest.raises(SystemExit) as ended:
        main(list(args))
    out, err = capsys.readouterr()
    return ended.value.code, out, err


def test_bundle_schema_lists_and_prints_the_shipped_files(capsys) -> None:
    assert _bundle(capsys, "schema") == (0, "".join(f"{n}\n" for n in schema_names()), "")
    for name in schema_names():
        code, out, err = _bundle(capsys, "schema", name)
        assert (code, err) == (0, "") and json.loads(out) == load_schema(name)
    code, out, err = _bundle(capsys, "schema", "nope")
    assert (code, out) == (2, "")
    assert err.startswith("bundle: error: schema nope: no such schema; choose build, ")
    assert err.count("\n") == 1


def test_the_release_schema_names_every_gate() -> None:
    """A gate added to choices.GATE_NAMES must be one the release schema accepts."""
    from bundler.choices import GATE_NAMES

    schema = load_schema("release")
    assert tuple(schema["$defs"]["gate"]["enum"]) == GATE_NAMES
