"""manifest.dump and manifest.parse on small records: what the build writes is what the
loader reads back, field for field (tests/integration/test_artifact.py checks
`dump(load(x)) == x` on real artifacts)."""

from __future__ import annotations

import json

import pytest

from bundler.inventory import GoModule, Package
from bundler.manifest import (
    ElfEdit,
    EnvRecord,
    Extracted,
    FileRecord,
    Manifest,
    NssRecord,
    Patched,
    dump,
    parse,
)

SHA = "ab" * 32
OTHER = "cd" * 32
RUN = "/lib/x86_64-linux-gnu/\0/usr/lib/x86_64-linux-gnu/\0"  # a sealed run of strings


def program(**changes: object) -> FileRecord:
    fields: dict = {"path": "libexec/prog", "type": "file", "kind": "program",
                    "sha256": SHA, "size": 10, "mode": 0o755, "source": "/usr/bin/prog"}
    fields.update(changes)
    return FileRecord(**fields)


def manifest(*files: FileRecord, **changes: object) -> Manifest:
    fields: dict = {
        "name": "prog", "arch": "x86-64", "prefix": "/opt/prog", "launcher": "loader",
        "loader": "lib/ld-linux-x86-64.so.2", "glibc": "2.36", "min_kernel": "3.2.0",
        "programs": ("prog",), "missing": (), "excluded": (), "environment": (),
        "runtime_missing": (), "files": files or (program(),), "tool": "bundle",
        "tool_version": "0.1.0",
    }
    fields.update(changes)
    return Manifest(**fields)


def everything() -> Manifest:
    """Every field the build writes, each with a value that is not its default."""
    return manifest(
        FileRecord("bin/prog", "file", "launcher", sha256=OTHER, size=3272, mode=0o755),
        FileRecord("lib/.bundle-0123456789abcdef", "symlink", "alias", target="."),
        FileRecord("lib/ld-linux-x86-64.so.2", "file", "loader", sha256=SHA, size=215000,
                   mode=0o755, source="/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                   patched=Patched(OTHER, 215000, renamed_strings=(
                       ("/etc/ld.so.cache", "/dev/null/xxxxxx"),
                       (RUN, "/dev/null/xxxxxxxxxxx/\0/dev/null/xxxxxxxxxxxxxxx/\0")))),
        FileRecord("lib/locale/en_US.utf8/LC_TIME", "file", "data", sha256=SHA, size=3360,
                   mode=0o644, source="/usr/lib/locale/locale-archive",
                   extracted=Extracted(offset=4096, length=3360)),
        FileRecord("lib/libnss_systemd.so.2", "file", "library", sha256=OTHER, size=326000,
                   mode=0o644, source="/usr/lib/x86_64-linux-gnu/libnss_systemd.so.2",
                   loaded_at_run_time=True),
        program(patched=Patched(OTHER, 9, elf=ElfEdit(
            "/opt/prog/lib/.bundle-0123456789abcdef/ld-linux-x86-64.so.2",
            "$ORIGIN/../lib/.bundle-0123456789abcdef", "lief 1.0.0-d05b3499b")),
            loaded_at_run_time=False,
            package="prog:amd64"),
        programs=("prog",), missing=("libgone.so.1",), excluded=("libGL.so.1",),
        environment=(EnvRecord("BGC1234567", "GCONV_PATH", "lib/gconv", True),
                     EnvRecord("B0A1B2C3", "PERL5LIB", "", True, "{top}/usr/share/perl5",
                               "recipe perl", ("lib/libperl.so.5.36",)),
                     EnvRecord("PYTHONHOME", "PYTHONHOME", "", False, "{top}/usr", "--env")),
        runtime_missing=("libgcc_s.so.1",), format_version=1, launcher_type="native",
        nss=NssRecord(used=True, modules=("libnss_systemd.so.2",), served=("files", "dns"),
                      daemon=(("systemd", "systemd-userdbd (and PID 1)"),),
                      not_served=("sss",)),
        library_home="lib/.bundle-0123456789abcdef",
        sealed=("ld.so.cache /etc/ld.so.cache",), unsealed=("gconv: not bundled",),
        packages=(Package("prog", "1.2-3+deb12u1", "amd64", "prog-src", "1.2-3", "debian-12",
                          "GPL-2.0-or-later AND MIT", "copyleft",
                          "/usr/share/doc/prog/copyright", "/var/lib/dpkg"),),
        provenance="dpkg database of /",
        go_modules=(("prog", (GoModule("example.com/prog", "(devel)", "", main=True),
                              GoModule("github.com/mattn/go-sqlite3", "v1.14.16", "h1:x=",
                                       replaced_by=("../sqlite", "")))),),
        arguments=(("prog", ("--agent-program", "{top}/bin/agent")),),
        recipes=("gpg", "openssl"),
        carried=(("/usr/share/perl5", "usr/share/perl5", "recipe perl"),),
    )


def test_a_direct_start_gives_what_the_launcher_would() -> None:
    """The variables with {top} at the prefix, and the launcher's own arguments (a unit's
    ExecStart, an image's Entrypoint)."""
    written = everything()
    program, environment = written.direct_start()
    assert program == "/opt/prog/libexec/prog"
    assert environment == ("BGC1234567=/opt/prog/lib/gconv",
                           "B0A1B2C3=/opt/prog/usr/share/perl5", "PYTHONHOME=/opt/prog/usr")
    assert written.direct_arguments() == ("--agent-program", "/opt/prog/bin/agent")


def test_what_is_dumped_parses_back_to_the_same_records() -> None:
    written = everything()
    assert parse(json.loads(dump(written)), "elsewhere") == written


def test_the_text_is_sorted_indented_json_with_a_final_newline() -> None:
    text = dump(manifest())
    data = json.loads(text)
    assert text == json.dumps(data, indent=2, sort_keys=True) + "\n"
    assert data["files"] == [{
        "path": "libexec/prog", "type": "file", "kind": "program", "sha256": SHA, "size": 10,
        "mode": "0755", "source": "/usr/bin/prog", "loaded_at_run_time": False,
        "patched": None, "extracted": None, "package": None}]
    assert {k: v for k, v in data.items() if k != "files"} == {
        "format_version": 1, "tool": "bundle", "tool_version": "0.1.0", "name": "prog",
        "arch": "x86-64", "prefix": "/opt/prog", "launcher": "loader",
        "launcher_type": "sh", "loader": "lib/ld-linux-x86-64.so.2", "glibc": "2.36",
        "min_kernel": "3.2.0", "programs": ["prog"], "missing": [], "excluded": [],
        "environment": [], "runtime_missing": [], "runtime_missing_needed": [],
        "library_home": "lib",
        "sealed": {"sealed": [], "unsealed": []}, "nss": None, "packages": [],
        "provenance": None, "go_modules": {}, "arguments": {}, "recipes": [],
        "carried": []}


def test_records_are_written_as_the_build_always_wrote_them() -> None:
    data = json.loads(dump(everything()))
    files = {r["path"]: r for r in data["files"]}
    assert files["lib/.bundle-0123456789abcdef"] == {
        "path": "lib/.bundle-0123456789abcdef", "type": "symlink", "target": ".",
        "kind": "alias"}
    assert files["lib/ld-linux-x86-64.so.2"]["patched"] == {
        "source_sha256": OTHER, "source_size": 215000, "renamed_strings": {
            RUN: "/dev/null/xxxxxxxxxxx/\0/dev/null/xxxxxxxxxxxxxxx/\0",
            "/etc/ld.so.cache": "/dev/null/xxxxxx"}}
    assert files["libexec/prog"]["patched"] == {
        "source_sha256": OTHER, "source_size": 9,
        "interpreter": "/opt/prog/lib/.bundle-0123456789abcdef/ld-linux-x86-64.so.2",
        "rpath": "$ORIGIN/../lib/.bundle-0123456789abcdef", "rewriter": "lief 1.0.0-d05b3499b"}
    assert files["lib/locale/en_US.utf8/LC_TIME"]["extracted"] == {"offset": 4096,
                                                                   "length": 3360}
    assert data["nss"] == {"used": True, "modules": ["libnss_systemd.so.2"],
                           "served": ["files", "dns"], "not_served": ["sss"],
                           "daemon": {"systemd": "systemd-userdbd (and PID 1)"}}
    assert data["environment"] == [
        {"variable": "BGC1234567", "means": "GCONV_PATH", "path": "lib/gconv", "scoped": True},
        {"variable": "B0A1B2C3", "means": "PERL5LIB", "path": "", "scoped": True,
         "value": "{top}/usr/share/perl5", "why": "recipe perl",
         "scoped_in": ["lib/libperl.so.5.36"]},
        {"variable": "PYTHONHOME", "means": "PYTHONHOME", "path": "", "scoped": False,
         "value": "{top}/usr", "why": "--env", "scoped_in": []}]
    assert data["arguments"] == {"prog": ["--agent-program", "{top}/bin/agent"]}
    assert data["carried"] == [{"source": "/usr/share/perl5", "dest": "usr/share/perl5",
                                "why": "recipe perl"}]


@pytest.mark.parametrize("written", [
    program(patched=Patched(SHA, 9, elf=ElfEdit(None, "$ORIGIN/../lib"))),  # no PT_INTERP
    # no rewriter: the manifests before it was recorded
    program(patched=Patched(SHA, 9, elf=ElfEdit("/opt/prog/lib/ld.so", "$ORIGIN/../lib"))),
    program(extracted=Extracted(0, None)),
    program(source=None),
])
def test_nulls_the_build_writes_round_trip(written: FileRecord) -> None:
    assert parse(json.loads(dump(manifest(written))), "t").files == (written,)


def test_text_read_and_written_again_is_the_same_text() -> None:
    text = dump(everything())
    assert dump(parse(json.loads(text), "t")) == text
    nss_unrecorded = dump(manifest(nss=None))
    assert dump(parse(json.loads(nss_unrecorded), "t")) == nss_unrecorded


def field(data: dict, path: str) -> dict:
    (record,) = [r for r in data["files"] if r["path"] == path]
    return record


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: field(d, "lib/ld-linux-x86-64.so.2")["patched"]["renamed_strings"].update(
        {"/etc/x": "\x1b[2J"}), "renamed_strings.*control character"),
    (lambda d: field(d, "lib/ld-linux-x86-64.so.2")["patched"].update(renamed_strings=["x"]),
     "renamed_strings: expected an object, found a list"),
    (lambda d: field(d, "libexec/prog")["patched"].pop("rpath"), r"patched.rpath: missing"),
    (lambda d: field(d, "libexec/prog")["patched"].update(rpath=None),
     r"patched.rpath: expected a string, found null"),
    (lambda d: field(d, "libexec/prog")["patched"].update(rewriter=["lief"]),
     r"patched.rewriter: expected a string, found a list"),
    (lambda d: field(d, "libexec/prog")["patched"].update(rewriter="lief\x1b[2J"),
     r"patched.rewriter: too long or holds a control character"),
    (lambda d: field(d, "lib/ld-linux-x86-64.so.2")["patched"].update(rewriter="lief 1.0.0"),
     r"patched.rewriter: without the rpath it wrote"),
    (lambda d: field(d, "lib/locale/en_US.utf8/LC_TIME")["extracted"].update(offset=-1),
     r"extracted.offset: expected an integer from 0"),
    (lambda d: field(d, "lib/locale/en_US.utf8/LC_TIME").update(extracted=[0, 1]),
     r"extracted: expected an object, found a list"),
    (lambda d: d["nss"]["daemon"].update(sss=7), r"nss.daemon\['sss'\]: expected a string"),
    (lambda d: d["nss"].update(served="files"), "nss.served: expected a list"),
    (lambda d: d.update(tool="bundle\n"), "tool: too long or holds a control character"),
    (lambda d: d.update(tool_version=1), "tool_version: expected a string"),
    (lambda d: field(d, "libexec/prog").update(package="other:amd64"),
     "package 'other:amd64' is not in packages"),
    (lambda d: d["packages"][0].update(licence_kind="free"), "licence_kind: 'free'"),
    (lambda d: d["packages"][0].pop("version"), r"packages\[0\].version: missing"),
    (lambda d: d["go_modules"]["prog"][1].update(replaced_by=["x"]),
     "replaced_by: expected an object"),
    (lambda d: d["go_modules"].update({"../x": []}), "go_modules"),
])
def test_a_record_the_loader_refuses(change, message: str) -> None:
    data = json.loads(dump(everything()))
    change(data)
    with pytest.raises(ValueError, match=message):
        parse(data, "t")
