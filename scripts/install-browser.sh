#!/usr/bin/env bash
# Headless Chromium for the end-to-end browser tests (Debian packages; playwright drives it), with the fonts the
# shop's languages need: without CJK and Arabic fonts Chinese, Japanese and Arabic pages render as empty boxes,
# and tests/test_browser_mobile.py (which compares rendered text with missing-glyph boxes) fails.
set -euo pipefail
packages=()
command -v chromium >/dev/null 2>&1 || packages+=(chromium chromium-driver)
fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || packages+=(fonts-noto-cjk)
fc-list 2>/dev/null | grep -qi "Noto Sans Arabic\|Noto Naskh Arabic" || packages+=(fonts-noto-core)
if [ "${#packages[@]}" -eq 0 ]; then exit 0; fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "==> installing ${packages[*]} for browser tests"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
