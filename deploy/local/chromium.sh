#!/usr/bin/env bash
# Debian's Chromium for the browser tests (tests/e2e/test_docs_browser.py), installed if
# missing. Not part of the platform: `make test` calls it, `make up` does not.
#   deploy/local/chromium.sh ensure
set -euo pipefail
AIDMESH_COMPONENT=chromium
# shellcheck source=deploy/local/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

case "${1:-ensure}" in
  ensure)
    if [[ -x /usr/bin/chromium ]]; then exit 0; fi
    apt_install chromium
    ;;
  *) die "usage: $0 ensure" ;;
esac
