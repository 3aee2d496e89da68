#!/bin/sh
# The one release step every recipe here runs (GitHub Actions, GitLab CI, goreleaser's
# build hook): `bundle release` for VERSION, its JSON kept in release.json, its exit code
# the pipeline's (2 a wrong bundle.toml, 3 a missing tool, 4 a verification failed, 5 a
# fail-on gate held). Extra arguments go to `bundle release` (e.g. --target arm64).
#
# The minisign secret key comes from the CI secret MINISIGN_SECRET_KEY (the whole key
# file's text; made with `minisign -G -W`, no password) and lives only for this step.
set -eu
version=${1:?usage: examples/release.sh VERSION [bundle release options...]}
shift
version=${version#v}   # a tag v1.4.2 names version 1.4.2
if [ -n "${MINISIGN_SECRET_KEY:-}" ]; then
    old_umask=$(umask)
    umask 077
    printf '%s\n' "$MINISIGN_SECRET_KEY" > release.key
    umask "$old_umask"
    trap 'rm -f release.key' EXIT
    signing=""
else
    echo "release.sh: MINISIGN_SECRET_KEY is not set: SHA256SUMS will not be signed" >&2
    signing="--no-sign"
fi
# shellcheck disable=SC2086 # $signing is one option or nothing
bundle release --version "$version" $signing --json "$@" > release.json
