#!/bin/sh
# Install Debian's chromium for the report browser tests (pytest -m browser) when it is missing.
# It never fails the build: when it cannot install, it says why and exits 0; those tests then skip.
set -u

if [ -x /usr/bin/chromium ]; then
    echo "install-chromium: /usr/bin/chromium is already installed"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium: no apt-get on this machine; browser tests will be skipped"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install-chromium: not root and no password-less sudo; browser tests will be skipped"
        exit 0
    fi
fi
export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium; then
    if [ -x /usr/bin/chromium ]; then
        echo "install-chromium: installed /usr/bin/chromium"
    else
        echo "install-chromium: apt-get succeeded but /usr/bin/chromium is missing; browser tests will be skipped"
    fi
else
    echo "install-chromium: apt-get could not install chromium; browser tests will be skipped"
fi
exit 0
