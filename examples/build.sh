#!/bin/sh
# Build the agent for each target of examples/bundle.toml: amd64 with the host's gcc, arm64
# with Debian's cross compiler (gcc-aarch64-linux-gnu) and the arm64 libraries of
# libsqlite3-dev:arm64. Run from the directory holding bundle.toml and the agent's source
# (AGENT_SRC, default: the current directory).
set -eu
src=${AGENT_SRC:-.}
top=$(pwd)
mkdir -p build/amd64 build/arm64
(cd "$src" && CGO_ENABLED=1 GOOS=linux GOARCH=amd64 \
    go build -buildvcs=false -o "$top/build/amd64/myagent" .)
(cd "$src" && CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=aarch64-linux-gnu-gcc \
    go build -buildvcs=false -o "$top/build/arm64/myagent" .)
