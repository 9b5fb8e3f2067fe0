#!/usr/bin/env python3
"""Reads an ELF header and says whether it is the binary a target expects.

    elfarch.py TARGET FILE     exit 0 when FILE is a static executable for TARGET

Checked: class, byte order, e_machine, e_flags (ARM: EABI5 + hard-float; MIPS: MIPS32r2, o32,
soft-float), no PT_INTERP (static), and for ARM the CPU architecture attribute (v6 for the Pi
Zero, v7 for cortex-a7). Standard library only, so tests and scripts can share it.
"""
import struct
import sys

EM_386, EM_ARM, EM_MIPS, EM_X86_64, EM_AARCH64 = 3, 40, 8, 62, 183
PT_INTERP = 3
EF_ARM_EABI_MASK, EF_ARM_EABI_VER5, EF_ARM_ABI_FLOAT_HARD = 0xFF000000, 0x05000000, 0x400
EF_MIPS_ARCH, EF_MIPS_ARCH_32R2, EF_MIPS_ABI2 = 0xF0000000, 0x70000000, 0x20
SHT_ARM_ATTRIBUTES = 0x70000003
SHT_MIPS_ABIFLAGS = 0x7000002A
VAL_GNU_MIPS_ABI_FP_SOFT = 3
# Tag_CPU_arch values (ARM IHI 0045): 6 = v6KZ (ARM1176), 10 = v7.
TAG_CPU_ARCH = 6

# target -> (elf class 1=32/2=64, data 1=LE, e_machine, expected Tag_CPU_arch or None)
TARGETS = {
    "x86_64-unknown-linux-musl": (2, EM_X86_64, None),
    "aarch64-unknown-linux-musl": (2, EM_AARCH64, None),
    "arm-unknown-linux-musleabihf": (1, EM_ARM, 6),
    "armv7-unknown-linux-musleabihf": (1, EM_ARM, 10),
    "mipsel-unknown-linux-musl": (1, EM_MIPS, None),
}


def uleb(data, i):
    value = shift = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def arm_cpu_arch(blob, sections):
    """Tag_CPU_arch from the .ARM.attributes 'aeabi' File subsection, or None."""
    for sh_type, off, size in sections:
        if sh_type != SHT_ARM_ATTRIBUTES or size < 1 or blob[off] != ord("A"):
            continue
        data = blob[off + 1 : off + size]
        sec_len = struct.unpack_from("<I", data, 0)[0]
        name_end = data.index(b"\0", 4)
        if data[4:name_end] != b"aeabi":
            continue
        i = name_end + 1
        while i < sec_len:
            tag, sub_len = data[i], struct.unpack_from("<I", data, i + 1)[0]
            if tag == 1:  # Tag_File: attributes follow
                j, end = i + 5, i + sub_len
                while j < end:
                    attr, j = uleb(data, j)
                    if attr in (4, 5, 67):  # NTBS-valued tags
                        j = data.index(b"\0", j) + 1
                        continue
                    value, j = uleb(data, j)
                    if attr == TAG_CPU_ARCH:
                        return value
            i += sub_len
    return None


def mips_fp_abi(blob, sections):
    """fp_abi byte of .MIPS.abiflags (Elf_MIPS_ABIFlags_v0, offset 7), or None."""
    for sh_type, off, size in sections:
        if sh_type == SHT_MIPS_ABIFLAGS and size >= 8:
            return blob[off + 7]
    return None


def describe(path):
    """Returns a dict of the header facts of the ELF file at path."""
    with open(path, "rb") as f:
        blob = f.read()
    if blob[:4] != b"\x7fELF":
        raise ValueError(f"{path}: not an ELF file")
    ei_class, ei_data = blob[4], blob[5]
    end = "<" if ei_data == 1 else ">"
    # Header after e_ident, program header's p_type, section header up to sh_size: 32/64-bit.
    ehdr, shdr = ("HHIIIIIHHHHH", "IIIIII") if ei_class == 1 else ("HHIQQQIHHHHH", "IIQQQQ")
    (e_type, e_machine, _, _, e_phoff, e_shoff, e_flags, _, e_phentsize, e_phnum, e_shentsize,
     e_shnum) = struct.unpack_from(end + ehdr, blob, 16)
    ph = [struct.unpack_from(end + "I", blob, e_phoff + k * e_phentsize)[0] for k in range(e_phnum)]
    sh = []
    for k in range(e_shnum):
        _, t, _, _, off, size = struct.unpack_from(end + shdr, blob, e_shoff + k * e_shentsize)
        sh.append((t, off, size))
    return {
        "class": ei_class,
        "little_endian": ei_data == 1,
        "type": e_type,
        "machine": e_machine,
        "flags": e_flags,
        "static": PT_INTERP not in ph,
        "arm_cpu_arch": arm_cpu_arch(blob, sh) if e_machine == EM_ARM else None,
        "mips_fp_abi": mips_fp_abi(blob, sh) if e_machine == EM_MIPS else None,
    }


def problems(target, path):
    """Everything wrong with path as a static sprig for target (empty list = fine)."""
    want_class, want_machine, want_arch = TARGETS[target]
    d = describe(path)
    out = []
    if d["class"] != want_class:
        out.append(f"ELF class {d['class']}, want {want_class}")
    if not d["little_endian"]:
        out.append("big-endian")
    if d["machine"] != want_machine:
        out.append(f"e_machine {d['machine']}, want {want_machine}")
    if d["type"] not in (2, 3):  # EXEC, or DYN for static-pie
        out.append(f"e_type {d['type']} is not an executable")
    if not d["static"]:
        out.append("has PT_INTERP (dynamically linked)")
    if want_machine == EM_ARM:
        if d["flags"] & EF_ARM_EABI_MASK != EF_ARM_EABI_VER5:
            out.append(f"e_flags {d['flags']:#x}: not EABI5")
        if not d["flags"] & EF_ARM_ABI_FLOAT_HARD:
            out.append(f"e_flags {d['flags']:#x}: not hard-float")
        if d["arm_cpu_arch"] != want_arch:
            out.append(f"Tag_CPU_arch {d['arm_cpu_arch']}, want {want_arch}")
    if want_machine == EM_MIPS:
        if d["flags"] & EF_MIPS_ARCH != EF_MIPS_ARCH_32R2:
            out.append(f"e_flags {d['flags']:#x}: not MIPS32r2")
        if d["flags"] & EF_MIPS_ABI2:
            out.append(f"e_flags {d['flags']:#x}: n32, want o32")
        if d["mips_fp_abi"] != VAL_GNU_MIPS_ABI_FP_SOFT:
            out.append(f"MIPS fp_abi {d['mips_fp_abi']}, want {VAL_GNU_MIPS_ABI_FP_SOFT} (soft-float)")
    return out


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: elfarch.py {{{'|'.join(TARGETS)}}} FILE")
    bad = problems(sys.argv[1], sys.argv[2])
    for p in bad:
        print(f"{sys.argv[2]}: {p}", file=sys.stderr)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
