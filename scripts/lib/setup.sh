# Shared set-up for scripts/test and scripts/demo: system packages and a cached venv.
# Sourced, not run. Works on a fresh Debian/Ubuntu machine as root (or with sudo).

# The cache lives outside the clone so CI's fresh clones reuse it; keyed by inputs.
BUNDLE_CACHE_DIR="${BUNDLE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bundle-dev}"
export BUNDLE_CACHE_DIR

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else echo "setup: need root (or sudo) to run: $*" >&2; return 3
    fi
}

# ensure_apt_packages PKG...: install the missing ones, running apt-get update once.
ensure_apt_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    echo "setup: installing ${missing[*]}" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

# quietly LOG CMD...: run CMD with its output in LOG, shown only when it fails.
quietly() {
    local log="$1"; shift
    "$@" >"$log" 2>&1 || { cat "$log" >&2; echo "setup: failed: $*" >&2; return 1; }
}

# ensure_venv: a venv with the package's dependencies and test extra; sets PY.
ensure_venv() {
    local python key venv
    python="$(command -v python3)"
    if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
        ensure_apt_packages python3-venv
    fi
    key="$( { "$python" --version; cat pyproject.toml; } | sha256sum | cut -c1-16)"
    venv="$BUNDLE_CACHE_DIR/venv-$key"
    if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
        rm -rf "$venv"
        mkdir -p "$BUNDLE_CACHE_DIR"
        "$python" -m venv "$venv"
        quietly "$BUNDLE_CACHE_DIR/pip.log" \
            "$venv/bin/python" -m pip install --upgrade pip setuptools wheel
        quietly "$BUNDLE_CACHE_DIR/pip.log" "$venv/bin/python" -m pip install -e '.[test]'
        touch "$venv/.complete"
    fi
    # Re-point the editable install at this clone (cheap; deps are already there).
    quietly "$BUNDLE_CACHE_DIR/pip.log" \
        "$venv/bin/python" -m pip install --no-deps --no-build-isolation -e .
    PY="$venv/bin/python"
    export PY
}

# ensure_debian_root SUITE: a debootstrap minbase root, cached outside the clone and keyed
# by suite, variant and mirror; exports BUNDLE_ROOT_<SUITE> with its path.
ensure_debian_root() {
    local suite="$1" mirror="${BUNDLE_DEBIAN_MIRROR:-http://deb.debian.org/debian}" key root
    key="$(printf '%s minbase %s' "$suite" "$mirror" | sha256sum | cut -c1-12)"
    root="$BUNDLE_CACHE_DIR/roots/$suite-minbase-$key"
    if [ ! -f "$root/.complete" ]; then
        if [ "$(id -u)" -ne 0 ]; then
            echo "setup: not root: no $suite root; tests that need it will skip" >&2
            return 0
        fi
        echo "setup: debootstrap $suite into $root (once; a few minutes)" >&2
        rm -rf "$root" "$root.part"
        mkdir -p "$BUNDLE_CACHE_DIR/roots"
        quietly "$BUNDLE_CACHE_DIR/debootstrap-$suite.log" \
            debootstrap --variant=minbase "$suite" "$root.part" "$mirror"
        mv "$root.part" "$root"
        touch "$root/.complete"
    fi
    export "BUNDLE_ROOT_$(printf '%s' "$suite" | tr '[:lower:]' '[:upper:]')=$root"
}
