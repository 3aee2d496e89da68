"""nss.py's pure part: reading nsswitch.conf, choosing modules, and what a target gets."""

from __future__ import annotations

import pytest

from bundler import nss
from bundler.errors import InputError
from bundler.manifest import NssRecord
from bundler.nss import DAEMON, NOT_SERVED, SERVED
from bundler.sysroot import Sysroot

NSSWITCH = """\
# /etc/nsswitch.conf
passwd:         files systemd sss   # comment: ldap
group:          files [SUCCESS=merge] sss
hosts:          files mdns4_minimal [NOTFOUND=return] dns myhostname files
not a database line
protocols:      db files
"""


def test_nsswitch_is_read_like_glibc() -> None:
    assert nss.nsswitch_entries(NSSWITCH) == (
        ("passwd", ("files", "systemd", "sss")),
        ("group", ("files", "sss")),
        ("hosts", ("files", "mdns4_minimal", "dns", "myhostname")),
        ("protocols", ("db", "files")),
    )
    assert nss.nsswitch_services(NSSWITCH) == ("files", "systemd", "sss", "mdns4_minimal",
                                               "dns", "myhostname", "db")
    assert nss.nsswitch_entries("hosts: files [!UNAVAIL=return [x]] dns\n") == (
        ("hosts", ("files", "dns")),)


@pytest.mark.parametrize(("filename", "source"), [
    ("libnss_sss.so.2", "sss"), ("libnss_mdns4_minimal.so.2", "mdns4_minimal"),
    ("libnss3.so", None), ("libnss_.so.2", None), ("libnss_sss.so", None),
    ("libnss_a b.so.2", None), ("libnss_x/y.so.2", None),
])
def test_module_file_names(filename: str, source: str | None) -> None:
    assert nss.source_of(filename) == source
    if source is not None:
        assert nss.module_name(source) == filename


def test_auto_bundles_what_the_root_names_then_what_it_has() -> None:
    chosen = nss.chosen_sources("auto", ("files", "systemd", "sss"), ("compat", "systemd",
                                                                     "hesiod", "files"),
                                (2, 36), uses_nss=True)
    assert chosen == ("systemd", "sss", "compat", "hesiod")  # files is built in since 2.34
    old = nss.chosen_sources("auto", ("files", "dns"), (), (2, 31), uses_nss=True)
    assert old == ("files", "dns")
    assert nss.chosen_sources("auto", ("sss",), ("sss",), (2, 36), uses_nss=False) == ()
    assert nss.chosen_sources("none", ("sss",), ("sss",), (2, 36), uses_nss=True) == ()


def test_a_list_is_taken_as_given() -> None:
    chosen = nss.chosen_sources(" sss, ldap,sss,,files ", (), (), (2, 36), uses_nss=False)
    assert chosen == ("sss", "ldap")
    with pytest.raises(InputError, match=r"--nss sss,\.\./x: not a service name: \.\./x"):
        nss.chosen_sources("sss,../x", (), (), (2, 36), uses_nss=True)
    assert nss.module_names("compat,files", Sysroot("/"), (2, 31), True) == (
        "libnss_compat.so.2", "libnss_files.so.2")


def test_coverage_of_a_bundle() -> None:
    cover = nss.coverage(True, ("libnss_sss.so.2", "libnss_compat.so.2", "libnss_extra.so.2",
                                "libnss3.so"), "2.36", (2, 36))
    assert cover.modules == ("libnss_compat.so.2", "libnss_extra.so.2", "libnss_sss.so.2")
    assert cover.fact("files") == nss.SourceFact("files", SERVED, "built into glibc 2.36")
    assert cover.fact("compat") == nss.SourceFact("compat", SERVED, "bundled libnss_compat.so.2")
    sss = cover.fact("sss")
    assert (sss.state, sss.daemon) == (DAEMON, "sssd")
    assert sss.how == "bundled libnss_sss.so.2, answers from sssd over /var/lib/sss/pipes/nss"
    assert cover.fact("extra").state == SERVED  # a module no table knows: needs no daemon
    ldap = cover.fact("ldap")
    assert ldap.state == NOT_SERVED and "(Debian: libnss-ldapd)" in ldap.how
    assert "the bundled glibc 2.36 cannot load the target's" in ldap.how
    unknown = cover.fact("weird")
    assert unknown.state == NOT_SERVED and "Debian" not in unknown.how
    assert cover.facts[-1].source == "extra"  # the table's order, then other bundled ones
    assert cover.names(DAEMON) == ("sss",)
    assert cover.manifest() == NssRecord(
        used=True,
        modules=("libnss_compat.so.2", "libnss_extra.so.2", "libnss_sss.so.2"),
        served=("files", "dns", "compat", "extra"),
        daemon=(("sss", "sssd"),),
        not_served=cover.names(NOT_SERVED),
    )
    assert "files" not in cover.names(NOT_SERVED) and "ldap" in cover.names(NOT_SERVED)


def test_before_glibc_2_34_files_and_dns_need_their_modules() -> None:
    cover = nss.coverage(True, ("libnss_files.so.2",), "2.31", (2, 31))
    assert cover.fact("files") == nss.SourceFact("files", SERVED, "bundled libnss_files.so.2")
    assert cover.fact("dns").state == NOT_SERVED


def test_the_mdns_family_shares_one_entry() -> None:
    assert nss.known_source("mdns6_minimal") == nss.known_source("mdns")
    assert nss.known_source("mdns4_minimal").name == "mdns4_minimal"  # type: ignore[union-attr]
    assert nss.known_source("nothing") is None


def test_warnings_for_a_target() -> None:
    cover = nss.coverage(True, ("libnss_sss.so.2",), "2.36", (2, 36))
    warnings = nss.target_warnings(cover, NSSWITCH, "/t/etc/nsswitch.conf")
    assert [w.split(" (")[0] for w in warnings] == [
        "warning: /t/etc/nsswitch.conf names NSS source systemd",
        "warning: /t/etc/nsswitch.conf names NSS source sss",
        "warning: /t/etc/nsswitch.conf names NSS source mdns4_minimal",
        "warning: /t/etc/nsswitch.conf names NSS source myhostname",
        "warning: /t/etc/nsswitch.conf names NSS source db",
    ]
    assert warnings[1].startswith("warning: /t/etc/nsswitch.conf names NSS source sss "
                                  "(passwd, group): served by the bundled module only while "
                                  "sssd runs there")
    assert "(passwd): the artifact cannot serve it" in warnings[0]
    # a source the target has no module for fails for its own programs too: no warning
    only = nss.target_warnings(cover, NSSWITCH, "t", target_has=("systemd",))
    assert [w.split(" (")[0] for w in only] == ["warning: t names NSS source systemd",
                                                "warning: t names NSS source sss"]
    unused = nss.coverage(False, (), "2.36", (2, 36))
    assert nss.target_warnings(unused, NSSWITCH, "t") == ()


def test_brief_and_summary() -> None:
    cover = nss.coverage(True, ("libnss_sss.so.2",), "2.36", (2, 36))
    line = nss.brief(cover)
    assert line is not None
    assert line.startswith("for NSS lookups the artifact serves files, dns on any target, and "
                           "sss (with sssd); it cannot serve compat, myhostname")
    summary = nss.summary(cover)
    assert summary.startswith("served on any target: files (built into glibc 2.36), dns "
                              "(built into glibc 2.36); served only with a host daemon: sss "
                              "(while sssd runs); cannot serve: compat, ")
    unused = nss.coverage(False, ("libnss_sss.so.2",), "2.36", (2, 36))
    assert nss.brief(unused) is None
    assert nss.summary(unused).startswith("no NSS lookups")
    everything = nss.coverage(True, [nss.module_name(k.name) for k in nss.KNOWN_SOURCES],
                              "2.36", (2, 36))
    assert "cannot serve" not in str(nss.brief(everything))


def test_a_bundle_that_serves_no_source_says_so() -> None:
    # glibc 2.31 (nothing built in) with --nss none: nothing is served on any target
    nothing = nss.coverage(True, (), "2.31", (2, 31))
    assert str(nss.brief(nothing)).startswith("for NSS lookups the artifact serves no source; "
                                              "it cannot serve files, dns, compat")
    daemon_only = nss.coverage(True, ("libnss_sss.so.2",), "2.31", (2, 31))
    assert str(nss.brief(daemon_only)).startswith(
        "for NSS lookups the artifact serves no source on any target, and sss (with sssd); "
        "it cannot serve files, dns")
    assert nss.summary(nothing).startswith("served on any target: none; cannot serve: files")


def test_what_a_static_build_does_with_lookups() -> None:
    assert nss.static_kind(go_runtime=True, nss_callers=False) == nss.GO_PURE
    assert nss.static_kind(go_runtime=True, nss_callers=True) == nss.GLIBC_STATIC
    assert nss.static_kind(go_runtime=False, nss_callers=False) == nss.NO_LOOKUPS
    assert nss.static_lookups(nss.NO_LOOKUPS) == "no NSS lookups"
    assert "-tags netgo,osusergo" in nss.static_lookups(nss.GO_PURE)


# --- which missing modules a program's own lookups need (the missing-nss gate) ---

DEBIAN_NSSWITCH = """\
passwd:         files systemd
group:          files systemd
shadow:         files
hosts:          files mdns4_minimal [NOTFOUND=return] dns
services:       db files
netgroup:       nis
"""


def test_every_nss_caller_looks_up_in_some_database() -> None:
    assert set(nss.CALLER_DATABASES) == nss.NSS_CALLERS
    assert all(nss.CALLER_DATABASES.values())
    assert nss.CALLER_DATABASES["getpwuid_r"] == ("passwd",)
    assert nss.CALLER_DATABASES["initgroups"] == ("group", "initgroups")


def test_a_go_agents_lookups_reach_hosts_passwd_and_group() -> None:
    go_cgo = {"getaddrinfo", "getnameinfo", "getpwuid_r", "getpwnam_r", "getgrgid_r",
              "getgrnam_r", "malloc"}
    assert nss.databases_looked_up(go_cgo) == {"hosts", "passwd", "group"}
    assert nss.sources_for(DEBIAN_NSSWITCH, {"hosts", "passwd", "group"}) == (
        "files", "systemd", "mdns4_minimal", "dns")


def test_only_missing_modules_of_looked_up_databases_are_needed(tmp_path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nsswitch.conf").write_text(DEBIAN_NSSWITCH)
    root = Sysroot(str(tmp_path))
    missing = ("libgcc_s.so.1", "libnss_db.so.2", "libnss_nis.so.2", "libnss_systemd.so.2")
    assert nss.needed_missing("auto", root, missing, frozenset({"hosts", "passwd"})) == (
        "libnss_systemd.so.2",)
    assert nss.needed_missing("auto", root, missing, frozenset({"services"})) == (
        "libnss_db.so.2",)
    # --nss LIST: what the user named is needed, whatever the file says
    assert nss.needed_missing("files,nis", root, ("libnss_nis.so.2",), frozenset()) == (
        "libnss_nis.so.2",)
