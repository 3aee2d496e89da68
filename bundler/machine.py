"""Per-architecture facts of glibc's loader that cannot be read from the target itself.

The system search dirs and `$LIB` are read from the sysroot's own ld.so where possible
(see `ldso.py`); the values here are the Debian multiarch defaults used when that fails.
Cache flags come from glibc's `sysdeps/generic/ldconfig.h` (FLAG_ELF_LIBC6 = 3 plus an
architecture byte).
"""

from __future__ import annotations

from dataclasses import dataclass

from bundler.elf import ElfIdent
from bundler.errors import InputError

FLAG_ELF = 0x0001
FLAG_ELF_LIBC6 = 0x0003


@dataclass(frozen=True)
class Architecture:
    """How glibc's loader behaves on one ABI (machine + ELF class)."""

    name: str
    machine: str  # pyelftools e_machine name
    elf_class: int
    loader_names: tuple[str, ...]
    multiarch: str
    platform: str  # AT_PLATFORM, the value of `$PLATFORM`
    cache_flags: frozenset[int]

    @property
    def default_dirs(self) -> tuple[str, ...]:
        """Debian's compiled-in search dirs (`ld.so --help`, "system search path")."""
        return (f"/lib/{self.multiarch}", f"/usr/lib/{self.multiarch}", "/lib", "/usr/lib")

    @property
    def lib_token(self) -> str:
        """Debian's expansion of `$LIB` (measured: `lib/x86_64-linux-gnu`)."""
        return f"lib/{self.multiarch}"


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture("x86-64", "EM_X86_64", 64, ("ld-linux-x86-64.so.2",), "x86_64-linux-gnu",
                 "x86_64", frozenset({FLAG_ELF_LIBC6 | 0x0300})),
    Architecture("x32", "EM_X86_64", 32, ("ld-linux-x32.so.2",), "x86_64-linux-gnux32",
                 "x86_64", frozenset({FLAG_ELF_LIBC6 | 0x0800})),
    Architecture("i386", "EM_386", 32, ("ld-linux.so.2",), "i386-linux-gnu", "i686",
                 frozenset({FLAG_ELF_LIBC6, FLAG_ELF})),
    Architecture("aarch64", "EM_AARCH64", 64, ("ld-linux-aarch64.so.1",), "aarch64-linux-gnu",
                 "aarch64", frozenset({FLAG_ELF_LIBC6 | 0x0A00})),
    Architecture("armhf", "EM_ARM", 32, ("ld-linux-armhf.so.3", "ld-linux.so.3"),
                 "arm-linux-gnueabihf", "v7l", frozenset({FLAG_ELF_LIBC6 | 0x0900})),
    Architecture("riscv64", "EM_RISCV", 64, ("ld-linux-riscv64-lp64d.so.1",),
                 "riscv64-linux-gnu", "riscv64", frozenset({FLAG_ELF_LIBC6 | 0x1000})),
    Architecture("ppc64le", "EM_PPC64", 64, ("ld64.so.2",), "powerpc64le-linux-gnu",
                 "power8", frozenset({FLAG_ELF_LIBC6 | 0x0500})),
    Architecture("s390x", "EM_S390", 64, ("ld64.so.1",), "s390x-linux-gnu", "z900",
                 frozenset({FLAG_ELF_LIBC6 | 0x0400})),
)


def architecture_of(ident: ElfIdent) -> Architecture:
    """The architecture an object belongs to; x32 and x86-64 differ only by class."""
    for arch in ARCHITECTURES:
        if arch.machine == ident.machine and arch.elf_class == ident.elf_class:
            return arch
    raise InputError(
        f"unsupported architecture: {ident.describe()} (supported: "
        + ", ".join(a.name for a in ARCHITECTURES)
        + ")"
    )


def same_abi(a: ElfIdent, b: ElfIdent) -> bool:
    """Whether the loader of `a` would accept `b` (class, byte order and machine)."""
    return (a.elf_class, a.little_endian, a.machine) == (b.elf_class, b.little_endian, b.machine)
