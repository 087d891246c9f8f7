#!/bin/bash
# The official postgres image's entrypoint, in the part the chart uses: on an
# empty PGDATA, initdb with POSTGRES_USER as superuser and POSTGRES_PASSWORD
# (scram-sha-256 over TCP, trust on the local socket), listen on all addresses,
# create POSTGRES_DB, run /docker-entrypoint-initdb.d/*.sql|*.sh; then exec
# postgres as PID 1 (SIGTERM: smart shutdown, SIGINT: fast). Writes only to
# PGDATA, /var/run/postgresql and /tmp (read-only root filesystem).
set -Eeuo pipefail
log() { printf '%s [entrypoint] %s\n' "$(date -u +'%Y-%m-%d %H:%M:%S UTC')" "$*" >&2; }

if [[ "${1:-}" == -* ]]; then
  set -- postgres "$@"
fi
if [[ "${1:-}" != postgres ]]; then
  exec "$@" # e.g. psql, bash
fi
shift

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
SOCKET_DIR=/var/run/postgresql

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  if [[ -z "${POSTGRES_PASSWORD:-}" && "${POSTGRES_HOST_AUTH_METHOD:-}" != trust ]]; then
    log "error: the database is uninitialized and POSTGRES_PASSWORD is not set"
    log "set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust, not recommended)"
    exit 1
  fi
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA" 2>/dev/null || true
  log "initializing $PGDATA (superuser $POSTGRES_USER, database $POSTGRES_DB)"
  pwfile="$(mktemp /tmp/pwfile.XXXXXX)"
  trap 'rm -f "$pwfile"' EXIT
  printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words, as upstream.
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" \
    ${POSTGRES_INITDB_ARGS:-} >/dev/null
  rm -f "$pwfile"
  trap - EXIT
  {
    echo
    echo "# rap-analyzer-postgres: every address, password (scram) over TCP"
    echo "host all all all ${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
  } >>"$PGDATA/pg_hba.conf"
  {
    echo
    echo "listen_addresses = '*'"
    echo "unix_socket_directories = '$SOCKET_DIR'"
  } >>"$PGDATA/postgresql.conf"

  # A temporary server on the socket only, for the setup statements.
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=$SOCKET_DIR" \
    start >/dev/null
  psql=(psql -v ON_ERROR_STOP=1 -X -q --host="$SOCKET_DIR" --username="$POSTGRES_USER" --no-password)
  if [[ "$POSTGRES_DB" != postgres ]]; then
    "${psql[@]}" --dbname=postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) log "running $f"; . "$f" ;;
      *.sql) log "running $f"; "${psql[@]}" --dbname="$POSTGRES_DB" -f "$f" ;;
      *) ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  log "initialized; starting postgres"
fi

# On every start, not only after initdb: the kubelet applies the pod's fsGroup to
# the volume on each mount (unless fsGroupChangePolicy skips it), making every
# directory group-writable, and postgres refuses a data directory that is not
# 0700/0750 ("invalid permissions"): a restarted Postgres pod (a rollout after
# `helm upgrade`, a drain) would crash-loop. The data directory is ours to fix.
chmod 0700 "$PGDATA" 2>/dev/null || true

exec postgres "$@"
