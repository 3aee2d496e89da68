"""A generated program needing N shared libraries: how build time grows with the closure.

`make_closure(directory, count, bytes_per_library)` builds with gcc, into a directory of
`directory` named after its inputs (and reused while they are the same), a program and
`count` libraries `libgenNNNN.so.1` in a realistic shape:

- fan-out: library i needs libraries 2i+1 and 2i+2 (a binary tree, depth log2 N), as a
  program's few direct libraries bring in many;
- a chain: library i also needs library i+1, so every library is needed by up to three
  others and the loader meets most names several times (the reuse path of the resolver);
- every library needs libc.so.6 (the one name met N times);
- the program needs libraries 0..7 directly (ffmpeg names ~20).

Each library defines a few functions that call one of each dependency's (so it imports
symbols, as real libraries do: the versioned imports the build reads) and `.rodata` of
about `bytes_per_library` bytes, text-like and different in each library (zstd compresses
it about 3x, as it does code; identical data would compress away across files). The files
are stripped, as a distribution's are, and carry no DT_RUNPATH (the program is built with
none either): `bundle PROGRAM --library-path DIR/lib` finds them, and they are bundled byte
for byte. `runpath=True` gives the program DT_RUNPATH $ORIGIN/lib instead.

Run as a script to build one: `python benchmarks/closure.py DIR COUNT BYTES`.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DIRECT = 8  # libraries the program needs itself
PROGRAM = "closure-main"
# A vocabulary for the text-like data (fixed: the data is the same on every machine).
_WORDS = tuple(hashlib.sha256(str(n).encode()).hexdigest()[: 3 + n % 9] for n in range(512))


def library_name(number: int) -> str:
    return f"libgen{number:04d}.so.1"


def dependencies(number: int, count: int) -> list[int]:
    """The libraries library `number` needs: its two children in the tree and the next."""
    return sorted({n for n in (2 * number + 1, 2 * number + 2, number + 1) if n < count})


def make_closure(directory: str | os.PathLike[str], count: int, bytes_per_library: int,
                 runpath: bool = False) -> Path:
    """The program of a generated closure of `count` libraries (built once per inputs);
    its libraries are in the `lib` directory beside it."""
    if count < 1 or bytes_per_library < 0:
        raise ValueError("count must be >= 1 and bytes_per_library >= 0")
    key = _cache_key(count, bytes_per_library, runpath)
    home = Path(directory) / f"closure-{count}x{bytes_per_library}-{key}"
    program = home / PROGRAM
    if (home / "complete").exists():
        return program
    Path(directory).mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{home.name}.", dir=directory))
    try:
        _generate(scratch, count, bytes_per_library, runpath)
        shutil.rmtree(scratch / "src")  # sources, objects and data: 1,000 x 64 KiB
        scratch.chmod(0o755)
        (scratch / "complete").write_text(f"{count} libraries, {bytes_per_library} bytes\n")
        try:
            scratch.rename(home)
        except OSError:  # made meanwhile by another run: theirs is as good
            if not (home / "complete").exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return program


def _cache_key(count: int, bytes_per_library: int, runpath: bool) -> str:
    compiler = subprocess.run(["gcc", "--version"], capture_output=True, text=True,
                              check=True).stdout.splitlines()[0]
    generator = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()  # its shape
    text = repr((generator, count, bytes_per_library, runpath, compiler))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _generate(home: Path, count: int, size: int, runpath: bool) -> None:
    lib = home / "lib"
    source = home / "src"
    lib.mkdir()
    source.mkdir()
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        objects = list(pool.map(lambda n: _compile(source, n, count, size), range(count)))
    # Linked from the last: each library's dependencies exist when it is linked.
    for number in reversed(range(count)):
        needs = [f"-l:{library_name(n)}" for n in dependencies(number, count)]
        _gcc("-shared", "-s", f"-Wl,-soname,{library_name(number)}", "-o",
             str(lib / library_name(number)), str(objects[number]), f"-L{lib}",
             f"-Wl,-rpath-link,{lib}", *needs)
    main = source / "main.c"
    direct = range(min(DIRECT, count))
    main.write_text("#include <stdio.h>\n"
                    + "".join(f"int gen{n}_value(void);\n" for n in direct)
                    + "int main(void) {\n  long total = 0;\n"
                    + "".join(f"  total += gen{n}_value();\n" for n in direct)
                    + '  printf("%ld\\n", total);\n  return 0;\n}\n')
    rpath = ["-Wl,--enable-new-dtags,-rpath,$ORIGIN/lib"] if runpath else []
    _gcc("-O2", "-s", "-o", str(home / PROGRAM), str(main), f"-L{lib}",
         f"-Wl,-rpath-link,{lib}", *rpath,
         *(f"-l:{library_name(n)}" for n in direct))


def _compile(source: Path, number: int, count: int, size: int) -> Path:
    """The object of library `number`: gen{n}_value calls each dependency's gen{d}_id."""
    blob = source / f"data{number}.bin"
    blob.write_bytes(_data(number, size))
    deps = dependencies(number, count)
    code = source / f"gen{number}.c"
    code.write_text(
        "#include <string.h>\n"
        + "".join(f"int gen{d}_id(void);\n" for d in deps)
        + f"extern const unsigned char gen{number}_data[];\n"
        + f"extern const unsigned long gen{number}_size;\n"
        + f'__asm__(".section .rodata\\n.balign 16\\n.globl gen{number}_data\\n'
        + f'gen{number}_data:\\n.incbin \\"{blob}\\"\\n.byte 0\\n.previous");\n'
        + f"const unsigned long gen{number}_size = {size};\n"
        + f"int gen{number}_id(void) {{ return {number}; }}\n"
        + f"int gen{number}_length(void) {{\n"
        + f"  return (int)strlen((const char *)gen{number}_data);\n}}\n"
        + f"int gen{number}_value(void) {{\n  int total = gen{number}_id();\n"
        + "".join(f"  total += gen{d}_id();\n" for d in deps)
        + f"  return total + (gen{number}_size ? gen{number}_data[gen{number}_size / 2] : 0);\n"
        + "}\n")
    obj = source / f"gen{number}.o"
    _gcc("-O2", "-fPIC", "-c", "-o", str(obj), str(code))
    return obj


def _data(number: int, size: int) -> bytes:
    """`size` bytes of text-like data of its own for library `number`."""
    chooser = random.Random(number)
    words = chooser.choices(_WORDS, k=size // 5 + 1)
    return " ".join(words).encode()[:size]


def _gcc(*args: str) -> None:
    process = subprocess.run(["gcc", *args], capture_output=True, text=True)
    if process.returncode != 0:
        raise RuntimeError(f"gcc {' '.join(args)} failed:\n{process.stderr}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit("usage: closure.py DIR COUNT BYTES_PER_LIBRARY")
    print(make_closure(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
