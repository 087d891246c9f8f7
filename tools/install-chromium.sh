#!/usr/bin/env bash
# Headless Chromium for the report rendering test (tests/integration/test_reports.py
# opens each HTML report and takes a screenshot). Debian's `chromium` package.
# Idempotent: a no-op when it is installed.
set -euo pipefail
if dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q 'install ok installed'; then
  echo "[chromium] installed: $(command -v chromium || echo /usr/bin/chromium)" >&2
  exit 0
fi
echo "[chromium] installing chromium" >&2
SUDO=""
[[ $(id -u) == 0 ]] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends: the recommends (fonts, desktop integration, upower ...)
# are not needed to render a page headless; fonts-dejavu-core is enough for text.
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "[chromium] installed: $(command -v chromium)" >&2
