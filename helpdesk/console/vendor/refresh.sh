#!/usr/bin/env sh
# Re-fetch the browser's Socket.IO client from the npm registry at a pinned version and put
# only its minified ES module and licence into static/vendor/. Needs npm, only when refreshing;
# nothing here runs at install or run time.
#   helpdesk/console/vendor/refresh.sh [VERSION]     (default: the pinned version below)
set -eu
VERSION="${1:-4.8.1}"
here="$(cd "$(dirname "$0")" && pwd)"
target="$here/../static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "socket.io-client@$VERSION" >/dev/null)
tar -xzf "$work/socket.io-client-$VERSION.tgz" -C "$work"
cp "$work/package/dist/socket.io.esm.min.js" "$target/socket.io.esm.min.js"
cp "$work/package/LICENSE" "$target/socket.io-client.LICENSE"
echo "socket.io-client $VERSION" > "$target/VERSION"
sha256sum "$target/socket.io.esm.min.js"
