# Sourced by the ship scripts: installs (once) and puts on PATH every pinned cross tool.
# Versions are pinned here and nowhere else.
ZIGLANG_VERSION=0.14.1
CARGO_ZIGBUILD_VERSION=0.24.1
SHIP_VENV="$ROOT/target-cross/venv"

# Rust side: rust-src for -Z build-std (every target), llvm-tools for llvm-strip/llvm-nm (every
# arch), and the musl std rustup ships for x86_64/aarch64 (unused by musl/build.sh, which
# builds std; kept for plain `cargo build --target` runs).

_installed=$(rustup target list --installed)
for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  case "$_installed" in *"$t"*) ;; *) rustup target add "$t" >&2 ;; esac
done
_components=$(rustup component list --installed)
for c in rust-src llvm-tools; do
  case "$_components" in *"$c"*) ;; *) rustup component add "$c" >&2 ;; esac
done
LLVM_BIN="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin"

# zig + cargo-zigbuild from PyPI in a venv of our own.
if [ ! -x "$SHIP_VENV/bin/cargo-zigbuild" ] \
   || [ "$("$SHIP_VENV/bin/python" -m ziglang version 2>/dev/null)" != "$ZIGLANG_VERSION" ] \
   || [ "$("$SHIP_VENV/bin/cargo-zigbuild" --version 2>/dev/null | awk '{print $2}')" != "$CARGO_ZIGBUILD_VERSION" ]; then
  mkdir -p "$ROOT/target-cross"
  python3 -m venv "$SHIP_VENV" >&2
  "$SHIP_VENV/bin/pip" install -q --disable-pip-version-check \
    "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION" >&2
fi
# cargo-zigbuild finds zig as `python3 -m ziglang` on PATH (the venv's python).
export PATH="$SHIP_VENV/bin:$PATH"
