#!/usr/bin/env bash
# Build a static hookmail binary stamped with its version and commit, the
# way the Dockerfile does (it runs this script).
#
#   deploy/build.sh                  # ./hookmail for this machine
#   GOOS=linux GOARCH=arm64 deploy/build.sh -o dist/hookmail-linux-arm64
#
# VERSION and COMMIT come from git (`git describe --tags --always --dirty`,
# `git rev-parse HEAD`); set them in the environment where there is no .git,
# e.g. in a container build.
set -euo pipefail
cd "$(dirname "$0")/.."

out=hookmail
while [ $# -gt 0 ]; do
	case "$1" in
	-o)
		out="${2:?-o needs a file name}"
		shift 2
		;;
	*)
		echo "usage: $0 [-o FILE]" >&2
		exit 2
		;;
	esac
done

if [ -z "${VERSION:-}" ]; then
	VERSION=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
fi
if [ -z "${COMMIT:-}" ]; then
	COMMIT=$(git rev-parse HEAD 2>/dev/null || true)
fi

# CGO_ENABLED=0: a static binary that runs on distroless/static and any
# Linux, with Go's own DNS resolver. -trimpath keeps build paths out of it;
# -buildvcs=false because the commit is stamped explicitly and .git may be
# absent.
CGO_ENABLED=0 go build -trimpath -buildvcs=false \
	-ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
	-o "$out" .
echo "built $out (version ${VERSION}, commit ${COMMIT:-unknown})" >&2
