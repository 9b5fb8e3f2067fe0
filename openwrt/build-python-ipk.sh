#!/usr/bin/env bash
# Builds sprig-python_<ver>-r<rel>_all.ipk: sprig's Python Lambda runtime for OpenWrt
# (/usr/share/sprig/runtime/python: the bootstrap and the greengrass_common /
# greengrass_ipc_python_sdk modules the Greengrass Core SDK imports). /usr/bin/sprig finds it
# at <binary dir>/../share/sprig/runtime/python. Depends on python3-light plus the split-off
# modules the runtime imports: logging (python3-logging), http.client (python3-email for
# email.parser, python3-urllib for urllib.parse).
#   openwrt/build-python-ipk.sh [OUTDIR]   (OUTDIR defaults to dist/openwrt/all)
# Same outer format as build-ipk.sh (openwrt/ipk.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/dist/openwrt/all}
. "$ROOT/openwrt/ipk.sh"
dest=$data/usr/share/sprig/runtime/python
install -d -m 0755 "$dest/greengrass_common" "$dest/greengrass_ipc_python_sdk" "$ctrl"
(cd "$ROOT/runtime/python" && for f in sprig_lambda_runtime.py greengrass_common/*.py greengrass_ipc_python_sdk/*.py; do
  install -m 0644 "$f" "$dest/$f"
done)
installed_size=$(ipk_installed_size)
cat > "$ctrl/control" <<CONTROL
Package: sprig-python
Version: $PKGVER
Depends: sprig, python3-light, python3-logging, python3-email, python3-urllib
Source: feeds/sprig/sprig
SourceName: sprig
License: Apache-2.0
Section: net
Maintainer: sprig maintainers
Architecture: all
Installed-Size: $installed_size
Description:  Python Lambda runtime for sprig: runs Greengrass v1 Python functions (with the
 Greengrass Core SDK vendored in their code) on the sprig core.
CONTROL
chmod 0644 "$ctrl/control"
ipk_pack "$OUT" "sprig-python_${PKGVER}_all.ipk"
