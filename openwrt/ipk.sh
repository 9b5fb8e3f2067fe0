# Sourced by openwrt/build-ipk.sh and openwrt/build-python-ipk.sh: what every sprig .ipk shares.
# Format as OpenWrt's ipkg-build writes it: a gzip'ed tar of ./debian-binary, ./data.tar.gz and
# ./control.tar.gz, owned by 0:0, sorted, mtime from SOURCE_DATE_EPOCH.
# After sourcing (with ROOT set): PKGVER (<Cargo version>-r<PKG_RELEASE>), SOURCE_DATE_EPOCH,
# and a temporary $data (the package's files) and $ctrl (its control files), removed on exit.
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)
RELEASE=$(sed -n 's/^PKG_RELEASE:=//p' "$ROOT/openwrt/sprig/Makefile")
PKGVER="$VERSION-r$RELEASE"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)}
TAR=(tar --format=gnu --owner=0 --group=0 --numeric-owner --sort=name --mtime="@$SOURCE_DATE_EPOCH")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data=$work/data ctrl=$work/control

# Installed-Size: the bytes of every file under $data.
ipk_installed_size() {
  find "$data" -type f -printf '%s\n' | awk '{s+=$1} END {print s}'
}

# ipk_pack OUTDIR FILE_NAME: packs $data and $ctrl into OUTDIR/FILE_NAME and prints its path.
ipk_pack() {
  local out=$1 name=$2
  (cd "$data" && "${TAR[@]}" -cf - . | gzip -9n > "$work/data.tar.gz")
  (cd "$ctrl" && "${TAR[@]}" -cf - . | gzip -9n > "$work/control.tar.gz")
  echo "2.0" > "$work/debian-binary"
  mkdir -p "$out"; out=$(cd "$out" && pwd)
  (cd "$work" && "${TAR[@]}" -cf - ./debian-binary ./data.tar.gz ./control.tar.gz | gzip -9n > "$out/$name")
  echo "$out/$name"
}
