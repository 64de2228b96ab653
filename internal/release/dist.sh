#!/usr/bin/env bash
# Builds the release archives that plugins/relabel.yaml points at, for each
# platform krew installs relabel on, and writes the manifest for VERSION with
# their real sha256 to dist/relabel.yaml. The archives are reproducible like
# the binary: fixed file order, owner and time, and gzip without a timestamp.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
: "${VERSION:?VERSION=vX.Y.Z}" "${COMMIT:?}" "${DATE:?}"
[[ $VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || {
	echo "dist: VERSION=$VERSION is not a release version like v0.1.0" >&2
	exit 2
}
# DIST_PLATFORMS: a subset, for trying the script out.
read -ra platforms <<<"${DIST_PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64}"
rm -rf dist
mkdir -p dist
# The manifest without its placeholder note, for VERSION.
manifest=$(sed -e '/^# v0.1.0 is not released/,/^# "Versions and releases")\./d' -e "s/v0\.1\.0/$VERSION/g" plugins/relabel.yaml)
for platform in "${platforms[@]}"; do
	os=${platform%/*} arch=${platform#*/}
	name=kubectl-relabel_${VERSION}_${os}_${arch}
	exe=kubectl-relabel
	[[ $os == windows ]] && exe+=.exe
	mkdir -p "dist/$name"
	GOOS=$os GOARCH=$arch CGO_ENABLED=0 go build -trimpath -buildvcs=false \
		-ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT -X main.date=$DATE" \
		-o "dist/$name/$exe" .
	# krew-index wants the licence in every archive; the manifest installs it.
	cp LICENSE README.md CHANGELOG.md "dist/$name/"
	tar -C "dist/$name" --sort=name --owner=0 --group=0 --numeric-owner --mode='a+rX,u+w,go-w' --mtime="$DATE" -cf - . |
		gzip -n -9 >"dist/$name.tar.gz"
	tar -tzf "dist/$name.tar.gz" | grep -x './LICENSE' >/dev/null || { echo "dist: no LICENSE in dist/$name.tar.gz" >&2; exit 1; }
	sum=$(sha256sum "dist/$name.tar.gz" | cut -d' ' -f1)
	echo "dist: $sum  dist/$name.tar.gz"
	# The platform's sha256 is the line after its uri.
	manifest=$(awk -v uri="/$name.tar.gz" -v sum="$sum" \
		'index($0, uri) { print; getline; sub(/"[0-9a-f]+"/, "\"" sum "\"") } { print }' <<<"$manifest")
done
echo "$manifest" >dist/relabel.yaml
(cd internal/krewcheck && go tool validate-krew-manifest -manifest ../../dist/relabel.yaml -skip-install 2>/dev/null) ||
	{ echo "dist: krew rejects dist/relabel.yaml" >&2; exit 1; }
echo "dist: dist/relabel.yaml (valid for krew)"
