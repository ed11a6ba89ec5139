#!/bin/bash
# Minimal docker-entrypoint for the homeport/pgvector test image.
set -euo pipefail
file_env() { local v="$1" f="${1}_FILE"; if [[ -n "${!f:-}" ]]; then export "$v"="$(<"${!f}")"; fi; }
file_env POSTGRES_PASSWORD; file_env POSTGRES_USER; file_env POSTGRES_DB
: "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
if [[ "$(id -u)" == 0 ]]; then
  mkdir -p "$PGDATA" /run/postgresql && chown -R postgres:postgres "$PGDATA" /run/postgresql && chmod 0700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [[ "${1:-}" == postgres && ! -s "$PGDATA/PG_VERSION" ]]; then
  if [[ -z "${POSTGRES_PASSWORD:-}" ]]; then echo "POSTGRES_PASSWORD is required" >&2; exit 1; fi
  pwfile="$(mktemp)"; printf '%s' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" --auth-host=scram-sha-256 --auth-local=trust >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  if [[ "$POSTGRES_DB" != postgres ]]; then createdb -U "$POSTGRES_USER" "$POSTGRES_DB"; fi
  psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION IF NOT EXISTS vector;' >/dev/null
  for f in /docker-entrypoint-initdb.d/*.sql; do [[ -e "$f" ]] && psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -v ON_ERROR_STOP=1 -f "$f"; done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
if [[ "${1:-}" == postgres ]]; then exec postgres -D "$PGDATA" -c listen_addresses='*' "${@:2}"; fi
exec "$@"
