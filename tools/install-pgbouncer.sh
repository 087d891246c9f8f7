#!/usr/bin/env bash
# Debian's pgbouncer for the PgBouncer tests (tests/integration/test_pgbouncer.py and
# tests/e2e/runs/test_pgbouncer_run.py run our own pgbouncer process with a generated
# ini on a free loopback port: rap_devtools/pgbouncer.py). Idempotent: a no-op when
# it is installed.
#
# The package ships a system service listening on 127.0.0.1:6432; the tests never use
# it, so it is stopped and disabled here: a stray daemon on a fixed port would only
# collide with someone else's.
set -euo pipefail
stop_service() {
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
    $SUDO systemctl disable --now pgbouncer.service >/dev/null 2>&1 || true
  elif [[ -x /etc/init.d/pgbouncer ]]; then
    $SUDO /etc/init.d/pgbouncer stop >/dev/null 2>&1 || true
  fi
}
SUDO=""
[[ $(id -u) == 0 ]] || SUDO="sudo"
if dpkg-query -W -f='${Status}' pgbouncer 2>/dev/null | grep -q 'install ok installed'; then
  echo "[pgbouncer] installed: $(/usr/sbin/pgbouncer --version | head -1)" >&2
  stop_service
  exit 0
fi
echo "[pgbouncer] installing pgbouncer" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null
stop_service
echo "[pgbouncer] installed: $(/usr/sbin/pgbouncer --version | head -1)" >&2
