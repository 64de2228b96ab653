#!/usr/bin/env bash
# Proves that `make build` is reproducible: it copies the source tree to two
# directories of different paths and builds each with the same VERSION, COMMIT
# and DATE, the first with the user's build cache, the second with a cache of
# its own (REPRODUCIBLE_GOCACHE; the two share no compiled package), and fails
# unless the binaries' sha256 are equal. Its first run compiles every
# dependency, a few minutes on 2 cores; later runs recompile what changed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${VERSION:=v0.0.0-reproducible}" "${COMMIT:=0000000}" "${DATE:=1970-01-01T00:00:00Z}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build() {
	local src=$1 cache=$2
	mkdir -p "$src"
	# The tree as it is, uncommitted changes included, without build output.
	tar -C "$root" --exclude=./.git --exclude=./bin --exclude=./dist -cf - . | tar -C "$src" -xf -
	GOCACHE=$cache GOFLAGS= MAKEFLAGS= make -s -C "$src" build \
		VERSION="$VERSION" COMMIT="$COMMIT" DATE="$DATE" >&2
	sha256sum <"$src/bin/relabel" | cut -d' ' -f1
}

a=$(build "$work/a/relabel" "$(go env GOCACHE)")
b=$(build "$work/second/copy/of/the/source" "${REPRODUCIBLE_GOCACHE:-${RELABEL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/relabel}/go-build-reproducible}")
echo "reproducible: $a  $work/a/relabel/bin/relabel"
echo "reproducible: $b  $work/second/copy/of/the/source/bin/relabel"
if [[ $a != "$b" ]]; then
	echo "reproducible: the two builds differ" >&2
	exit 1
fi
echo "reproducible: identical (VERSION=$VERSION COMMIT=$COMMIT DATE=$DATE)"
