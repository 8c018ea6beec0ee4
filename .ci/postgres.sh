# Start a throwaway PostgreSQL cluster on 127.0.0.1 for the test suite.
# Sourced by .ci/run (or by hand: `source .ci/postgres.sh`); exports
# JOBQ_TEST_POSTGRES_URL and stops the server when the calling shell exits.
# Installs Debian's postgresql package when no server binaries are found.

find_pg_bin() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then echo "$dir"; return 0; fi
    done
    if command -v pg_ctl >/dev/null && command -v postgres >/dev/null; then
        dirname "$(command -v pg_ctl)"; return 0
    fi
    return 1
}

if ! PG_BIN=$(find_pg_bin); then
    echo "installing PostgreSQL from the distribution's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    PG_BIN=$(find_pg_bin)
fi

PG_DIR=$(mktemp -d /tmp/jobq-pg.XXXXXX)
PG_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# initdb and postgres refuse to run as root: run them as the postgres user then.
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$PG_DIR"
    AS_PG=(runuser -u postgres --)
else
    AS_PG=()
fi
"${AS_PG[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
"${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -s \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c max_connections=300 -c fsync=off" start
# fsync=off: a throwaway cluster; the crash tests kill clients, never the server.
export JOBQ_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT for the tests" >&2

stop_test_postgres() {
    "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -s stop || true
    rm -rf "$PG_DIR"
}
trap stop_test_postgres EXIT
