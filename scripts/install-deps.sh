#!/bin/sh
# Installs what the tests and the demo need on a fresh Debian 12 (root). Idempotent: a second
# run installs nothing.
set -eu
PKGS="pacemaker corosync pacemaker-cli-utils resource-agents libxml2-utils pcs iproute2 \
iputils-ping iputils-arping hyperfine file procps util-linux curl time fence-agents"
# The packages (packaging/build.sh) and their checks (tests/packaging): debhelper makes the .deb,
# rpm's rpmbuild the .rpm, binutils' objcopy trims the binary; lintian and rpmlint lint them.
PKGS="$PKGS debhelper rpm binutils lintian rpmlint"
# The man pages are checked with man and groff, the completions in bash, zsh and fish.
PKGS="$PKGS man-db groff-base zsh fish"
# crmsh: the shipped crm configure snippets are loaded by tests/lab/test_examples.py.
PKGS="$PKGS crmsh"
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
# pip installs only what is missing; a Debian-managed Python needs --break-system-packages.
pip_install() {
    python3 -m pip install -q "$@" 2>/dev/null || python3 -m pip install -q --break-system-packages "$@"
}
python3 -c 'import pytest' 2>/dev/null || pip_install pytest
# The EC2 lab (tests/lab/ec2lab): moto 5.2 with its server extra, boto3, and awscli v1 >= 1.29
# (honours AWS_ENDPOINT_URL) for resource-agents' awsvip; Debian's awscli is too old.
has_version() {  # has_version DIST MIN MAX: installed with MIN <= version < MAX
    python3 - "$@" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
num = lambda v: tuple(int(x) for x in v.split(".")[:3] if x.isdigit())
sys.exit(0 if num(sys.argv[2]) <= num(version(sys.argv[1])) < num(sys.argv[3]) else 1)
PY
}
{ has_version moto 5.2 5.3 && python3 -c 'import flask, flask_cors, moto.server' 2>/dev/null; } \
    || pip_install 'moto[server,ec2]>=5.2,<5.3'
python3 -c 'import boto3' 2>/dev/null || pip_install boto3
has_version awscli 1.29 2 || pip_install 'awscli>=1.29,<2'
# fence-agents' fence_aws (the fencing benchmark's peer, tests/lab/test_fence_aws.py) with a
# boto3 that honours AWS_ENDPOINT_URL (Debian's 1.26 does not): a venv over Debian's Python,
# so fence-agents' own imports (pycurl, requests) still come from Debian.
/opt/fence-aws/bin/python -c 'import boto3, sys
sys.exit(tuple(map(int, boto3.__version__.split(".")[:2])) < (1, 28))' 2>/dev/null || {
    /usr/bin/python3 -m venv --system-site-packages /opt/fence-aws &&
        /opt/fence-aws/bin/pip install -q 'boto3>=1.28,<2'
}
# The OCI lab (tests/lab/ocilab): Oracle's Python SDK (PyPI oci: the reference signer and an
# independent client of the stand-in) in the system Python, and oci-cli for resource-agents'
# ocivip in a venv of its own (as Oracle's installer does; its pins would move boto's deps).
python3 -c 'import oci' 2>/dev/null || pip_install 'oci>=2.100,<3'
[ -x /opt/oci-cli/bin/oci ] || {
    python3 -m venv /opt/oci-cli && /opt/oci-cli/bin/pip install -q 'oci-cli>=3.40,<4'
}
