"""The only LIEF user: rewrite PT_INTERP and DT_RPATH of a copy, patchelf-style.

Each original is patched exactly once, straight from the source file (a second LIEF pass
over LIEF output can corrupt non-PIE binaries, GLIBC-NOTES section 5). The result is
re-read with pyelftools and checked before it is accepted, so a patch that went wrong is
an error, never a broken file in an artifact. `import lief` costs ~0.25 s, so it happens
here, on first use, and never in `inspect`.
"""

from __future__ import annotations

import os

from bundler.elf import read_elf, read_link_facts
from bundler.errors import BundleError
from bundler.plan import Patch


class PatchError(BundleError):
    """A file could not be patched safely."""


def patch_copy(source: str, dest: str, patch: Patch) -> None:
    """Write `source` with `patch` applied to `dest`, then verify `dest`."""
    lief = _import_lief()
    lief.logging.disable()
    original = read_elf(source)
    binary = lief.ELF.parse(source, _parser_config(lief))
    if binary is None:
        raise PatchError(f"{source}: LIEF cannot parse this file")
    if patch.interpreter is not None:
        if not binary.has_interpreter:
            raise PatchError(f"{source}: has no PT_INTERP to rewrite")
        binary.interpreter = patch.interpreter
    tags = lief.ELF.DynamicEntry.TAG
    binary.remove(tags.RUNPATH)
    binary.remove(tags.RPATH)
    binary.add(lief.ELF.DynamicEntryRpath(patch.rpath))
    try:
        binary.write(dest)
    except Exception as exc:  # LIEF raises assorted types from its C++ core
        raise PatchError(f"{source}: LIEF could not write the patched copy ({exc})") from None
    os.chmod(dest, 0o755)
    _verify(source, dest, original, patch, lief)


def _parser_config(lief):
    """Everything but the static symbol table (.symtab), which PT_INTERP and DT_RPATH do not
    touch: unparsed, LIEF keeps it byte for byte (symbol values measured identical on node,
    99 MB), and parsing plus rebuilding it was 0.55 of 1.45 s there. Relocations must be
    parsed: without them LIEF's output of node failed with "undefined symbol"."""
    config = lief.ELF.ParserConfig()
    config.parse_symtab_symbols = False
    return config


def _import_lief():
    """`import lief` where patching happens, never in `inspect`."""
    import lief

    return lief


def _verify(source: str, dest: str, original, patch: Patch, lief) -> None:
    written = read_link_facts(dest)
    problems = []
    if patch.interpreter is not None and written.interpreter != patch.interpreter:
        problems.append(f"interpreter is {written.interpreter!r}")
    if written.rpath != patch.rpath:
        problems.append(f"DT_RPATH is {written.rpath!r}")
    if written.runpath is not None:
        problems.append("DT_RUNPATH is still there")
    if written.needed != original.needed:
        problems.append(f"DT_NEEDED changed to {list(written.needed)}")
    if written.ident != original.ident:
        problems.append("ELF header changed")
    reparsed = lief.ELF.parse(dest, _parser_config(lief))
    ok, reason = lief.ELF.check_layout(reparsed) if reparsed is not None else (False, "unparsable")
    if not ok:
        problems.append(f"layout check failed: {reason.strip()}")
    if problems:
        raise PatchError(f"{source}: the patched copy is wrong: " + "; ".join(problems))
