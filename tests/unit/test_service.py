"""service.unit_text on hand-made manifests: the direct start, the Environment= lines from
the manifest's records, the hardening, and systemd.syntax quoting; deb.py's pure parts."""

from __future__ import annotations

import pytest

from bundler.deb import control_text, deb_version, maintainer_scripts, package_name
from bundler.errors import InputError
from bundler.manifest import EnvRecord, Manifest
from bundler.package_meta import PackageMeta
from bundler.service import unit_text

GCONV = EnvRecord("BGC2A4F9E0C1", "GCONV_PATH", "lib/gconv", True)
LOCPATH = EnvRecord("LOCPATH", "LOCPATH", "lib/locale", False)


def _manifest(prefix: str = "/opt/agent", programs: tuple[str, ...] = ("agent", "agentctl"),
              environment: tuple[EnvRecord, ...] = ()) -> Manifest:
    return Manifest(name="agent", arch="x86-64", prefix=prefix, launcher="loader",
                    loader="lib/ld-linux-x86-64.so.2", glibc="2.36", min_kernel="3.2.0",
                    programs=programs, missing=(), excluded=(), environment=environment,
                    runtime_missing=(), files=())


def _settings(text: str) -> list[tuple[str, str]]:
    return [tuple(line.split("=", 1)) for line in text.splitlines()
            if "=" in line and not line.startswith("#")]


def test_direct_start_of_the_first_program_with_the_hardening() -> None:
    text = unit_text(_manifest(), PackageMeta(name="agent", description="Metrics agent"))
    assert text.startswith("[Unit]\nDescription=Metrics agent\n")
    assert text.endswith("[Install]\nWantedBy=multi-user.target\n")
    settings = _settings(text)
    assert ("ExecStart", "/opt/agent/libexec/agent") in settings
    for setting in (("NoNewPrivileges", "yes"), ("ProtectSystem", "full"),
                    ("ProtectHome", "read-only"), ("PrivateTmp", "yes"),
                    ("Restart", "on-failure"), ("Type", "simple")):
        assert setting in settings
    assert not any(key == "Environment" for key, _ in settings)  # none recorded, none set


def test_environment_lines_come_from_the_manifest_records() -> None:
    text = unit_text(_manifest(environment=(GCONV, LOCPATH)), PackageMeta(name="agent"))
    environment = [value for key, value in _settings(text) if key == "Environment"]
    # The scoped name as the launcher exports it, never re-derived from `means`.
    assert environment == ["BGC2A4F9E0C1=/opt/agent/lib/gconv", "LOCPATH=/opt/agent/lib/locale"]


def test_default_description_names_the_programs() -> None:
    text = unit_text(_manifest(), PackageMeta(name="agent"))
    assert "Description=Bundled agent, agentctl, with its own glibc and loader\n" in text


def test_prefix_with_spaces_quotes_and_specifiers_is_quoted() -> None:
    manifest = _manifest(prefix='/opt/my "agent" 100%\\x', environment=(LOCPATH,))
    text = unit_text(manifest, PackageMeta(name="agent", description="uses 100% CPU"))
    lines = text.splitlines()
    assert 'ExecStart="/opt/my \\"agent\\" 100%%\\\\x/libexec/agent"' in lines
    assert 'Environment="LOCPATH=/opt/my \\"agent\\" 100%%\\\\x/lib/locale"' in lines
    assert "Description=uses 100%% CPU" in lines


def test_dollar_in_a_program_name_is_not_expanded() -> None:
    text = unit_text(_manifest(programs=("a$b",)), PackageMeta(name="agent"))
    assert "ExecStart=/opt/agent/libexec/a$$b\n" in text


def test_a_description_on_two_lines_is_refused() -> None:
    with pytest.raises(InputError, match="control character"):
        unit_text(_manifest(), PackageMeta(name="agent", description="one\ntwo"))


@pytest.mark.parametrize(("name", "spelled"), [
    ("myagent", "myagent"), ("My_Agent", "my-agent"), ("agent 2", "agent-2"),
    ("_x.y", "x.y"), ("g++", "g++"),
])
def test_package_names_in_debian_spelling(name: str, spelled: str) -> None:
    assert package_name(name) == spelled


@pytest.mark.parametrize("name", ["a", "_", "__a", ""])
def test_package_names_debian_cannot_spell_are_refused(name: str) -> None:
    with pytest.raises(InputError, match="Debian package name"):
        package_name(name)


def test_a_git_tag_version_loses_its_v() -> None:
    assert deb_version("v1.4.2") == "1.4.2"
    assert deb_version("1:2.0~rc1+ds-3") == "1:2.0~rc1+ds-3"


@pytest.mark.parametrize("version", ["vx1.0", "beta", "1.0 beta", "", "1.0-", "1_0"])
def test_versions_dpkg_refuses_are_refused(version: str) -> None:
    with pytest.raises(InputError, match="Debian version"):
        deb_version(version)


def test_control_has_no_depends_and_a_wrapped_extended_description() -> None:
    text = control_text(_manifest(), PackageMeta(name="Agent", version="2:1.0~rc1-3",
                                                 licence="Apache-2.0"), 1234)
    assert "Depends" not in text
    assert "Package: agent\nVersion: 2:1.0~rc1-3\nArchitecture: amd64\n" in text
    assert "Installed-Size: 1234\n" in text
    assert "Homepage" not in text
    description = text.split("Description: ", 1)[1].splitlines()
    assert description[0] == "Bundled agent, agentctl, with its own glibc and loader"
    assert all(line.startswith(" ") and len(line) <= 80 for line in description[1:])
    assert "Licence: Apache-2.0." in " ".join(description)


def test_scripts_enable_and_start_only_when_asked() -> None:
    enabled = maintainer_scripts("agent.service", enable=True)
    plain = maintainer_scripts("agent.service", enable=False)
    assert "_action=start" in enabled["postinst"]
    assert "_action=start" not in plain["postinst"]
    assert "debian-installed 'agent.service'" in plain["postinst"]  # only a re-enable
    assert enabled["prerm"] == plain["prerm"]
    assert "deb-systemd-invoke stop 'agent.service'" in plain["prerm"]
    assert "deb-systemd-helper purge 'agent.service'" in plain["postrm"]
    for scripts in (enabled, plain):
        for text in scripts.values():
            assert text.startswith("#!/bin/sh\nset -e\n")
            assert "systemctl" not in text.replace("systemctl --system daemon-reload", "")


def test_a_recipes_launcher_arguments_and_values_are_in_the_direct_start() -> None:
    """What the launcher would put before the caller's arguments (gpg's --agent-program)
    and set ({top} values) is in ExecStart and Environment=, each one word."""
    import dataclasses

    perl = EnvRecord("B11A1129", "PERL5LIB", "", True, "{top}/a:{top}/b c", "recipe perl")
    manifest = dataclasses.replace(
        _manifest(environment=(perl,)),
        arguments=(("agent", ("--agent-program", "{top}/bin/gpg-agent", "50% $HOME")),))
    lines = unit_text(manifest, PackageMeta(name="agent")).splitlines()
    assert ('ExecStart=/opt/agent/libexec/agent --agent-program /opt/agent/bin/gpg-agent '
            '"50%% $$HOME"') in lines
    assert 'Environment="B11A1129=/opt/agent/a:/opt/agent/b c"' in lines
