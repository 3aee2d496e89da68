#!/bin/sh
# @name@: launcher made by bundle @version@. It starts libexec/@program@ with the glibc
# bundled in lib/ (glibc @glibc@), whatever glibc this host has.
# @mode_comment@
prefix=@prefix_q@
loader=@loader_q@
program=@program_q@

# Where this script really is: follow symlinks (/usr/local/bin/x -> /opt/x/bin/x).
# Command substitutions end in "x" so that names ending in newlines survive. Nothing is
# run through the caller's PATH: readlink is looked up by `command -p` in the shell's
# default system path (busybox sh runs its own applet). Started by the kernel, $0 is the
# path it was given, so it holds a '/'; without one (`sh NAME`) the shell opened NAME in
# the current directory, and only bash, when it is not there, found it through PATH.
self=$0
case $self in
    */*) ;;
    *)
        if [ -e "./$self" ]; then
            self=./$self
        else
            self=$(command -v -- "$self" && printf x) && self=${self%?x}
        fi
        ;;
esac
hops=0
while [ -L "$self" ] && [ "$hops" -lt 40 ]; do
    target=$(command -p readlink -- "$self" && printf x) || break
    target=${target%?x}
    case $target in
        /*) self=$target ;;
        *) self=${self%/*}/$target ;;
    esac
    hops=$((hops + 1))
done
case $self in
    */*) dir=${self%/*} ;;
    *) dir=. ;;
esac
# Absolute, so that --library-path and LD_LIBRARY_PATH survive the program's chdir.
case $dir in
    /*) ;;
    *)
        if [ -z "$PWD" ]; then
            echo "$program: cannot tell the current directory to find the bundle" >&2
            exit 127
        fi
        dir=$PWD/$dir
        ;;
esac
# bin/.. is the bundle's top (for a launcher in a carried tree, as many ".." as it lies
# deep): the kernel resolves ".." physically, so no `cd -P` (a fork; this script runs at
# every start of the program) is needed. Spelled without "bin/.." when that is the same
# directory.
here=${dir:-/}@up_path@
below=@below_q@
case $dir in
    */"$below") [ "${dir%/"$below"}/lib" -ef "$here/lib" ] && here=${dir%/"$below"} ;;
esac
@env_exports@@set_args@
# Installed at its prefix with /proc mounted: the program's own PT_INTERP and RPATH work,
# so exec it directly (correct /proc/self/exe for self re-exec, pidof, systemd). -ef
# compares device and inode: the same file, however each path is spelled.
at_prefix=
if [ -e /proc/self/exe ] && [ "$here/libexec/$program" -ef "$prefix/libexec/$program" ]; then
    at_prefix=yes
fi
# Called by another name (a multi-call program's link: git-upload-pack -> git), the
# program would see libexec/NAME from a direct start; the bundled loader (glibc >= 2.33)
# can give it the name, so such a start goes through the loader.
keeps_argv0=@keeps_argv0@
case ${0##*/} in
    "$program") ;;
    *) [ -n "$keeps_argv0" ] && at_prefix= ;;
esac
