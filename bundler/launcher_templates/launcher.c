/*
 * The native launcher: bin/NAME as a static executable without libc.
 *
 * It means exactly what the sh launcher (common.sh + loader.sh/env.sh) means, and does what
 * a script cannot: it keeps argv[0] as the caller gave it at the prefix too, needs no
 * /bin/sh (distroless images) and costs no shell start. It finds itself through
 * /proc/self/exe, or without /proc through AT_EXECFN (the path the kernel was given),
 * following symlinks itself: no PATH, no environment variable is ever consulted to find
 * the artifact, and nothing but the kernel is called.
 *
 * The per-artifact values are not compiled in: native_launcher.py compiles this file once
 * per compiler (and keeps it in the user's cache), then writes each artifact's values over
 * the space VALUES reserves in the output. VALUES begins with VALUES_MAGIC (given with
 * -D, as is VALUES_SPACE, the space's size), and the values follow as NUL-terminated
 * strings, in this order:
 *   the program's file name in libexec/
 *   the install prefix (absolute)
 *   the loader's file name in lib/
 *   "1": export LD_LIBRARY_PATH (the env launcher); "0": the loader launcher
 *   "1": the bundled loader has --argv0 (glibc >= 2.33)
 *   the directories between the top and this launcher: "1" for bin/NAME, "3" for a
 *     carried tree's usr/lib/git-core/git-upload-pack
 *   the number of settings, then each one's NAME and value: for the bundled glibc, the
 *     recipes and --env; "{top}" in a value is the artifact's top
 *   the number of arguments put before the caller's, then each one ({top} too)
 */

#if !defined(VALUES_MAGIC) || !defined(VALUES_SPACE)
#error "compile with -DVALUES_MAGIC=... -DVALUES_SPACE=... (native_launcher.py does)"
#endif

typedef __SIZE_TYPE__ usize;

#define AT_FDCWD (-100)
#define AT_EXECFN 31
#define PATH_SPACE 4096
#define MAX_HOPS 40
#define ARENA_SIZE (1 << 20)

#define ENOENT 2
#define EINVAL 22
#define ENAMETOOLONG 36
#define ELOOP 40
#define E2BIG 7

/* --- the kernel ------------------------------------------------------------------------ */

#if defined(__x86_64__) && !defined(__ILP32__)
#define SYS_write 1
#define SYS_execve 59
#define SYS_getcwd 79
#define SYS_exit_group 231
#define SYS_fstatat 262 /* newfstatat: struct stat, st_dev @0, st_ino @8 */
#define SYS_readlinkat 267
#define INO_OFFSET 8
__asm__(".text\n.global _start\n.type _start,@function\n_start:\n"
        "  xor %ebp, %ebp\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call launcher_main\n  hlt\n");

static long syscall4(long n, long a, long b, long c, long d) {
    long result;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(result) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return result;
}
#elif defined(__aarch64__)
#define SYS_getcwd 17
#define SYS_readlinkat 78
#define SYS_fstatat 79 /* newfstatat: asm-generic struct stat, st_dev @0, st_ino @8 */
#define SYS_write 64
#define SYS_exit_group 94
#define SYS_execve 221
#define INO_OFFSET 8
__asm__(".text\n.global _start\n.type _start,%function\n_start:\n"
        "  mov x29, #0\n  mov x30, #0\n  mov x0, sp\n  bl launcher_main\n  brk #0\n");

static long syscall4(long n, long a, long b, long c, long d) {
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
    return x0;
}
#elif defined(__i386__)
#define SYS_execve 11
#define SYS_write 4
#define SYS_getcwd 183
#define SYS_exit_group 252
#define SYS_fstatat 300 /* fstatat64: struct stat64, st_dev @0, the 64-bit st_ino @88 */
#define SYS_readlinkat 305
#define INO_OFFSET 88
__asm__(".text\n.global _start\n.type _start,@function\n_start:\n"
        "  xor %ebp, %ebp\n  mov %esp, %eax\n  and $-16, %esp\n  sub $12, %esp\n"
        "  push %eax\n  call launcher_main\n  hlt\n");

static long syscall4(long n, long a, long b, long c, long d) {
    long result;
    /* Compiled without PIE, so %ebx is free for the first argument. */
    __asm__ volatile("int $0x80" : "=a"(result) : "a"(n), "b"(a), "c"(b), "d"(c), "S"(d)
                     : "memory");
    return result;
}
#else
#error "the native launcher supports x86-64, aarch64 and i386"
#endif

/* What gcc may emit calls to even in a freestanding program. */
void *memcpy(void *to, const void *from, usize n) {
    char *d = to;
    const char *s = from;
    while (n--) *d++ = *s++;
    return to;
}

void *memmove(void *to, const void *from, usize n) {
    char *d = to;
    const char *s = from;
    if (d < s) {
        while (n--) *d++ = *s++;
    } else {
        while (n--) d[n] = s[n];
    }
    return to;
}

void *memset(void *to, int c, usize n) {
    unsigned char *d = to;
    while (n--) *d++ = (unsigned char)c;
    return to;
}

int memcmp(const void *a, const void *b, usize n) {
    const unsigned char *x = a, *y = b;
    for (; n; n--, x++, y++) {
        if (*x != *y) return *x - *y;
    }
    return 0;
}

/* --- small helpers ----------------------------------------------------------------------- */

static usize length(const char *s) {
    usize n = 0;
    while (s[n]) n++;
    return n;
}

/* --- the values ------------------------------------------------------------------------ */

/* Zeros after the magic until the values are written in: kept in the output (used), and
 * read only through a pointer the compiler cannot see through (read_values), so no read
 * of it is folded into the code as the zeros it holds when compiled. */
__attribute__((used)) static const char VALUES[VALUES_SPACE] = VALUES_MAGIC;

static const char *PROGRAM = "";
static const char *PREFIX;
static const char *LOADER;
static int ENV_MODE;
static int ARGV0;
static long UP;

static const char *values_cursor;

static const char *take(void) {
    const char *value = values_cursor;
    values_cursor += length(value) + 1;
    return value;
}

static long take_number(void) {
    long n = 0;
    for (const char *s = take(); *s >= '0' && *s <= '9'; s++) n = n * 10 + (*s - '0');
    return n;
}

/* `words` gets the next `count` strings of the values. */
static void take_words(const char **words, usize count) {
    for (usize i = 0; i < count; i++) words[i] = take();
}

static void read_values(void) {
    const char *values = VALUES;
    __asm__("" : "+r"(values)); /* written after compiling: the compiler must read them */
    values_cursor = values + sizeof VALUES_MAGIC;
    PROGRAM = take();
    PREFIX = take();
    LOADER = take();
    ENV_MODE = take_number() == 1;
    ARGV0 = take_number() == 1;
    UP = take_number();
}

/* The error line is built here and written at once: one write(2), one line in a log. */
static char message[PATH_SPACE * 2];
static usize message_used;

static void say(const char *s) {
    /* One line whatever the names hold: a newline in a path becomes a space. */
    for (; *s && message_used < sizeof message - 1; s++) {
        message[message_used++] = *s == '\n' ? ' ' : *s;
    }
}

static const char *errno_name(long error) {
    switch (error) {
    case 1: return "EPERM";
    case 2: return "ENOENT";
    case 5: return "EIO";
    case 7: return "E2BIG";
    case 8: return "ENOEXEC";
    case 12: return "ENOMEM";
    case 13: return "EACCES";
    case 14: return "EFAULT";
    case 20: return "ENOTDIR";
    case 21: return "EISDIR";
    case 22: return "EINVAL";
    case 26: return "ETXTBSY";
    case 36: return "ENAMETOOLONG";
    case 38: return "ENOSYS";
    case 40: return "ELOOP";
    default: return 0;
    }
}

/* `NAME: <what> (<errno name or number>)` on stderr, exit 127 (what a shell says for a
 * command it cannot start). `detail` may be null. */
static __attribute__((noreturn)) void fail(const char *what, const char *detail, long error) {
    char number[24];
    const char *name = errno_name(error);
    if (!name) {
        usize at = sizeof number - 1;
        unsigned long value = (unsigned long)error;
        number[at] = 0;
        do {
            number[--at] = (char)('0' + value % 10);
            value /= 10;
        } while (value && at);
        name = number + at;
    }
    say(PROGRAM);
    say(": ");
    say(what);
    if (detail) {
        say(" ");
        say(detail);
    }
    say(" (");
    say(name);
    say(")");
    message[message_used++] = '\n';
    syscall4(SYS_write, 2, (long)message, (long)message_used, 0);
    for (;;) syscall4(SYS_exit_group, 127, 0, 0, 0);
}

/* A bump allocator: the few strings built here (paths, variables) live until execve. */
static char arena[ARENA_SIZE];
static usize arena_used;

static char *join(const char *a, const char *b, const char *c) {
    usize la = length(a), lb = length(b), lc = length(c);
    if (la + lb + lc + 1 > ARENA_SIZE - arena_used) fail("values too long for", a, E2BIG);
    char *out = arena + arena_used;
    memcpy(out, a, la);
    memcpy(out + la, b, lb);
    memcpy(out + la + lb, c, lc);
    out[la + lb + lc] = 0;
    arena_used += la + lb + lc + 1;
    return out;
}

/* Whether two paths name the same file (st_dev and st_ino, as `test -ef`). */
static int same_file(const char *a, const char *b) {
    unsigned long long first[32], second[32]; /* larger than any struct stat here */
    if (syscall4(SYS_fstatat, AT_FDCWD, (long)a, (long)first, 0) != 0) return 0;
    if (syscall4(SYS_fstatat, AT_FDCWD, (long)b, (long)second, 0) != 0) return 0;
    const unsigned char *x = (const unsigned char *)first, *y = (const unsigned char *)second;
    return memcmp(x, y, 8) == 0 && memcmp(x + INO_OFFSET, y + INO_OFFSET, 8) == 0;
}

/* The path up to its last '/' ("" for "/x"); the path must hold a '/'. */
static char *parent(const char *path) {
    usize end = length(path);
    while (end && path[end - 1] != '/') end--;
    if (end) end--; /* the '/' itself */
    char *out = join(path, "", "");
    out[end] = 0;
    return out;
}

static int ends_with(const char *s, const char *tail) {
    usize ls = length(s), lt = length(tail);
    return ls >= lt && memcmp(s + ls - lt, tail, lt) == 0;
}

/* --- finding the artifact ---------------------------------------------------------------- */

/* The path the kernel was given, made absolute and followed through symlinks of its last
 * component (relative targets against the link's directory), as the sh launcher does. */
static char *follow(const char *execfn) {
    char *path;
    if (execfn[0] == '/') {
        path = join(execfn, "", "");
    } else {
        char cwd[PATH_SPACE];
        long got = syscall4(SYS_getcwd, (long)cwd, sizeof cwd, 0, 0);
        if (got < 0) fail("cannot tell the current directory to find the bundle", 0, -got);
        path = join(cwd, "/", execfn);
    }
    for (int hops = 0;; hops++) {
        char target[PATH_SPACE];
        long n = syscall4(SYS_readlinkat, AT_FDCWD, (long)path, (long)target,
                          sizeof target - 1);
        if (n == -EINVAL) return path; /* not a symlink: found */
        if (n < 0) fail("cannot follow", path, -n);
        if (n >= (long)sizeof target - 1) fail("cannot follow", path, ENAMETOOLONG);
        if (hops == MAX_HOPS) fail("too many symlinks at", path, ELOOP);
        target[n] = 0;
        path = target[0] == '/' ? join(target, "", "") : join(parent(path), "/", target);
    }
}

/* The artifact's top (the parent of bin/, or UP directories above this
 * launcher's), "" for the root directory. */
static char *find_top(unsigned long *auxv, int *proc_works) {
    char self[PATH_SPACE];
    long n = syscall4(SYS_readlinkat, AT_FDCWD, (long)"/proc/self/exe", (long)self,
                      sizeof self - 1);
    if (n > 0 && n < (long)sizeof self - 1 && self[0] == '/') {
        *proc_works = 1;
        self[n] = 0;
        char *top = parent(self); /* physical already: no symlink, no ".." left */
        for (long up = 0; up < UP; up++) top = parent(top);
        return top;
    }
    *proc_works = 0;
    const char *execfn = 0;
    for (; auxv[0]; auxv += 2) {
        if (auxv[0] == AT_EXECFN) execfn = (const char *)auxv[1];
    }
    if (!execfn || !execfn[0]) fail("cannot find itself: no /proc/self/exe, no AT_EXECFN", 0,
                                    ENOENT);
    char *dir = parent(follow(execfn));
    /* bin/.. is the top: the kernel resolves ".." physically. Spelled without "bin/.."
     * when that is the same directory (the names then read well in the variables). */
    char *top = join(dir, "/..", "");
    for (long up = 1; up < UP; up++) top = join(top, "/..", "");
    if (UP == 1 && ends_with(dir, "/bin")) {
        char *stripped = parent(dir);
        if (same_file(join(stripped, "/lib", ""), join(top, "/lib", ""))) return stripped;
    }
    return top;
}

/* --- the environment ------------------------------------------------------------------- */

/* `template` with every "{top}" replaced by `top`. */
static char *expand(const char *template, const char *top) {
    static const char MARK[] = "{top}";
    const usize mark = sizeof MARK - 1;
    char *out = join("", "", "");
    const char *rest = template;
    for (const char *s = template; *s;) {
        if (memcmp(s, MARK, mark) == 0) {
            char *piece = join(rest, "", "");
            piece[s - rest] = 0;
            out = join(out, piece, top);
            s += mark;
            rest = s;
        } else {
            s++;
        }
    }
    return join(out, rest, "");
}

static int names(const char *entry, const char *name) {
    usize n = length(name);
    return memcmp(entry, name, n) == 0 && entry[n] == '=';
}

static usize count(char **list) {
    usize n = 0;
    while (list[n]) n++;
    return n;
}

/* `envp` with NAME=VALUE in place of the first NAME=... (others of that name dropped), or
 * appended; `out` has room for one more entry. Returns the new count. */
static usize put(char **out, usize used, const char *name, const char *value) {
    char *entry = join(name, "=", value);
    usize kept = 0;
    int placed = 0;
    for (usize i = 0; i < used; i++) {
        if (names(out[i], name)) {
            if (placed) continue;
            out[kept++] = entry;
            placed = 1;
        } else {
            out[kept++] = out[i];
        }
    }
    if (!placed) out[kept++] = entry;
    out[kept] = 0;
    return kept;
}

static const char *lookup(char **envp, const char *name) {
    for (; *envp; envp++) {
        if (names(*envp, name)) return *envp + length(name) + 1;
    }
    return 0;
}

/* --- the start --------------------------------------------------------------------------- */

static int has_any(const char *s, const char *chars) {
    for (; *s; s++) {
        for (const char *c = chars; *c; c++) {
            if (*s == *c) return 1;
        }
    }
    return 0;
}

__attribute__((noreturn, used)) void launcher_main(long *stack) {
    long argc = stack[0];
    char **argv = (char **)(stack + 1);
    char **envp = argv + argc + 1;
    usize envc = count(envp);
    unsigned long *auxv = (unsigned long *)(envp + envc + 1);

    read_values();
    const usize setting_count = (usize)take_number();
    const char *settings[2 * setting_count + 1]; /* name, value, name, value, ... */
    take_words(settings, 2 * setting_count);
    const usize arg_count = (usize)take_number();
    const char *extra[arg_count + 1]; /* put before the caller's arguments */
    take_words(extra, arg_count);

    int proc_works;
    const char *top = find_top(auxv, &proc_works);
    const char *program = join(top, "/libexec/", PROGRAM);
    const char *lib = join(top, "/lib", "");

    char *env[envc + setting_count + 2];
    for (usize i = 0; i <= envc; i++) env[i] = envp[i];
    usize used = envc;
    for (usize i = 0; i < setting_count; i++) {
        used = put(env, used, settings[2 * i], expand(settings[2 * i + 1], top));
    }
    if (ENV_MODE) {
        /* Inherited by every program this one starts: dynamically linked host programs
         * then load this glibc with the host's loader and fail. The loader mode is the
         * default for that reason. */
        const char *old = lookup(envp, "LD_LIBRARY_PATH");
        used = put(env, used, "LD_LIBRARY_PATH",
                   old && old[0] ? join(lib, ":", old) : lib);
    }

    /* Installed at its prefix with /proc mounted: the program's own PT_INTERP and RPATH
     * work, so it is exec'd itself with argv untouched (argv[0] as the caller gave it, and
     * /proc/self/exe is the program). Recognised by device and inode, however spelled. */
    /* The caller's arguments, after the launcher's own (a recipe's). */
    char *given[argc + arg_count + 1];
    usize m = 0;
    if (argc > 0 || arg_count > 0) given[m++] = argc > 0 ? argv[0] : (char *)program;
    for (usize i = 0; i < arg_count; i++) given[m++] = expand(extra[i], top);
    for (long i = 1; i < argc; i++) given[m++] = argv[i];
    given[m] = 0;

    if (proc_works && same_file(program, join(PREFIX, "/libexec/", PROGRAM))) {
        long error = syscall4(SYS_execve, (long)program, (long)given, (long)env, 0);
        fail("cannot start", program, -error);
    }

    /* Anywhere else: the bundled loader, explicitly. ld.so splits --library-path at ':'
     * and ';', so a top holding one goes without it (the program's DT_RPATH covers it). */
    char *args[argc + arg_count + 8];
    usize n = 0;
    const char *loader = join(lib, "/", LOADER);
    args[n++] = (char *)loader;
    if (!ENV_MODE && !has_any(top, ":;")) {
        args[n++] = "--library-path";
        args[n++] = (char *)lib;
    }
    if (ARGV0 && argc > 0) {
        args[n++] = "--argv0";
        args[n++] = argv[0];
    }
    args[n++] = (char *)program;
    for (usize i = 1; i < m; i++) args[n++] = given[i];
    args[n] = 0;
    long error = syscall4(SYS_execve, (long)loader, (long)args, (long)env, 0);
    fail("cannot start", loader, -error);
}
