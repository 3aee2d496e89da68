#!/bin/sh
# ${name}: launcher made by bundle ${version}. It starts libexec/${program} with the glibc
# bundled in lib/ (glibc ${glibc}), whatever glibc this host has.
${mode_comment}
prefix=${prefix_q}
loader=${loader_q}
program=${program_q}

# Where this script really is: follow symlinks (/usr/local/bin/x -> /opt/x/bin/x).
# Command substitutions end in "x" so that names ending in newlines survive.
self=$$0
case $$self in
    */*) ;;
    *) self=$$(command -v -- "$$self" && printf x) && self=$${self%?x} ;;
esac
hops=0
while [ -L "$$self" ] && [ "$$hops" -lt 40 ]; do
    target=$$(readlink -- "$$self" && printf x) || break
    target=$${target%?x}
    case $$target in
        /*) self=$$target ;;
        *) self=$${self%/*}/$$target ;;
    esac
    hops=$$((hops + 1))
done
case $$self in
    */*) dir=$${self%/*} ;;
    *) dir=. ;;
esac
here=$$(cd -P -- "$${dir:-/}/.." && pwd -P && printf x) || {
    echo "$$program: cannot find the bundle's directory from $$0" >&2
    exit 127
}
here=$${here%?x}
${env_exports}
# Installed at its prefix with /proc mounted: the program's own PT_INTERP and RPATH work,
# so exec it directly (correct /proc/self/exe for self re-exec, pidof, systemd).
# No 2>/dev/null: a root without /dev (a bare chroot) would fail the redirect itself.
at_prefix=
if [ -e /proc/self/exe ] && [ -x "$$prefix/libexec/$$program" ]; then
    at_prefix=$$(cd -P -- "$$prefix" && pwd -P && printf x) && at_prefix=$${at_prefix%?x}
fi
