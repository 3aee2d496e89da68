"""The gconv modules iconv loads at run time, chosen from the sysroot (`--gconv`).

glibc converts UTF-8, ASCII, ISO-8859-1 and UCS variants itself; every other charset is a
module listed in `gconv-modules` (and `gconv-modules.d/*.conf`) that libc dlopens from
GCONV_PATH or its compiled-in dir. Modules of one glibc build may not load into another,
so the bundle brings its own and the launcher points GCONV_PATH at them.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from bundler.errors import InputError
from bundler.plan import EnvSetting, StagedFile
from bundler.resolve import Closure
from bundler.sysroot import Sysroot

CONFIG = "gconv-modules"
CONFIG_DIR = "gconv-modules.d"
CACHE = "gconv-modules.cache"


@dataclass(frozen=True)
class GconvFile:
    name: str  # relative to the gconv dir
    source: str  # host path


def gconv_dir(sysroot: Sysroot, system_dirs: tuple[str, ...]) -> str | None:
    """The target dir holding gconv-modules, under one of the loader's system dirs."""
    for directory in system_dirs:
        candidate = f"{directory}/gconv"
        if sysroot.is_file(f"{candidate}/{CONFIG}") or sysroot.is_dir(f"{candidate}/{CONFIG_DIR}"):
            return candidate
    return None


def parse_config(text: str) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """(alias -> name, [(from, to, module file)]) from gconv-modules syntax."""
    aliases: dict[str, str] = {}
    modules: list[tuple[str, str, str]] = []
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if len(words) >= 3 and words[0] == "alias":
            aliases[words[1].upper()] = words[2].upper()
        elif len(words) >= 4 and words[0] == "module":
            modules.append((words[1].upper(), words[2].upper(), words[3]))
    return aliases, modules


def select_files(choice: str, sysroot: Sysroot, directory: str) -> tuple[GconvFile, ...]:
    """`--gconv all` or `--gconv KOI8-R,EBCDIC-US`: the module files and the config."""
    names = sysroot.list_dir(directory)
    configs = [CONFIG] if CONFIG in names else []
    configs += [f"{CONFIG_DIR}/{n}" for n in sysroot.list_dir(f"{directory}/{CONFIG_DIR}")
                if n.endswith(".conf")]
    text = "\n".join((sysroot.read_bytes(f"{directory}/{c}") or b"").decode("utf-8", "replace")
                     for c in configs)
    aliases, modules = parse_config(text)
    if choice == "all":
        wanted = sorted({f"{m}.so" for _, _, m in modules} & set(names))
        extra = [CACHE] if CACHE in names else []  # the cache matches the full set only
    else:
        wanted, extra = _for_charsets(choice, aliases, modules, set(names)), []
    files = []
    for name in [*configs, *extra, *wanted]:
        real = sysroot.resolve(f"{directory}/{name}")
        if real is not None:
            files.append(GconvFile(name, sysroot.host_path(real)))
    return tuple(files)


def _for_charsets(choice: str, aliases: dict[str, str], modules: list[tuple[str, str, str]],
                  present: set[str]) -> list[str]:
    wanted = []
    for charset in (c.strip().upper() for c in choice.split(",") if c.strip()):
        key = charset if charset.endswith("//") else charset + "//"
        key = aliases.get(key, key)
        files = {f"{m}.so" for src, dst, m in modules if key in (src, dst)}
        if not files:
            raise InputError(f"--gconv {charset}: no gconv module converts it (built-in "
                             "charsets such as UTF-8 and ISO-8859-1 need none)")
        wanted += sorted(files & present)
    return sorted(set(wanted))


def relative_dest(name: str) -> str:
    return posixpath.join("lib", "gconv", name)


def staged_modules(choice: str | None, sysroot: Sysroot, closure: Closure,
                   ) -> tuple[tuple[StagedFile, ...], tuple[EnvSetting, ...]]:
    """`--gconv`: the modules for lib/gconv and the GCONV_PATH the launcher sets."""
    if not choice:
        return (), ()
    directory = gconv_dir(sysroot, closure.search.system_dirs if closure.search else ())
    if directory is None:
        raise InputError(f"--gconv {choice}: no gconv-modules in {sysroot.root}")
    files = select_files(choice, sysroot, directory)
    data = tuple(StagedFile(relative_dest(f.name), "data", 0o644, source=f.source)
                 for f in files)
    return data, (EnvSetting("GCONV_PATH", "GCONV_PATH", "lib/gconv"),)
