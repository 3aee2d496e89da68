"""config.parse_config and overridden: bundle.toml's keys as a release, from parsed TOML."""

from __future__ import annotations

import platform

import pytest

from bundler.config import (
    BuildSettings,
    ReleaseOverrides,
    overridden,
    parse_config,
)
from bundler.errors import InputError

PATH = "/work/project/bundle.toml"


def test_paths_are_anchored_at_the_file_and_targets_override_the_top() -> None:
    config = parse_config({
        "name": "agent", "programs": ["build/agent"], "prefix": "/opt/agent",
        "add": ["plugins/libx.so"], "nss": ["files", "sss"], "run": ["--version", "a b"],
        "target": [{"arch": "x86_64"},
                   {"arch": "aarch64", "programs": ["/srv/arm/agent"], "sysroot": "roots/arm",
                    "launcher-type": "sh", "emulator": "qemu-aarch64"}],
        "verify": {"roots": ["bare", "roots/bullseye"], "args": ["--version"]},
        "sign": {"tool": "minisign", "key": "keys/release.key"},
    }, PATH)
    amd64, arm64 = config.targets
    assert (amd64.arch, arm64.arch) == ("amd64", "arm64")  # aliases to GOARCH names
    assert (amd64.machine, arm64.machine) == ("x86-64", "aarch64")
    assert amd64.build == BuildSettings(
        programs=("/work/project/build/agent",), add=("/work/project/plugins/libx.so",),
        nss="files,sss", prefix="/opt/agent", run="--version 'a b'")
    assert arm64.build.programs == ("/srv/arm/agent",)  # absolute: kept
    assert arm64.build.sysroot == "/work/project/roots/arm"
    assert arm64.build.launcher_type == "sh" and arm64.build.prefix == "/opt/agent"
    assert arm64.emulator == "qemu-aarch64"
    assert config.output_dir == "/work/project/dist"
    assert config.formats == ("tar.zst",) and config.sbom == ("cyclonedx", "spdx")
    assert config.verify is not None
    assert config.verify.roots == ("bare", "/work/project/roots/bullseye")
    assert config.sign is not None and config.sign.key == "/work/project/keys/release.key"


def test_no_target_table_means_this_machine_and_no_verify_table_means_not_run() -> None:
    config = parse_config({"programs": ["a"]}, PATH)
    wanted = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine())
    if wanted is not None:
        assert [t.arch for t in config.targets] == [wanted]
    assert config.verify is None and config.sign is None and config.fail_on == ()


def test_a_gpg_key_is_a_key_id_not_a_path() -> None:
    config = parse_config({"programs": ["a"], "sign": {"tool": "gpg", "key": "ABCD1234"}}, PATH)
    assert config.sign is not None and config.sign.key == "ABCD1234"


@pytest.mark.parametrize(("document", "message"), [
    ({"programs": ["a"], "target": [{"arch": "amd64"}, {"arch": "x86_64"}]},
     "target[2].arch: amd64 is already a target"),
    ({"programs": ["a"], "target": {"arch": "amd64"}},
     "target: must be one or more [[target]] tables"),
    ({"programs": ["a"], "target": [{"arch": "amd64", "verify": {}}]},
     "target[1].verify: unknown key"),
    ({"programs": [1]}, "programs[1]: must be a non-empty string"),
    ({"programs": ["a"], "library-path": ["lib"]}, "library-path: lib: must be an absolute"),
    ({"programs": ["a"], "verify": {"timeout": 0}}, "verify.timeout: must be a number"),
    ({"programs": ["a"], "verify": {"roots": []}}, "verify.roots: must name at least one"),
    ({"programs": ["a"], "sign": {"tool": "gpg"}}, "sign.key: missing"),
    ({"programs": ["a"], "sbom": ["swid"]}, "sbom: 'swid': choose cyclonedx, spdx, or none"),
    ({"programs": ["a"], "allow-missing": "yes"}, "allow-missing: must be true or false"),
])
def test_each_wrong_value_names_its_key(document: dict, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_config(document, PATH)
    assert caught.value.message.startswith("bundle.toml: "), caught.value.message
    assert message in caught.value.message


def test_the_command_line_wins_and_adds_gates() -> None:
    config = parse_config({"programs": ["a"], "version": "1.0", "fail-on": ["hazard:high"],
                           "target": [{"arch": "amd64"}, {"arch": "arm64"}],
                           "verify": {}, "sign": {"tool": "gpg", "key": "K"}}, PATH)
    changed = overridden(config, ReleaseOverrides(
        targets=("aarch64",), version="1.1", prefix="/srv/a", output_dir="/tmp/out",
        sbom=(), fail_on=("missing-nss", "hazard:high"), verify=False, sign=False))
    assert [t.arch for t in changed.targets] == ["arm64"]
    assert changed.targets[0].build.prefix == "/srv/a"
    assert (changed.version, changed.output_dir, changed.sbom) == ("1.1", "/tmp/out", ())
    assert changed.fail_on == ("hazard:high", "missing-nss")
    assert changed.verify is None and changed.sign is None
    assert overridden(config, ReleaseOverrides()) == config
    with pytest.raises(InputError, match=r"bundle.toml: version: '1 1'"):
        overridden(config, ReleaseOverrides(version="1 1"))
