#!/bin/bash
# Builds the static release binary and both packages: `make packages` runs this.
#
#   dist/cloudha_<version>_amd64.deb          (debhelper: dh_gencontrol, dh_md5sums, dh_builddeb)
#   dist/cloudha-<version>.x86_64.rpm         (rpmbuild with packaging/cloudha.spec)
#
# Both packages are made from one staged tree, so they hold the same files (apart from the few
# places where Debian and RPM conventions differ: copyright/licence, changelog, zsh completion
# directory). The agent links, man pages, completions and .conf templates are derived from the
# agents compiled into the binary (examples/gendoc/ reads cloudha::agents::AGENTS); nothing
# here names an agent. The tools that know each format do the rest: debhelper writes the
# control file, md5sums and changelog, installs the copyright and lintian overrides and
# compresses; rpmbuild compresses the man pages (brp-compress) and records the spec's own
# %changelog. Why these tools: packaging/README.md.
#
# Tools: cargo; debhelper, binutils (objcopy) and rpm (rpmbuild), installed here when missing
# and running as root (scripts/install-deps.sh installs them too). Environment: CARGO_TARGET_DIR
# (default ~/.cache/cloudha/target, as in the Makefile), DIST (default dist).
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
need_apt dh_gencontrol debhelper
need_apt rpmbuild rpm
need_apt objcopy binutils

# --- version and date from packaging/changelog -----------------------------------------------
version=$(dpkg-parsechangelog -l packaging/changelog -S Version)
upstream=${version%-*}
SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l packaging/changelog -S Timestamp)
export SOURCE_DATE_EPOCH
spec_version=$(rpmspec -q --srpm --qf '%{VERSION}-%{RELEASE}' \
    --define 'stage /nonexistent' --define 'agents -' packaging/cloudha.spec)
[ "$spec_version" = "$version" ] ||
    die "packaging/cloudha.spec says $spec_version but packaging/changelog says $version"

# --- the binary and the generated files ------------------------------------------------------
say "cargo build --release --locked"
"$CARGO" build --release --locked
[ -x "$BIN" ] || die "no binary at $BIN"
bin_version=$("$BIN" --version | awk '{print $2}')
[ "$bin_version" = "$upstream" ] ||
    die "Cargo.toml says $bin_version but packaging/changelog says $upstream: add a changelog entry"

say "generating man pages, completions and .conf templates (examples/gendoc/)"
rm -rf "$WORK"
mkdir -p "$WORK" "$DIST"
"$CARGO" build --locked --quiet --example gendoc
GENDOC=$CARGO_TARGET_DIR/$TRIPLE/debug/examples/gendoc
"$GENDOC" write "$WORK/gen"
mapfile -t AGENTS < <("$GENDOC" agents)
[ "${#AGENTS[@]}" -gt 0 ] || die "the binary carries no agent"
say "agents: ${AGENTS[*]}"

# --- the staged tree, common to both formats -------------------------------------------------
STAGE=$WORK/stage
install -d "$STAGE/etc/cloudha" "$STAGE/usr/sbin" "$STAGE/$OCF_REL" "$STAGE/usr/share/man/man7" \
    "$STAGE/usr/share/man/man8" "$STAGE/usr/share/bash-completion/completions" \
    "$STAGE/usr/share/fish/vendor_completions.d" "$STAGE/usr/share/doc/cloudha/examples"
# The linker's .comment section (compiler identification) is of no use at run time.
objcopy --remove-section=.comment "$BIN" "$STAGE/usr/sbin/cloudha"
chmod 0755 "$STAGE/usr/sbin/cloudha"
install -m 0644 "$WORK/gen/man/cloudha.8" "$STAGE/usr/share/man/man8/cloudha.8"
for a in "${AGENTS[@]}"; do
    ln -s "$LINK_TARGET" "$STAGE/$OCF_REL/$a"
    install -m 0644 "$WORK/gen/man/ocf_cloudha_$a.7" "$STAGE/usr/share/man/man7/"
    install -m 0644 "$WORK/gen/conf/$a.conf" "$STAGE/usr/share/doc/cloudha/examples/$a.conf"
    # Hand-written examples exist only for some agents; ship those of agents in the binary.
    if [ -d "packaging/examples/$a" ]; then
        attrs=$("$GENDOC" crs-type-attrs "$a")
        for f in "packaging/examples/$a"/*; do
            awk -v v="$attrs" '{
                while ((i = index($0, "@CRS_TYPE_ATTRS@")) > 0)
                    $0 = substr($0, 1, i - 1) v substr($0, i + 16)
                print }' "$f" >"$STAGE/usr/share/doc/cloudha/examples/${f##*/}"
        done
    fi
done
# The fence agent: the same binary under the name Pacemaker's fencer looks for.
ln -s cloudha "$STAGE/usr/sbin/fence_cloudha"
install -m 0644 "$WORK/gen/man/fence_cloudha.8" "$STAGE/usr/share/man/man8/fence_cloudha.8"
install -m 0644 -t "$STAGE/usr/share/doc/cloudha/examples" packaging/examples/fence_cloudha/*
install -m 0644 packaging/examples/README "$STAGE/usr/share/doc/cloudha/examples/README"
# The admin's README (about what is installed) and the cloud guides.
install -m 0644 packaging/README.installed "$STAGE/usr/share/doc/cloudha/README.md"
install -m 0644 docs/aws.md docs/oci.md "$STAGE/usr/share/doc/cloudha/"
# ocft configurations of the agents, as resource-agents ships its own (how to run: their heads).
install -D -m 0644 -t "$STAGE/usr/share/doc/cloudha/ocft" packaging/ocft/*
# The run directory, 0700, recreated at boot by systemd-tmpfiles (the agents also create it
# 0700 and refuse a symlinked or foreign one).
install -D -m 0644 packaging/tmpfiles.conf "$STAGE/usr/lib/tmpfiles.d/cloudha.conf"
install -m 0644 "$WORK/gen/completions/cloudha.bash" "$STAGE/usr/share/bash-completion/completions/cloudha"
install -m 0644 "$WORK/gen/completions/cloudha.fish" "$STAGE/usr/share/fish/vendor_completions.d/cloudha.fish"
"$STAGE/usr/sbin/fence_cloudha" -o metadata | grep -q '<resource-agent name="fence_cloudha"' ||
    die "usr/sbin/fence_cloudha does not answer as the fence agent"
# Every link must reach the binary and answer meta-data as its agent.
for a in "${AGENTS[@]}"; do
    "$STAGE/$OCF_REL/$a" meta-data | grep -q "<resource-agent name=\"$a\"" ||
        die "$OCF_REL/$a meta-data does not describe $a"
done
agent_list=$(printf '%s, ' "${AGENTS[@]}")
agent_list=${agent_list%, }

# --- .deb (debhelper) ------------------------------------------------------------------------
say "debhelper"
SRC=$WORK/debsrc
PKG=$SRC/debian/cloudha
install -d "$SRC/debian"
install -m 0644 packaging/debian/control packaging/debian/cloudha.lintian-overrides "$SRC/debian/"
install -m 0644 packaging/changelog "$SRC/debian/changelog"
install -m 0644 packaging/copyright "$SRC/debian/copyright"
cp -a "$STAGE" "$PKG"
install -D -m 0644 "$WORK/gen/completions/_cloudha" "$PKG/usr/share/zsh/vendor-completions/_cloudha"
(
    cd "$SRC"
    export DH_QUIET=1
    dh_installdocs        # debian/copyright
    dh_installchangelogs  # debian/changelog -> changelog.Debian
    dh_lintian            # the overrides, with their reasons
    # The guides and the README stay .md, and the ocft configurations as they are, at the same
    # paths as in the .rpm (the README names them; ocft reads plain files).
    dh_compress -X.md -X/ocft/
    dh_fixperms
    find debian/cloudha -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    dh_md5sums
    dh_gencontrol -- "-Vcloudha:Agents=$agent_list"
    touch -d "@$SOURCE_DATE_EPOCH" debian/cloudha/DEBIAN debian/cloudha/DEBIAN/*
    dh_builddeb --destdir="$DIST"
)
DEB=$DIST/cloudha_${version}_amd64.deb
[ -f "$DEB" ] || die "dh_builddeb made no $DEB"

# --- .rpm (rpmbuild) -------------------------------------------------------------------------
say "rpmbuild"
RPM_ROOT=$WORK/rpmroot
cp -a "$STAGE" "$RPM_ROOT"
install -D -m 0644 LICENSE "$RPM_ROOT/usr/share/licenses/cloudha/LICENSE"
install -D -m 0644 "$WORK/gen/completions/_cloudha" "$RPM_ROOT/usr/share/zsh/site-functions/_cloudha"
find "$RPM_ROOT" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$WORK/rpmbuild"
RPM=$DIST/cloudha-${version}.x86_64.rpm
rpmbuild -bb --quiet --target x86_64 \
    --define "_topdir $WORK/rpmbuild" \
    --define "_rpmdir $DIST" \
    --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
    --define "use_source_date_epoch_as_buildtime 1" \
    --define "clamp_mtime_to_source_date_epoch 1" \
    --define "_buildhost reproducible" \
    --define "stage $RPM_ROOT" \
    --define "agents $agent_list" \
    packaging/cloudha.spec >"$WORK/rpmbuild.log" 2>&1 || { cat "$WORK/rpmbuild.log" >&2; die "rpmbuild failed"; }
[ -f "$RPM" ] || die "rpmbuild made no $RPM"

# --- summary ---------------------------------------------------------------------------------
say "built:"
ls -l "$DEB" "$RPM" >&2
printf 'binary: %s bytes; %s\n' "$(stat -c %s "$STAGE/usr/sbin/cloudha")" "$(file -b "$STAGE/usr/sbin/cloudha" 2>/dev/null || echo '?')" >&2
