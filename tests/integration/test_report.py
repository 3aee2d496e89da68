"""The report and compare mode on real programs built here with gcc.

`bundle BINARY -o OUT --static STATIC [--run ARGS]` and `bundle compare ARTIFACT STATIC`
through the real command line: a static program with NSS lookups (also stripped), a clean
static program, a "static" build that is not, a dynamic program with dlopen/iconv/NSS,
setuid and setcap copies. The JSON is checked field by field against the files and the
system's own tools (sha256, objdump, readelf, getconf); the Markdown against the JSON;
--run results against running the programs here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, read_pty, run_cli
from support.files import sha256
from support.needs import need, need_tool
from support.paths import REPO
from support.toolchain import HOST_LOADER, gcc, tool

from bundler.compare import compare_report
from bundler.report_render import report_text, use_color
from bundler.units import human_size

TOP_KEYS = {"artifact", "diagnosis", "format_version", "go", "hazards", "input", "licences",
            "needs", "runs", "static", "tool_version", "verdict", "compiled_paths", "carrying"}
SECTIONS = ("1. Verdict", "2. The input", "3. What it needs unbundled", "4. The artifact",
            "5. Hazards", "6. Against the static build", "7. Runs side by side",
            "8. Licences and sources", "9. Compiled-in paths")
ANSI = "\033["

NETLOOKUP = r"""
#include <netdb.h>
#include <pwd.h>
#include <stdio.h>
int main(void) {
    struct addrinfo *res = NULL;
    int rc = getaddrinfo("localhost", NULL, NULL, &res);
    struct passwd *pw = getpwnam("root");
    printf("getaddrinfo=%d root=%s\n", rc, pw ? pw->pw_dir : "?");
    if (res) freeaddrinfo(res);
    return 0;
}
"""
# Prints its arguments and exits 3, so the runs have a real, non-zero code to compare.
HELLO = r"""
#include <stdio.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) printf("[%s]\n", argv[i]);
    puts("hello");
    return 3;
}
"""
# Same exit code, other output: only the outputs differ.
OTHER = r"""
#include <stdio.h>
int main(void) { puts("something else"); return 3; }
"""
# Names its own path twice (argv[0], /proc/self/exe) between two lines that do not.
SELFPATH = r"""
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n < 0 ? 0 : n] = 0;
    printf("hello\nargv0: %s\nexe: %s\nbye\n", argc ? argv[0] : "?", exe);
    return 0;
}
"""
DYNLOAD = r"""
#include <dlfcn.h>
#include <iconv.h>
#include <pwd.h>
#include <stdio.h>
int main(int argc, char **argv) {
    if (argc > 1) {
        void *h = dlopen(argv[1], RTLD_NOW);
        iconv_t cd = iconv_open("UTF-8", "ISO-8859-1");
        struct passwd *pw = getpwnam("root");
        printf("%p %p %p\n", h, (void *)cd, (void *)pw);
    }
    puts("dynload");
    return 0;
}
"""


# --- helpers ---------------------------------------------------------------------------


def bundle(*args: str, cwd: Path | None = None,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run bundle and insist that it worked."""
    result = run_cli(*args, cwd=cwd, env=env)
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result


def bundle_json(*args: str, cwd: Path | None = None) -> dict:
    """The --json report (stdout holds only the JSON; the summary goes to stderr)."""
    result = bundle(*args, "--json", cwd=cwd)
    assert result.stdout.startswith("{"), result.stdout[:200]
    return json.loads(result.stdout)


def static_gcc(out: Path, source: str) -> Path:
    """gcc -static; the NSS link warning is expected and not an error."""
    need(os.path.exists("/usr/lib/x86_64-linux-gnu/libc.a"), "libc6-dev's libc.a is missing")
    return gcc(out, source, "-static")


def highest_glibc(path: Path) -> str:
    """The highest GLIBC_x.y in `objdump -T`: the oracle for needs.glibc_program."""
    versions = set(re.findall(r"\bGLIBC_(\d+(?:\.\d+)+)\b", tool("objdump", "-T", str(path))))
    assert versions, path
    return max(versions, key=lambda v: tuple(int(p) for p in v.split(".")))


def abi_tag(path: Path | str) -> str:
    """The NT_GNU_ABI_TAG as readelf prints it, in the report's form ("Linux 3.2.0")."""
    match = re.search(r"OS: (\w+), ABI: ([\d.]+)", tool("readelf", "-n", str(path)))
    assert match, path
    return f"{match.group(1)} {match.group(2)}"


def host_glibc() -> str:
    """The system's glibc release from getconf, e.g. "2.36"."""
    return tool("getconf", "GNU_LIBC_VERSION").split()[1]


def dpkg_version(package: str) -> str:
    """The installed version of a package as dpkg-query shows it: the oracle for the
    report's glibc package."""
    native = tool("dpkg", "--print-architecture").strip()  # multiarch: one of its copies
    return tool("dpkg-query", "-W", "-f", "${Version}", f"{package}:{native}").strip()


def run_here(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(path), *args], capture_output=True, text=True, timeout=60)


def codes(hazards: list[dict]) -> list[str]:
    return [h["code"] for h in hazards]


def hazard(hazards: list[dict], code: str) -> dict:
    found = [h for h in hazards if h["code"] == code]
    assert len(found) == 1, (code, codes(hazards))
    return found[0]


def section_lines(text: str) -> dict[str, list[str]]:
    """Terminal text split into its numbered sections."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line in SECTIONS:
            current = line
            sections[current] = []
        elif current is not None and line.startswith("  "):
            sections[current].append(line)
    return sections


# --- fixtures: programs ----------------------------------------------------------------


@pytest.fixture(scope="module")
def net(tmp_path_factory) -> Path:
    """netlookup (dynamic), netlookup-static, and stripped/netlookup-static."""
    where = tmp_path_factory.mktemp("net")
    gcc(where / "netlookup", NETLOOKUP)
    static_gcc(where / "netlookup-static", NETLOOKUP)
    (where / "stripped").mkdir()
    stripped = where / "stripped" / "netlookup-static"
    shutil.copy2(where / "netlookup-static", stripped)
    subprocess.run([need_tool("strip"), str(stripped)], check=True)
    return where


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    """hello (dynamic), hello-static (clean), differ/hello-static (other output),
    notstatic/hello-static (the dynamic one under the static name), other-static."""
    where = tmp_path_factory.mktemp("clean")
    gcc(where / "hello", HELLO)
    static_gcc(where / "hello-static", HELLO)
    static_gcc(where / "differ" / "hello-static", OTHER)
    (where / "notstatic").mkdir()
    shutil.copy2(where / "hello", where / "notstatic" / "hello-static")
    shutil.copy2(where / "hello-static", where / "other-static")
    return where


@pytest.fixture(scope="module")
def selfpath(tmp_path_factory) -> Path:
    """selfpath (dynamic) and selfpath-static: the same program, printing its own path."""
    where = tmp_path_factory.mktemp("selfpath")
    gcc(where / "selfpath", SELFPATH)
    static_gcc(where / "selfpath-static", SELFPATH)
    return where


@pytest.fixture(scope="module")
def dyn(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("dyn")
    gcc(where / "dynload", DYNLOAD, "-ldl")
    return where


# --- fixtures: reports -----------------------------------------------------------------


@pytest.fixture(scope="module")
def net_build(net: Path) -> tuple[dict, str]:
    """`bundle netlookup -o out.tar.zst --static netlookup-static --json --report r.md`."""
    data = bundle_json("netlookup", "-o", "out.tar.zst", "--static", "netlookup-static",
                       "--report", "report.md", cwd=net)
    return data, (net / "report.md").read_text()


@pytest.fixture(scope="module")
def clean_build(clean: Path) -> dict:
    """hello against its clean static twin, no runs."""
    return bundle_json("hello", "-o", "out.tar.zst", "--static", "hello-static", cwd=clean)


# --- 1. a static build with NSS lookups ------------------------------------------------


def test_static_nss_build_field_by_field(net: Path, net_build: tuple[dict, str]) -> None:
    data, _ = net_build
    assert set(data) == TOP_KEYS
    assert data["format_version"] == 2
    # Stable keys: sorted at every level.
    assert list(data) == sorted(data)
    assert list(data["static"]) == sorted(data["static"])

    inp = data["input"]
    assert inp["path"] == "netlookup"
    assert inp["sha256"] == sha256(net / "netlookup")
    assert inp["size"] == (net / "netlookup").stat().st_size
    assert inp["linkage"] == "dynamic"
    assert inp["interpreter"] == HOST_LOADER

    assert data["needs"]["glibc_program"]["release"] == highest_glibc(net / "netlookup")
    libraries = {lib["name"]: lib for lib in data["needs"]["libraries"]}
    assert libraries["libc.so.6"]["glibc"] is True

    artifact = data["artifact"]
    assert artifact["glibc"] == host_glibc() == "2.36"
    assert artifact["compressed_size"] == (net / "out.tar.zst").stat().st_size
    assert artifact["format"] == "zst"
    assert artifact["launcher"] == "loader"
    assert artifact["min_kernel"] == abi_tag(os.path.realpath(libraries["libc.so.6"]["path"]))
    assert 0 < artifact["compressed_size"] < artifact["raw_size"]

    static = data["static"]
    assert static["path"] == "netlookup-static"
    assert static["really_static"] is True
    assert static["not_static_because"] == []
    assert static["same_program"] is True
    assert static["identity"].startswith("same file name")
    assert static["sha256"] == sha256(net / "netlookup-static")
    assert static["size"] == (net / "netlookup-static").stat().st_size
    assert 0 < static["compressed_size"] < static["size"]
    assert static["min_kernel"] == abi_tag(net / "netlookup-static")
    assert static["contents"]["libc"] == "glibc"
    assert static["contents"]["nss"] is True
    nss = hazard(static["hazards"], "static-nss")
    assert nss["severity"] == "high"
    assert {"getaddrinfo", "getpwnam"} <= set(nss["evidence"])
    assert "static-dlopen-unknown" not in codes(static["hazards"])  # it has a .symtab

    # The dynamic input's own hazards name the program's imports.
    assert {"netlookup: getaddrinfo", "netlookup: getpwnam"} <= set(
        hazard(data["hazards"], "dynamic-nss")["evidence"])

    assert data["runs"] is None
    verdict = data["verdict"]
    assert verdict["ship"] == "static-after-fixes"
    assert verdict["fixes"]
    assert any("getaddrinfo" in reason for reason in verdict["reasons"])


def test_static_nss_found_after_strip(net: Path) -> None:
    stripped = net / "stripped" / "netlookup-static"
    assert ".symtab" not in tool("readelf", "-S", str(stripped))  # really stripped
    data = bundle_json("netlookup", "-o", "stripped.tar.zst",
                       "--static", "stripped/netlookup-static", cwd=net)
    static = data["static"]
    assert static["sha256"] == sha256(stripped)
    assert static["size"] == stripped.stat().st_size
    assert static["same_program"] is True
    nss = hazard(static["hazards"], "static-nss")
    assert nss["severity"] == "high"
    # No symbols left: the evidence is the strings glibc's NSS loader carries.
    assert nss["evidence"], nss
    assert all(e.startswith("string ") for e in nss["evidence"]), nss["evidence"]
    assert "string 'libnss_%s.so'" in nss["evidence"]
    assert b"libnss_%s.so" in stripped.read_bytes()
    unknown = hazard(static["hazards"], "static-dlopen-unknown")
    assert unknown["severity"] == "low"
    assert data["verdict"]["ship"] == "static-after-fixes"
    assert data["verdict"]["fixes"]


# --- 2. a clean static build, and runs -------------------------------------------------


def test_clean_static_ships_static(clean: Path, clean_build: dict) -> None:
    static = clean_build["static"]
    assert static["really_static"] is True
    assert static["same_program"] is True
    assert static["hazards"] == []
    assert static["contents"]["nss"] is False
    verdict = clean_build["verdict"]
    assert verdict["ship"] == "static"
    assert verdict["fixes"] == []
    # The size reason quotes the real compressed sizes of both.
    compressed = clean_build["artifact"]["compressed_size"]
    assert compressed == (clean / "out.tar.zst").stat().st_size
    assert (f"({human_size(static['compressed_size'])} vs {human_size(compressed)})"
            in " ".join(verdict["reasons"]))


@pytest.mark.parametrize("args", ["", "a b"])
def test_runs_are_real(clean: Path, args: str) -> None:
    data = bundle_json("hello", "-o", f"run{len(args)}.tar.zst", "--static", "hello-static",
                       "--run", args, cwd=clean)
    words = args.split()
    expected = run_here(clean / "hello-static", *words)
    assert expected.returncode == 3
    assert expected.stdout == "".join(f"[{w}]\n" for w in words) + "hello\n"
    runs = data["runs"]
    assert runs["args"] == words
    assert runs["runs"] == 5
    for side in ("static", "artifact"):
        assert runs[side]["exit_codes"] == [3] * 5, (side, runs[side])
        assert runs[side]["output"] == expected.stdout, side
        assert runs[side]["errors"] == "", side
        assert runs[side]["median_seconds"] > 0, side
    assert runs["outputs_match"] is True
    assert runs["exit_codes_match"] is True
    assert data["verdict"]["ship"] == "static"


def test_runs_with_different_output_ship_the_artifact(clean: Path) -> None:
    data = bundle_json("hello", "-o", "differ.tar.zst", "--static", "differ/hello-static",
                       "--run", "x", cwd=clean)
    runs = data["runs"]
    assert runs["static"]["output"] == run_here(clean / "differ" / "hello-static").stdout
    assert runs["static"]["output"] == "something else\n"
    assert runs["artifact"]["output"] == "[x]\nhello\n"
    assert runs["static"]["exit_codes"] == runs["artifact"]["exit_codes"] == [3] * 5
    assert runs["outputs_match"] is False
    assert runs["exit_codes_match"] is True
    assert data["static"]["hazards"] == []  # clean: the runs alone decide
    assert data["verdict"]["ship"] == "artifact"
    assert any("outputs differ" in r for r in data["verdict"]["reasons"])


# --- 3. a static build that is not, a different name ----------------------------------


def test_not_static_is_rejected(clean: Path) -> None:
    data = bundle_json("hello", "-o", "ns.tar.zst", "--static", "notstatic/hello-static",
                       cwd=clean)
    static = data["static"]
    assert static["really_static"] is False
    because = " ".join(static["not_static_because"])
    assert "interpreter" in because and HOST_LOADER in because, because
    assert "libc.so.6" in because, because
    assert static["contents"] is None
    assert static["hazards"] == []
    assert data["verdict"]["ship"] == "artifact"
    assert any("is not static" in r for r in data["verdict"]["reasons"])


def test_different_file_names_warn(clean: Path) -> None:
    data = bundle_json("hello", "-o", "other.tar.zst", "--static", "other-static", cwd=clean)
    static = data["static"]
    assert static["really_static"] is True
    assert static["same_program"] is False
    assert static["identity"].startswith("warning"), static["identity"]
    assert "other-static" in static["identity"] and "hello" in static["identity"]


# --- 4. hazards of a dynamic program ---------------------------------------------------


def test_dynamic_hazards_name_the_imports(dyn: Path) -> None:
    imports = tool("nm", "-D", "--undefined-only", str(dyn / "dynload"))
    for symbol in ("dlopen", "iconv_open", "getpwnam"):
        assert re.search(rf"\b{symbol}\b", imports), symbol
    data = bundle_json("dynload", "-o", "dynload.tar.zst", cwd=dyn)
    hazards = data["hazards"]
    assert hazard(hazards, "dynamic-dlopen")["evidence"] == ["dynload: dlopen"]
    assert hazard(hazards, "dynamic-iconv")["evidence"] == ["dynload: iconv_open"]
    assert hazard(hazards, "dynamic-nss")["evidence"] == ["dynload: getpwnam"]
    assert "privileged" not in codes(hazards)
    # The default launcher: the loader start, never the env leak.
    assert hazard(hazards, "loader-start-proc-self-exe")["severity"] == "low"
    assert "env-launcher-leak" not in codes(hazards)
    assert data["static"] is None and data["verdict"]["ship"] == "artifact"


@pytest.mark.parametrize(("bit", "word"), [(stat.S_ISUID, "setuid"), (stat.S_ISGID, "setgid")])
def test_privileged_bits(dyn: Path, bit: int, word: str) -> None:
    copy = dyn / f"dynload-{word}"
    shutil.copy2(dyn / "dynload", copy)
    copy.chmod(copy.stat().st_mode | bit)
    assert copy.stat().st_mode & bit
    refused = run_cli(copy.name, "-o", f"{word}.tar.zst", cwd=dyn)
    assert_one_line_error(refused, 2, word, "--allow-setuid")
    data = bundle_json(copy.name, "-o", f"{word}.tar.zst", "--allow-setuid", cwd=dyn)
    privileged = hazard(data["hazards"], "privileged")
    assert privileged["evidence"] == [word]
    assert privileged["severity"] == "high"
    assert hazard(data["hazards"], "dynamic-dlopen")["evidence"] == [f"{copy.name}: dlopen"]


def test_file_capabilities(dyn: Path) -> None:
    setcap = need_tool("setcap")
    copy = dyn / "dynload-cap"
    shutil.copy2(dyn / "dynload", copy)
    done = subprocess.run([setcap, "cap_net_raw+ep", str(copy)], capture_output=True, text=True)
    need(done.returncode == 0, f"setcap failed here: {done.stderr.strip()}")
    refused = run_cli(copy.name, "-o", "cap.tar.zst", cwd=dyn)
    assert_one_line_error(refused, 2, "file capabilities", "--allow-setuid")
    data = bundle_json(copy.name, "-o", "cap.tar.zst", "--allow-setuid", cwd=dyn)
    assert hazard(data["hazards"], "privileged")["evidence"] == ["file capabilities"]


def test_env_launcher_leak(dyn: Path) -> None:
    data = bundle_json("dynload", "-o", "env.tar.zst", "--launcher", "env", cwd=dyn)
    leak = hazard(data["hazards"], "env-launcher-leak")
    assert leak["severity"] == "high"
    assert leak["evidence"] == ["LD_LIBRARY_PATH exported"]
    assert data["artifact"]["launcher"] == "env"


# --- 5. --report files and the Markdown ------------------------------------------------


def test_report_json_file_equals_stdout(net: Path) -> None:
    result = bundle("netlookup", "-o", "json.tar.zst", "--static", "netlookup-static",
                    "--json", "--report", "r.json", cwd=net)
    written = (net / "r.json").read_text()
    assert json.loads(written) == json.loads(result.stdout)
    assert written == result.stdout


def test_report_txt_file(net: Path) -> None:
    bundle("netlookup", "-o", "txt.tar.zst", "--report", "r.txt", cwd=net)
    text = (net / "r.txt").read_text()
    assert ANSI not in text
    assert [line for line in text.splitlines() if line in SECTIONS] == list(SECTIONS)
    assert text.splitlines()[-1] == "=> SHIP THE ARTIFACT"


def test_report_unknown_ending_is_one_line_error(net: Path) -> None:
    result = run_cli("netlookup", "-o", "html.tar.zst", "--report", "r.html", cwd=net)
    assert_one_line_error(result, 2, "r.html", ".md")
    # Refused before anything is built.
    assert not (net / "html.tar.zst").exists()
    assert not (net / "r.html").exists()


def test_markdown_holds_the_json_numbers(net_build: tuple[dict, str]) -> None:
    data, markdown = net_build
    assert markdown.startswith("# bundle report: netlookup\n")
    assert data["input"]["sha256"] in markdown
    assert f"{data['input']['size']} bytes ({human_size(data['input']['size'])})" in markdown
    artifact = data["artifact"]
    assert (f"{human_size(artifact['raw_size'])} raw, "
            f"{human_size(artifact['compressed_size'])} as zst") in markdown
    assert artifact["glibc_package"] == f"libc6 {dpkg_version('libc6')}"
    assert re.search(rf"glibc bundled\s+{re.escape(artifact['glibc'])} "
                     rf"\({re.escape(artifact['glibc_package'])}\)\n", markdown)
    assert f">= {data['needs']['glibc_program']['release']}" in markdown
    static = data["static"]
    assert re.search(rf"size raw\s+{re.escape(human_size(static['size']))}\s+"
                     rf"{re.escape(human_size(data['artifact']['raw_size']))}", markdown)
    assert re.search(rf"size compressed\s+{re.escape(human_size(static['compressed_size']))} "
                     rf"zst\s+{re.escape(human_size(data['artifact']['compressed_size']))} zst\s+"
                     r"about the artifact's \.tar\.gz", markdown)
    # the seed's third route: a container image of the artifact, and what each host needs
    assert re.search(r"the host needs\s+nothing\s+tar \(or dpkg, rpm: -o NAME\.deb, "
                     r"NAME\.rpm\)\s+a container runtime \(podman, docker\) \(-o "
                     r"NAME\.oci\.tar\)", markdown)
    assert static["path"] in markdown
    assert f"**{data['verdict']['headline']}**" in markdown
    for item in data["hazards"] + static["hazards"]:
        assert item["code"] in markdown, item["code"]
    for fix in data["verdict"]["fixes"]:
        assert fix in markdown
    headings = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert headings == [f"## {s}" for s in SECTIONS]


def test_artifact_carries_report_md(net: Path, net_build: tuple[dict, str]) -> None:
    data, _ = net_build
    into = net / "unpacked"
    into.mkdir(exist_ok=True)
    subprocess.run([need_tool("tar"), "--zstd", "-xf", str(net / "out.tar.zst"), "-C",
                    str(into)], check=True)
    inside = (into / "netlookup" / ".bundle" / "report.md").read_text()
    assert inside.startswith("# bundle report: netlookup\n")
    assert re.search(rf"glibc bundled\s+{re.escape(host_glibc())} "
                     rf"\(libc6 {re.escape(dpkg_version('libc6'))}\)\n", inside)
    assert data["input"]["sha256"] in inside
    assert "static-nss" in inside  # written in compare mode: the static side is in it
    # Written before compression: no compressed size of the artifact is claimed.
    assert re.search(r"size\s+[\d.]+ \w+ raw\n", inside)


def test_report_inside_compares_sizes_like_with_like(clean: Path, clean_build: dict) -> None:
    """Inside the artifact (written before compression) and for a directory artifact,
    the artifact's compressed size is unknown: the verdict must compare raw with raw."""
    into = clean / "unpacked"
    into.mkdir(exist_ok=True)
    subprocess.run([need_tool("tar"), "--zstd", "-xf", str(clean / "out.tar.zst"), "-C",
                    str(into)], check=True)
    inside = (into / "hello" / ".bundle" / "report.md").read_text()
    static, artifact = clean_build["static"], clean_build["artifact"]
    assert (f"smaller raw ({human_size(static['size'])} vs "
            f"{human_size(artifact['raw_size'])})") in inside
    assert f"{static['compressed_size']} vs {artifact['raw_size']}" not in inside


# --- 6. terminal text ------------------------------------------------------------------


def test_text_without_tty(clean: Path) -> None:
    result = bundle("hello", "-o", "text.tar.zst", "--static", "hello-static", cwd=clean)
    text = result.stdout
    assert ANSI not in text
    assert ANSI not in result.stderr
    headings = [line for line in text.splitlines() if line in SECTIONS]
    assert headings == list(SECTIONS)
    assert text.splitlines()[-1].startswith("=> ")
    assert text.splitlines()[-1] == "=> SHIP THE STATIC BUILD"
    # Aligned: every value of section 1 starts in the same column.
    rows = section_lines(text)["2. The input"]
    assert len(rows) == 6
    columns = {re.match(r"  \S+\s+", row).end() for row in rows}
    assert len(columns) == 1, rows


def test_text_on_a_tty_is_coloured_unless_no_color(clean: Path) -> None:
    bundle("hello", "-o", "tty.tar.zst", cwd=clean)
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "LD_LIBRARY_PATH")}
    env["PYTHONPATH"] = str(REPO)
    env["TERM"] = "xterm"
    argv = [sys.executable, "-m", "bundler", "compare", "tty.tar.zst", "hello-static"]
    code, coloured = read_pty(argv, env, clean)
    assert code == 0, coloured
    assert ANSI in coloured
    assert "\033[1m2. The input\033[0m" in coloured
    code, plain = read_pty(argv, {**env, "NO_COLOR": "1"}, clean)
    assert code == 0, plain
    assert ANSI not in plain
    assert plain.splitlines()[-1] == "=> SHIP THE STATIC BUILD"


def test_text_colour_in_process(clean: Path, clean_build: dict, monkeypatch) -> None:
    report = compare_report(str(clean / "out.tar.zst"), str(clean / "hello-static"), None)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert use_color(False) is False
    assert ANSI not in report_text(report, color=use_color(False))
    coloured = report_text(report, color=use_color(True))
    assert ANSI in coloured
    monkeypatch.setenv("NO_COLOR", "1")
    plain = report_text(report, color=use_color(True))
    assert ANSI not in plain
    lines = plain.splitlines()
    assert [line for line in lines if line in SECTIONS] == list(SECTIONS)
    assert lines[-1] == "=> " + clean_build["verdict"]["headline"].upper()


# --- 7. bundle compare -----------------------------------------------------------------


def test_compare_matches_build_time_static_nss(net: Path, net_build: tuple[dict, str]) -> None:
    built, _ = net_build
    data = bundle_json("compare", "out.tar.zst", "netlookup-static", cwd=net)
    assert data["static"] == built["static"]
    assert data["verdict"] == built["verdict"]
    assert data["artifact"]["compressed_size"] == built["artifact"]["compressed_size"]
    assert data["artifact"]["glibc"] == built["artifact"]["glibc"]
    assert data["artifact"]["glibc_package"] == built["artifact"]["glibc_package"]
    assert data["artifact"]["glibc_package"] == f"libc6 {dpkg_version('libc6')}"
    assert codes(data["hazards"]) == codes(built["hazards"])


def test_compare_matches_build_time_clean(clean: Path, clean_build: dict) -> None:
    data = bundle_json("compare", "out.tar.zst", "hello-static", cwd=clean)
    assert data["static"] == clean_build["static"]
    assert data["verdict"] == clean_build["verdict"]
    assert data["verdict"]["ship"] == "static"


def test_compare_runs(clean: Path, clean_build: dict) -> None:
    data = bundle_json("compare", "out.tar.zst", "hello-static", "--run", "a b", cwd=clean)
    runs = data["runs"]
    assert runs["static"]["exit_codes"] == runs["artifact"]["exit_codes"] == [3] * 5
    assert runs["artifact"]["output"] == run_here(clean / "hello", "a", "b").stdout
    assert runs["outputs_match"] is True
    assert data["verdict"]["ship"] == "static"


def test_compare_directory_artifact(clean: Path) -> None:
    built = bundle_json("hello", "-o", "tree/", "--static", "hello-static", cwd=clean)
    assert (clean / "tree" / "hello" / ".bundle" / "manifest.json").is_file()
    data = bundle_json("compare", "tree/", "hello-static", cwd=clean)
    assert data["static"] == built["static"]
    assert data["verdict"] == built["verdict"]
    assert data["verdict"]["ship"] == "static"
    assert data["artifact"]["format"] == built["artifact"]["format"] == "dir"
    assert data["artifact"]["compressed_size"] is None
    raw = built["artifact"]["raw_size"]
    assert f"smaller raw ({human_size(built['static']['size'])} vs {human_size(raw)})" in " ".join(
        data["verdict"]["reasons"])


def test_compare_non_artifact_is_one_line_error(clean: Path) -> None:
    assert_one_line_error(run_cli("compare", "hello", "hello-static", cwd=clean), 2,
                          "hello", "not an artifact")
    shutil.copy2(clean / "hello", clean / "fake.tar.zst")
    assert_one_line_error(run_cli("compare", "fake.tar.zst", "hello-static", cwd=clean), 2,
                          "fake.tar.zst")
    assert_one_line_error(run_cli("compare", "missing.tar.zst", "hello-static", cwd=clean), 2,
                          "missing.tar.zst")


def test_run_without_static_is_one_line_error(clean: Path) -> None:
    result = run_cli("hello", "-o", "norun.tar.zst", "--run", "a", cwd=clean)
    assert_one_line_error(result, 2, "--run", "--static")
    assert not (clean / "norun.tar.zst").exists()


# --- 8. the verdict first, the runs line by line ----------------------------------------


FIRST_LINES = 10  # what a reader sees before deciding whether to read on


def test_verdict_opens_the_build_output(clean: Path, clean_build: dict) -> None:
    """`bundle X -o OUT --static S`: the terminal (stderr summary, then the report on
    stdout), the --report Markdown and the artifact's own report.md all hold the verdict
    in their first ten lines."""
    headline = clean_build["verdict"]["headline"]
    result = bundle("hello", "-o", "first.tar.zst", "--static", "hello-static",
                    "--report", "first.md", cwd=clean)
    terminal = (result.stderr + result.stdout).splitlines()
    assert f"  verdict        {headline}" in terminal[:FIRST_LINES], terminal[:FIRST_LINES]
    assert f"  => {headline.upper()}" in result.stdout.splitlines()[:FIRST_LINES]
    assert f"**{headline}**" in (clean / "first.md").read_text().splitlines()[:FIRST_LINES]
    inside = subprocess.run([need_tool("tar"), "--zstd", "-xOf", str(clean / "first.tar.zst"),
                             "hello/.bundle/report.md"], capture_output=True, text=True,
                            check=True).stdout
    assert f"**{headline}**" in inside.splitlines()[:FIRST_LINES]
    # The details follow, in their sections.
    assert [line for line in result.stdout.splitlines() if line in SECTIONS] == list(SECTIONS)
    # The summary names the glibc's package, as dpkg knows it.
    assert re.search(rf"^  glibc bundled\s+{re.escape(host_glibc())} "
                     rf"\(libc6 {re.escape(dpkg_version('libc6'))}\); needs kernel",
                     result.stderr, re.M), result.stderr


def test_verdict_and_reasons_open_the_summary_without_static(clean: Path) -> None:
    """No static build: no report follows on the terminal, so the summary gives the
    verdict's reasons itself, right under its first line."""
    data = bundle_json("hello", "-o", "alone.tar.zst", cwd=clean)
    result = bundle("hello", "-o", "alone.tar.zst", cwd=clean)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    verdict = data["verdict"]
    assert lines[1] == f"  verdict        {verdict['headline']}"
    reasons = verdict["reasons"]
    assert lines[2:2 + len(reasons)] == [f"                 - {r}" for r in reasons]


def test_verdict_opens_compare_output(clean: Path, clean_build: dict) -> None:
    result = bundle("compare", "out.tar.zst", "hello-static", cwd=clean)
    first = result.stdout.splitlines()[:FIRST_LINES]
    assert first[:2] == ["1. Verdict", f"  => {clean_build['verdict']['headline'].upper()}"]
    assert [f"  - {reason}" for reason in clean_build["verdict"]["reasons"]][:FIRST_LINES - 2] \
        == first[2:2 + len(clean_build["verdict"]["reasons"])]


def test_run_differences_shown_line_by_line_with_their_cause(selfpath: Path) -> None:
    """The same program both ways, printing argv[0] and /proc/self/exe: the runs differ in
    exactly those two lines, shown as a diff with their cause, in the terminal text and
    in the --report Markdown; the artifact's own report.md says where runs are."""
    here = run_here(selfpath / "selfpath-static").stdout.splitlines()
    assert here[0] == "hello" and here[-1] == "bye" and len(here) == 4
    result = bundle("selfpath", "-o", "self.tar.zst", "--static", "selfpath-static",
                    "--run", "", "--report", "self.md", cwd=selfpath)
    runs = section_lines(result.stdout)["7. Runs side by side"]
    body = [line[2:] for line in runs]
    assert "outputs     DIFFER only in the program's own path (see below)" in body, body
    static_path = "/run/bundle-compare/static/selfpath-static"
    start = body.index("    --- static stdout")
    diff = body[start:start + 7]
    assert diff[:5] == ["    --- static stdout", "    +++ artifact stdout", "    @@ -2,2 +2,2 @@",
                        f"    -argv0: {static_path}", f"    -exe: {static_path}"], diff
    assert re.fullmatch(r"    \+argv0: /run/bundle-compare/artifact/[^/]+/bin/selfpath",
                        diff[5]), diff
    assert re.fullmatch(r"    \+exe: /run/bundle-compare/artifact/[^/]+/lib/(\.bundle-\w+/)?"
                        r"ld-linux-x86-64\.so\.2", diff[6]), diff
    cause = body[start + 7]
    assert cause.startswith("    cause: the line names the program's own path"), cause
    assert "name the bundled loader" in cause
    assert not any(line.endswith(("hello", "bye")) for line in diff)  # equal lines: not shown
    markdown = (selfpath / "self.md").read_text()
    assert "## 7. Runs side by side" in markdown
    for line in (*diff, cause):
        assert f"\n{line}\n" in markdown, line
    inside = subprocess.run([need_tool("tar"), "--zstd", "-xOf", str(selfpath / "self.tar.zst"),
                             "selfpath/.bundle/report.md"], capture_output=True, text=True,
                            check=True).stdout
    assert "runs (--run ARGS) are in the build's own report output" in inside
