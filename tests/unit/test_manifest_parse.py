"""manifest.parse and prefix_problem on small dicts: the one validating reader of an
artifact's manifest (tests/integration/test_untrusted.py covers hostile artifacts end to end)."""

from __future__ import annotations

import copy

import pytest

from bundler.manifest import EnvRecord, FileRecord, Patched, parse, prefix_problem

SHA = "ab" * 32


def minimal() -> dict:
    return {
        "prefix": "/opt/prog", "launcher": "loader", "loader": "lib/ld-linux-x86-64.so.2",
        "programs": ["prog"],
        "files": [
            {"path": "libexec/prog", "type": "file", "kind": "program", "sha256": SHA,
             "size": 10, "mode": "0755"},
            {"path": "lib/libc.so", "type": "symlink", "kind": "alias", "target": "libc.so.6"},
        ],
    }


def with_changes(*path_and_value: tuple[tuple, object]) -> dict:
    data = minimal()
    for path, value in path_and_value:
        place = data
        for key in path[:-1]:
            place = place[key]
        if value is DELETE:
            del place[path[-1]]
        else:
            place[path[-1]] = value
    return data


DELETE = object()


def test_a_minimal_manifest_and_its_defaults() -> None:
    manifest = parse(minimal(), "prog-top")
    assert manifest.name == "prog-top"  # the top directory's name when none is recorded
    assert (manifest.prefix, manifest.launcher, manifest.loader) == (
        "/opt/prog", "loader", "lib/ld-linux-x86-64.so.2")
    assert (manifest.arch, manifest.glibc, manifest.min_kernel) == ("unknown", None, None)
    assert manifest.programs == ("prog",)
    assert (manifest.missing, manifest.excluded, manifest.environment,
            manifest.runtime_missing, manifest.sealed, manifest.unsealed) == ((),) * 6
    assert (manifest.format_version, manifest.launcher_type, manifest.nss_used,
            manifest.library_home) == (1, "sh", None, "lib")
    assert manifest.files == (
        FileRecord("libexec/prog", "file", "program", sha256=SHA, size=10, mode=0o755),
        FileRecord("lib/libc.so", "symlink", "alias", target="libc.so.6"),
    )


def test_every_recorded_field_is_read() -> None:
    data = minimal()
    data.update({
        "name": "tool", "arch": "x86-64", "glibc": "2.36", "min_kernel": "3.2.0",
        "missing": ["libgone.so.1"], "excluded": ["libGL.so.1"],
        "environment": [{"variable": "BGC1234567", "means": "GCONV_PATH",
                         "path": "lib/gconv", "scoped": True}, {"variable": "X", "means": "X"}],
        "runtime_missing": ["libgcc_s.so.1"], "format_version": 2, "launcher_type": "native",
        "nss": {"used": False}, "library_home": "lib/.bundle-0123456789abcdef",
        "sealed": {"sealed": ["ld.so.cache /etc/ld.so.cache"], "unsealed": []},
    })
    data["files"][0].update({"source": "/usr/bin/prog", "loaded_at_run_time": False,
                             "patched": {"source_sha256": SHA, "source_size": 9}})
    manifest = parse(data, "ignored")
    assert manifest.name == "tool"
    assert (manifest.arch, manifest.glibc, manifest.min_kernel) == ("x86-64", "2.36", "3.2.0")
    assert manifest.environment == (EnvRecord("BGC1234567", "GCONV_PATH", "lib/gconv", True),
                                    EnvRecord("X", "X", "", False))
    assert (manifest.format_version, manifest.launcher_type, manifest.nss_used) == (
        2, "native", False)
    assert manifest.library_home == "lib/.bundle-0123456789abcdef"
    assert manifest.sealed == ("ld.so.cache /etc/ld.so.cache",) and manifest.unsealed == ()
    assert manifest.files[0].patched == Patched(SHA, 9)
    assert manifest.files[0].source == "/usr/bin/prog"


def test_null_means_absent_for_optional_fields() -> None:
    manifest = parse(with_changes((("glibc",), None), (("missing",), None), (("nss",), None),
                                  (("sealed",), None)), "t")
    assert (manifest.glibc, manifest.missing, manifest.nss_used, manifest.sealed) == (
        None, (), None, ())


@pytest.mark.parametrize(("changes", "message"), [
    ((((), None),), "top level: expected an object, found null"),
    (((("programs",), []),), "programs: empty"),
    (((("programs",), DELETE),), "programs: missing"),
    (((("programs",), "prog"),), "programs: expected a list, found a string"),
    (((("programs",), ["other"]),), "programs: 'other' has no file record libexec/other"),
    (((("programs",), ["../x"]),), r"programs\[0\]: '../x' is not a plain file name"),
    (((("name",), "a/b"),), "name: 'a/b' is not a plain file name"),
    (((("prefix",), "/opt/../proc"),), "prefix '/opt/../proc': not a normalised directory"),
    (((("prefix",), "/proc/x"),), "prefix '/proc/x': inside /proc"),
    (((("prefix",), 7),), "prefix: expected a string, found an integer"),
    (((("launcher",), DELETE),), "launcher: missing"),
    (((("loader",), "../ld.so"),), "loader: '../ld.so' is not a relative path inside"),
    (((("loader",), "/lib/ld.so"),), "is not a relative path inside the artifact"),
    (((("arch",), "x\n"),), "arch: too long or holds a control character"),
    (((("files", 0, "type"), "dir"),), r"files\[0\].type: 'dir', expected file or symlink"),
    (((("files", 0, "mode"), "999"),), r"files\[0\].mode: '999' is not an octal mode"),
    (((("files", 0, "mode"), 493),), r"files\[0\].mode: expected a string"),
    (((("files", 0, "sha256"), "AB" * 32),), r"files\[0\].sha256: not a sha256 in hex"),
    (((("files", 0, "size"), True),), r"files\[0\].size: expected an integer from 0"),
    (((("files", 0, "size"), -1),), r"files\[0\].size: expected an integer from 0"),
    (((("files", 0, "size"), DELETE),), r"files\[0\].size: missing"),
    (((("files", 0, "path"), "libexec//prog"),), r"files\[0\].path: 'libexec//prog' is not"),
    (((("files", 0, "loaded_at_run_time"), "yes"),), "expected true or false, found a string"),
    (((("files", 1, "target"), "/lib/libc.so.6"),),
     r"files\[1\].target: '/lib/libc.so.6' is not a relative symlink target"),
    (((("files", 1, "target"), ""),), r"files\[1\].target: '' is not a relative symlink"),
    (((("environment",), [{"means": "X"}]),), r"environment\[0\].variable: missing"),
    (((("nss",), {"used": 1}),), "nss.used: expected true or false, found an integer"),
    (((("nss",), []),), "nss: expected an object, found a list"),
    (((("sealed",), ["x"]),), "sealed: expected an object, found a list"),
    (((("sealed",), {"sealed": [1]}),), r"sealed.sealed\[0\]: expected a string"),
    (((("sealed",), {"unsealed": "x"}),), "sealed.unsealed: expected a list"),
    (((("format_version",), 1.5),), "format_version: expected an integer"),
])
def test_malformed_fields_are_named(changes: tuple, message: str) -> None:
    data = None if changes[0][0] == () else with_changes(*changes)
    with pytest.raises(ValueError, match=message):
        parse(data, "t")


def test_a_program_given_under_a_second_name_is_a_link_to_a_program_file() -> None:
    """A second name of the same bytes is a link in libexec/ to the first's file (what the
    build writes for `bundle git git-upload-pack`); the program's record is that file."""
    data = minimal()
    data["programs"] = ["prog", "prog-again"]
    data["files"].append({"path": "libexec/prog-again", "type": "symlink", "kind": "alias",
                          "target": "prog"})
    manifest = parse(data, "t")
    assert manifest.program_record("prog-again") == manifest.program_record("prog") == (
        FileRecord("libexec/prog", "file", "program", sha256=SHA, size=10, mode=0o755))


@pytest.mark.parametrize("target", [
    "../bin/x",  # out of libexec/
    "../libexec/prog",  # back in, by a path: only a plain name is followed
    "sub/prog", ".", "..",
    "nothing",  # no such record
    "chain",  # a link to a link: one step only
])
def test_a_programs_link_must_name_a_program_file_beside_it(target: str) -> None:
    data = minimal()
    data["programs"] = ["prog", "other"]
    data["files"] += [
        {"path": "libexec/other", "type": "symlink", "kind": "alias", "target": target},
        {"path": "libexec/chain", "type": "symlink", "kind": "alias", "target": "prog"},
    ]
    with pytest.raises(ValueError, match="'other' has no file record libexec/other"):
        parse(data, "t")


def test_parse_does_not_change_its_input() -> None:
    data = minimal()
    before = copy.deepcopy(data)
    parse(data, "t")
    assert data == before


@pytest.mark.parametrize(("prefix", "problem"), [
    ("/opt/prog", None), ("/opt/a b", None), ("/system", None), ("/device", None),
    ("/opt/prog-1.2_x", None),
    ("opt", "not absolute"), ("", "not absolute"),
    ("/", "not a normalised directory below /"),
    ("/opt/", "not a normalised directory"), ("//opt", "not a normalised directory"),
    ("/opt/./x", "not a normalised directory"), ("/opt//x", "not a normalised directory"),
    ("/opt/x\t", "too long or holds a control character"),
    ("/" + "x" * 1024, "too long or holds a control character"),
    ("/opt/a;b", "holds ':', ';' or '$'"),
    ("/sys", "inside /sys, which the kernel provides"),
    ("/dev/shm", "inside /dev, which the kernel provides"),
])
def test_prefix_problems(prefix: str, problem: str | None) -> None:
    found = prefix_problem(prefix)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem)
