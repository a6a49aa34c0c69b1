#!/usr/bin/env bash
# Installs what building and testing Switchyard needs on Debian 12, only when it is missing.
# Usage: scripts/setup.sh [run|test]
set -euo pipefail
purpose="${1:-run}"

need_packages=()
have_pkgconfig() { pkg-config --exists "$1" 2>/dev/null; }
command -v pkg-config >/dev/null 2>&1 || need_packages+=(pkg-config)
have_pkgconfig sqlite3 || need_packages+=(libsqlite3-dev)
have_pkgconfig libsystemd || need_packages+=(libsystemd-dev)
if [ "$purpose" = test ]; then
  # Integration tests: a real journald (systemd), unshare (util-linux), sqlite3 for debugging.
  [ -x /lib/systemd/systemd-journald ] || need_packages+=(systemd)
  command -v unshare >/dev/null 2>&1 || need_packages+=(util-linux)
  # The real-systemd test: systemd-nspawn and a Debian root built with mmdebstrap.
  command -v systemd-nspawn >/dev/null 2>&1 || need_packages+=(systemd-container)
  command -v mmdebstrap >/dev/null 2>&1 || need_packages+=(mmdebstrap)
fi

if [ ${#need_packages[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages: ${need_packages[*]}; run as root or: sudo apt-get install -y ${need_packages[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${need_packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || true
  apt-get install -y -qq --no-install-recommends "${need_packages[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
  for candidate in /opt/swift/usr/bin /usr/share/swift/usr/bin; do
    [ -x "$candidate/swift" ] && { echo "setup: Swift found at $candidate; add it to PATH" >&2; break; }
  done
  echo "setup: no 'swift' on PATH. Switchyard needs Swift 6 (https://www.swift.org/install/linux/)." >&2
  exit 1
fi
version=$(swift --version 2>&1 | sed -n 's/.*Swift version \([0-9]*\)\..*/\1/p' | head -1)
if [ -z "$version" ] || [ "$version" -lt 6 ]; then
  echo "setup: Swift 6 or newer is required (found: $(swift --version 2>&1 | head -1))" >&2
  exit 1
fi
