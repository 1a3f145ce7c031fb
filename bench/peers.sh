#!/usr/bin/env bash
# bench/peers.sh: build the Go peers of the benchmark (Centrifugo, NATS server) from the
# module proxy into a cache directory outside the repository, once.
#
#   bench/peers.sh            # build what is missing; prints "NAME PATH" for each peer that is there
#
# Each peer is built in a throwaway module in a temporary directory (go mod init, go get
# MODULE@VERSION, go build), so nothing of theirs reaches this repository or its go.mod.
# A binary already in the cache is not built again. A build that fails is reported and
# skipped: the benchmark goes on without that peer.
#
# Environment:
#   BENCH_CACHE   where the binaries go (${XDG_CACHE_HOME:-$HOME/.cache}/motehub-bench)
set -uo pipefail

: "${BENCH_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/motehub-bench}"

# The peers: NAME MODULE VERSION PACKAGE (the main package inside the module).
PEERS=(
	"centrifugo github.com/centrifugal/centrifugo/v6 v6.9.1 github.com/centrifugal/centrifugo/v6"
	"nats-server github.com/nats-io/nats-server/v2 v2.15.2 github.com/nats-io/nats-server/v2"
)

# build_peer NAME MODULE VERSION PACKAGE: the binary NAME-VERSION in the cache, built if missing.
build_peer() {
	local name=$1 module=$2 version=$3 pkg=$4
	local bin=$BENCH_CACHE/$name-$version
	if [ -x "$bin" ]; then
		echo "$name $bin"
		return 0
	fi
	mkdir -p "$BENCH_CACHE"
	local tmp log
	tmp=$(mktemp -d /tmp/hubbench-peer.XXXXXX)
	log=$BENCH_CACHE/$name-$version.build.log
	echo "bench: building $name $version from the module proxy (once; log in $log)" >&2
	if (
		cd "$tmp" &&
			go mod init hubbench.peer/"$name" &&
			go get "$module@$version" &&
			CGO_ENABLED=0 go build -trimpath -o "$bin.tmp" "$pkg"
	) >"$log" 2>&1 && mv "$bin.tmp" "$bin"; then
		echo "$name $bin"
	else
		rm -f "$bin.tmp"
		echo "bench: building $name $version failed (see $log); the benchmark goes on without it" >&2
		tail -n 5 "$log" >&2
	fi
	rm -rf "$tmp"
}

for p in "${PEERS[@]}"; do
	# shellcheck disable=SC2086 # the fields are words
	build_peer $p
done
