"""NSS: which modules a bundle carries, and which nsswitch.conf sources it can serve where.

glibc answers user, group and host lookups through the sources the *target's*
/etc/nsswitch.conf names; since glibc 2.34 `files` and `dns` are built into libc.so.6,
every other source is a module `libnss_SOURCE.so.2` loaded at run time. The bundled glibc
is sealed (it loads nothing from the host), and a host's module is built for the host's
glibc anyway (GLIBC_PRIVATE, struct layouts: GLIBC-NOTES section 2; measured on Debian 11
with `passwd: compat`: the unsealed bundled 2.36 loaded the host's 2.31 libnss_compat,
getent and id found no user, the Go agent said `user: lookup userid 1234: invalid
argument`). So a source works on a target only when the artifact carries its module, and
the build cannot know the fleet's nsswitch.conf.

Hence `--nss auto` (whenever the program or a library does NSS lookups) bundles every
`libnss_*.so.2` the build root (or --sysroot) has in its library dirs (the loader's system
dirs, ld.so.cache, --library-path), plus the modules the build root's own nsswitch.conf
names: what the build host can give, whatever a target names. The modules are small
(Debian 12: compat 39 KB, hesiod 27 KB + libresolv 60 KB, systemd 326 KB + libcap 47 KB;
the demo agent's .tar.zst grew 47 KB, 1.1 %, over bundling the nsswitch.conf ones only),
and a missed source fails silently (the lookup goes on to the next source: a user of sss
or ldap is "unknown"). Installing a module on the build host (Debian: libnss-sss, ...) and
building again is how a source gets served. A module whose libraries are missing is left
out with a note (resolve.py), as glibc's dlopen of it would fail.

Each source then gets one fact (`SourceFact`): SERVED (built in, or its bundled module
needs nothing but files), DAEMON (bundled, but the answers come from a host daemon the
module talks to over a socket: sss -> sssd, ...) or NOT SERVED (no module in the
artifact). The plan, the manifest ("nss"), the report and `bundle verify --root` all
read this one `NssCoverage`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass

from bundler.errors import InputError
from bundler.glibc import release_key
from bundler.ldcache import read_ld_so_cache
from bundler.manifest import Manifest, NssRecord
from bundler.sysroot import Sysroot

# Imported symbols that make glibc look up through NSS (user, group, host, service...).
NSS_CALLERS = frozenset({
    "getaddrinfo", "getnameinfo", "gethostbyname", "gethostbyname2", "gethostbyname_r",
    "gethostbyname2_r", "gethostbyaddr", "gethostbyaddr_r", "getpwnam", "getpwnam_r",
    "getpwuid", "getpwuid_r", "getpwent", "getgrnam", "getgrnam_r", "getgrgid", "getgrgid_r",
    "getgrent", "getgrouplist", "initgroups", "getspnam", "getspnam_r", "getservbyname",
    "getservbyname_r", "getservbyport", "getprotobyname", "getnetbyname", "getnetgrent",
    "innetgr", "ether_hostton", "ether_ntohost",
    # Entry points that look up through NSS inside glibc: enumeration and the rarer
    # databases, getaddrinfo_a (libanl), getlogin (getpwuid_r of the login uid), the r*
    # commands (getpwnam, gethostbyname), and ~user expansion in glob and wordexp.
    "getpwent_r", "getgrent_r", "getspent", "getspent_r", "getsgnam", "getsgnam_r",
    "getsgent", "getprotobynumber", "getprotobynumber_r", "getprotobyname_r", "getprotoent",
    "getservbyport_r", "getservent", "gethostent", "gethostent_r", "getnetbyaddr",
    "getnetbyname_r", "getnetent", "getrpcbyname", "getrpcbynumber", "getrpcent",
    "getaliasbyname", "getaliasent", "setnetgrent", "getnetgrent_r", "getaddrinfo_a",
    "getlogin", "getlogin_r", "cuserid", "getpw", "ruserok", "iruserok", "rcmd", "rcmd_af",
    "rexec", "rexec_af", "glob", "glob64", "wordexp",
})
# The nsswitch.conf database each caller looks up in (glibc's nss/ and inet/ sources). A
# caller reaching a second database only for some arguments (getaddrinfo's service names,
# getnameinfo without NI_NUMERICSERV) is listed under its main one: the `missing-nss` gate
# (gates.py) asks which modules a program's own lookups need, not every one it might.
_DATABASE_CALLERS = {
    "hosts": ("getaddrinfo", "getnameinfo", "gethostbyname", "gethostbyname2",
              "gethostbyname_r", "gethostbyname2_r", "gethostbyaddr", "gethostbyaddr_r",
              "gethostent", "gethostent_r", "getaddrinfo_a", "rcmd", "rcmd_af", "rexec",
              "rexec_af", "ruserok", "iruserok"),
    "passwd": ("getpwnam", "getpwnam_r", "getpwuid", "getpwuid_r", "getpwent", "getpwent_r",
               "getlogin", "getlogin_r", "cuserid", "getpw", "glob", "glob64", "wordexp",
               "rcmd", "rcmd_af", "ruserok", "iruserok"),
    "group": ("getgrnam", "getgrnam_r", "getgrgid", "getgrgid_r", "getgrent", "getgrent_r",
              "getgrouplist", "initgroups"),
    "initgroups": ("getgrouplist", "initgroups"),
    "shadow": ("getspnam", "getspnam_r", "getspent", "getspent_r"),
    "gshadow": ("getsgnam", "getsgnam_r", "getsgent"),
    "services": ("getservbyname", "getservbyname_r", "getservbyport", "getservbyport_r",
                 "getservent"),
    "protocols": ("getprotobyname", "getprotobyname_r", "getprotobynumber",
                  "getprotobynumber_r", "getprotoent"),
    "networks": ("getnetbyname", "getnetbyname_r", "getnetbyaddr", "getnetent"),
    "netgroup": ("getnetgrent", "getnetgrent_r", "setnetgrent", "innetgr", "ruserok",
                 "iruserok"),
    "ethers": ("ether_hostton", "ether_ntohost"),
    "rpc": ("getrpcbyname", "getrpcbynumber", "getrpcent"),
    "aliases": ("getaliasbyname", "getaliasent"),
}
CALLER_DATABASES: dict[str, tuple[str, ...]] = {
    caller: tuple(db for db, callers in _DATABASE_CALLERS.items() if caller in callers)
    for caller in NSS_CALLERS}
NSSWITCH = "/etc/nsswitch.conf"
MAX_NSSWITCH = 1 << 20  # a real one is a few hundred bytes
BUILT_IN_SINCE = (2, 34)
BUILT_IN = ("files", "dns")
MODULE_PREFIX = "libnss_"
MODULE_SUFFIX = ".so.2"

SERVED = "served"
DAEMON = "daemon"
NOT_SERVED = "not-served"


@dataclass(frozen=True)
class KnownSource:
    """What a common nsswitch.conf source needs on the target besides its module."""

    name: str
    daemon: str | None  # the host service that answers through the module's socket
    package: str  # the Debian package that installs the module on a build host
    answers_from: str  # where the module gets its answers


# The sources common targets name (Debian/Ubuntu, Fedora/RHEL, SUSE defaults, directory
# clients). The daemon-backed modules speak a socket protocol to the host's daemon: the
# bundled module is the build root's version, so the daemon must speak that protocol
# (stable for sssd and nslcd; libwbclient checks winbindd's interface version).
KNOWN_SOURCES: tuple[KnownSource, ...] = (
    KnownSource("files", None, "libc6", "/etc/passwd, /etc/group, /etc/hosts, ..."),
    KnownSource("dns", None, "libc6", "the DNS servers of /etc/resolv.conf"),
    KnownSource("compat", None, "libc6",
                "/etc/passwd and /etc/group (+/- NIS entries need the nis source)"),
    KnownSource("myhostname", None, "libnss-myhostname", "the local host name"),
    KnownSource("hesiod", None, "libc6", "DNS HS records (/etc/hesiod.conf)"),
    KnownSource("db", None, "libnss-db", "/var/db/*.db (makedb)"),
    KnownSource("systemd", "systemd-userdbd (and PID 1)", "libnss-systemd",
                "PID 1 and systemd-userdbd over varlink (root and nobody are built in)"),
    KnownSource("resolve", "systemd-resolved", "libnss-resolve",
                "systemd-resolved over varlink"),
    KnownSource("mymachines", "systemd-machined", "libnss-mymachines",
                "systemd-machined over D-Bus"),
    KnownSource("mdns4_minimal", "avahi-daemon", "libnss-mdns", "avahi-daemon over its socket"),
    KnownSource("mdns", "avahi-daemon", "libnss-mdns", "avahi-daemon over its socket"),
    KnownSource("nis", "ypbind", "libnss-nis", "the NIS server ypbind is bound to"),
    KnownSource("sss", "sssd", "libnss-sss", "sssd over /var/lib/sss/pipes/nss"),
    KnownSource("ldap", "nslcd", "libnss-ldapd",
                "nslcd over its socket (libnss-ldapd), or the LDAP server of "
                "/etc/libnss-ldap.conf (libnss-ldap)"),
    KnownSource("winbind", "winbindd", "libnss-winbind",
                "winbindd over its socket (libwbclient checks winbindd's interface version)"),
)
_BY_NAME = {k.name: k for k in KNOWN_SOURCES}


def known_source(source: str) -> KnownSource | None:
    """The table's entry; the mdns family (mdns4, mdns6_minimal, ...) shares mdns's."""
    if source.startswith("mdns") and source not in _BY_NAME:
        return _BY_NAME["mdns"]
    return _BY_NAME.get(source)


@dataclass(frozen=True)
class SourceFact:
    """Whether the artifact serves one nsswitch.conf source on any target."""

    source: str
    state: str  # SERVED, DAEMON or NOT_SERVED
    how: str  # "built into glibc 2.36", "bundled libnss_compat.so.2", why not
    daemon: str | None = None  # for DAEMON: what must run on the target


@dataclass(frozen=True)
class NssCoverage:
    """The artifact's NSS: does the program look anything up, and which sources work."""

    used: bool  # the program or a library calls an NSS lookup (NSS_CALLERS)
    glibc: str | None
    modules: tuple[str, ...]  # libnss_*.so.2 in lib/
    facts: tuple[SourceFact, ...]

    def names(self, state: str) -> tuple[str, ...]:
        return tuple(f.source for f in self.facts if f.state == state)

    def fact(self, source: str) -> SourceFact:
        """The fact for any source name, also one no list mentions (then: not served)."""
        for fact in self.facts:
            if fact.source == source:
                return fact
        return _not_served(source, self.glibc)

    def manifest(self) -> NssRecord:
        """The manifest's "nss": what a target may name, and what then must run there."""
        return NssRecord(
            used=self.used,
            modules=self.modules,
            served=self.names(SERVED),
            daemon=tuple(sorted((f.source, f.daemon) for f in self.facts if f.state == DAEMON)),
            not_served=self.names(NOT_SERVED),
        )


@dataclass(frozen=True)
class TargetSource:
    """A source a target's nsswitch.conf names, the databases naming it, and its fact."""

    fact: SourceFact
    databases: tuple[str, ...]


def nsswitch_entries(text: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(database, sources) per line, in file order, without `[NOTFOUND=return]` actions."""
    entries = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0]
        if ":" not in line:
            continue
        database, rest = line.split(":", 1)
        sources: list[str] = []
        depth = 0
        for word in rest.replace("[", " [ ").replace("]", " ] ").split():
            if word == "[":
                depth += 1
            elif word == "]":
                depth = max(0, depth - 1)
            elif depth == 0 and word not in sources:
                sources.append(word)
        entries.append((database.strip(), tuple(sources)))
    return tuple(entries)


def nsswitch_services(text: str) -> tuple[str, ...]:
    """Service names in nsswitch.conf order, without `[NOTFOUND=return]` actions."""
    services: list[str] = []
    for _, sources in nsswitch_entries(text):
        services += [s for s in sources if s not in services]
    return tuple(services)


def module_name(source: str) -> str:
    return f"{MODULE_PREFIX}{source}{MODULE_SUFFIX}"


def source_of(filename: str) -> str | None:
    """`libnss_sss.so.2` -> `sss`; None for anything else (libnss3.so is Mozilla's NSS)."""
    if filename.startswith(MODULE_PREFIX) and filename.endswith(MODULE_SUFFIX):
        source = filename[len(MODULE_PREFIX):-len(MODULE_SUFFIX)]
        return source if _valid_source(source) else None
    return None


def built_in(glibc_release: tuple[int, ...]) -> tuple[str, ...]:
    return BUILT_IN if glibc_release >= BUILT_IN_SINCE else ()


def chosen_sources(choice: str, named: tuple[str, ...], installed: tuple[str, ...],
                   glibc_release: tuple[int, ...], uses_nss: bool) -> tuple[str, ...]:
    """The sources whose modules `--nss auto|none|LIST` bundles (pure).

    auto: the build root's nsswitch.conf sources first, then every other module the root
    has (sorted), but nothing when no NSS lookup is ever made; LIST: exactly those. Sources
    built into this glibc need no module.
    """
    if choice == "none":
        return ()
    if choice == "auto":
        if not uses_nss:
            return ()
        wanted = [*named, *sorted(set(installed) - set(named))]
    else:
        wanted = [s.strip() for s in choice.split(",") if s.strip()]
        bad = [s for s in wanted if not _valid_source(s)]
        if bad:
            raise InputError(f"--nss {choice}: not a service name: {', '.join(bad)}")
    inside = built_in(glibc_release)
    unique = dict.fromkeys(s for s in wanted if s not in inside)
    return tuple(unique)


def databases_looked_up(symbols: Iterable[str]) -> frozenset[str]:
    """The nsswitch.conf databases these imported symbols look up in."""
    return frozenset(db for symbol in symbols for db in CALLER_DATABASES.get(symbol, ()))


def sources_for(nsswitch_text: str, databases: Iterable[str]) -> tuple[str, ...]:
    """The sources nsswitch.conf names for these databases, in file order (pure). A
    database it does not list uses glibc's default, `files` (and `dns` for hosts)."""
    wanted = set(databases)
    sources: list[str] = []
    for database, named in nsswitch_entries(nsswitch_text):
        if database in wanted:
            sources += [s for s in named if s not in sources]
    return tuple(sources)


def needed_missing(choice: str, sysroot: Sysroot, missing: Iterable[str],
                   databases: frozenset[str]) -> tuple[str, ...]:
    """Of the NSS modules the build could not give, those the programs' own lookups would
    load: named by the build root's nsswitch.conf for a database they look up (auto), or
    asked for by name (`--nss LIST`). `db` named for `services` on a stock Debian is not
    one of them for a program that only resolves hosts and users."""
    absent = [m for m in missing if source_of(m) is not None]
    if choice != "auto":
        return tuple(absent)
    data = sysroot.read_bytes(NSSWITCH, MAX_NSSWITCH)
    named = sources_for(data.decode("utf-8", "replace"), databases) if data else ()
    return tuple(m for m in absent if source_of(m) in named)


def module_names(choice: str, sysroot: Sysroot, glibc_release: tuple[int, ...],
                 uses_nss: bool, library_dirs: Iterable[str] = ()) -> tuple[str, ...]:
    """libnss_*.so.2 names for `--nss auto|none|LIST` (reads the build root)."""
    named: tuple[str, ...] = ()
    installed: tuple[str, ...] = ()
    if choice == "auto" and uses_nss:
        data = sysroot.read_bytes(NSSWITCH)
        named = nsswitch_services(data.decode("utf-8", "replace")) if data else ()
        installed = installed_sources(sysroot, library_dirs)
    sources = chosen_sources(choice, named, installed, glibc_release, uses_nss)
    return tuple(module_name(s) for s in sources)


def installed_sources(sysroot: Sysroot, library_dirs: Iterable[str]) -> tuple[str, ...]:
    """Sources with a `libnss_SOURCE.so.2` in these dirs of the build root (the caller
    passes the loader's system dirs, the ld.so.cache entries' dirs and --library-path);
    which file the loader takes, and whether it fits the architecture, the resolver decides."""
    found = set()
    for directory in dict.fromkeys(library_dirs):
        for name in sysroot.list_dir(directory):
            source = source_of(name)
            if source is not None:
                found.add(source)
    return tuple(sorted(found))


def coverage(used: bool, modules: Iterable[str], glibc: str | None,
             glibc_release: tuple[int, ...]) -> NssCoverage:
    """The fact for every common source and every bundled module (pure)."""
    bundled = {s: m for m in sorted(set(modules)) if (s := source_of(m)) is not None}
    inside = built_in(glibc_release)
    facts = []
    for source in dict.fromkeys([*(k.name for k in KNOWN_SOURCES), *bundled]):
        known = known_source(source)
        if source in inside:
            facts.append(SourceFact(source, SERVED, f"built into glibc {glibc}"))
        elif source in bundled:
            how = f"bundled {bundled[source]}"
            if known is not None and known.daemon is not None:
                facts.append(SourceFact(source, DAEMON, f"{how}, answers from {known.answers_from}",
                                        known.daemon))
            else:
                facts.append(SourceFact(source, SERVED, how))
        else:
            facts.append(_not_served(source, glibc))
    return NssCoverage(used, glibc, tuple(sorted(bundled.values())), tuple(facts))


def _not_served(source: str, glibc: str | None) -> SourceFact:
    known = known_source(source)
    package = f" (Debian: {known.package})" if known is not None else ""
    bundled = f"the bundled glibc {glibc}" if glibc else "the bundled glibc"
    return SourceFact(source, NOT_SERVED,
                      f"{module_name(source)} is not in the artifact and {bundled} cannot "
                      "load the target's, built for the target's glibc; install it on the "
                      f"build host{package} and build again")


def coverage_from_manifest(manifest: Manifest, lookups: bool | None = None) -> NssCoverage:
    """The coverage of an artifact, judged from its manifest: its glibc and its
    lib/**/libnss_*.so.2 files. Whether it does lookups at all is what the build recorded
    (`"nss": {"used": ...}`), else `lookups`, else assumed (warn rather than stay silent)."""
    used = manifest.nss_used
    if used is None:
        used = True if lookups is None else lookups
    modules = [posixpath.basename(r.path) for r in manifest.files
               if r.type == "file" and r.path.startswith("lib/")
               and source_of(posixpath.basename(r.path)) is not None]
    return coverage(used, modules, manifest.glibc, release_key(manifest.glibc))


def target_sources(cover: NssCoverage, nsswitch_text: str) -> tuple[TargetSource, ...]:
    """Each source a target's nsswitch.conf names, with the databases naming it (pure)."""
    databases: dict[str, list[str]] = {}
    for database, sources in nsswitch_entries(nsswitch_text):
        for source in sources:
            databases.setdefault(source, []).append(database)
    return tuple(TargetSource(cover.fact(s), tuple(d)) for s, d in databases.items())


def target_warnings(cover: NssCoverage, nsswitch_text: str, where: str,
                    target_has: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Warnings for a target whose nsswitch.conf is `nsswitch_text` (`where` names it):
    sources the artifact cannot serve, and those it serves only with a host daemon.

    `target_has`: the sources the target has a module for, when known. A source it names
    without having the module fails for the target's own programs too (Debian's default
    `protocols: db files` without libnss-db): the artifact behaves as they do, so no warning.
    """
    if not cover.used:
        return ()
    warnings = []
    for named in target_sources(cover, nsswitch_text):
        fact, dbs = named.fact, ", ".join(named.databases)
        if fact.state == NOT_SERVED and (target_has is None or fact.source in target_has):
            warnings.append(
                f"warning: {where} names NSS source {fact.source} ({dbs}): the artifact "
                f"cannot serve it ({fact.how}); its lookups fail and the next source answers")
        elif fact.state == DAEMON:
            warnings.append(
                f"warning: {where} names NSS source {fact.source} ({dbs}): served by the "
                f"bundled module only while {fact.daemon} runs there ({fact.how})")
    return tuple(warnings)


def summary(cover: NssCoverage) -> str:
    """One paragraph for the report: what works on a target, what only with a daemon,
    what cannot."""
    if not cover.used:
        return ("no NSS lookups in the program or its libraries (no NSS callers imported): "
                "no module needed")
    parts = []
    served = [f"{f.source} ({f.how.replace('bundled ', '')})" for f in cover.facts
              if f.state == SERVED]
    parts.append("served on any target: " + (", ".join(served) or "none"))
    daemon = [f"{f.source} (while {f.daemon} runs)" for f in cover.facts if f.state == DAEMON]
    if daemon:
        parts.append("served only with a host daemon: " + ", ".join(daemon))
    cannot = cover.names(NOT_SERVED)
    if cannot:
        parts.append(
            "cannot serve: " + ", ".join(cannot) + " (not bundled: the bundled glibc cannot "
            "load a target's libnss_*.so.2, built for the target's glibc; a target whose "
            "nsswitch.conf names them fails those lookups and goes on to the next source: "
            "its sss/ldap/winbind users are unknown; install the module on the build host "
            "and build again)")
    return "; ".join(parts)


def brief(cover: NssCoverage) -> str | None:
    """One line for the verdict: the sources the artifact serves, and those it cannot."""
    if not cover.used:
        return None
    daemon = [f"{f.source} (with {f.daemon})" for f in cover.facts if f.state == DAEMON]
    served = ", ".join(cover.names(SERVED)) or "no source"  # glibc < 2.34, no modules
    line = ("for NSS lookups the artifact serves " + served
            + (" on any target, and " + ", ".join(daemon) if daemon else ""))
    cannot = cover.names(NOT_SERVED)
    if cannot:
        line += ("; it cannot serve " + ", ".join(cannot) + ": on a target whose "
                 "nsswitch.conf names them those lookups fail (check with bundle verify "
                 "--root)")
    return line


GO_PURE = "go-pure"
GLIBC_STATIC = "glibc-static"
NO_LOOKUPS = "none"


def static_kind(go_runtime: bool, nss_callers: bool) -> str:
    """How a static build looks users and hosts up: a Go build without cgo lookups
    (netgo, osusergo) does it itself; a static glibc with NSS callers loads the target's
    modules; a C program without NSS callers does no lookups."""
    if nss_callers:
        return GLIBC_STATIC
    return GO_PURE if go_runtime else NO_LOOKUPS


def static_lookups(kind: str) -> str:
    """What the static build does with the target's nsswitch.conf."""
    if kind == GO_PURE:
        return ("Go's own lookups (-tags netgo,osusergo): reads only /etc/passwd, /etc/group, "
                "/etc/hosts and DNS itself and ignores the other nsswitch.conf sources: users "
                "of sss, ldap, winbind or systemd are not found (\"unknown user\"), mdns and "
                "myhostname names do not resolve")
    if kind == GLIBC_STATIC:
        return ("static glibc: files and dns are built in; every other source loads the "
                "target's libnss_*.so.2 and libc.so.6 into the program, which works only where "
                "the target's glibc is the build's (elsewhere silent failures or an abort, "
                "GLIBC-NOTES section 3)")
    return "no NSS lookups"


def _valid_source(source: str) -> bool:
    return bool(source) and source.replace("_", "").replace("-", "").isalnum()


def root_warnings(manifest: Manifest, root: str) -> tuple[str, ...]:
    """`bundle verify --root DIR`: the target_warnings for DIR's /etc/nsswitch.conf (read
    inside DIR, its symlinks re-rooted); none when DIR has no nsswitch.conf (glibc's
    defaults are files and dns, which every artifact serves)."""
    target = Sysroot(root)
    data = target.read_bytes(NSSWITCH, MAX_NSSWITCH)
    if data is None:
        return ()
    text = data.decode("utf-8", "replace")
    return target_warnings(coverage_from_manifest(manifest), text, f"{root}{NSSWITCH}",
                           installed_sources(target, target_library_dirs(target)))


def target_library_dirs(target: Sysroot) -> tuple[str, ...]:
    """Where a target keeps its NSS modules: the usual library dirs, its multiarch dirs
    and the dirs of the modules its ld.so.cache lists (what its own glibc would load)."""
    dirs = ["/lib", "/lib64", "/lib32", "/usr/lib", "/usr/lib64", "/usr/lib32",
            "/usr/local/lib"]
    for base in ("/lib", "/usr/lib"):
        dirs += [f"{base}/{name}" for name in target.list_dir(base) if "-linux-" in name]
    cache = read_ld_so_cache(target).cache
    if cache is not None:
        dirs += [posixpath.dirname(e.path) for e in cache.entries
                 if source_of(posixpath.basename(e.name)) is not None]
    return tuple(dict.fromkeys(dirs))
