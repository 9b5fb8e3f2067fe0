# Sourced: how to run a binary of TARGET under qemu-user with the CPU it was built for.
# qemu_cmd TARGET prints the emulator (empty for the host's own arch), qemu_cpu TARGET the
# CPU model, passed as QEMU_CPU rather than -cpu so that the guest's command line stays
# `qemu-xxx-static /path/sprig ARGS` (sprig recognises itself behind an interpreter by argv[1]).
qemu_cmd() {
  case "$1" in
    x86_64-unknown-linux-musl) echo "" ;;
    aarch64-unknown-linux-musl) echo "qemu-aarch64-static" ;;
    arm-unknown-linux-musleabihf|armv7-unknown-linux-musleabihf) echo "qemu-arm-static" ;;
    mipsel-unknown-linux-musl) echo "qemu-mipsel-static" ;;
    *) echo "no qemu for $1" >&2; return 1 ;;
  esac
}
qemu_cpu() {
  case "$1" in
    arm-unknown-linux-musleabihf) echo "arm1176" ;;
    armv7-unknown-linux-musleabihf) echo "cortex-a7" ;;
    aarch64-unknown-linux-musl) echo "cortex-a53" ;;
    mipsel-unknown-linux-musl) echo "24KEc" ;;
    *) echo "" ;;
  esac
}
