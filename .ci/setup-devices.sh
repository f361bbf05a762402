#!/usr/bin/env bash
# Prepare a CI machine for the device tests (tests/test_device_*.py, tests/test_native_tools.py):
#   - Debian's adb client, OpenSSH server/client (loopback sshd), qemu-user-static, qemu-user (the
#     dynamic qemu-aarch64 that loads the instruction-counting plugin; gcc builds it), debootstrap,
#     and the aarch64 cross compiler (a fake native tool is built for the emulated device);
#   - the emulated arm64 device, built once (about 5-10 minutes) and cached under
#     $SSC_DEPLOY_CACHE (default ~/.cache/ssc-deploy/arm64-rootfs); later runs reuse it in seconds.
# Uses the repository's .venv (or $SSC_DEPLOY / ssc-deploy on PATH). Never fails the build for
# what this machine cannot do (no root, no apt, no binfmt_misc): the tests that need it skip
# and say why.
set -uo pipefail
cd "$(dirname "$0")/.."

warn() { echo "setup-devices: $*" >&2; }

packages=(adb openssh-server openssh-client qemu-user-static qemu-user debootstrap gcc gcc-aarch64-linux-gnu
          libc6-dev-arm64-cross util-linux file)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        warn "cannot install (needs root and apt): ${missing[*]}; the tests needing them will skip"
    elif ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; }; then
        warn "apt-get install failed; the tests needing ${missing[*]} will skip"
    fi
fi

ssc_deploy="${SSC_DEPLOY:-}"
[ -z "$ssc_deploy" ] && [ -x .venv/bin/ssc-deploy ] && ssc_deploy=.venv/bin/ssc-deploy
[ -z "$ssc_deploy" ] && ssc_deploy="$(command -v ssc-deploy || true)"
if [ -z "$ssc_deploy" ]; then
    warn "ssc-deploy is not installed (make setup); the emulated arm64 tests will skip"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    warn "not root: the emulated arm64 tests will skip (they need chroot and binfmt_misc)"
    exit 0
fi
# Idempotent: reuses a complete cache, resumes an interrupted build.
if ! "$ssc_deploy" device setup arm64-emulated; then
    warn "the emulated arm64 device could not be set up; its tests will skip"
fi
"$ssc_deploy" devices || true
command -v adb >/dev/null && adb kill-server >/dev/null 2>&1  # `devices` started the default adb server
exit 0
