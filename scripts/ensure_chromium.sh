#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests when it is missing and we may use apt.
# Without it the browser tests report themselves as skipped; they never pass silently.
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing chromium for the browser tests..." >&2
  (apt-get install -y chromium >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y chromium >/dev/null 2>&1; }) ||
    echo "could not install chromium; browser tests will be skipped" >&2
else
  echo "chromium is not installed (apt-get install chromium); browser tests will be skipped" >&2
fi
exit 0
