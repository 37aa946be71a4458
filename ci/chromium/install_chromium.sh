#!/usr/bin/env bash
# Install headless Chromium for tests/test_screenshots.py (Debian/Ubuntu, as root):
# the test opens the Snakemake report and the `dvc plots show` page in it and
# checks what a person would see. CI (`make test`, as root with apt access) gets
# it this way, so the test runs there instead of skipping.
#
#   sudo ci/chromium/install_chromium.sh     # prints the browser's path
# Exit status: 0 = installed (path on stdout); 3 = cannot install (not root or
# no apt-get) - the caller should skip; anything else = failure.
set -euo pipefail

for name in chromium chromium-browser; do
    if command -v "$name" >/dev/null; then
        command -v "$name"
        exit 0
    fi
done
if [[ $(id -u) -ne 0 ]]; then
    echo "install_chromium: not installed, and installing needs root" >&2
    exit 3
fi
if ! command -v apt-get >/dev/null; then
    echo "install_chromium: not installed, and apt-get is not available" >&2
    exit 3
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
command -v chromium
