"""`bundle diff OLD NEW` on real artifacts built here by the command line.

A gcc program as v1 and v2 (another printed string), v1 again from another directory, v1
with an --add'ed library, v1 with the env launcher, v1 unpacked by the system's tar, and
`ls` built from the Debian 11 root against this machine's: what the diff says is checked
against the artifacts' own manifests and against dpkg; tampered, hostile and non-artifact
arguments are refused in one line.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli
from support.needs import need_tool
from support.roots import debian11_tree, unpack
from support.schemas import validate
from support.toolchain import gcc

HELLO = '#include <stdio.h>\nint main(void){puts("%s");return 0;}\n'
PLUGIN = "int plug(void){return 42;}\n"


def bundle(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    result = run_cli(*args)
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stderr == "", result.stderr
    return result


def diff_json(old: Path, new: Path) -> dict:
    data = json.loads(bundle("diff", "--json", str(old), str(new)).stdout)
    validate("diff", data)
    return data


def labelled(text: str, label: str) -> list[str]:
    """The values of the lines whose label is `label` (the columns are aligned)."""
    return [line[len(label):].strip() for line in text.splitlines()
            if line.startswith(label + "  ")]


def manifest_of(artifact: Path, where: Path) -> dict:
    top = unpack(artifact, where)
    return json.loads(next(top.glob("*/.bundle/manifest.json")).read_text())


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """label -> artifact: v1, again (v1's program from another directory), v2, plugged
    (v1 with --add), env (v1 with --launcher env), gz and dir (v1 written as .tar.gz and
    as a directory), tree (v1 unpacked by tar)."""
    where = tmp_path_factory.mktemp("release-diff")
    v1 = gcc(where / "v1" / "hello", HELLO % "hello v1")
    v2 = gcc(where / "v2" / "hello", HELLO % "hello v2")
    again = where / "again" / "hello"
    again.parent.mkdir()
    shutil.copy2(v1, again)
    plugin = gcc(where / "plugin" / "libplug.so", PLUGIN, shared=True)
    artifacts = {}
    for label, program, extra in (("v1", v1, ()), ("again", again, ()), ("v2", v2, ()),
                                  ("plugged", v1, ("--add", str(plugin))),
                                  ("env", v1, ("--launcher", "env"))):
        out = where / "out" / label / "hello.tar.zst"
        out.parent.mkdir(parents=True)
        bundle(str(program), "-o", str(out), "-q", *extra)
        artifacts[label] = out
    (where / "out" / "gz").mkdir()
    artifacts["gz"] = where / "out" / "gz" / "hello.tar.gz"
    artifacts["dir"] = where / "out" / "dir"
    for out in (str(artifacts["gz"]), f"{artifacts['dir']}/"):
        bundle(str(v1), "-o", out, "-q")
    artifacts["tree"] = unpack(artifacts["v1"], where / "out" / "tree")
    return artifacts


def test_the_same_release_has_no_differences(built) -> None:
    v1, again = built["v1"], built["again"]
    for args in (("diff",), ("diff", "--exit-code")):
        text = bundle(*args, str(v1), str(again)).stdout
        lines = text.splitlines()
        assert lines[0].startswith(f"old  {v1}  (hello; sha256 ")
        assert lines[1].startswith(f"new  {again}  (hello; sha256 ")
        assert lines[2:] == ["", "no differences  the same files, packages, glibc, settings "
                                 "and verdict"]
    data = diff_json(v1, again)
    assert data["differ"] is False
    assert data["old"]["sha256"] == data["new"]["sha256"] == \
        (v1.parent / "hello.tar.zst.sha256").read_text().split()[0]
    assert data["old"]["compressed_size"] == v1.stat().st_size


@pytest.mark.parametrize("form", ["gz", "dir"])
def test_the_same_build_in_another_form_is_equal(built, form: str) -> None:
    v1, other = built["v1"], built[form]
    text = bundle("diff", "--exit-code", str(v1), str(other)).stdout
    assert text.splitlines()[-1].startswith("no differences"), text
    data = diff_json(v1, other)
    assert data["differ"] is False
    assert (data["new"]["sha256"] is None) == (form == "dir")
    if form == "gz":
        assert data["new"]["compressed_size"] == other.stat().st_size


def test_an_archive_and_its_unpacked_directory_are_equal(built) -> None:
    v1, tree = built["v1"], built["tree"]
    text = bundle("diff", "--exit-code", str(v1), str(tree)).stdout
    assert "no differences" in text
    assert labelled(text, "compressed") == [
        f"{v1.stat().st_size / 1024:.1f} KiB ({v1.stat().st_size:,} bytes) -> a directory"]
    data = diff_json(tree, v1)
    assert data["differ"] is False and data["old"]["sha256"] is None
    assert data["old"]["raw_size"] == data["new"]["raw_size"] > 0


def test_a_changed_program_is_listed_with_both_sizes(built, tmp_path: Path) -> None:
    v1, v2 = built["v1"], built["v2"]
    old, new = manifest_of(v1, tmp_path / "old"), manifest_of(v2, tmp_path / "new")
    sizes = [{f["path"]: f for f in m["files"]}["libexec/hello"]["size"] for m in (old, new)]
    text = bundle("diff", str(v1), str(v2)).stdout
    changed = labelled(text, "file changed")
    assert len(changed) == 1 and changed[0].split()[0] == "libexec/hello", text
    assert f"{sizes[0]:,} -> {sizes[1]:,} bytes" in changed[0]
    assert labelled(text, "verdict") == [] and labelled(text, "glibc") == []
    data = diff_json(v1, v2)
    assert data["differ"] is True
    assert [c["path"] for c in data["files"]["changed"]] == ["libexec/hello"]
    change = data["files"]["changed"][0]
    assert (change["old"]["size"], change["new"]["size"]) == tuple(sizes)
    assert change["same_original"] is False  # another program, not only other edits
    assert change["old"]["sha256"] != change["new"]["sha256"]
    assert data["programs"] == {"added": [], "removed": [], "changed": ["hello"]}
    # The program is the only file outside .bundle/ that differs: lib/ is the same.
    assert data["files"]["added"] == data["files"]["removed"] == []
    assert data["settings"] == {"changed": []}


def test_exit_code_says_they_differ(built) -> None:
    v1, v2 = built["v1"], built["v2"]
    assert run_cli("diff", str(v1), str(v2)).returncode == 0
    result = bundle("diff", "--exit-code", str(v1), str(v2), code=1)
    assert "file changed" in result.stdout
    result = bundle("diff", "--exit-code", "--json", str(v1), str(v2), code=1)
    assert json.loads(result.stdout)["differ"] is True


def test_an_added_library_is_listed_as_added(built, tmp_path: Path) -> None:
    v1, plugged = built["v1"], built["plugged"]
    records = {f["path"]: f for f in manifest_of(plugged, tmp_path)["files"]}
    text = bundle("diff", str(v1), str(plugged)).stdout
    assert labelled(text, "file added") == [
        f"lib/libplug.so  {records['lib/libplug.so']['size']:,} bytes"]
    assert labelled(text, "library home")[0].startswith("lib/.bundle-")  # lib/ changed
    data = diff_json(v1, plugged)
    assert [f["path"] for f in data["files"]["added"]] == ["lib/libplug.so"]
    assert data["files"]["added"][0]["sha256"] == records["lib/libplug.so"]["sha256"]
    assert [f["path"] for f in data["files"]["removed"]] == []  # not the .bundle-ID link
    # The program is v1's, pointed at the new library home: re-edited, not changed.
    assert [(c["path"], c["same_original"]) for c in data["files"]["changed"]] == [
        ("libexec/hello", True)]
    assert labelled(text, "file changed") == []
    assert labelled(text, "file re-edited")[0].startswith("libexec/hello ")
    assert labelled(text, "file re-edited")[0].endswith(
        "the same original, another PT_INTERP/DT_RPATH")
    # Backwards, it is removed.
    back = diff_json(plugged, v1)
    assert [f["path"] for f in back["files"]["removed"]] == ["lib/libplug.so"]


def test_a_launcher_change_is_named(built) -> None:
    v1, env = built["v1"], built["env"]
    text = bundle("diff", str(v1), str(env)).stdout
    assert labelled(text, "launcher") == ["loader -> env"]
    data = diff_json(v1, env)
    assert {"setting": "launcher", "old": "loader", "new": "env"} in \
        data["settings"]["changed"]
    # The env launcher's leak lowers the verdict: the report says so, and so does the diff.
    assert data["verdict"]["changed"] is True
    assert data["verdict"]["old"]["headline"] != data["verdict"]["new"]["headline"]
    lines = text.splitlines()[3:]
    assert lines[0].startswith("verdict "), text  # the verdict first


def test_glibc_and_package_versions_from_another_distribution(tmp_path: Path) -> None:
    """`ls` of the Debian 11 root against this machine's: glibc and the packages' versions
    as dpkg has them in each root."""
    root = debian11_tree()
    query = need_tool("dpkg-query")

    def version(package: str, admindir: str) -> str:
        return subprocess.run([query, "--admindir", admindir, "-W", "-f=${Version}",
                               f"{package}:amd64"], capture_output=True, text=True,
                              check=True).stdout

    old, new = tmp_path / "11" / "ls.tar.zst", tmp_path / "12" / "ls.tar.zst"
    for out, extra in ((old, ("--sysroot", str(root))), (new, ())):
        out.parent.mkdir()
        bundle("/bin/ls", "-o", str(out), "-q", *extra)
    libc_old = version("libc6", f"{root}/var/lib/dpkg")
    libc_new = version("libc6", "/var/lib/dpkg")
    text = bundle("diff", str(old), str(new)).stdout
    glibc = labelled(text, "glibc")
    assert len(glibc) == 1 and glibc[0].endswith(f"(libc6 {libc_old}) -> 2.36 (libc6 "
                                                 f"{libc_new})"), text
    assert glibc[0].startswith("2.31 ")
    packages = [line.split(";")[0] for line in labelled(text, "package")]
    assert any(line.split()[:4] == ["libc6:amd64", libc_old, "->", libc_new]
               for line in packages), packages
    coreutils = (version("coreutils", f"{root}/var/lib/dpkg"),
                 version("coreutils", "/var/lib/dpkg"))
    assert any(line.split()[:4] == ["coreutils:amd64", coreutils[0], "->", coreutils[1]]
               for line in packages), packages
    # The most important first: glibc before the packages, the packages before the files.
    labels = [line.split("  ")[0] for line in text.splitlines()[3:]]
    assert labels.index("glibc") < labels.index("package") < labels.index("file changed")
    data = diff_json(old, new)
    assert data["glibc"]["old"]["package"]["version"] == libc_old
    assert data["glibc"]["new"]["version"] == "2.36"
    assert "libc6:amd64" in {c["package"] for c in data["packages"]["changed"]}


# -- refused ------------------------------------------------------------------------------
@pytest.mark.parametrize("side", ["old", "new"])
def test_a_tampered_artifact_is_refused(built, tmp_path: Path, side: str) -> None:
    tampered = tmp_path / "tampered"
    shutil.copytree(built["tree"], tampered, symlinks=True)
    library = tampered / "hello" / "lib" / "libc.so.6"
    data = bytearray(library.read_bytes())
    data[len(data) // 2] ^= 0xFF
    library.write_bytes(bytes(data))
    good = str(built["v1"])
    pair = (str(tampered), good) if side == "old" else (good, str(tampered))
    for args in (("diff", *pair), ("diff", "--json", "--exit-code", *pair)):
        assert_one_line_error(run_cli(*args), 4, str(tampered), "lib/libc.so.6",
                              "sha256 differs")


def test_a_hostile_archive_is_refused(built, tmp_path: Path) -> None:
    hostile = tmp_path / "hostile.tar.gz"
    with tarfile.open(hostile, "w:gz") as tar:
        payload = b"owned\n"
        member = tarfile.TarInfo("hello/../../escaped")
        member.size = len(payload)
        tar.addfile(member, io.BytesIO(payload))
    scratch = tmp_path / "tmp"  # where both unpack: nothing stays there
    scratch.mkdir()
    for pair in ((built["v1"], hostile), (hostile, built["tree"])):
        result = run_cli("diff", *map(str, pair), env={"TMPDIR": str(scratch)})
        assert_one_line_error(result, 4, str(hostile), "'..' leaves the target directory")
        assert list(scratch.iterdir()) == []
    assert not (tmp_path / "escaped").exists()


def test_not_an_artifact_is_a_usage_error(built, tmp_path: Path) -> None:
    program = gcc(tmp_path / "prog", HELLO % "x")
    empty = tmp_path / "empty"
    empty.mkdir()
    good = str(built["v1"])
    for other, words in ((str(program), ("not an artifact",)),
                         (str(tmp_path / "missing.tar.zst"), ("no such file",)),
                         (str(empty), ("not an artifact",))):
        assert_one_line_error(run_cli("diff", good, other), 2, other, *words)
        assert_one_line_error(run_cli("diff", other, good), 2, other, *words)
    assert_one_line_error(run_cli("diff", good), 2, "NEW")
    assert_one_line_error(run_cli("diff", good, good, "--exit-codes"), 2, "--exit-codes")
