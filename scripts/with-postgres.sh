#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL server: initdb in a temp dir, a free loopback
# port, trust auth for the test role. As root, the server runs as an unprivileged user.
# The server is stopped and its files removed when the command ends, whatever its result.
# Exports COPOOL_TEST_POSTGRES_URL (and COPOOL_BENCH_POSTGRES_URL) for the command.
set -euo pipefail

find_bin() {
    if command -v "$1" >/dev/null 2>&1; then command -v "$1"; return; fi
    ls -1d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1
}
INITDB=$(find_bin initdb)
PG_CTL=$(find_bin pg_ctl)
if [ -z "$INITDB" ] || [ -z "$PG_CTL" ]; then
    echo "with-postgres: initdb/pg_ctl not found; install PostgreSQL 15+ (apt-get install postgresql)" >&2
    exit 2
fi

DIR=$(mktemp -d -t copool-pg.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
RUN_AS=()
if [ "$(id -u)" = 0 ]; then
    PGUSER_OS=postgres
    id -u "$PGUSER_OS" >/dev/null 2>&1 || useradd --system --no-create-home "$PGUSER_OS"
    chown "$PGUSER_OS" "$DIR"
    chmod 755 "$DIR"
    RUN_AS=(runuser -u "$PGUSER_OS" --)
fi

stop() {
    "${RUN_AS[@]}" "$PG_CTL" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap stop EXIT

"${RUN_AS[@]}" "$INITDB" -D "$DIR/data" -U copool --auth=trust --encoding=UTF8 --no-sync >"$DIR/initdb.log" 2>&1 \
    || { cat "$DIR/initdb.log" >&2; exit 2; }
"${RUN_AS[@]}" "$PG_CTL" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
    -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null || { cat "$DIR/server.log" >&2; exit 2; }

export COPOOL_TEST_POSTGRES_URL="postgresql+psycopg://copool@127.0.0.1:$PORT/postgres"
export COPOOL_BENCH_POSTGRES_URL="$COPOOL_TEST_POSTGRES_URL"
export COPOOL_TEST_REQUIRE_POSTGRES=1
echo "with-postgres: PostgreSQL on 127.0.0.1:$PORT (data in $DIR)"
set +e
"$@"
status=$?
set -e
exit $status
