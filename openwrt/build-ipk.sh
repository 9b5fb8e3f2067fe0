#!/usr/bin/env bash
# Builds an OpenWrt .ipk straight from a musl binary (no SDK needed):
#   openwrt/build-ipk.sh OPENWRT_ARCH BINARY [OUTDIR]   (OUTDIR defaults to dist/openwrt)
# OPENWRT_ARCH is one of the package architectures in openwrt/arches.txt.
# Format: openwrt/ipk.sh (as OpenWrt's ipkg-build writes it).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { echo "usage: $0 OPENWRT_ARCH BINARY [OUTDIR]" >&2; exit 2; }
ARCH=$1 BIN=$2 OUT=${3:-$ROOT/dist/openwrt}
grep -q "^$ARCH " "$ROOT/openwrt/arches.txt" || { echo "unknown OpenWrt arch '$ARCH'" >&2; exit 2; }
[ -f "$BIN" ] || { echo "no binary at $BIN (build it with musl/build.sh)" >&2; exit 2; }

. "$ROOT/openwrt/ipk.sh"
FILES="$ROOT/openwrt/sprig/files"
install -d -m 0755 "$data/usr/bin" "$data/etc/init.d" "$data/etc/config" "$ctrl"
install -m 0755 "$BIN" "$data/usr/bin/sprig"
install -m 0755 "$FILES/sprig.init" "$data/etc/init.d/sprig"
install -m 0600 "$FILES/sprig.config" "$data/etc/config/sprig"  # = OpenWrt INSTALL_CONF

installed_size=$(ipk_installed_size)
cat > "$ctrl/control" <<CONTROL
Package: sprig
Version: $PKGVER
Depends: libc, jshn
Source: feeds/sprig/sprig
SourceName: sprig
License: Apache-2.0
LicenseFiles: LICENSE
Section: net
Maintainer: sprig maintainers
Architecture: $ARCH
Installed-Size: $installed_size
Description:  Greengrass v1-compatible edge core: local MQTT broker with certificate auth,
 subscription router and store-and-forward cloud link in one static binary.
CONTROL
echo /etc/config/sprig > "$ctrl/conffiles"
# The scripts OpenWrt's build system generates for every package with an init script.
cat > "$ctrl/postinst" <<'SCRIPT'
#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
SCRIPT
cat > "$ctrl/prerm" <<'SCRIPT'
#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
SCRIPT
chmod 0755 "$ctrl/postinst" "$ctrl/prerm"
chmod 0644 "$ctrl/control" "$ctrl/conffiles"

ipk_pack "$OUT" "sprig_${PKGVER}_${ARCH}.ipk"
