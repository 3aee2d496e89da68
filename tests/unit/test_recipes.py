"""recipes.recognise on real programs: this machine's Debian 12 python3, perl, git, openssl,
gpg and tmux (scripts/test installs them), the Debian 11 root's perl and libcrypto 1.1, and
gcc-built programs that look like one of them or like nothing at all.

The expected values are read from the programs themselves where they can say them (perl's
@INC, `openssl version -a`), never copied from the recipe.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from support.needs import need
from support.roots import debian11_tree
from support.toolchain import gcc

from bundler.carry import TOP, Carry, Recipe
from bundler.recipes import perl_inc_dirs, recognise
from bundler.resolve import ResolveOptions
from bundler.runtime_loads import resolve_programs
from bundler.sysroot import Sysroot


def recipes_of(*programs: str | Path, root: str = "/") -> tuple[Recipe, ...]:
    """The recipes of these programs (paths on this machine), their closures resolved the
    way the build resolves them."""
    sysroot = Sysroot(root)
    closures, _, _ = resolve_programs([os.path.realpath(p) for p in programs], [], sysroot,
                                      ResolveOptions(), "auto")
    return recognise(closures, sysroot)


def installed(name: str) -> str:
    path = shutil.which(name, path="/usr/bin:/bin")
    need(path is not None, f"{name} is not installed (scripts/test installs it)")
    assert path is not None
    return path


def named(recipes: tuple[Recipe, ...], name: str) -> Recipe:
    found = [r for r in recipes if r.name == name]
    assert len(found) == 1, recipes
    return found[0]


def test_python3_carries_its_own_stdlib_where_python_finds_it() -> None:
    python = os.path.realpath(installed("python3"))
    version = re.fullmatch(r"python(3\.\d+)", os.path.basename(python))
    assert version, python
    recipe = named(recipes_of(python), "python3")
    stdlib = f"/usr/lib/python{version.group(1)}"
    assert recipe.carry[0] == Carry(stdlib, f"lib/python{version.group(1)}",
                                    "recipe python3",
                                    exclude=("config-3.*", "site-packages", "dist-packages"))
    assert recipe.env == ()  # no PYTHONHOME: it could not be scoped (inherited)
    assert "Py_BytesMain" in recipe.recognised
    assert any("dist-packages" in note for note in recipe.notes)
    assert recipe.program == os.path.basename(python)


def test_perl_dirs_are_its_own_inc_in_its_order() -> None:
    """The carried dirs are perl's @INC as perl itself prints it, site dirs left out."""
    perl = installed("perl")
    inc = subprocess.run([perl, "-e", "print join(qq(\\n), @INC)"], capture_output=True,
                         text=True, check=True).stdout.split()
    system = [d for d in inc if not d.startswith(("/usr/local/", "/etc/"))
              and "site_perl" not in d and os.path.isdir(d)]
    recipe = named(recipes_of(perl), "perl")
    # perl's own dirs carried; the vendor dirs (the build host's Debian perl modules) left
    vendor = [d for d in system if "/perl5" in d]
    core = [d for d in system if d not in vendor]
    assert vendor and core
    assert [f"/{c.dest}" for c in recipe.carry] == core
    assert [c.source for c in recipe.carry] == [os.path.realpath(d) for d in core]
    assert recipe.leaves == tuple(vendor)
    assert recipe.env[0].name == "PERL5LIB"
    assert recipe.env[0].value == ":".join(f"{TOP}{d}" for d in core)
    assert any("-T" in note for note in recipe.notes)


def test_perl_of_the_debian11_root_gets_its_own_dirs() -> None:
    """perl 5.32 of the minbase root: only what the root has (perl-base; debconf's
    /usr/share/perl5 is a vendor dir, left), none of this machine's 5.36 dirs."""
    root = debian11_tree()
    perl = os.path.realpath(root / "usr/bin/perl")
    recipe = named(recipes_of(perl, root=str(root)), "perl")
    multiarch = "x86_64-linux-gnu"
    assert [c.dest for c in recipe.carry] == [f"usr/lib/{multiarch}/perl-base"]
    assert recipe.leaves == ("/usr/share/perl5",)
    assert "5.36" not in recipe.env[0].value


def test_perl_inc_order_of_debian_and_fedora_layouts() -> None:
    debian = ["/etc/perl", "/usr/local/lib/aarch64-linux-gnu/perl/5.32.1",
              "/usr/local/share/perl/5.32.1", "/usr/share/perl/5.32",
              "/usr/lib/aarch64-linux-gnu/perl/5.32", "/usr/lib/aarch64-linux-gnu/perl-base",
              "/usr/share/perl5", "/usr/lib/aarch64-linux-gnu/perl5/5.32",
              "/usr/local/lib/site_perl", "/usr/lib/debug/.dwz/aarch64-linux-gnu/perl.debug"]
    assert perl_inc_dirs(debian, lambda _: True) == (
        "/usr/lib/aarch64-linux-gnu/perl5/5.32", "/usr/share/perl5",
        "/usr/lib/aarch64-linux-gnu/perl-base", "/usr/lib/aarch64-linux-gnu/perl/5.32",
        "/usr/share/perl/5.32")
    fedora = ["/usr/share/perl5", "/usr/lib64/perl5", "/usr/share/perl5/vendor_perl",
              "/usr/lib64/perl5/vendor_perl", "/usr/local/share/perl5/5.36"]
    assert perl_inc_dirs(fedora, lambda _: True) == (
        "/usr/lib64/perl5/vendor_perl", "/usr/share/perl5/vendor_perl", "/usr/lib64/perl5",
        "/usr/share/perl5")
    assert perl_inc_dirs(debian, lambda d: "perl-base" in d) == (
        "/usr/lib/aarch64-linux-gnu/perl-base",)


def test_git_and_its_helpers_share_one_recipe() -> None:
    git = installed("git")
    upload_pack = "/usr/lib/git-core/git-upload-pack"
    need(os.path.exists(upload_pack), "git's /usr/lib/git-core is missing")
    recipe = named(recipes_of(git, upload_pack), "git")
    assert [(c.source, c.required) for c in recipe.carry] == [
        ("/usr/lib/git-core", True), ("/usr/share/git-core/templates", False)]
    assert {e.name: e.value for e in recipe.env} == {
        "GIT_EXEC_PATH": f"{TOP}/usr/lib/git-core",
        "GIT_TEMPLATE_DIR": f"{TOP}/usr/share/git-core/templates"}
    assert "/usr/lib/git-core" in recipe.recognised


def test_openssl_is_a_library_recipe_with_the_dirs_libcrypto_names() -> None:
    """OPENSSLDIR and MODULESDIR as `openssl version -a` prints them; for curl too, which
    uses libcrypto only through its libraries."""
    openssl = installed("openssl")
    shown = subprocess.run([openssl, "version", "-a"], capture_output=True, text=True,
                           check=True).stdout
    dirs = dict(re.findall(r'^(OPENSSLDIR|MODULESDIR|ENGINESDIR): "([^"]+)"', shown, re.M))
    recipe = named(recipes_of(openssl), "openssl")
    assert recipe.program is None
    assert {e.name: e.value for e in recipe.env} == {
        "OPENSSL_CONF": f"{TOP}{dirs['OPENSSLDIR']}/openssl.cnf",
        "OPENSSL_MODULES": f"{TOP}{dirs['MODULESDIR']}",
        "OPENSSL_ENGINES": f"{TOP}{dirs['ENGINESDIR']}"}
    assert all(not c.required for c in recipe.carry)
    assert any("SSL_CERT_FILE" in note for note in recipe.notes)
    curl = shutil.which("curl", path="/usr/bin")
    if curl:
        assert named(recipes_of(curl), "openssl").env == recipe.env


def test_openssl_1_1_of_the_debian11_root(tmp_path: Path) -> None:
    """libcrypto.so.1.1 names no MODULESDIR, and minbase has no openssl.cnf: only its
    engines dir is carried."""
    root = debian11_tree()
    libdir = root / "usr/lib/x86_64-linux-gnu"
    program = gcc(tmp_path / "uses-crypto",
                  "unsigned long OpenSSL_version_num(void);\n"
                  "int main(void) { return OpenSSL_version_num() == 0; }\n",
                  f"-L{libdir}", "-l:libcrypto.so.1.1", "-Wl,--no-as-needed")
    recipe = named(recipes_of(program, root=str(root)), "openssl")
    assert [(c.source, c.dest) for c in recipe.carry] == [
        ("/usr/lib/x86_64-linux-gnu/engines-1.1", "usr/lib/x86_64-linux-gnu/engines-1.1")]
    assert [e.name for e in recipe.env] == ["OPENSSL_ENGINES"]


def test_gpg_gets_its_agent_as_a_helper_and_launcher_args() -> None:
    gpg = installed("gpg")
    recipe = named(recipes_of(gpg), "gpg")
    assert recipe.program == "gpg"
    assert [(h.source, h.dest) for h in recipe.helpers] == [("/usr/bin/gpg-agent",
                                                             "bin/gpg-agent")]
    assert recipe.args == ("--agent-program", f"{TOP}/bin/gpg-agent")
    gpgconf = shutil.which("gpgconf", path="/usr/bin")
    if gpgconf:  # takes no --agent-program: it must not be given one
        assert not [r for r in recipes_of(gpgconf) if r.name == "gpg"]


def test_tmux_gets_the_c_utf8_locale() -> None:
    recipe = named(recipes_of(installed("tmux")), "locale C.UTF-8")
    assert recipe.locales == ("C.UTF-8",)
    assert recipe.program == "tmux"


def test_fontconfig_users_carry_etc_fonts() -> None:
    fc_list = shutil.which("fc-list", path="/usr/bin")
    need(fc_list is not None and os.path.isfile("/etc/fonts/fonts.conf"),
         "fontconfig is not installed")
    assert fc_list is not None
    recipe = named(recipes_of(fc_list), "fontconfig")
    assert [(e.name, e.value) for e in recipe.env] == [
        ("FONTCONFIG_FILE", f"{TOP}/etc/fonts/fonts.conf")]


def test_c_utf8_only_as_a_whole_string(tmp_path: Path) -> None:
    whole = gcc(tmp_path / "whole", '#include <locale.h>\n'
                'int main(void) { return !setlocale(LC_CTYPE, "C.UTF-8"); }\n')
    inside = gcc(tmp_path / "inside", '#include <stdio.h>\n'
                 'int main(void) { return puts("use C.UTF-8 here") < 0; }\n')
    assert [r.name for r in recipes_of(whole)] == ["locale C.UTF-8"]
    assert recipes_of(inside) == ()


def test_what_nothing_recognises_gets_no_recipe(tmp_path: Path) -> None:
    """`ls`, a plain program, and one that exports Py_BytesMain for a python 3.99 this
    root has no library for: no recipe (recognition needs the root's files too)."""
    hello = gcc(tmp_path / "hello", '#include <stdio.h>\n'
                'int main(void) { return puts("hello") < 0; }\n')
    fake = gcc(tmp_path / "fakepython",
               'const char *version = "3.99.1";\n'
               'int Py_BytesMain(int c, char **v) { (void)c; (void)v; return 0; }\n'
               'int main(int c, char **v) { return Py_BytesMain(c, v) + !version; }\n',
               "-rdynamic")
    assert recipes_of(installed("ls"), hello, fake) == ()
    python = os.path.basename(os.path.realpath(installed("python3")))  # python3.X
    same = gcc(tmp_path / "embedder", f'const char *version = "{python[6:]}.0";\n'
               'int Py_BytesMain(int c, char **v) { (void)c; (void)v; return 0; }\n'
               'int main(int c, char **v) { return Py_BytesMain(c, v) + !version; }\n',
               "-rdynamic")
    assert [r.carry[0].source for r in recipes_of(same)] == [f"/usr/lib/{python}"]


def test_the_debian11_root_programs_other_than_perl_get_none() -> None:
    root = debian11_tree()
    programs = [os.path.realpath(root / "usr/bin" / name) for name in ("ls", "gpgv", "tar")]
    assert recipes_of(*programs, root=str(root)) == ()
