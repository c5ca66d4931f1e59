#!/usr/bin/env bash
# Installs the Debian packages lvd builds and tests with. Idempotent: runs apt-get only when a
# package is missing (or always with --update, as CI does). Needs root or sudo for apt-get.
set -euo pipefail

packages=(
  libopenblas-dev libcurl4-openssl-dev libsqlite3-dev libgif-dev libffi-dev libjson-c-dev
  libssl-dev pkg-config gcc g++ make binutils git
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if [[ "${1:-}" == "--update" || ${#missing[@]} -gt 0 ]]; then
  sudo=""
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${packages[@]}"
fi
