#!/usr/bin/env bash
# A local stand-in for the Dockerfile's PYTHON_IMAGE, for machines that reach
# Debian's mirror and PyPI but no image registry (make test-images).
#
#   docker/base-image.sh [TAG]      # TAG defaults to the Dockerfile's PYTHON_IMAGE
#
# debootstrap makes a minimal Debian bookworm root (python3 3.11.2, venv,
# ca-certificates); `docker import` turns it into an image; a two-step build
# on it adds the host's CA bundle (pip in the build then trusts what this
# machine trusts: its HTTPS may pass a proxy whose CA Debian does not ship)
# and a venv at /usr/local, so `python` and `pip` are on PATH as in the
# python:*-slim images. Nothing is done when TAG already exists.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
docker=${DOCKER:-docker}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
tag=${1:-$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$here/Dockerfile")}
[ -n "$tag" ] || { echo "base-image.sh: no PYTHON_IMAGE in $here/Dockerfile" >&2; exit 2; }

if $docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag: already built"
  exit 0
fi
[ -r "$ca_bundle" ] || { echo "base-image.sh: CA bundle $ca_bundle not readable (set CA_BUNDLE)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; echo "base-image.sh: debootstrap failed" >&2; exit 1; }
# The downloaded .debs and package lists are not part of a slim image.
rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
rootfs="voxmesh-local/debian-minbase:bookworm"
tar -C "$work/root" -c . | $docker import - "$rootfs" >/dev/null

mkdir "$work/context"
cp "$ca_bundle" "$work/context/ca-certificates.crt"
cat >"$work/context/Dockerfile" <<DOCKERFILE
FROM $rootfs
ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \\
    LANG=C.UTF-8
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
RUN python3 -m venv /usr/local && python --version && pip --version
CMD ["python3"]
DOCKERFILE
DOCKER_BUILDKIT=1 $docker build -q -t "$tag" "$work/context" >/dev/null
echo "base image $tag: built from Debian bookworm in $(( $(date +%s) - start )) s"
