# A real Zabbix for the Zabbix tier of the integration tests (tests/integration/test_zabbix_server.py): Debian's
# zabbix-server-pgsql (the server and its PostgreSQL schema under /usr/share/zabbix-server-pgsql) and the PHP
# frontend, whose api_jsonrpc.php the fixture serves with php-cli's built-in server (no web server is installed:
# php8.2-cgi satisfies `php`, so apt does not pull Apache). Bookworm has no zabbix-sender; the fixture speaks the
# sender protocol itself. Then, once per Zabbix version, a pg_dump of Zabbix's schema and data (loading them as SQL
# takes minutes; a test restores the dump in seconds) and a frontend copy that takes its configuration file from
# the environment, both under $cache/zabbix/<version> (tests/integration/zabbix_server.py, `build_cache`).
# Sourced by tools/install-deps.sh with `say`, `root` and `cache` in scope. A no-op when everything is there.
if [ ! -x /usr/sbin/zabbix_server ] || [ ! -f /usr/share/zabbix/api_jsonrpc.php ] || ! command -v php >/dev/null 2>&1 \
  || ! php -m 2>/dev/null | grep -qx pgsql; then
  say "installing Zabbix server 6.0 (pgsql) and its PHP frontend from Debian's packages (Zabbix tier)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends zabbix-server-pgsql zabbix-frontend-php php-cli php8.2-cgi \
    php-pgsql >/dev/null
fi
zabbix_version="$(/usr/sbin/zabbix_server -V | sed -n 's/.*(Zabbix) \([0-9.]*\).*/\1/p' | head -n 1)"
if [ ! -f "$cache/zabbix/$zabbix_version/zabbix.dump" ] || [ ! -d "$cache/zabbix/$zabbix_version/frontend" ]; then
  say "preparing Zabbix $zabbix_version's database dump and frontend copy for the tests (cold: about 5 minutes)"
  (cd "$root" && OPSBUS_CACHE_DIR="$cache" uv run --frozen python -m tests.integration.zabbix_server)
fi
say "Zabbix: $zabbix_version ($cache/zabbix/$zabbix_version)"
