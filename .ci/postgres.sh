#!/usr/bin/env bash
# A throw-away PostgreSQL for the tests, on 127.0.0.1 and a free port, in a temporary folder.
# Sourced by .ci/run: exports REFUND_ADVISOR_TEST_PG and stops the server on exit. If it cannot
# be installed or started it says so loudly and exports nothing: the PostgreSQL tests then skip
# with that reason in pytest's summary.

_pg_warn() { printf '\n!!! PostgreSQL tests will be SKIPPED: %s\n\n' "$*" >&2; }

_pg_bindir() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/pg_ctl" ] && { echo "$dir"; return 0; }
    done
    command -v pg_ctl >/dev/null 2>&1 && { dirname "$(command -v pg_ctl)"; return 0; }
    return 1
}

_pg_start() {
    local bindir
    if ! bindir=$(_pg_bindir); then
        if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
            echo "installing PostgreSQL from Debian's packages..." >&2
            (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
                || { _pg_warn "apt-get install postgresql failed"; return 1; }
            bindir=$(_pg_bindir) || { _pg_warn "postgresql installed but pg_ctl not found"; return 1; }
        else
            _pg_warn "PostgreSQL is not installed and cannot be installed here (no apt-get, or not root)"
            return 1
        fi
    fi
    if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
        _pg_warn "running as root and there is no postgres user"; return 1
    fi
    _PG_DIR=$(mktemp -d /tmp/refund-advisor-pg.XXXXXX)
    chmod 755 "$_PG_DIR"
    [ "$(id -u)" = 0 ] && chown postgres "$_PG_DIR"
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # Password authentication over TCP, as in production: the tests check a password never leaks.
    local password
    password=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
    echo "$password" >"$_PG_DIR/pwfile"
    [ "$(id -u)" = 0 ] && chown postgres "$_PG_DIR/pwfile"
    _pg_run "'$bindir/initdb' -D '$_PG_DIR/data' -U postgres --pwfile='$_PG_DIR/pwfile' --auth-local=trust \
        --auth-host=scram-sha-256 --no-sync -E UTF8 --locale=C" >"$_PG_DIR/initdb.log" 2>&1 \
        || { _pg_warn "initdb failed (see $_PG_DIR/initdb.log)"; return 1; }
    # Durability is not what the tests measure: fsync off keeps a per-test schema cheap.
    _pg_run "'$bindir/pg_ctl' -D '$_PG_DIR/data' -l '$_PG_DIR/server.log' -w -t 30 \
        -o \"-h 127.0.0.1 -p $port -k '$_PG_DIR' -c fsync=off -c synchronous_commit=off -c full_page_writes=off\" start" \
        >/dev/null 2>&1 || { _pg_warn "the server did not start (see $_PG_DIR/server.log)"; return 1; }
    _PG_CTL="$bindir/pg_ctl"
    export REFUND_ADVISOR_TEST_PG="postgresql://postgres:$password@127.0.0.1:$port/postgres"
    echo "PostgreSQL for the tests: postgresql://postgres:***@127.0.0.1:$port/postgres" >&2
}

# PostgreSQL refuses to run as root: the cluster then belongs to the postgres user.
_pg_run() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }

_pg_stop() {
    if [ -n "${_PG_CTL:-}" ]; then
        _pg_run "'$_PG_CTL' -D '$_PG_DIR/data' -m fast -w stop" >/dev/null 2>&1 \
            || echo "could not stop the test PostgreSQL in $_PG_DIR" >&2
        _PG_CTL=
    fi
    [ -n "${_PG_DIR:-}" ] && rm -rf "$_PG_DIR"
    _PG_DIR=
}

_PG_CTL= _PG_DIR=
trap _pg_stop EXIT
_pg_start || true
