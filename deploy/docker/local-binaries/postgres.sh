#!/bin/sh
# PostgreSQL for deploy/docker/compose.local-binaries.yml, from the host's Debian packages (/usr mounted read-only):
# a cluster in /var/lib/postgresql/data (the compose volume), made on first start, run by the unprivileged `nobody`
# (PostgreSQL refuses root). Password authentication over TCP, like the postgres image.
set -eu
bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
data=/var/lib/postgresql/data/pgdata
mkdir -p "$data" /run/postgresql
chown nobody:nogroup "$data" /run/postgresql
chmod 700 "$data"
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
if [ ! -s "$data/PG_VERSION" ]; then
  printf '%s\n' "$POSTGRES_PASSWORD" > /run/postgresql/pw
  chown nobody /run/postgresql/pw
  as_nobody "$bin/initdb" --pgdata="$data" --username="$POSTGRES_USER" --pwfile=/run/postgresql/pw \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C >/dev/null
  rm -f /run/postgresql/pw
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$data/pg_hba.conf"
  echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\"" \
    | as_nobody "$bin/postgres" --single -D "$data" -c listen_addresses='' postgres >/dev/null
fi
exec setpriv --reuid=nobody --regid=nogroup --clear-groups \
  "$bin/postgres" -D "$data" -c listen_addresses='*' -c unix_socket_directories=/run/postgresql
