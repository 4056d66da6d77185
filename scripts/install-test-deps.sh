#!/usr/bin/env bash
# System packages the test suite uses, installed when missing and possible (`make test` runs this first).
#
#   chromium   the report's headless-browser test (tests/test_report_browser.py)
#
# Already installed -> returns at once (no apt call, so `make test` stays fast). Missing -> installed with apt-get
# when this runs as root on a Debian-like system; otherwise a note says how, and the browser test is skipped --
# except under CI (CI set), where a missing browser makes that test fail.
set -u

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    echo "install-test-deps: installing chromium (Debian package) for the report's headless-browser test"
    export DEBIAN_FRONTEND=noninteractive
    if apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; then
        exit 0
    fi
    echo "install-test-deps: could not install chromium with apt-get" >&2
else
    echo "install-test-deps: chromium is not installed and cannot be installed here (needs root and apt-get):" \
         "the headless-browser test will be skipped (apt-get install chromium)" >&2
fi
if [ -n "${CI:-}" ]; then
    echo "install-test-deps: under CI the headless-browser test fails without chromium" >&2
fi
exit 0
