# What this script cannot do: sh has no exec with another argv[0], so here the program
# sees argv[0] as libexec/NAME, not as it was called (a symlink's own name is lost). The
# native launcher (launcher.c, used wherever a compiler for the architecture was found)
# keeps it.
if [ -n "$at_prefix" ]; then
    exec "$here/libexec/$program" "$@"
fi
# Anywhere else: start the bundled loader explicitly. Nothing a host program reads is
# exported, so the programs this one starts see the environment it was given.
case $here in
    *:* | *\;*) exec "$here/lib/$loader" @argv0@ "$here/libexec/$program" "$@" ;;
esac
exec "$here/lib/$loader" --library-path "$here/lib" @argv0@ "$here/libexec/$program" "$@"
