#!/usr/bin/env bash
# Figures export to PNG through kaleido, which needs a Chrome. Install Debian's chromium where we
# may (root with apt); elsewhere figures still save as HTML and the report says how to get PNGs.
set -u
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ||
    echo "note: could not install chromium; figures will be saved as HTML only"
else
  echo "note: no chromium found; install one (e.g. 'apt-get install chromium') for PNG figures"
fi
exit 0
