#!/bin/sh
# Installs what the tests and the demo need on a fresh Debian 12 (root). Idempotent: a second
# run installs nothing.
set -eu
PKGS="pacemaker corosync pacemaker-cli-utils resource-agents libxml2-utils pcs iproute2 \
iputils-ping iputils-arping hyperfine file procps util-linux"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Package postinst scripts must not start daemons; the tests start them by PID.
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
python3 -c 'import pytest' 2>/dev/null || python3 -m pip install -q pytest
