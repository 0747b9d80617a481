#!/usr/bin/env bash
# Stand in for the official `python:<version>-slim-bookworm` image where Docker Hub
# cannot be reached (CI here): a debootstrapped Debian bookworm whose Python answers
# at /usr/local/bin, as in the official image, imported under the official name so
# that the baked project's Dockerfile builds unchanged.
#
#   scripts/stand_in_base_image.sh 3.11     # as root, with debootstrap and a Docker engine
#
# The root file system is cached as a tarball in ~/.cache, so only the first run
# downloads (about a minute). Python 3.11 is Debian's own; bookworm has no 3.12, so
# for 3.12 the script copies in the interpreter `uv python find 3.12` reports, built
# for this machine (the official image, too, builds its Python into /usr/local).
set -euo pipefail

version=${1:?usage: $0 PYTHON_VERSION (3.11 or 3.12)}
tag="python:${version}-slim-bookworm"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/kedro-composer-template"
tarball="$cache/bookworm-python${version}.tar"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if [ ! -f "$tarball" ]; then
  mkdir -p "$cache"
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  # What python:*-slim carries: certificates, and for a built Python its libraries.
  packages=ca-certificates,python3,python3-pip
  if [ "$version" != 3.11 ]; then
    interpreter=$(uv python find --no-python-downloads "$version")
    prefix=$("$interpreter" -c 'import sys; print(sys.prefix)')
    packages=ca-certificates,libbz2-1.0,libexpat1,libffi8,liblzma5,libncursesw6,libreadline8,libsqlite3-0,libssl3,libuuid1,zlib1g
  fi
  echo "== debootstrap bookworm with $packages into $root"
  debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
    { tail -20 "$cache/debootstrap.log"; exit 1; }
  if [ "$version" = 3.11 ]; then
    ln -s /usr/bin/python3 "$root/usr/local/bin/python3"
    ln -s /usr/bin/python3 "$root/usr/local/bin/python"
    ln -s /usr/bin/pip3 "$root/usr/local/bin/pip"
    # The official image's Python is its own, so pip may install into it.
    rm -f "$root"/usr/lib/python3.*/EXTERNALLY-MANAGED
  else
    cp -a "$prefix/." "$root/usr/local/"
    rm -rf "$root/usr/local/lib/python$version/test" "$root/usr/local/lib/python$version/config-"*
    ln -sf "python$version" "$root/usr/local/bin/python3"
    ln -sf "python$version" "$root/usr/local/bin/python"
    chroot "$root" ldconfig
    # Scripts such as pip name the interpreter they were installed with: this one now.
    grep -l "^#!$prefix/bin/" "$root"/usr/local/bin/* | xargs -r sed -i "1s|^#!$prefix/bin/|#!/usr/local/bin/|"
  fi
  chroot "$root" python3 --version | grep -q "^Python $version\." ||
    { echo "ERROR: the stand-in's Python is not $version" >&2; exit 1; }
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
fi

echo "== docker import $tarball as $tag"
docker import \
  --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  "$tarball" "$tag"
