#!/bin/bash
# Builds the static release binary and both packages: `make packages` runs this.
#
#   dist/cloudha_<version>-<release>_amd64.deb     (dpkg-deb)
#   dist/cloudha-<version>-<release>.x86_64.rpm    (rpmbuild)
#
# Both packages are made from one staged tree, so they hold the same files (apart from the
# few places where Debian and RPM conventions differ: copyright/licence, changelog, zsh
# completion directory). The agent links, man pages, completions and .conf templates are
# derived from the agents compiled into the binary (examples/gendoc.rs reads
# cloudha::agents::AGENTS); nothing here names an agent.
#
# Tools: cargo; dpkg-deb (always on Debian); rpmbuild (Debian's `rpm` package, installed here
# when missing and running as root). Environment: CARGO_TARGET_DIR (default
# ~/.cache/cloudha/target, as in the Makefile), DIST (default dist), RELEASE (default: the
# Debian revision of the top entry of packaging/changelog).
set -euo pipefail
umask 022
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/cloudha/target}
TRIPLE=x86_64-unknown-linux-gnu
BIN=$CARGO_TARGET_DIR/$TRIPLE/release/cloudha
DIST=$(realpath -m "${DIST:-dist}")
WORK=$CARGO_TARGET_DIR/packaging
OCF_REL=usr/lib/ocf/resource.d/cloudha
# From /usr/lib/ocf/resource.d/cloudha to /usr/sbin: relative, as Debian policy wants for links
# within /usr, and it resolves inside an `rpm --root` or a chroot.
LINK_TARGET=../../../../sbin/cloudha

say() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'packaging/build.sh: %s\n' "$*" >&2
    exit 1
}

# --- tools (idempotent) ----------------------------------------------------------------------
need_apt() { # command package
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing $2 (for $1)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null; }
    fi
    command -v "$1" >/dev/null 2>&1 || die "$1 is missing: install the $2 package"
}
need_apt dpkg-deb dpkg
need_apt rpmbuild rpm
need_apt gzip gzip

# --- version and date from packaging/changelog -----------------------------------------------
top=$(head -n1 packaging/changelog)
deb_version=$(printf '%s\n' "$top" | sed -n 's/^cloudha (\([^)]*\)).*/\1/p')
[ -n "$deb_version" ] || die "cannot read the version from packaging/changelog: $top"
upstream=${deb_version%-*}
RELEASE=${RELEASE:-${deb_version##*-}}
stamp=$(sed -n 's/^ -- .*>  \(.*\)$/\1/p' packaging/changelog | head -n1)
SOURCE_DATE_EPOCH=$(date -d "$stamp" +%s) || die "bad date in packaging/changelog: $stamp"
export SOURCE_DATE_EPOCH

# --- the binary and the generated files ------------------------------------------------------
say "cargo build --release --locked"
"$CARGO" build --release --locked
[ -x "$BIN" ] || die "no binary at $BIN"
bin_version=$("$BIN" --version | awk '{print $2}')
[ "$bin_version" = "$upstream" ] ||
    die "Cargo.toml says $bin_version but packaging/changelog says $upstream: add a changelog entry"

say "generating man pages, completions and .conf templates (examples/gendoc.rs)"
rm -rf "$WORK"
mkdir -p "$WORK" "$DIST"
"$CARGO" build --locked --quiet --example gendoc
GENDOC=$CARGO_TARGET_DIR/$TRIPLE/debug/examples/gendoc
"$GENDOC" write "$WORK/gen"
mapfile -t AGENTS < <("$GENDOC" agents)
[ "${#AGENTS[@]}" -gt 0 ] || die "the binary carries no agent"
say "agents: ${AGENTS[*]}"

# --- the staged tree -------------------------------------------------------------------------
stage_common() { # dir
    local r=$1 a f
    install -d "$r/etc/cloudha" "$r/usr/sbin" "$r/$OCF_REL" "$r/usr/share/man/man7" \
        "$r/usr/share/man/man8" "$r/usr/share/bash-completion/completions" \
        "$r/usr/share/fish/vendor_completions.d" "$r/usr/share/doc/cloudha/examples"
    install -m 0755 "$BIN" "$r/usr/sbin/cloudha"
    gzip -9n <"$WORK/gen/man/cloudha.8" >"$r/usr/share/man/man8/cloudha.8.gz"
    for a in "${AGENTS[@]}"; do
        ln -s "$LINK_TARGET" "$r/$OCF_REL/$a"
        gzip -9n <"$WORK/gen/man/ocf_cloudha_$a.7" >"$r/usr/share/man/man7/ocf_cloudha_$a.7.gz"
        install -m 0644 "$WORK/gen/conf/$a.conf" "$r/usr/share/doc/cloudha/examples/$a.conf"
        # Hand-written examples exist only for some agents; ship those of agents in the binary.
        if [ -d "packaging/examples/$a" ]; then
            attrs=$("$GENDOC" crs-type-attrs "$a")
            for f in "packaging/examples/$a"/*; do
                awk -v v="$attrs" '{
                    while ((i = index($0, "@CRS_TYPE_ATTRS@")) > 0)
                        $0 = substr($0, 1, i - 1) v substr($0, i + 16)
                    print }' "$f" >"$r/usr/share/doc/cloudha/examples/${f##*/}"
            done
        fi
    done
    # The fence agent: the same binary under the name Pacemaker's fencer looks for.
    ln -s cloudha "$r/usr/sbin/fence_cloudha"
    gzip -9n <"$WORK/gen/man/fence_cloudha.8" >"$r/usr/share/man/man8/fence_cloudha.8.gz"
    for f in packaging/examples/fence_cloudha/*; do
        install -m 0644 "$f" "$r/usr/share/doc/cloudha/examples/${f##*/}"
    done
    install -m 0644 packaging/examples/README "$r/usr/share/doc/cloudha/examples/README"
    # The run directory, 0700, recreated at boot by systemd-tmpfiles (the agents also create it
    # 0700 and refuse a symlinked or foreign one).
    install -D -m 0644 packaging/tmpfiles.conf "$r/usr/lib/tmpfiles.d/cloudha.conf"
    install -m 0644 "$WORK/gen/completions/cloudha.bash" "$r/usr/share/bash-completion/completions/cloudha"
    install -m 0644 "$WORK/gen/completions/cloudha.fish" "$r/usr/share/fish/vendor_completions.d/cloudha.fish"
    if [ -f README.md ]; then
        install -m 0644 README.md "$r/usr/share/doc/cloudha/README.md"
    fi
    "$r/usr/sbin/fence_cloudha" -o metadata | grep -q '<resource-agent name="fence_cloudha"' ||
        die "usr/sbin/fence_cloudha does not answer as the fence agent"
    # Every link must reach the binary and answer meta-data as its agent.
    for a in "${AGENTS[@]}"; do
        "$r/$OCF_REL/$a" meta-data | grep -q "<resource-agent name=\"$a\"" ||
            die "$OCF_REL/$a meta-data does not describe $a"
    done
}

DEB_ROOT=$WORK/deb
RPM_ROOT=$WORK/rpmroot
stage_common "$DEB_ROOT"
stage_common "$RPM_ROOT"

# Debian: copyright and changelog in the doc directory, zsh's vendor directory.
install -m 0644 packaging/copyright "$DEB_ROOT/usr/share/doc/cloudha/copyright"
gzip -9n <packaging/changelog >"$DEB_ROOT/usr/share/doc/cloudha/changelog.Debian.gz"
install -D -m 0644 "$WORK/gen/completions/_cloudha" "$DEB_ROOT/usr/share/zsh/vendor-completions/_cloudha"
# RPM: the licence under /usr/share/licenses (%license), zsh's site-functions.
install -D -m 0644 LICENSE "$RPM_ROOT/usr/share/licenses/cloudha/LICENSE"
install -D -m 0644 "$WORK/gen/completions/_cloudha" "$RPM_ROOT/usr/share/zsh/site-functions/_cloudha"

# Reproducible timestamps.
find "$DEB_ROOT" "$RPM_ROOT" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# --- .deb ------------------------------------------------------------------------------------
say "dpkg-deb"
mkdir -p "$DEB_ROOT/DEBIAN"
installed_kb=$(du -sk --apparent-size "$DEB_ROOT" | awk '{print $1}')
maintainer=$(sed -n 's/^ -- \(.*>\)  .*$/\1/p' packaging/changelog | head -n1)
{
    echo "Package: cloudha"
    echo "Version: $upstream-$RELEASE"
    echo "Architecture: amd64"
    echo "Maintainer: $maintainer"
    echo "Installed-Size: $installed_kb"
    echo "Section: admin"
    echo "Priority: optional"
    echo "Enhances: pacemaker"
    echo "Description: cloud-aware HA resource agents for Pacemaker and Oracle Clusterware"
    echo " cloudha is one static binary that carries several resource agents:"
    echo " Pacemaker calls them through the OCF resource agent API 1.1"
    echo " (ocf:cloudha:<agent>) and Oracle Clusterware as the ACTION_SCRIPT of a"
    echo " resource. Each agent is a link in /usr/lib/ocf/resource.d/cloudha/ to"
    echo " /usr/sbin/cloudha. The binary is statically linked and needs no other"
    echo " package."
    echo " ."
    echo " Agents in this build: ${AGENTS[*]}."
} >"$DEB_ROOT/DEBIAN/control"
(cd "$DEB_ROOT" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort |
    xargs -d '\n' md5sum >DEBIAN/md5sums)
touch -d "@$SOURCE_DATE_EPOCH" "$DEB_ROOT/DEBIAN" "$DEB_ROOT/DEBIAN/control" "$DEB_ROOT/DEBIAN/md5sums"
DEB=$DIST/cloudha_${upstream}-${RELEASE}_amd64.deb
dpkg-deb --root-owner-group -Zxz --build "$DEB_ROOT" "$DEB" >/dev/null

# --- .rpm ------------------------------------------------------------------------------------
say "rpmbuild"
# The Debian changelog as an RPM %changelog: "* Day Mon DD YYYY Name <mail> - version".
awk '
    /^cloudha \(/ { ver = $2; gsub(/[()]/, "", ver); n = 0; next }
    /^  \* / { items[++n] = "- " substr($0, 5); next }
    /^    / { items[n] = items[n] " " substr($0, 5); next }
    /^ -- / {
        line = $0; sub(/^ -- /, "", line)
        who = line; sub(/>  .*/, ">", who)
        when = line; sub(/.*>  /, "", when)
        split(when, d, /[ ,]+/)  # Sun, 22 Nov 2026 ... -> d[1]=Sun d[2]=22 d[3]=Nov d[4]=2026
        printf "* %s %s %s %s %s - %s\n", d[1], d[3], d[2], d[4], who, ver
        for (i = 1; i <= n; i++) print items[i]
        print ""
    }' packaging/changelog >"$WORK/rpm-changelog"
links=""
mans=""
for a in "${AGENTS[@]}"; do
    links="$links/$OCF_REL/$a\n"
    mans="$mans/usr/share/man/man7/ocf_cloudha_$a.7.gz\n"
done
printf "$links" >"$WORK/rpm-links"
printf "$mans" >"$WORK/rpm-mans"
awk -v stage="$RPM_ROOT" -v version="$upstream" -v release="$RELEASE" -v agents="${AGENTS[*]}" \
    -v links="$WORK/rpm-links" -v mans="$WORK/rpm-mans" -v changelog="$WORK/rpm-changelog" '
    function cat(f,   l) { while ((getline l < f) > 0) print l; close(f) }
    /^@AGENT_LINKS@$/ { cat(links); next }
    /^@AGENT_MANS@$/ { cat(mans); next }
    /^@CHANGELOG@$/ { cat(changelog); next }
    { gsub(/@STAGE@/, stage); gsub(/@VERSION@/, version); gsub(/@RELEASE@/, release);
      gsub(/@AGENTS@/, agents); print }' packaging/cloudha.spec.in >"$WORK/cloudha.spec"
mkdir -p "$WORK/rpmbuild"
RPM=$DIST/cloudha-${upstream}-${RELEASE}.x86_64.rpm
rpmbuild -bb --quiet --target x86_64 \
    --define "_topdir $WORK/rpmbuild" \
    --define "_rpmdir $DIST" \
    --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
    --define "use_source_date_epoch_as_buildtime 1" \
    --define "clamp_mtime_to_source_date_epoch 1" \
    "$WORK/cloudha.spec" >"$WORK/rpmbuild.log" 2>&1 || { cat "$WORK/rpmbuild.log" >&2; die "rpmbuild failed"; }

# --- summary ---------------------------------------------------------------------------------
say "built:"
ls -l "$DEB" "$RPM" >&2
printf 'binary: %s bytes; %s\n' "$(stat -c %s "$BIN")" "$(file -b "$BIN" 2>/dev/null || echo '?')" >&2
