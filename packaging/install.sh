#!/bin/sh
# Installs sprig the way the Greengrass v1 tarball lays out /greengrass:
#   install.sh [--binary PATH] [--root /greengrass] [--destdir DIR] [--systemd simple|forking|none]
#   ROOT/certs/                         certificates from the setup tarball (0700)
#   ROOT/config/                        config.json from the setup tarball
#   ROOT/ggc/packages/VERSION/bin/sprig the binary (GGC's bin/daemon is a link to it)
#   ROOT/ggc/core/greengrassd           link to it: `greengrassd start|stop|restart`
#   ROOT/ggc/packages/VERSION/runtime/python  sprig's Python Lambda runtime (bootstrap and the
#                                       greengrass_common / greengrass_ipc_python_sdk modules the
#                                       Core SDK imports), from ./runtime/python beside this script
#                                       or the source tree's runtime/python
#   ROOT/ggc/var/{log,state}, ROOT/ggc/deployment/group
# With --systemd (default simple when systemd runs), installs the unit and reloads systemd;
# it does not enable or start it: put certs and config.json in place first.
# --destdir stages everything under DIR (for packaging), without touching systemd.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin="$here/sprig" root=/greengrass destdir="" systemd=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) bin=$2; shift 2 ;;
    --root) root=$2; shift 2 ;;
    --destdir) destdir=$2; shift 2 ;;
    --systemd) systemd=$2; shift 2 ;;
    *) echo "usage: $0 [--binary PATH] [--root DIR] [--destdir DIR] [--systemd simple|forking|none]" >&2; exit 2 ;;
  esac
done
[ -f "$bin" ] || { echo "no sprig binary at $bin" >&2; exit 2; }
# The version comes from the binary itself (`sprig --version` -> "sprig X.Y.Z") unless it
# cannot run here (staging a foreign-arch package): then from SPRIG_VERSION.
version=${SPRIG_VERSION:-$("$bin" --version | sed -n 's/^sprig //p')}
[ -n "$version" ] || { echo "cannot tell the version of $bin; set SPRIG_VERSION" >&2; exit 2; }

R="$destdir$root"
install -d -m 0755 "$R" "$R/config" "$R/ggc" "$R/ggc/core" "$R/ggc/packages/$version/bin" \
  "$R/ggc/var" "$R/ggc/var/log" "$R/ggc/var/state" "$R/ggc/deployment" "$R/ggc/deployment/group"
install -d -m 0700 "$R/certs"
install -m 0755 "$bin" "$R/ggc/packages/$version/bin/sprig"
ln -sfn sprig "$R/ggc/packages/$version/bin/daemon"
ln -sfn "../packages/$version/bin/sprig" "$R/ggc/core/greengrassd"
# The daemon finds the Python runtime at <binary dir>/../runtime/python.
for rt in "$here/runtime/python" "$here/../runtime/python"; do
  if [ -f "$rt/sprig_lambda_runtime.py" ]; then
    install -d -m 0755 "$R/ggc/packages/$version/runtime/python/greengrass_common" \
      "$R/ggc/packages/$version/runtime/python/greengrass_ipc_python_sdk"
    for f in sprig_lambda_runtime.py greengrass_common/__init__.py greengrass_common/env_vars.py \
      greengrass_common/function_arn_fields.py greengrass_ipc_python_sdk/__init__.py \
      greengrass_ipc_python_sdk/ipc_client.py; do
      install -m 0644 "$rt/$f" "$R/ggc/packages/$version/runtime/python/$f"
    done
    break
  fi
done

if [ "$systemd" = auto ]; then
  if [ -z "$destdir" ] && [ -d /run/systemd/system ]; then systemd=simple; else systemd=none; fi
fi
case "$systemd" in
  none) ;;
  simple|forking)
    unit=sprig.service; [ "$systemd" = forking ] && unit=greengrass.service
    install -d -m 0755 "$destdir/etc/systemd/system"
    install -m 0644 "$here/systemd/$unit" "$destdir/etc/systemd/system/$unit"
    if [ -z "$destdir" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
    echo "installed $unit: after certs/ and config/config.json are in $root, run: systemctl enable --now $unit" ;;
  *) echo "--systemd must be simple, forking or none" >&2; exit 2 ;;
esac
echo "sprig $version installed in $R"
