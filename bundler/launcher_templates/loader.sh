if [ "$$at_prefix" = "$$here" ]; then
    exec "$$here/libexec/$$program" "$$@"
fi
# Anywhere else: start the bundled loader explicitly. Nothing is exported, so the host
# programs this one starts see the environment it was given, untouched.
case $$here in
    *:* | *\;*) exec "$$here/lib/$$loader" ${argv0} "$$here/libexec/$$program" "$$@" ;;
esac
exec "$$here/lib/$$loader" --library-path "$$here/lib" ${argv0} "$$here/libexec/$$program" "$$@"
