#!/usr/bin/env python3
"""Checks the packages scripts/dist.sh made (run by scripts/test-cross.sh):

    test_packages.py DIST_DIR

Every dist/openwrt/*.ipk: OpenWrt's outer format (gzip'ed tar of exactly ./debian-binary,
./data.tar.gz, ./control.tar.gz), control fields, conffiles, file modes and owners, and that
/usr/bin/sprig is a static ELF for the architecture the package claims. Every dist/deb/*.deb:
dpkg-deb -I/-c agree, the /greengrass layout and its links, the binary's architecture.
Every tarball: the install script lays out /greengrass from it. Standard library only.
"""
import glob
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "musl"))
import elfarch  # noqa: E402

DIST = os.environ.get("SPRIG_DIST", os.path.join(REPO, "dist"))
with open(os.path.join(REPO, "Cargo.toml")) as _f:
    VERSION = re.search(r'^version = "(.*)"', _f.read(), re.M).group(1)
with open(os.path.join(REPO, "openwrt", "arches.txt")) as _f:
    OPENWRT_ARCH = dict(line.split() for line in _f if line.strip())
DEB_ARCH = {"armhf": "arm-unknown-linux-musleabihf", "arm64": "aarch64-unknown-linux-musl",
            "amd64": "x86_64-unknown-linux-musl"}
CONTROL_FIELDS = ["Package", "Version", "Depends", "Source", "SourceName", "License", "Section",
                  "Architecture", "Installed-Size", "Description"]


def control_fields(text):
    fields = {}
    for line in text.splitlines():
        if line[:1] not in (" ", "\t") and ":" in line:
            key, value = line.split(":", 1)
            fields[key] = value.strip()
    return fields


def members(tar):
    return {m.name: m for m in tar.getmembers()}


def elf_problems(target, blob):
    with tempfile.NamedTemporaryFile() as f:
        f.write(blob)
        f.flush()
        return elfarch.problems(target, f.name)


class Ipk(unittest.TestCase):
    def ipks(self):
        found = sorted(glob.glob(os.path.join(DIST, "openwrt", "*.ipk")))
        self.assertTrue(found, f"no ipk in {DIST}/openwrt (run scripts/dist.sh)")
        return found

    def test_each_ipk(self):
        for path in self.ipks():
            with self.subTest(ipk=os.path.basename(path)):
                self.check_ipk(path)

    def check_ipk(self, path):
        arch = re.match(r"sprig_([^_]+)_(.+)\.ipk$", os.path.basename(path)).group(2)
        self.assertIn(arch, OPENWRT_ARCH)
        with open(path, "rb") as f:
            self.assertEqual(f.read(2), b"\x1f\x8b", "outer ipk must be gzip")
        with tarfile.open(path, "r:gz") as outer:
            self.assertEqual([m.name for m in outer.getmembers()],
                             ["./debian-binary", "./data.tar.gz", "./control.tar.gz"])
            self.assertEqual(outer.extractfile("./debian-binary").read(), b"2.0\n")
            control_tgz = outer.extractfile("./control.tar.gz").read()
            data_tgz = outer.extractfile("./data.tar.gz").read()

        with tarfile.open(fileobj=io.BytesIO(control_tgz), mode="r:gz") as ctl:
            m = members(ctl)
            for name in ("./control", "./conffiles", "./postinst", "./prerm"):
                self.assertIn(name, m)
            self.assertEqual(m["./postinst"].mode & 0o777, 0o755)
            fields = control_fields(ctl.extractfile("./control").read().decode())
            self.assertEqual(ctl.extractfile("./conffiles").read().decode().split(), ["/etc/config/sprig"])
        for key in CONTROL_FIELDS:
            self.assertTrue(fields.get(key), f"control field {key} missing or empty")
        self.assertEqual(fields["Package"], "sprig")
        self.assertEqual(fields["Architecture"], arch)
        self.assertTrue(fields["Version"].startswith(VERSION + "-r"), fields["Version"])
        self.assertIn(f"_{fields['Version']}_", os.path.basename(path))

        with tarfile.open(fileobj=io.BytesIO(data_tgz), mode="r:gz") as data:
            m = members(data)
            want_modes = {"./usr/bin/sprig": 0o755, "./etc/init.d/sprig": 0o755, "./etc/config/sprig": 0o600}
            for name, mode in want_modes.items():
                self.assertIn(name, m)
                self.assertTrue(m[name].isfile())
                self.assertEqual(m[name].mode & 0o7777, mode, name)
            for member in m.values():
                self.assertEqual((member.uid, member.gid), (0, 0), member.name)
            installed = sum(x.size for x in m.values() if x.isfile())
            self.assertEqual(int(fields["Installed-Size"]), installed)
            init = data.extractfile("./etc/init.d/sprig").read().decode()
            self.assertTrue(init.startswith("#!/bin/sh /etc/rc.common"))
            self.assertIn("USE_PROCD=1", init)
            self.assertIn("start --foreground", init)
            self.assertIn("procd_set_param respawn", init)
            binary = data.extractfile("./usr/bin/sprig").read()
        self.assertEqual(elf_problems(OPENWRT_ARCH[arch], binary), [])


class FeedSources(unittest.TestCase):
    def test_feed_makefile_version_matches_cargo(self):
        with open(os.path.join(REPO, "openwrt", "sprig", "Makefile")) as f:
            make = f.read()
        self.assertEqual(re.search(r"^PKG_VERSION:=(.*)$", make, re.M).group(1), VERSION)
        self.assertIn("/etc/config/sprig", make.split("define Package/sprig/conffiles")[1])

    def test_init_script_is_valid_sh(self):
        init = os.path.join(REPO, "openwrt", "sprig", "files", "sprig.init")
        for shell in ("sh", "dash"):
            if subprocess.run(["sh", "-c", f"command -v {shell}"], capture_output=True).returncode == 0:
                subprocess.run([shell, "-n", init], check=True)


class Deb(unittest.TestCase):
    def test_each_deb(self):
        found = sorted(glob.glob(os.path.join(DIST, "deb", "*.deb")))
        self.assertTrue(found, f"no .deb in {DIST}/deb (run scripts/dist.sh)")
        for path in found:
            with self.subTest(deb=os.path.basename(path)):
                self.check_deb(path)

    def check_deb(self, path):
        info = subprocess.run(["dpkg-deb", "-I", path], check=True, capture_output=True, text=True).stdout
        fields = control_fields(subprocess.run(["dpkg-deb", "-f", path], check=True, capture_output=True,
                                               text=True).stdout)
        self.assertIn("postinst", info)
        self.assertEqual(fields["Package"], "sprig")
        self.assertEqual(fields["Version"], VERSION + "-1")
        arch = fields["Architecture"]
        self.assertIn(arch, DEB_ARCH)
        listing = subprocess.run(["dpkg-deb", "-c", path], check=True, capture_output=True, text=True).stdout
        for entry in (f"./greengrass/ggc/packages/{VERSION}/bin/sprig", "./greengrass/certs/",
                      "./greengrass/config/", "./greengrass/ggc/var/log/",
                      "./lib/systemd/system/greengrass.service", "./lib/systemd/system/sprig.service"):
            self.assertIn(" " + entry, listing)
        self.assertRegex(listing, r"drwx------ root/root .* \./greengrass/certs/")
        self.assertIn(f"./greengrass/ggc/core/greengrassd -> ../packages/{VERSION}/bin/sprig", listing)
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["dpkg-deb", "-x", path, tmp], check=True)
            binary = os.path.join(tmp, "greengrass/ggc/core/greengrassd")
            self.assertEqual(elfarch.problems(DEB_ARCH[arch], os.path.realpath(binary)), [])
            with open(os.path.join(tmp, "lib/systemd/system/greengrass.service")) as f:
                unit = f.read()
            for line in ("Type=forking", "PIDFile=/var/run/greengrassd.pid",
                         "ExecStart=/greengrass/ggc/core/greengrassd start"):
                self.assertIn(line, unit.splitlines())


class Tarball(unittest.TestCase):
    def test_each_tarball_installs(self):
        found = sorted(glob.glob(os.path.join(DIST, "sprig-*.tar.gz")))
        self.assertTrue(found, f"no tarball in {DIST}")
        for path in found:
            with self.subTest(tarball=os.path.basename(path)):
                target = re.match(rf"sprig-{re.escape(VERSION)}-(.+)-(router|full)\.tar\.gz$",
                                  os.path.basename(path)).group(1)
                with tempfile.TemporaryDirectory() as tmp:
                    with tarfile.open(path) as t:
                        t.extractall(tmp, filter="data")
                    top = os.path.join(tmp, os.path.basename(path)[: -len(".tar.gz")])
                    dest = os.path.join(tmp, "root")
                    env = dict(os.environ, SPRIG_VERSION=VERSION)
                    subprocess.run(["sh", os.path.join(top, "install.sh"), "--destdir", dest,
                                    "--systemd", "forking"], check=True, env=env, capture_output=True)
                    g = os.path.join(dest, "greengrass")
                    self.assertEqual(os.stat(os.path.join(g, "certs")).st_mode & 0o777, 0o700)
                    for d in ("config", "ggc/var/log", "ggc/var/state", "ggc/deployment/group"):
                        self.assertTrue(os.path.isdir(os.path.join(g, d)), d)
                    daemon = os.path.realpath(os.path.join(g, "ggc/core/greengrassd"))
                    self.assertEqual(daemon, os.path.join(g, f"ggc/packages/{VERSION}/bin/sprig"))
                    self.assertEqual(elfarch.problems(target, daemon), [])
                    # greengrassd (the link the guide's unit runs) starts the binary, under
                    # qemu-user with the target's CPU where the target is foreign.
                    run = subprocess.run(
                        ["bash", "-c", '. "$1"; QEMU_CPU=$(qemu_cpu "$2") $(qemu_cmd "$2") "$3" --version',
                         "-", os.path.join(REPO, "musl", "qemu.sh"), target,
                         os.path.join(g, "ggc/core/greengrassd")],
                        capture_output=True, text=True)
                    self.assertEqual(run.stdout.strip(), f"sprig {VERSION}", run.stderr)
                    self.assertTrue(os.path.isfile(os.path.join(dest, "etc/systemd/system/greengrass.service")))


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
