# The env launcher: LD_LIBRARY_PATH holds the bundled glibc and is inherited by every
# program this one starts; dynamically linked host programs then load this glibc with
# the host's loader and fail. Prefer the default (loader) launcher.
LD_LIBRARY_PATH=$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH
if [ -n "$at_prefix" ]; then
    exec "$here/libexec/$program" "$@"
fi
exec "$here/lib/$loader" @argv0@ "$here/libexec/$program" "$@"
