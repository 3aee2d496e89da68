"""The rules every --data, --helper and --env value is held to (carry.py)."""

from __future__ import annotations

import pytest

from bundler.carry import (
    Carry,
    EnvValue,
    Helper,
    check_dest,
    default_dest,
    expand,
    parse_data,
    parse_env,
    parse_helper,
)
from bundler.errors import InputError


def test_data_goes_to_its_own_path_under_the_top_unless_a_dest_is_given() -> None:
    assert parse_data("/usr/lib/python3.11") == Carry("/usr/lib/python3.11",
                                                      "usr/lib/python3.11", "--data")
    assert parse_data("/usr/share/x/:share/x") == Carry("/usr/share/x", "share/x", "--data")
    assert parse_data("/etc/app.conf:lib/app/app.conf").dest == "lib/app/app.conf"
    assert default_dest("//usr/./lib/../share") == "usr/share"


@pytest.mark.parametrize("text, words", [
    ("relative/path", "SRC must be an absolute path"),
    ("/", "the whole root"),
    ("/x:/abs", "must be a relative path"),
    ("/x:../up", "no '..'"),
    ("/x:.", "no '..'"),
    ("/x:bin/tool", "artifact's own bin/"),
    ("/x:libexec", "artifact's own libexec/"),
    ("/x:.bundle/manifest.json", "artifact's own .bundle/"),
    ("/x:lib", "artifact's own lib/"),
    ("/x:a/\x1bb", "control character"),
])
def test_a_bad_data_value_is_one_line_naming_it(text: str, words: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_data(text)
    assert words in caught.value.message and "\n" not in caught.value.message


def test_a_helper_launcher_goes_to_bin_or_a_dest_of_its_own() -> None:
    assert parse_helper("/usr/bin/gpg-agent") == Helper("/usr/bin/gpg-agent",
                                                        "bin/gpg-agent", "--helper")
    assert parse_helper("/usr/bin/x:bin/y").dest == "bin/y"
    assert parse_helper("/usr/lib/git-core/git-upload-pack:usr/lib/git-core/"
                        "git-upload-pack").dest == "usr/lib/git-core/git-upload-pack"
    with pytest.raises(InputError, match="must be an absolute path"):
        parse_helper("gpg-agent")
    with pytest.raises(InputError, match="libexec"):
        parse_helper("/usr/bin/x:libexec/x")


def test_env_values_name_the_top_and_nothing_else() -> None:
    assert parse_env("GIT_EXEC_PATH={top}/usr/lib/git-core") == EnvValue(
        "GIT_EXEC_PATH", "{top}/usr/lib/git-core", "--env")
    assert parse_env("EMPTY=") == EnvValue("EMPTY", "", "--env")
    assert parse_env("A=x=y").value == "x=y"
    assert expand("{top}/a:{top}/b", "/opt/x") == "/opt/x/a:/opt/x/b"
    for bad, words in (("NOVALUE", "NAME=VALUE"), ("1A=x", "NAME=VALUE"), ("=x", "NAME=VALUE"),
                       ("A-B=x", "NAME=VALUE"), ("A=x\ny", "control character"),
                       ("A={prefix}/x", "only {top}")):
        with pytest.raises(InputError, match=words):
            parse_env(bad)


def test_check_dest_normalises() -> None:
    assert check_dest("share//x/./y/", "--data") == "share/x/y"
    assert check_dest("lib/python3.11", "--data") == "lib/python3.11"
