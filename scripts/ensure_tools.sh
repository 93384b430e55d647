#!/usr/bin/env bash
# Installs the Debian packages the tests start for real when they are missing and we may use apt:
# Chromium (browser tests), Redis (backplane tests; redis-cli forms a local cluster), openssl (test
# certificates) and prometheus (promtool checks /metrics scrapes). Without one, its tests report
# themselves as skipped, and the test command's last line counts them; they never pass silently.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v openssl >/dev/null || missing+=(openssl)
command -v promtool >/dev/null || missing+=(prometheus)
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${missing[*]} for the tests..." >&2
  (apt-get install -y "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update >/dev/null 2>&1 && apt-get install -y "${missing[@]}" >/dev/null 2>&1; }) ||
    echo "could not install ${missing[*]}; their tests will be skipped" >&2
else
  echo "${missing[*]} missing and not root with apt-get (apt-get install ${missing[*]}); their tests will be skipped" >&2
fi
exit 0
