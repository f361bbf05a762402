#!/usr/bin/env bash
# Prepare a CI machine for the device tests (tests/test_device_*.py, tests/test_native_tools.py):
#   - Debian's adb client, OpenSSH server/client (loopback sshd), qemu-user-static, debootstrap,
#     and the aarch64 cross compiler (a fake native tool is built for the emulated device);
#   - the emulated arm64 device, built once (about 5 minutes) and cached under
#     $SSC_DEPLOY_CACHE (default ~/.cache/ssc-deploy/arm64-rootfs); later runs reuse it in seconds.
# Run as root with the project's virtualenv active (ssc-deploy on PATH). Where the machine
# cannot emulate (no root, no binfmt_misc) the emulated tests skip and say why.
set -euo pipefail

packages=(adb openssh-server openssh-client qemu-user-static debootstrap gcc-aarch64-linux-gnu
          libc6-dev-arm64-cross util-linux file)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup-devices: need root to install: ${missing[*]}" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

ssc_deploy="${SSC_DEPLOY:-ssc-deploy}"
if ! command -v "$ssc_deploy" >/dev/null; then
    echo "setup-devices: '$ssc_deploy' not found: activate the virtualenv first (. .venv/bin/activate)" >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "setup-devices: not root: the emulated arm64 tests will be skipped (they need chroot and binfmt_misc)"
    exit 0
fi
# Idempotent: reuses a complete cache; a failure here only skips the emulated tests.
if ! "$ssc_deploy" device setup arm64-emulated; then
    echo "setup-devices: the emulated arm64 device could not be set up; its tests will be skipped" >&2
fi
"$ssc_deploy" devices
adb kill-server >/dev/null 2>&1 || true  # `devices` started the default adb server
