"""The spec `write_rpm` hands to rpmbuild (bundler/rpm.py): its header, its file list with the
manifest's modes, what it switches off, the systemd scriptlets, and what it refuses."""

from __future__ import annotations

import dataclasses
import re

import pytest

from bundler.errors import InputError
from bundler.manifest import FileRecord, Manifest
from bundler.package_meta import PackageMeta
from bundler.rpm import packaged_paths, rpm_name, rpm_version, spec_text

SHA = "a" * 64


def manifest(prefix: str = "/opt/myagent", *extra: FileRecord) -> Manifest:
    files = (
        FileRecord("bin/myagent", "file", "launcher", sha256=SHA, size=1, mode=0o755),
        FileRecord("lib/.bundle-0123456789abcdef", "symlink", "alias", target="."),
        FileRecord("lib/libc.so.6", "file", "library", sha256=SHA, size=1, mode=0o755),
        FileRecord("lib/libm.so.6", "file", "library", sha256=SHA, size=1, mode=0o644),
        FileRecord("libexec/myagent", "file", "program", sha256=SHA, size=1, mode=0o755),
        *extra,
    )
    return Manifest(name="myagent", arch="x86-64", prefix=prefix, launcher="bin/myagent",
                    loader="lib/ld-linux-x86-64.so.2", glibc="2.36", min_kernel="3.2.0",
                    programs=("myagent",), missing=(), excluded=(), environment=(),
                    runtime_missing=(), files=tuple(sorted(files, key=lambda f: f.path)))


UNLISTED = ((".bundle/manifest.json", 0o644), (".bundle/report.md", 0o644))


def spec(meta: PackageMeta | None = None, m: Manifest | None = None,
         unit: str | None = None) -> str:
    m = m or manifest()
    return spec_text(m, meta or PackageMeta("myagent"), packaged_paths(m, UNLISTED),
                     1700000000, unit)


def section(text: str, name: str) -> list[str]:
    """The lines of `%name` up to the next section (or the end)."""
    lines = text.splitlines()
    start = lines.index(f"%{name}") + 1
    end = next((i for i in range(start, len(lines))
                if re.fullmatch(r"%(prep|build|install|files|post|preun|postun|description)",
                                lines[i])), len(lines))
    return [line for line in lines[start:end] if line]


def test_header_carries_the_packages_facts() -> None:
    text = spec(PackageMeta("myagent", version="1.4.2", maintainer="Ops <ops@example.com>",
                            description="Collects things", licence="Apache-2.0",
                            homepage="https://example.com/agent"))
    for line in ("Name: myagent", "Version: 1.4.2", "Release: 1", "Summary: Collects things",
                 "License: Apache-2.0", "Packager: Ops <ops@example.com>",
                 "URL: https://example.com/agent", "AutoReqProv: no"):
        assert line in text.splitlines(), line
    assert "BuildRequires" not in text and "\nRequires" not in text


def test_no_build_arch_tag_rpmbuild_target_says_it() -> None:
    """rpm refuses a BuildArch foreign to the machine even with --target (measured)."""
    m = dataclasses.replace(manifest(), arch="aarch64")
    assert not any(line.startswith("BuildArch") for line in spec(m=m).splitlines())


def test_no_url_line_without_a_homepage() -> None:
    assert not any(line.startswith("URL:") for line in spec().splitlines())


def test_everything_that_would_change_a_byte_is_switched_off() -> None:
    lines = spec().splitlines()
    for macro in ("%define __strip /bin/true", "%define debug_package %{nil}",
                  "%define _build_id_links none", "%define __os_install_post %{nil}",
                  "%define __spec_install_post %{nil}", "%define __arch_install_post %{nil}",
                  "%define __brp_python_bytecompile %{nil}",
                  "%define use_source_date_epoch_as_buildtime 1",
                  "%define clamp_mtime_to_source_date_epoch 1", "%define _buildhost localhost"):
        assert macro in lines, macro
    assert "touch -h -d @1700000000" in "\n".join(section(spec(), "install"))


def test_files_are_the_manifests_with_its_modes_and_the_prefix_directories() -> None:
    files = section(spec(), "files")
    assert files == [
        "%defattr(-,root,root,-)",
        '%dir %attr(0755,root,root) "/opt/myagent"',
        '%dir %attr(0755,root,root) "/opt/myagent/.bundle"',
        '%attr(0644,root,root) "/opt/myagent/.bundle/manifest.json"',
        '%attr(0644,root,root) "/opt/myagent/.bundle/report.md"',
        '%dir %attr(0755,root,root) "/opt/myagent/bin"',
        '%attr(0755,root,root) "/opt/myagent/bin/myagent"',
        '%dir %attr(0755,root,root) "/opt/myagent/lib"',
        '"/opt/myagent/lib/.bundle-0123456789abcdef"',
        '%attr(0755,root,root) "/opt/myagent/lib/libc.so.6"',
        '%attr(0644,root,root) "/opt/myagent/lib/libm.so.6"',
        '%dir %attr(0755,root,root) "/opt/myagent/libexec"',
        '%attr(0755,root,root) "/opt/myagent/libexec/myagent"',
    ]


def test_a_setuid_mode_is_carried_only_when_the_manifest_has_it() -> None:
    suid = FileRecord("libexec/helper", "file", "program", sha256=SHA, size=1, mode=0o4755)
    files = section(spec(m=manifest("/opt/myagent", suid)), "files")
    assert '%attr(4755,root,root) "/opt/myagent/libexec/helper"' in files
    assert not any(re.search(r"%attr\([2-7]\d{3}", f) for f in section(spec(), "files"))


def test_a_prefix_with_a_space_is_quoted() -> None:
    files = section(spec(m=manifest("/opt/my agent")), "files")
    assert '%attr(0755,root,root) "/opt/my agent/bin/myagent"' in files
    assert 'cp -a "%{_sourcedir}/tree/." "%{buildroot}/opt/my agent"' in spec(
        m=manifest("/opt/my agent"))


@pytest.mark.parametrize("prefix", ["/opt/100%", "/opt/a*b", "/opt/a`b`", "/opt/a\"b"])
def test_a_path_rpm_or_the_shell_would_expand_is_refused(prefix: str) -> None:
    with pytest.raises(InputError, match="rpm"):
        spec(m=manifest(prefix))


def test_percent_in_text_is_literal() -> None:
    text = spec(PackageMeta("myagent", description="100% uptime"))
    assert "Summary: 100%% uptime" in text.splitlines()


def test_a_multi_line_description_is_refused() -> None:
    with pytest.raises(InputError, match="one line"):
        spec(PackageMeta("myagent", description="one\ntwo"))


@pytest.mark.parametrize(("version", "expected"), [
    ("1.4.2", "1.4.2"), ("1.4.2-rc1", "1.4.2~rc1"),
    ("2.0.0-beta.1+build.5", "2.0.0~beta.1+build.5"),
])
def test_version_maps_the_forbidden_dash(version: str, expected: str) -> None:
    assert rpm_version(version) == expected


@pytest.mark.parametrize("version", ["", "-1", "1 2", "1:2", "1/2"])
def test_a_version_rpm_cannot_carry_is_refused(version: str) -> None:
    with pytest.raises(InputError, match="version"):
        rpm_version(version)


@pytest.mark.parametrize(("name", "expected"), [
    ("myagent", "myagent"), ("My Agent", "My-Agent"), ("agent/x", "agent-x"), ("", "myagent"),
    ("-x", "x"),
])
def test_name_is_normalised(name: str, expected: str) -> None:
    assert rpm_name(PackageMeta(name), manifest()) == expected


def test_no_scriptlets_without_a_service() -> None:
    lines = spec().splitlines()
    assert not {"%post", "%preun", "%postun"} & set(lines)
    assert "systemd" not in spec()


def test_service_without_enable_follows_the_preset_policy() -> None:
    text = spec(PackageMeta("myagent", service=True), unit="unit.service")
    assert ('%attr(0644,root,root) "/usr/lib/systemd/system/myagent.service"'
            in section(text, "files"))
    post = "\n".join(section(text, "post"))
    assert "systemctl --no-reload preset myagent.service" in post
    assert " enable " not in post and " start " not in post
    # Guarded: on first install only, and only where systemctl exists.
    assert post.startswith("if [ $1 -eq 1 ] && command -v systemctl >/dev/null 2>&1; then")
    preun = "\n".join(section(text, "preun"))
    assert "[ $1 -eq 0 ]" in preun and "disable --now myagent.service" in preun
    postun = "\n".join(section(text, "postun"))
    assert "[ -d /run/systemd/system ]" in postun and "try-restart myagent.service" in postun
    for name in ("post", "preun", "postun"):
        for line in section(text, name):
            if "systemctl " in line and "command -v" not in line:  # never fails the rpm
                assert line.count("systemctl ") == line.count("|| :"), line


def test_service_with_enable_enables_and_starts_on_a_booted_systemd() -> None:
    text = spec(PackageMeta("myagent", service=True, enable=True), unit="unit.service")
    post = "\n".join(section(text, "post"))
    assert "systemctl --no-reload enable myagent.service" in post
    assert "if [ -d /run/systemd/system ]; then" in post
    assert "systemctl start myagent.service" in post
    assert "preset" not in post
