# Sourced: qemu_cmd TARGET prints the qemu-user command line (empty for the host's own arch)
# that runs a binary of TARGET with the CPU the target was built for.
qemu_cmd() {
  case "$1" in
    x86_64-unknown-linux-musl) echo "" ;;
    aarch64-unknown-linux-musl) echo "qemu-aarch64-static" ;;
    arm-unknown-linux-musleabihf) echo "qemu-arm-static -cpu arm1176" ;;
    armv7-unknown-linux-musleabihf) echo "qemu-arm-static -cpu cortex-a7" ;;
    mipsel-unknown-linux-musl) echo "qemu-mipsel-static -cpu 24KEc" ;;
    *) echo "no qemu for $1" >&2; return 1 ;;
  esac
}
