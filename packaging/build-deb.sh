#!/usr/bin/env bash
# Builds the Debian/Raspberry Pi OS package from a static binary:
#   packaging/build-deb.sh BINARY [DEB_ARCH] [OUTDIR]   (defaults: armhf, dist/deb)
# Raspberry Pi OS "armhf" is Armv6 hard-float, so the Pi Zero binary
# (arm-unknown-linux-musleabihf, arm1176jzf-s) serves Pi Zero/1 through Pi 4/5 in 32-bit mode.
# Layout: /greengrass as packaging/install.sh makes it, /usr/bin/sprig -> the binary, both
# systemd units in /lib/systemd/system (enabled by the user, after certs and config.json).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 1 ] || { echo "usage: $0 BINARY [DEB_ARCH] [OUTDIR]" >&2; exit 2; }
BIN=$1 ARCH=${2:-armhf} OUT=${3:-$ROOT/dist/deb}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)
DEBVER="$VERSION-1"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pkg=$work/pkg
SPRIG_VERSION=$VERSION sh "$ROOT/packaging/install.sh" --binary "$BIN" --destdir "$pkg" --systemd none >/dev/null
install -d -m 0755 "$pkg/usr/bin" "$pkg/lib/systemd/system" "$pkg/DEBIAN" "$pkg/usr/share/doc/sprig"
ln -s "/greengrass/ggc/packages/$VERSION/bin/sprig" "$pkg/usr/bin/sprig"
install -m 0644 "$ROOT/packaging/systemd/sprig.service" "$ROOT/packaging/systemd/greengrass.service" \
  "$pkg/lib/systemd/system/"
cat > "$pkg/usr/share/doc/sprig/copyright" <<'TXT'
sprig: Greengrass v1-compatible edge core. License: Apache-2.0.
TXT
chmod 0644 "$pkg/usr/share/doc/sprig/copyright"

installed_kib=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat > "$pkg/DEBIAN/control" <<CONTROL
Package: sprig
Version: $DEBVER
Architecture: $ARCH
Maintainer: sprig maintainers <sprig@localhost>
Installed-Size: $installed_kib
Section: net
Priority: optional
Description: Greengrass v1-compatible edge core
 Local MQTT broker with certificate auth, subscription router and
 store-and-forward cloud link in one static, single-threaded binary.
 Lays out /greengrass like the Greengrass v1 tarball; enable sprig.service
 (foreground) or greengrass.service (the guide's forking form).
CONTROL
cat > "$pkg/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
SCRIPT
cat > "$pkg/DEBIAN/postrm" <<'SCRIPT'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
SCRIPT
chmod 0755 "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/postrm"
chmod 0644 "$pkg/DEBIAN/control"
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
deb="$OUT/sprig_${DEBVER}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
