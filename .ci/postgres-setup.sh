#!/usr/bin/env bash
# Provision the local PostgreSQL 15 cluster for Kiln's test suite. Idempotent; run as root.
#
# Roles (cluster-wide, password "kiln" unless KILN_TEST_POSTGRES_ROLE_PASSWORD is set):
#   kiln_app     NOLOGIN group: the API's privileges; row-level security scopes it to one workspace
#   kiln_system  NOLOGIN group: platform work across tenants (dispatch, retention, lineage)
#   kiln_owner   LOGIN, CREATEDB, member of kiln_system (+ pg_signal_backend for test teardown):
#                runs migrations and owns the tables
#   kiln_api     LOGIN, member of kiln_app, never superuser, NOBYPASSRLS
#   kiln_worker  LOGIN, member of kiln_system (Dagster runs and sensors)
#
# Prints exactly one line on stdout, `export KILN_TEST_POSTGRES_URL=...`, so
# `eval "$(.ci/postgres-setup.sh)"` is safe: everything else (pg_ctlcluster's own chatter such as
# "Removed stale pid file.", psql notices) goes to stderr. Fails loudly when PostgreSQL cannot be
# reached, so the PostgreSQL half of the suite is never skipped silently in CI.
set -euo pipefail

# Keep the real stdout on fd 3 for the final export line; every command below writes to stderr.
exec 3>&1 1>&2

PG_VERSION="${KILN_PG_VERSION:-15}"
PG_CLUSTER="${KILN_PG_CLUSTER:-main}"
PG_HOST=127.0.0.1
PG_PORT="${KILN_PG_PORT:-5432}"
ROLE_PASSWORD="${KILN_TEST_POSTGRES_ROLE_PASSWORD:-kiln}"

die() {
  echo "postgres-setup: ERROR: $*" >&2
  exit 1
}
log() { echo "postgres-setup: $*" >&2; }

[[ "$(id -u)" -eq 0 ]] || die "run as root (it starts the cluster and runs psql as the postgres user)"
command -v pg_isready >/dev/null || die "pg_isready not found: install PostgreSQL ${PG_VERSION} (apt-get install postgresql-${PG_VERSION})"

if ! pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
  command -v pg_ctlcluster >/dev/null || die "PostgreSQL is not answering on ${PG_HOST}:${PG_PORT} and pg_ctlcluster is missing"
  log "starting cluster ${PG_VERSION}/${PG_CLUSTER}"
  # `start` fails when the cluster is already starting/running; the readiness loop below decides.
  # 3>&-: the postmaster must not inherit the stdout pipe, or `$(...)` around this script never returns.
  pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start 3>&- || log "pg_ctlcluster start returned non-zero; waiting anyway"
fi

for _ in $(seq 1 60); do
  pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break
  sleep 0.5
done
pg_isready -q -h "$PG_HOST" -p "$PG_PORT" || die "PostgreSQL is not reachable on ${PG_HOST}:${PG_PORT} after 30 s (see /var/log/postgresql/postgresql-${PG_VERSION}-${PG_CLUSTER}.log)"

run_psql() { (cd / && PGOPTIONS="-c client_min_messages=warning" runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" "$@"); }

# Password login over loopback must be allowed (Debian's default pg_hba has scram-sha-256 for 127.0.0.1/32).
hba_file="$(run_psql -At -c 'SHOW hba_file')"
if ! grep -Eq '^[[:space:]]*host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+(md5|scram-sha-256|password)' "$hba_file"; then
  die "${hba_file} has no 'host all all 127.0.0.1/32 scram-sha-256' line; password login over loopback is needed"
fi

run_psql -v pw="$ROLE_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I NOLOGIN', r) FROM unnest(ARRAY['kiln_app', 'kiln_system']) AS r
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \gexec
SELECT format('CREATE ROLE %I LOGIN', r) FROM unnest(ARRAY['kiln_owner', 'kiln_api', 'kiln_worker']) AS r
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \gexec
-- Re-assert the attributes every run, so a hand-edited role is put back.
ALTER ROLE kiln_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
ALTER ROLE kiln_system NOLOGIN NOSUPERUSER NOBYPASSRLS;
ALTER ROLE kiln_owner LOGIN CREATEDB NOSUPERUSER NOCREATEROLE NOBYPASSRLS PASSWORD :'pw';
ALTER ROLE kiln_api LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD :'pw';
ALTER ROLE kiln_worker LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD :'pw';
GRANT kiln_system TO kiln_owner;
-- The test fixture drops its database WITH (FORCE); that terminates leftover kiln_api/kiln_worker
-- sessions, which needs pg_signal_backend (it cannot signal superuser backends). Test clusters only.
GRANT pg_signal_backend TO kiln_owner;
GRANT kiln_app TO kiln_api;
GRANT kiln_system TO kiln_worker;
SQL

url="postgresql://kiln_owner:${ROLE_PASSWORD}@${PG_HOST}:${PG_PORT}/postgres"
# Prove the password login works the way the tests will use it.
PGPASSWORD="$ROLE_PASSWORD" psql -X -q -h "$PG_HOST" -p "$PG_PORT" -U kiln_owner -d postgres -At -c 'SELECT 1' >/dev/null \
  || die "kiln_owner cannot log in over ${PG_HOST}:${PG_PORT} with a password"

log "PostgreSQL ready; roles kiln_app, kiln_system, kiln_owner, kiln_api, kiln_worker provisioned"
echo "export KILN_TEST_POSTGRES_URL=${url}" >&3
