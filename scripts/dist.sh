#!/usr/bin/env bash
# Builds every release artifact into dist/ (CI runs this through scripts/test-cross.sh):
#   dist/bin/<target>/<profile>/sprig      static, stripped binaries (musl/build.sh)
#   dist/sprig-<ver>-<target>-<profile>.tar.gz  binary + install.sh + systemd units
#   dist/openwrt/sprig_<ver>-r<rel>_<arch>.ipk  router profile, one per OpenWrt arch
#   dist/openwrt/all/sprig-python_<ver>-r<rel>_all.ipk  the Python Lambda runtime files
#   dist/deb/sprig_<ver>-1_armhf.deb       Pi Zero (full profile)
#   dist/SHA256SUMS
# Env: DIST_TARGETS (default: all five targets incl. mipsel-unknown-linux-musl; drop it to
# save ~6 min), DIST_FULL_TARGETS (targets also built in the full profile, default
# the Pi Zero and x86_64), DIST_NO_BUILD=1 to package what dist/bin already holds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGETS=${DIST_TARGETS:-"arm-unknown-linux-musleabihf aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf x86_64-unknown-linux-musl mipsel-unknown-linux-musl"}
FULL_TARGETS=${DIST_FULL_TARGETS:-"arm-unknown-linux-musleabihf x86_64-unknown-linux-musl"}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

if [ "${DIST_NO_BUILD:-0}" != 1 ]; then
  for t in $TARGETS; do musl/build.sh "$t" --profile router --check; done
  for t in $FULL_TARGETS; do musl/build.sh "$t" --profile full --check; done
fi

rm -rf dist/openwrt dist/deb dist/sprig-*.tar.gz dist/SHA256SUMS
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
for bin in dist/bin/*/*/sprig; do
  profile=$(basename "$(dirname "$bin")")
  target=$(basename "$(dirname "$(dirname "$bin")")")
  name="sprig-$VERSION-$target-$profile"
  install -d "$stage/$name/systemd"
  install -m 0755 "$bin" "$stage/$name/sprig"
  install -m 0755 packaging/install.sh "$stage/$name/install.sh"
  install -m 0644 packaging/systemd/*.service "$stage/$name/systemd/"
  cp -r runtime "$stage/$name/runtime" && find "$stage/$name/runtime" -name __pycache__ -prune -exec rm -rf {} +
  tar --owner=0 --group=0 --numeric-owner --sort=name --mtime="@$SOURCE_DATE_EPOCH" \
    -C "$stage" -cf - "$name" | gzip -9n > "dist/$name.tar.gz"
done

while read -r arch target; do
  bin="dist/bin/$target/router/sprig"
  if [ -f "$bin" ]; then openwrt/build-ipk.sh "$arch" "$bin" dist/openwrt >/dev/null
  else echo "dist: no $target router binary, no ipk for $arch" >&2; fi
done < openwrt/arches.txt

openwrt/build-python-ipk.sh dist/openwrt/all >/dev/null

pi="dist/bin/arm-unknown-linux-musleabihf/full/sprig"
[ -f "$pi" ] || pi="dist/bin/arm-unknown-linux-musleabihf/router/sprig"
if [ -f "$pi" ]; then packaging/build-deb.sh "$pi" armhf dist/deb >/dev/null
else echo "dist: no Pi Zero binary, no .deb" >&2; fi

(cd dist && sha256sum sprig-*.tar.gz openwrt/*.ipk openwrt/all/*.ipk deb/*.deb > SHA256SUMS)
echo "dist: $(wc -l < dist/SHA256SUMS) artifacts, see dist/SHA256SUMS"
