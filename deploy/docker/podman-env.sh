# Sourced by the image scripts and tests/images: points podman at a containers.conf of opsbus's own
# (CONTAINERS_CONF, under the cache; the machine's /etc/containers is never changed) that works where podman runs
# rootful without systemd, as on CI runners and in sandboxes:
#   - runtime runc (Debian's crun refuses hybrid cgroup v1/v2 hierarchies), cgroupfs manager, file event logger;
#   - containers' nofile/nproc limits no higher than this process's hard limits (podman's default, 1048576 open
#     files, cannot be set where the caller itself may not raise its limits).
# Set OPSBUS_PODMAN_CONF to use a containers.conf of your own instead.
# shellcheck shell=bash
if [ -n "${OPSBUS_PODMAN_CONF:-}" ]; then
  export CONTAINERS_CONF="$OPSBUS_PODMAN_CONF"
else
  _conf_dir="${OPSBUS_CACHE_DIR:-$HOME/.cache/opsbus}/images"
  mkdir -p "$_conf_dir"
  _nofile="$(ulimit -Hn)"; [ "$_nofile" = unlimited ] && _nofile=1048576
  [ "$_nofile" -gt 1048576 ] && _nofile=1048576
  _nproc="$(ulimit -Hu)"; [ "$_nproc" = unlimited ] && _nproc=4096
  [ "$_nproc" -gt 4096 ] && _nproc=4096
  _runtime=""; command -v runc >/dev/null 2>&1 && _runtime='runtime = "runc"'
  _partial="$(mktemp "$_conf_dir/containers.conf.XXXXXX")"  # its own: scripts and tests source this concurrently
  cat > "$_partial" <<CONF
[containers]
default_ulimits = ["nofile=$_nofile:$_nofile", "nproc=$_nproc:$_nproc"]

[engine]
$_runtime
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
  chmod 0644 "$_partial"
  mv "$_partial" "$_conf_dir/containers.conf"
  export CONTAINERS_CONF="$_conf_dir/containers.conf"
  unset _conf_dir _nofile _nproc _runtime _partial
fi
