#!/usr/bin/env bash
# The `scaling` bench on a machine with many cores and no Rust toolchain.
#
#   benches/scaling-device.sh pack        # here: build and gather into target/devkit
#   benches/scaling-device.sh run [OUT]   # there: run from target/devkit, logs to OUT
#
# `pack` builds the bench and examples/hello_http (release, stripped), the
# Go servers (needs `go`), and copies `wrk` with the shared libraries it
# needs, into target/devkit (ignored by git; about 40 MiB). `run` expects
# that folder beside it (carry it), at least 16 CPUs, and writes one log per
# part to OUT (default /tmp):
#
# 1. hubs 1, 2, 4, 8 (and the peers at 8 threads) pinned to CPUs 0-7, the
#    client (8 threads, or wrk -t8) on CPUs 8-15: the scaling efficiency
#    with the client out of the servers' way;
# 2. 16 threads of each, nothing pinned (client and server share the 16).
set -euo pipefail
cd "$(dirname "$0")/.."
kit=target/devkit

pack() {
    cargo bench --bench scaling --no-run
    cargo build --release -p verdant --example hello_http
    rm -rf "$kit"
    mkdir -p "$kit/deps" "$kit/examples" "$kit/go" "$kit/bin" "$kit/lib"
    local bench
    bench=$(ls -t target/release/deps/scaling-* | grep -v '\.d$' | head -1)
    strip -o "$kit/deps/scaling" "$bench"
    strip -o "$kit/examples/hello_http" target/release/examples/hello_http
    # The bench builds the Go servers (into target/release/scaling-go)
    # whenever it runs with go on PATH; with no load it does only that.
    "$bench" --no-echo --no-http >/dev/null
    cp target/release/scaling-go/go-echo target/release/scaling-go/go-http "$kit/go/"
    cp "$(command -v wrk)" "$kit/bin/"
    for lib in libluajit-5.1.so.2 libssl.so.3 libcrypto.so.3; do
        cp -L "/lib/x86_64-linux-gnu/$lib" "$kit/lib/"
    done
    du -sh "$kit"
}

run() {
    local out=${1:-/tmp}
    mkdir -p "$out"
    ulimit -n 65536 || ulimit -n "$(ulimit -Hn)"
    export PATH="$PWD/$kit/bin:$PATH" LD_LIBRARY_PATH="$PWD/$kit/lib"
    local http=(--http-client own)
    if wrk --version 2>&1 | grep -q '^wrk'; then
        http=(--http-client wrk)
    fi
    echo "$(nproc) CPUs; $(uname -r); HTTP: ${http[*]}"
    "$kit/deps/scaling" --go-dir "$kit/go" "${http[@]}" \
        --servers verdant:1,verdant:2,verdant:4,verdant:8,verdant-rr:8,tokio:1,tokio:8,go:1,go:8,may:1,may:8 \
        --server-cpus 0-7 --client-cpus 8-15 --client-threads 8 \
        --conns 100,1000 --sizes 64,16384 --http-conns 1000 \
        2>&1 | tee "$out/scaling-pinned.log"
    "$kit/deps/scaling" --go-dir "$kit/go" "${http[@]}" \
        --servers verdant:1,verdant:16,verdant-rr:16,tokio:16,go:16,may:16 \
        --client-threads 16 \
        --conns 1000 --sizes 64,16384 --http-conns 1000 \
        2>&1 | tee "$out/scaling-16.log"
}

case "${1:-}" in
pack) pack ;;
run) run "${2:-}" ;;
*)
    echo "usage: $0 pack | run [OUT]" >&2
    exit 2
    ;;
esac
