"""Built-in recipes: what well-known programs and libraries need beyond their libraries.

python3 finds its standard library, perl its @INC, git its helper programs, OpenSSL its
config and providers, gpg its agent at paths compiled into them; in an artifact those
paths name the host's files (another version, or nothing). A recipe carries the build
root's copy and points the program at it (carry.py), and `recognise` applies it without
being asked, so that `bundle /usr/bin/python3 -o py.tar.zst` just works.

Whether each variable reaches the programs it starts (scoped, renamed in the bundled
copies that read it, or inherited) is decided by plan.scope_environment and said in the
report, not here.

Recognition is by what the ELF files say (exported symbols, DT_NEEDED, whole strings
compiled into them), not by file names alone, and every path and version is read from the
program and the build root (python's X.Y, perl's 5.X dirs, OpenSSL's MODULESDIR), never
assumed: Debian 11's python3.9 and perl 5.32 and an arm64 root are recognised the same
way. The decisions are pure over those facts; the reads go through `Sysroot`.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bundler.carry import TOP, Carry, EnvValue, Helper, Recipe, default_dest
from bundler.compiled_paths import read_rodata
from bundler.elf import plain_section_headers
from bundler.locales import available, normalize_name
from bundler.resolve import Closure
from bundler.sysroot import Sysroot

# A whole C string naming an absolute path: NUL before and after.
_ABSOLUTE = re.compile(rb"(?<=\0)(/[A-Za-z0-9_.+/-]{1,200})(?=\0)")
_PYTHON_NAME = re.compile(r"python3\.(\d{1,3})")
_PYTHON_RELEASE = re.compile(rb"(?<=\0)3\.(\d{1,3})\.\d{1,3}(?:[a-z]+\d*)?(?=\0)")
# OpenSSL's `openssl version -a` lines, compiled into libcrypto.
_OPENSSL_DIR = re.compile(rb'(OPENSSLDIR|ENGINESDIR|MODULESDIR): "(/[^"\0]{1,200})"')


@dataclass
class _Object:
    """One ELF file of a closure, its strings read once (only when a rule asks)."""

    label: str
    host_path: str

    @property
    def data(self) -> bytes:
        """The file's read-only data, where its C strings are (not its code: node's 99 MB
        hold 45 MB of it, and every rule looks through it)."""
        return read_rodata(self.host_path, go=True)

    @property
    def names(self) -> bytes:
        """Its dynamic string table (.dynstr), where exported symbols' names are; the
        whole file where the section headers cannot be read plainly."""
        sections = plain_section_headers(self.host_path)
        table = next((s for s in sections or () if s.name == ".dynstr"), None)
        try:
            with open(self.host_path, "rb") as handle:
                if table is None:
                    return handle.read()
                handle.seek(table.offset)
                return b"\0" + handle.read(table.size)
        except OSError:
            return b""

    def holds(self, text: str) -> bool:
        """The whole C string `text` is in the file (not a substring of a longer one)."""
        return b"\0" + text.encode() + b"\0" in self.data

    def ends(self, text: str) -> bool:
        """A C string ends with `text`: the linker stores "gpg-agent" as the tail of
        "S.gpg-agent" (string merging), so a whole-string test would miss it."""
        return text.encode() + b"\0" in self.data

    def absolute_paths(self) -> list[str]:
        """The absolute paths compiled into the file, in file order, each once."""
        seen: dict[str, None] = {}
        for match in _ABSOLUTE.finditer(self.data):
            seen.setdefault(match.group(1).decode(), None)
        return list(seen)

    def exports(self, symbol: str) -> bool:
        """`symbol` is defined in the dynamic symbol table (a program built with
        -export-dynamic, like Debian's python3 and perl, exports its embedded library)."""
        if b"\0" + symbol.encode() + b"\0" not in self.names:
            return False  # cheap test first: the name is not even in a string table
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile
        from elftools.elf.sections import SymbolTableSection

        try:
            with open(self.host_path, "rb") as handle:
                table = ELFFile(handle).get_section_by_name(".dynsym")
                if not isinstance(table, SymbolTableSection):
                    return False
                return any(s["st_shndx"] != "SHN_UNDEF"
                           for s in table.get_symbol_by_name(symbol) or ())
        except (ELFError, OSError, ValueError):
            return False


@dataclass
class _Subject:
    """A program, its closure and the root it came from: what the rules look at."""

    closure: Closure
    sysroot: Sysroot
    program: _Object
    libraries: dict[str, _Object]  # soname (or DT_NEEDED name) -> the library

    @property
    def label(self) -> str:
        return self.closure.program_label

    @property
    def target_path(self) -> str | None:
        """The program's path in the build root (None when it lies outside it)."""
        return self.sysroot.target_path(self.closure.program.path)

    def library(self, prefix: str) -> _Object | None:
        """The closure's library whose soname starts with `prefix`."""
        return next((lib for name, lib in self.libraries.items() if name.startswith(prefix)),
                    None)


def recognise(closures: Sequence[Closure], sysroot: Sysroot) -> tuple[Recipe, ...]:
    """The recipes that apply to these programs: one per program recipe and program, one
    per library recipe for the whole artifact (its variables serve every program)."""
    subjects = [_subject(closure, sysroot) for closure in closures]
    recipes: list[Recipe] = []
    for subject in subjects:
        if subject.closure.program.interpreter is None and not subject.closure.program.is_static:
            continue  # a plugin (lib-dynload/_ssl.so): only the library rules look at it
        for rule in PROGRAM_RULES:
            recipe = rule(subject)
            if recipe is not None:
                recipes.append(recipe)
    for library_rule in LIBRARY_RULES:
        recipe = library_rule(subjects)
        if recipe is not None:
            recipes.append(recipe)
    return tuple(_once(recipes))


def _subject(closure: Closure, sysroot: Sysroot) -> _Subject:
    libraries = {(lib.soname or lib.name): _Object(lib.name, lib.host_path)
                 for lib in closure.libraries if not lib.runtime}
    return _Subject(closure, sysroot, _Object(closure.program_label, closure.program.path),
                    libraries)


def _once(recipes: list[Recipe]) -> list[Recipe]:
    """Each recipe once: git and its git-core helpers bundled together all hold the exec
    path, and carry the same tree; a recipe that gives its program launcher arguments
    stays one per program (each launcher takes them)."""
    kept: dict[object, Recipe] = {}
    for recipe in recipes:
        key = (recipe.program, recipe) if recipe.args else (
            recipe.name, recipe.carry, recipe.env, recipe.helpers, recipe.locales)
        kept.setdefault(key, recipe)
    return list(kept.values())


def _top(dest: str) -> str:
    return f"{TOP}/{dest}"


# -- python3 -------------------------------------------------------------------------------

def python(subject: _Subject) -> Recipe | None:
    """CPython: `Py_BytesMain` exported (Debian links libpython into python3.X) or
    libpython3.X needed. Its stdlib is PREFIX/lib/python3.X (and PREFIX/lib64/python3.X
    where platlibdir is lib64), carried to TOP/lib/python3.X where python finds it."""
    libpython = subject.library("libpython3.")
    if libpython is not None:
        why = f"needs {posixpath.basename(libpython.host_path)}"
        holder = libpython
    elif subject.program.exports("Py_BytesMain"):
        why = "exports Py_BytesMain (CPython's main)"
        holder = subject.program
    else:
        return None
    minor = _python_minor(subject, holder)
    if minor is None:
        return None
    version = f"3.{minor}"
    name = f"python{version}"
    stdlib = f"/usr/lib/{name}"
    exclude = ("config-3.*", "site-packages", "dist-packages")
    # TOP/lib/python3.X: python finds it from its own place (bin/python3 -> TOP), the
    # landmark lib/python3.X/os.py, so no PYTHONHOME is set: that name is the tail of
    # "ENV_PYTHONHOME" in python's strings (not scopable), and inherited it would send a
    # host python of another version started by this one to this library.
    carry = [Carry(stdlib, f"lib/{name}", "recipe python3", exclude=exclude)]
    if subject.sysroot.is_dir(f"/usr/lib64/{name}") and (
            subject.sysroot.resolve(f"/usr/lib64/{name}") != subject.sysroot.resolve(stdlib)):
        carry.append(Carry(f"/usr/lib64/{name}", f"lib64/{name}", "recipe python3",
                           required=False, exclude=exclude))
    return Recipe(
        name="python3", program=subject.label,
        recognised=f"{subject.label} {why}; its standard library is {stdlib} (python "
                   f"{version}) in the build root",
        carry=tuple(carry),
        notes=(f"the standard library is at lib/{name}, where python looks first from its "
               "own place (bin/python3 or libexec/): no variable is set, so python -E and "
               "-I work and a host python it starts is not affected",
               f"{stdlib}/lib-dynload modules are carried with the libraries they need",
               f"left out: {stdlib}/config-3.* (static libpython and files for building C "
               "extensions), site-packages and dist-packages",
               "Debian's python3-* modules (/usr/lib/python3/dist-packages) are not carried "
               "and not read: add them with --data",
               "started with an argv[0] that is neither a path to it nor found on PATH, "
               "python falls back to its compiled-in /usr"),
    )


def _python_minor(subject: _Subject, holder: _Object) -> str | None:
    """python's minor version: from libpython3.X's name, the program's name, or its
    release string (3.X.Y), whichever names a stdlib (with os.py) in the build root."""
    candidates: list[str] = []
    for name in (posixpath.basename(holder.host_path), subject.label,
                 posixpath.basename(subject.target_path or "")):
        match = _PYTHON_NAME.search(name)
        if match:
            candidates.append(match.group(1))
    candidates += [m.group(1).decode() for m in _PYTHON_RELEASE.finditer(holder.data)]
    return next((minor for minor in candidates
                 if subject.sysroot.is_file(f"/usr/lib/python3.{minor}/os.py")), None)


# -- perl ----------------------------------------------------------------------------------

def perl(subject: _Subject) -> Recipe | None:
    """perl: exports perl_parse (Debian's /usr/bin/perl embeds libperl) or needs
    libperl.so.5.X. Its @INC dirs are compiled into that file; PERL5LIB puts the carried
    copies first, so a module is never taken from the host's perl of another version."""
    libperl = subject.library("libperl.so")
    if libperl is not None:
        holder, why = libperl, f"needs {posixpath.basename(libperl.host_path)}"
    elif subject.program.exports("perl_parse"):
        holder, why = subject.program, "exports perl_parse (embeds libperl)"
    else:
        return None
    compiled = holder.absolute_paths()
    dirs = perl_inc_dirs(compiled, subject.sysroot.is_dir)
    if not dirs:
        return None
    # perl's own (perl-base, archlib, privlib) are carried; the vendor dirs hold whatever
    # Debian perl modules the build host has installed (XML::LibXML brings ICU's 31 MB):
    # left to the host, searched after the carried ones.
    vendor = tuple(d for d in dirs if _vendor_dir(d, compiled))
    carry = tuple(Carry(subject.sysroot.resolve(d) or d, default_dest(d), "recipe perl")
                  for d in dirs if d not in vendor)
    return Recipe(
        name="perl", program=subject.label,
        recognised=f"{subject.label} {why}; its @INC dirs in the build root: "
                   + ", ".join(dirs),
        carry=carry,
        env=(EnvValue("PERL5LIB", ":".join(_top(c.dest) for c in carry), "recipe perl"),),
        leaves=vendor,
        notes=(("the vendor dirs (" + ", ".join(vendor) + ": the Debian perl modules "
                "installed on the build host) are left to the host and searched after the "
                "carried ones: carry those a script uses with --data") if vendor else
               "no vendor dirs",
               "site dirs (/usr/local/..., /etc/perl) are the host's and are searched after "
               "the carried ones; a module the build root lacks may still be taken from the "
               "host's perl",
               "taint mode (perl -T) ignores PERL5LIB: there the host's @INC is used"),
    )


def _vendor_dir(path: str, compiled: Sequence[str]) -> bool:
    """Debian's vendor dirs (perl5/5.X, /usr/share/perl5), Fedora's vendor_perl."""
    fedora_style = any("vendor_perl" in p for p in compiled)
    return "vendor_perl" in path or (not fedora_style and ("/perl5" in path))


def perl_inc_dirs(compiled: Sequence[str], is_dir: Callable[[str], bool]) -> tuple[str, ...]:
    """The system @INC dirs among the paths compiled into perl, in @INC order, those
    that exist in the build root. perl searches the vendor dirs, then Debian's perl-base,
    then the core (archlib, privlib), each arch-specific before shared; site dirs
    (/usr/local, site_perl) and /etc/perl belong to the host and stay out."""
    ranked: list[tuple[tuple[int, int, int], str]] = []
    for index, path in enumerate(compiled):
        if (path.startswith(("/usr/local/", "/etc/", "/usr/lib/debug/"))
                or "site_perl" in path or "perl" not in path
                or not re.search(r"/perl(?:5|-base)?(?:/vendor_perl)?(?:/[0-9.]+)?$", path)):
            continue
        if _vendor_dir(path, compiled):
            level = 0
        elif path.endswith("/perl-base"):
            level = 1
        else:
            level = 2
        shared = 1 if path.startswith("/usr/share/") else 0
        ranked.append(((level, shared, index), path))
    return tuple(path for _, path in sorted(ranked) if is_dir(path))


# -- git -----------------------------------------------------------------------------------

def git(subject: _Subject) -> Recipe | None:
    """git: its exec path (PREFIX/lib/git-core, PREFIX/libexec/git-core) is compiled in,
    and its templates are PREFIX/share/git-core/templates."""
    # the regex over every absolute path of a 99 MB node took 2.2 s: look for the name first
    held = b"/git-core\0" in subject.program.data
    exec_path = next((p for p in subject.program.absolute_paths()
                      if p.endswith("/git-core") and subject.sysroot.is_dir(p)),
                     None) if held else None
    why = f"holds its exec path {exec_path}"
    if exec_path is None:
        if subject.label != "git" or not subject.sysroot.is_dir("/usr/lib/git-core"):
            return None
        exec_path, why = "/usr/lib/git-core", "is named git"
    prefix = posixpath.dirname(posixpath.dirname(exec_path))
    templates = posixpath.join(prefix, "share/git-core/templates")
    carry = [Carry(exec_path, default_dest(exec_path), "recipe git")]
    env = [EnvValue("GIT_EXEC_PATH", _top(default_dest(exec_path)), "recipe git")]
    if subject.sysroot.is_dir(templates):
        carry.append(Carry(templates, default_dest(templates), "recipe git", required=False))
        env.append(EnvValue("GIT_TEMPLATE_DIR", _top(default_dest(templates)), "recipe git"))
    return Recipe(
        name="git", program=subject.label,
        recognised=f"{subject.label} {why} (git's helper programs)",
        carry=tuple(carry), env=tuple(env),
        notes=("git's script helpers (git-svn, git-send-email, ...) run the host's perl and "
               "sh; /etc/gitconfig, ssh and the message catalogs are the host's",),
    )


# -- gpg -----------------------------------------------------------------------------------

def gpg(subject: _Subject) -> Recipe | None:
    """GnuPG's gpg (and gpgsm, gpg-connect-agent): takes the --agent-program option and
    starts BINDIR/gpg-agent, BINDIR compiled in; the agent is bundled as a helper and
    the launcher names it."""
    if not (subject.program.holds("agent-program") and subject.program.ends("gpg-agent")):
        return None
    agent = next((f"{d}/gpg-agent" for d in subject.program.absolute_paths()
                  if subject.sysroot.is_file(f"{d}/gpg-agent")), None)
    if agent is None:
        return None
    bindir = posixpath.dirname(agent)
    # gpg holds the names of every GnuPG tool (its gpgconf table); it starts the agent
    # only, the others (and its libexec and data dirs) serve other commands
    others = tuple(f"{bindir}/{name}" for name in GNUPG_TOOLS) + tuple(
        p for p in subject.program.absolute_paths()
        if posixpath.basename(p) == "gnupg" and not p.startswith("/etc/"))
    return Recipe(
        name="gpg", program=subject.label,
        recognised=f"{subject.label} takes --agent-program and starts {agent}",
        helpers=(Helper(agent, "bin/gpg-agent", "recipe gpg"),),
        args=("--agent-program", _top("bin/gpg-agent")),
        leaves=others,
        notes=("the agent's own helpers (pinentry for passphrases, scdaemon for smartcards) "
               "and dirmngr (key servers) are the host's: a key generation without a "
               "passphrase prompt needs none of them",),
    )


GNUPG_TOOLS = ("gpg-connect-agent", "gpgconf", "gpgsm", "gpgtar", "gpgv", "dirmngr",
               "dirmngr-client", "scdaemon", "keyboxd", "gpg-wks-client", "gpg-card",
               "pinentry")


# -- the C.UTF-8 locale --------------------------------------------------------------------

def c_utf8(subject: _Subject) -> Recipe | None:
    """A program that holds the whole string "C.UTF-8" calls setlocale with it (tmux
    refuses to start without a UTF-8 LC_CTYPE); the build root's compiled C.UTF-8 is
    carried when it has one."""
    if not subject.program.holds("C.UTF-8"):
        return None
    directories, archived, _ = available(subject.sysroot)
    if normalize_name("C.UTF-8") not in directories | archived.keys():
        return None
    return Recipe(
        name="locale C.UTF-8", program=subject.label,
        recognised=f'{subject.label} holds the locale name "C.UTF-8"',
        locales=("C.UTF-8",),
        notes=("other locales the program is given (LANG, LC_*) are looked up among the "
               "carried ones only: add them with --locale",),
    )


PROGRAM_RULES: tuple[Callable[[_Subject], Recipe | None], ...] = (python, perl, git, gpg,
                                                                  c_utf8)


# -- library recipes -----------------------------------------------------------------------

def openssl(subjects: Sequence[_Subject]) -> Recipe | None:
    """OpenSSL's libcrypto: reads OPENSSLDIR/openssl.cnf and loads providers from
    MODULESDIR and engines from ENGINESDIR, all three compiled into it."""
    found = next(((s, lib) for s in subjects if (lib := s.library("libcrypto.so.")) is not None),
                 None)
    if found is None:
        return None
    subject, libcrypto = found
    compiled = {m.group(1).decode(): m.group(2).decode()
                for m in _OPENSSL_DIR.finditer(libcrypto.data)}
    multiarch = subject.closure.arch.multiarch
    major = posixpath.basename(libcrypto.host_path).partition(".so.")[2] or "3"
    opensslsdir = compiled.get("OPENSSLDIR", "/usr/lib/ssl")
    engines = compiled.get("ENGINESDIR", f"/usr/lib/{multiarch}/engines-{major}")
    modules = compiled.get("MODULESDIR")
    sysroot = subject.sysroot
    carry: list[Carry] = []
    env: list[EnvValue] = []
    config = f"{opensslsdir}/openssl.cnf"
    for name, path, is_there in (("OPENSSL_CONF", config, sysroot.is_file),
                                 ("OPENSSL_MODULES", modules, sysroot.is_dir),
                                 ("OPENSSL_ENGINES", engines, sysroot.is_dir)):
        if path is None or not is_there(path):
            continue
        carry.append(Carry(path, default_dest(path), "recipe openssl", required=False))
        env.append(EnvValue(name, _top(default_dest(path)), "recipe openssl"))
    if not carry:
        return None
    users = sorted({s.label for s in subjects if s.library("libcrypto.so.") is not None})
    return Recipe(
        name="openssl",
        recognised=f"{', '.join(users)} use{'s' if len(users) == 1 else ''} "
                   f"{posixpath.basename(libcrypto.host_path)} (OPENSSLDIR {opensslsdir})",
        carry=tuple(carry), env=tuple(env),
        leaves=(opensslsdir,),  # the rest of it: the host's trust store and keys
        notes=(f"certificates stay the host's: {opensslsdir}/certs and "
               f"{opensslsdir}/cert.pem are the host's trust store (Debian's layout); on "
               "other hosts set SSL_CERT_FILE or SSL_CERT_DIR",),
    )


def fontconfig(subjects: Sequence[_Subject]) -> Recipe | None:
    """fontconfig reads /etc/fonts/fonts.conf (the fonts it names stay the host's)."""
    users = sorted({s.label for s in subjects if s.library("libfontconfig.so.") is not None})
    if not users or not subjects[0].sysroot.is_file("/etc/fonts/fonts.conf"):
        return None
    return Recipe(
        name="fontconfig",
        recognised=f"{', '.join(users)} use{'s' if len(users) == 1 else ''} "
                   "libfontconfig.so.1",
        carry=(Carry("/etc/fonts", "etc/fonts", "recipe fontconfig", required=False),),
        env=(EnvValue("FONTCONFIG_FILE", _top("etc/fonts/fonts.conf"), "recipe fontconfig"),),
        notes=("the fonts and fontconfig's cache are the host's (the dirs fonts.conf "
               "names)",),
    )


LIBRARY_RULES: tuple[Callable[[Sequence[_Subject]], Recipe | None], ...] = (openssl,
                                                                           fontconfig)
