#!/usr/bin/env bash
# opsbus sandbox cluster: a real Kubernetes control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler) on 127.0.0.1 with kwok fake nodes, built from
# source through the Go module proxy at the versions pinned in versions.env and started
# with kwokctl's binary runtime. See README.md beside this file.
#
#   sandbox.sh install                      build (or reuse) the binaries
#   sandbox.sh up [--dry-run]               start the cluster (builds first if needed)
#   sandbox.sh down                         stop it and delete its state
#   sandbox.sh status                       what is running, versions, nodes
#   sandbox.sh env                          print `export KUBECONFIG=...` for eval
#   sandbox.sh bin-dir                      print where the built binaries live
#   sandbox.sh kubectl ARGS...              the sandbox's own kubectl against the sandbox
#   sandbox.sh chaos FAULT TARGET [NS]      inject a fault (FAULT list: sandbox.sh help)
#   sandbox.sh heal FAULT TARGET [NS]       remove it
#   sandbox.sh log NS POD CONTAINER [FILE]  give a container a log (lines from FILE or stdin)
#   sandbox.sh scale NODES PODS             scale mode: NODES fake nodes and PODS pods
#
# Environment:
#   OPSBUS_CACHE_DIR       build cache root (default $HOME/.cache/opsbus); binaries go to
#                          $OPSBUS_CACHE_DIR/sandbox/<version-key>/bin
#   OPSBUS_SANDBOX_HOME    run state: kubeconfig, kwokctl work dir, logs
#                          (default $HOME/.cache/opsbus/sandbox-run)
#   OPSBUS_SANDBOX_NAME    cluster name (default opsbus)
#   OPSBUS_SANDBOX_NODES   fake nodes created by `up` (default 3)
#   OPSBUS_KUBECONFIG      kubeconfig for kubectl/chaos/heal/log (default: the sandbox's own)
#   OPSBUS_CHAOS_LOG_LINE  crashloop/oomkilled on a pod: the last line its crash log ends with
#   GO                     the go command (default: go on PATH, else /usr/local/go/bin/go)
set -euo pipefail

SANDBOX_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=versions.env
source "${SANDBOX_DIR}/versions.env"

CACHE_ROOT="${OPSBUS_CACHE_DIR:-${HOME}/.cache/opsbus}/sandbox"
RUN_HOME="${OPSBUS_SANDBOX_HOME:-${HOME}/.cache/opsbus/sandbox-run}"
CLUSTER_NAME="${OPSBUS_SANDBOX_NAME:-opsbus}"
DEFAULT_NODES="${OPSBUS_SANDBOX_NODES:-3}"
KUBECONFIG_PATH="${RUN_HOME}/kubeconfig"
CHAOS_LABEL="opsbus.io/chaos"
UNSCHEDULABLE_KEY="opsbus.io/chaos-unschedulable"
# Container logs kwok serves (kubectl logs, the API's pods/log): one file per container, in the
# CRI log format a kubelet writes, and one ClusterLogs object per pod pointing kwok at them.
# Beside the kubeconfig of the cluster they belong to (OPSBUS_KUBECONFIG's, when it names another).
POD_LOGS_DIR="$(dirname "${OPSBUS_KUBECONFIG:-${KUBECONFIG_PATH}}")/pod-logs"
# kwokctl keeps its clusters, cache and logs under this directory instead of ~/.kwok.
export KWOK_WORKDIR="${RUN_HOME}/kwok"

# Commands built by `install`, in build order: name, wrapper module dir, package.
COMPONENTS=(
  "etcd|etcd|./cmd/etcd"
  "kwok|kwok|sigs.k8s.io/kwok/cmd/kwok"
  "kwokctl|kwok|sigs.k8s.io/kwok/cmd/kwokctl"
  "kubectl|kubernetes|k8s.io/kubernetes/cmd/kubectl"
  "kube-scheduler|kubernetes|k8s.io/kubernetes/cmd/kube-scheduler"
  "kube-controller-manager|kubernetes|k8s.io/kubernetes/cmd/kube-controller-manager"
  "kube-apiserver|kubernetes|k8s.io/kubernetes/cmd/kube-apiserver"
)
# Cold build times measured on the 2-core reference machine (empty Go build and module
# caches; see docs/benchmarks.md), shown while building so nobody wonders whether it hangs.
# Later components reuse packages compiled for earlier ones.
declare -A TYPICAL=(
  [etcd]="~1.5 min"
  [kwok]="~2 min"
  [kwokctl]="~20 s"
  [kubectl]="~2.5 min"
  [kube-scheduler]="~2.5 min"
  [kube-controller-manager]="~4 min"
  [kube-apiserver]="~10 s, its packages are built by then"
)

log() { printf '[sandbox] %s\n' "$*" >&2; }
die() { printf '[sandbox] error: %s\n' "$*" >&2; exit 1; }

find_go() {
  if [[ -n "${GO:-}" ]]; then
    echo "${GO}"
  elif command -v go >/dev/null 2>&1; then
    command -v go
  elif [[ -x /usr/local/go/bin/go ]]; then
    echo /usr/local/go/bin/go
  else
    die "no Go toolchain found: install Go ${GO_MIN_VERSION} or newer, or set GO=/path/to/go"
  fi
}

# The cache key: pinned versions, the Go version, and a hash of the wrapper modules, so any
# change to what would be built lands in a fresh directory.
version_key() {
  local go_version hash
  go_version="$("$1" env GOVERSION)"
  hash="$(cd "${SANDBOX_DIR}" && find versions.env build -type f \( -name '*.env' -o -name 'go.mod' -o -name 'go.sum' -o -name '*.go' \) \
    | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-10)"
  echo "k8s-${KUBE_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_${go_version}_${hash}"
}

bin_dir() { echo "${CACHE_ROOT}/$(version_key "$(find_go)")/bin"; }

human() { # seconds -> 1m05s
  local s=$1
  if (( s >= 60 )); then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi
}

ldflags_for() {
  local name=$1 date
  date="${SOURCE_DATE:-1970-01-01T00:00:00Z}"
  case "${name}" in
    kube-*|kubectl)
      local major minor flags="" pkg
      major="$(echo "${KUBE_VERSION#v}" | cut -d. -f1)"
      minor="$(echo "${KUBE_VERSION#v}" | cut -d. -f2)"
      for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        flags+=" -X ${pkg}.gitVersion=${KUBE_VERSION} -X ${pkg}.gitMajor=${major} -X ${pkg}.gitMinor=${minor}"
        flags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.gitCommit= -X ${pkg}.buildDate=${date}"
      done
      echo "-s -w${flags}"
      ;;
    kwok|kwokctl)
      echo "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${KUBE_VERSION#v}"
      ;;
    *)
      echo "-s -w"
      ;;
  esac
}

cmd_install() {
  local go bindir key total_start
  go="$(find_go)"
  local have
  have="$("${go}" env GOVERSION)"
  # sort -V orders go1.26.0 before go1.26.8 before go1.27.
  if [[ "$(printf '%s\n%s\n' "go${GO_MIN_VERSION}" "${have}" | sort -V | head -1)" != "go${GO_MIN_VERSION}" ]]; then
    die "Kubernetes ${KUBE_VERSION} needs Go ${GO_MIN_VERSION} or newer; ${go} is ${have}"
  fi
  key="$(version_key "${go}")"
  bindir="${CACHE_ROOT}/${key}/bin"
  mkdir -p "${bindir}"

  local missing=()
  local entry name
  for entry in "${COMPONENTS[@]}"; do
    name="${entry%%|*}"
    [[ -x "${bindir}/${name}" ]] || missing+=("${name}")
  done
  if (( ${#missing[@]} == 0 )); then
    log "all ${#COMPONENTS[@]} binaries cached in ${bindir}"
    return 0
  fi

  log "building ${missing[*]} from source (Kubernetes ${KUBE_VERSION}, etcd ${ETCD_VERSION}, kwok ${KWOK_VERSION}) with ${have}"
  log "into ${bindir}"
  log "a cold build takes about 13 minutes on 2 cores, module downloads included (sources come"
  log "from the Go module proxy, compiled packages go to Go's build cache); later runs reuse the"
  log "binaries and take well under a second."

  # -mod=readonly: build exactly what the committed go.mod/go.sum say; never edit them.
  # GOTOOLCHAIN=local: never download another Go toolchain. CGO off: static binaries, as
  # Kubernetes releases them. GOWORK=off: the wrapper modules stand alone.
  export GOFLAGS="-mod=readonly -buildvcs=false" GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off
  local i=0 n=${#COMPONENTS[@]} module pkg start pid elapsed rc
  total_start=$(date +%s)
  for entry in "${COMPONENTS[@]}"; do
    i=$((i + 1))
    IFS='|' read -r name module pkg <<<"${entry}"
    if [[ -x "${bindir}/${name}" ]]; then
      log "[${i}/${n}] ${name}: cached"
      continue
    fi
    log "[${i}/${n}] ${name}: building ${pkg} (cold: ${TYPICAL[${name}]:-a few min})"
    start=$(date +%s)
    (
      cd "${SANDBOX_DIR}/build/${module}"
      exec "${go}" build -p 2 -trimpath -ldflags "$(ldflags_for "${name}")" -o "${bindir}/.${name}.tmp" "${pkg}"
    ) &
    pid=$!
    local next_note=60
    while kill -0 "${pid}" 2>/dev/null; do
      sleep 1
      elapsed=$(( $(date +%s) - start ))
      if (( elapsed >= next_note )) && kill -0 "${pid}" 2>/dev/null; then
        log "      ${name}: still compiling, $(human "${elapsed}") so far"
        next_note=$(( next_note + 60 ))
      fi
    done
    rc=0
    wait "${pid}" || rc=$?
    (( rc == 0 )) || die "building ${name} failed (exit ${rc}); see the compiler output above"
    mv "${bindir}/.${name}.tmp" "${bindir}/${name}"
    elapsed=$(( $(date +%s) - start ))
    printf '%s\t%s\n' "${name}" "${elapsed}" >>"${CACHE_ROOT}/${key}/build-times.tsv"
    log "[${i}/${n}] ${name}: done in $(human "${elapsed}")"
  done
  log "built in $(human $(( $(date +%s) - total_start ))); binaries in ${bindir}"
}

require_installed() {
  local bindir entry name
  bindir="$(bin_dir)"
  for entry in "${COMPONENTS[@]}"; do
    name="${entry%%|*}"
    [[ -x "${bindir}/${name}" ]] || die "${name} is not built yet: run 'bash deploy/sandbox/sandbox.sh install' (or make sandbox-install)"
  done
}

# OPSBUS_KUBECONFIG points chaos/heal/kubectl at another sandbox-like cluster (one whose kwok
# runs these stages); up/down/status always manage this sandbox's own kubeconfig.
kctl() { "$(bin_dir)/kubectl" --kubeconfig "${KCTL_KUBECONFIG:-${KUBECONFIG_PATH}}" "$@"; }
kwokctl() { "$(bin_dir)/kwokctl" --name "${CLUSTER_NAME}" "$@"; }

# The kwokctl configuration: locally built binaries only, everything on 127.0.0.1, and the
# Stage set (kwok's defaults, lightly adapted, plus the chaos stages).
write_config() {
  local bindir=$1 out=$2 f
  mkdir -p "$(dirname "${out}")"
  {
    cat <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
  kubeVersion: ${KUBE_VERSION}
  etcdVersion: ${ETCD_VERSION#v}
  kwokVersion: ${KWOK_VERSION}
  kubeApiserverBinary: ${bindir}/kube-apiserver
  kubeControllerManagerBinary: ${bindir}/kube-controller-manager
  kubeSchedulerBinary: ${bindir}/kube-scheduler
  kubectlBinary: ${bindir}/kubectl
  etcdBinary: ${bindir}/etcd
  kwokControllerBinary: ${bindir}/kwok
  quietPull: true
  # No client-side rate limits between the components: scale mode creates thousands of
  # objects, and on a loopback-only sandbox the limits only add waiting.
  disableQPSLimits: true
  # Container logs: ClusterLogs objects created at run time (log, chaos) say which file
  # kwok serves for which pod. (kwok v0.8.0 watches the ClusterLogs CRD but drops the Logs one.)
  enableCRDs:
  - ClusterLogs
EOF
    for f in "${SANDBOX_DIR}"/stages/*.yaml; do
      echo "---"
      grep -v '^#' "${f}"
    done
  } >"${out}"
}

cluster_exists() {
  kwokctl get clusters 2>/dev/null | grep -qx "${CLUSTER_NAME}"
}

wait_for() { # description timeout_seconds command...
  local what=$1 timeout=$2 start
  shift 2
  start=$(date +%s)
  until "$@" >/dev/null 2>&1; do
    if (( $(date +%s) - start > timeout )); then
      die "timed out after ${timeout}s waiting for ${what}"
    fi
    sleep 1
  done
}

nodes_ready() {
  local want=$1 ready
  ready="$(kctl get nodes -l type=kwok -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$' || true)"
  (( ready >= want ))
}

# The traffic routers' CRDs (Gateway API HTTPRoute, Istio VirtualService) at the versions pinned in
# crds.env, from their Go modules in the module cache: the deployer's traffic-weighted canaries write
# route objects. Server-side apply: the CRDs are too large for the last-applied annotation.
install_crds() {
  # shellcheck source-path=SCRIPTDIR source=crds.env
  source "${SANDBOX_DIR}/crds.env"
  local go gw istio
  go="$(find_go)"
  gw="$(GOFLAGS=-mod=mod "${go}" mod download -json "sigs.k8s.io/gateway-api@${GATEWAY_API_VERSION}" | grep '"Dir"' | cut -d'"' -f4)"
  istio="$(GOFLAGS=-mod=mod "${go}" mod download -json "istio.io/api@${ISTIO_API_VERSION}" | grep '"Dir"' | cut -d'"' -f4)"
  [[ -d "${gw}" && -d "${istio}" ]] || die "could not download the Gateway API or Istio API module"
  kctl apply --server-side --force-conflicts -f "${gw}/config/crd/standard" >/dev/null
  kctl apply --server-side --force-conflicts -f "${istio}/kubernetes/customresourcedefinitions.gen.yaml" >/dev/null
  kctl wait --for condition=established --timeout 60s \
    crd/httproutes.gateway.networking.k8s.io crd/virtualservices.networking.istio.io >/dev/null
  log "CRDs: Gateway API ${GATEWAY_API_VERSION} (standard), Istio API ${ISTIO_API_VERSION}"
}

cmd_up() {
  local dry_run=false
  [[ "${1:-}" == "--dry-run" ]] && dry_run=true
  local bindir config start
  if ! ${dry_run}; then cmd_install; fi
  bindir="$(bin_dir)"
  config="${RUN_HOME}/kwokctl.yaml"
  write_config "${bindir}" "${config}"
  local create=(create cluster --runtime binary --config "${config}" --kubeconfig "${KUBECONFIG_PATH}" --wait 2m --timeout 5m)
  if ${dry_run}; then
    log "dry run: what kwokctl would do (nothing is started)"
    local out
    out="$("${bindir}/kwokctl" --name "${CLUSTER_NAME}" --dry-run "${create[@]}" 2>&1)" || { echo "${out}"; die "kwokctl dry run failed"; }
    echo "${out}"
    # kwokctl prints "# Download SRC to DEST" for every binary it fetches or copies into the
    # cluster; every SRC must be one of ours.
    local foreign
    foreign="$(grep -E '^# Download ' <<<"${out}" | grep -v "^# Download ${bindir}/" || true)"
    if [[ -n "${foreign}" ]]; then
      echo "${foreign}" >&2
      die "the plan above would download something"
    fi
    log "dry run: no download in the plan; every binary comes from ${bindir}"
    return 0
  fi
  require_installed
  if cluster_exists && kctl get --raw /readyz >/dev/null 2>&1; then
    log "cluster '${CLUSTER_NAME}' is already up"
    if ! cmp -s "${config}" "${config}.running"; then
      log "warning: the stages or options changed since it started; 'down' then 'up' to apply them"
    fi
  else
    if cluster_exists; then
      log "cluster '${CLUSTER_NAME}' exists but does not answer; starting it"
      kwokctl start cluster --wait 2m >&2 || { kwokctl delete cluster >&2 || true; }
    fi
    if ! cluster_exists; then
      start=$(date +%s)
      log "starting cluster '${CLUSTER_NAME}' (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok) on 127.0.0.1"
      kwokctl "${create[@]}" >&2
      cp "${config}" "${config}.running"
      log "control plane up in $(human $(( $(date +%s) - start )))"
    fi
  fi
  wait_for "the API server" 120 kctl get --raw /readyz
  local have
  have="$(kctl get nodes -l type=kwok -o name | wc -l)"
  if (( have < DEFAULT_NODES )); then
    log "creating ${DEFAULT_NODES} kwok fake nodes"
    kwokctl scale node --replicas "${DEFAULT_NODES}" >&2
  fi
  wait_for "${DEFAULT_NODES} Ready nodes" 120 nodes_ready "${DEFAULT_NODES}"
  wait_for "the default service account" 120 kctl get serviceaccount default -n default
  install_crds
  log "ready: $(kctl get --raw /version | grep -o '"gitVersion": *"[^"]*"' | cut -d'"' -f4), $(kctl get nodes -l type=kwok -o name | wc -l) nodes"
  log "kubeconfig: ${KUBECONFIG_PATH}   (eval \"\$(bash deploy/sandbox/sandbox.sh env)\")"
  echo "${KUBECONFIG_PATH}"
}

cmd_down() {
  local bindir
  bindir="$(bin_dir)"
  if [[ ! -x "${bindir}/kwokctl" ]]; then
    log "nothing to stop (kwokctl is not built)"
    return 0
  fi
  if cluster_exists; then
    kwokctl delete cluster --kubeconfig "${KUBECONFIG_PATH}" >&2
    log "cluster '${CLUSTER_NAME}' deleted"
  else
    log "cluster '${CLUSTER_NAME}' is not running"
  fi
  rm -f "${KUBECONFIG_PATH}"
  rm -rf "${RUN_HOME}/pod-logs"
}

cmd_status() {
  local bindir entry name
  bindir="$(bin_dir)"
  echo "versions:   Kubernetes ${KUBE_VERSION}, etcd ${ETCD_VERSION}, kwok ${KWOK_VERSION}"
  echo "binaries:   ${bindir}"
  for entry in "${COMPONENTS[@]}"; do
    name="${entry%%|*}"
    if [[ -x "${bindir}/${name}" ]]; then echo "  built     ${name}"; else echo "  missing   ${name}"; fi
  done
  echo "kubeconfig: ${KUBECONFIG_PATH}"
  if [[ ! -x "${bindir}/kwokctl" ]] || ! cluster_exists; then
    echo "cluster:    '${CLUSTER_NAME}' not running"
    return 3
  fi
  if ! kctl get --raw /readyz >/dev/null 2>&1; then
    echo "cluster:    '${CLUSTER_NAME}' exists but the API server does not answer"
    return 3
  fi
  echo "cluster:    '${CLUSTER_NAME}' up, server $(kctl config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
  kwokctl get components 2>/dev/null || true
  kctl version 2>/dev/null || true
  kctl get nodes -o wide
}

usage_faults() {
  cat <<'EOF'
faults (TARGET is kind/name; NS defaults to "default"):
  crashloop      pod/NAME or deployment/NAME   containers crash (exit 1, Error), CrashLoopBackOff
  oomkilled      pod/NAME or deployment/NAME   containers OOM-killed (exit 137, OOMKilled), CrashLoopBackOff
  imagepull      pod/NAME or deployment/NAME   ErrImagePull / ImagePullBackOff
  unschedulable  deployment/NAME               new pods Pending, PodScheduled False, reason Unschedulable
  notready       node/NAME                     node Ready False; the controller manager taints it
  nodedown       node/NAME                     notready, then every pod bound to the node goes unready
                                               (Ready False, NodeNotReady), as the node lifecycle controller does
On a pod the label is set on the pod itself. On a deployment it goes into the pod template,
so a rollout brings up faulty pods (as a bad release would) and `heal` rolls back to healthy.
EOF
}

# The node lifecycle controller's part when a node goes NotReady (fault nodedown): mark its pods (every
# namespace) unready. Opt-in: tests written against `notready` expect the pods to stay Ready (a PDB
# counts unready pods as disrupted already). kwok has no kubelet to stop, so the pods carry a chaos label that
# stages/chaos-pod-node-down.yaml acts on (and chaos-pod-node-up.yaml undoes once it is removed).
node_not_ready() { # node
  [[ "$(kctl get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == False ]]
}

node_pods_label() { # node label-argument ("key=value" to set, "key-" to remove it where it is node-notready)
  local node=$1 label=$2 ns pod only=()
  [[ "${label}" == *- ]] && only=(-l "${CHAOS_LABEL}=node-notready")
  kctl get pods --all-namespaces "${only[@]}" --field-selector "spec.nodeName=${node}" \
    -o jsonpath='{range .items[*]}{.metadata.namespace}{" "}{.metadata.name}{"\n"}{end}' |
    while read -r ns pod; do
      [[ -n "${pod}" ]] || continue
      if [[ "${label}" == *- ]]; then
        kctl -n "${ns}" label pod "${pod}" "${label}" >/dev/null 2>&1 || true
      else
        kctl -n "${ns}" label --overwrite pod "${pod}" "${label}" >/dev/null
      fi
    done
}

patch_template_label() { # deployment ns value-or-null
  local target=$1 ns=$2 value=$3
  kctl -n "${ns}" patch "${target}" --type merge \
    -p "{\"spec\":{\"template\":{\"metadata\":{\"labels\":{\"${CHAOS_LABEL}\":${value}}}}}}"
}

cmd_chaos() {
  local mode=$1 fault=${2:-} target=${3:-} ns=${4:-default}
  [[ -n "${fault}" && -n "${target}" ]] || { usage_faults >&2; die "usage: sandbox.sh ${mode} FAULT TARGET [NAMESPACE]"; }
  require_installed
  local kind=${target%%/*}
  case "${kind}" in
    pod|pods|po) kind=pod ;;
    deployment|deployments|deploy) kind=deployment ;;
    node|nodes|no) kind=node ;;
    *) die "unsupported target '${target}': use pod/NAME, deployment/NAME or node/NAME" ;;
  esac
  target="${kind}/${target#*/}"
  case "${fault}:${kind}" in
    crashloop:pod|oomkilled:pod|imagepull:pod)
      if [[ "${mode}" == chaos ]]; then
        if [[ "${fault}" != imagepull ]]; then
          pod_crash_logs "${fault}" "${target#*/}" "${ns}"  # the log first: it is there when the crash shows
        fi
        kctl -n "${ns}" label --overwrite "${target}" "${CHAOS_LABEL}=${fault}"
      else
        kctl -n "${ns}" label "${target}" "${CHAOS_LABEL}-"
      fi
      ;;
    crashloop:deployment|oomkilled:deployment|imagepull:deployment)
      if [[ "${mode}" == chaos ]]; then
        patch_template_label "${target}" "${ns}" "\"${fault}\""
      else
        patch_template_label "${target}" "${ns}" null
      fi
      ;;
    unschedulable:deployment)
      # A nodeSelector no node matches: the real scheduler reports the pods Unschedulable.
      if [[ "${mode}" == chaos ]]; then
        kctl -n "${ns}" patch "${target}" --type merge \
          -p "{\"spec\":{\"template\":{\"spec\":{\"nodeSelector\":{\"${UNSCHEDULABLE_KEY}\":\"true\"}}}}}"
      else
        kctl -n "${ns}" patch "${target}" --type merge \
          -p "{\"spec\":{\"template\":{\"spec\":{\"nodeSelector\":{\"${UNSCHEDULABLE_KEY}\":null}}}}}"
      fi
      ;;
    notready:node|nodedown:node)
      if [[ "${mode}" == chaos ]]; then
        kctl label --overwrite "${target}" "${CHAOS_LABEL}=notready"
        if [[ "${fault}" == nodedown ]]; then
          # the controller marks the pods once the node reports NotReady, not before
          wait_for "${target} NotReady" 60 node_not_ready "${target#*/}"
          node_pods_label "${target#*/}" "${CHAOS_LABEL}=node-notready"
        fi
      else
        kctl label "${target}" "${CHAOS_LABEL}-"
        node_pods_label "${target#*/}" "${CHAOS_LABEL}-"
      fi
      ;;
    unschedulable:pod)
      die "unschedulable needs a deployment: a pod's scheduling constraints cannot change once it exists"
      ;;
    *)
      usage_faults >&2
      die "fault '${fault}' does not apply to ${kind}"
      ;;
  esac
}

# One container's log, as a kubelet would keep it: "<RFC 3339 time> <stream> F <line>" per line,
# served by kwok for the current and the previous container (the analyzer reads the previous
# one first, as it would for a crashed container).
write_pod_log() { # ns pod container < lines
  local ns=$1 pod=$2 container=$3 dir file now line
  dir="${POD_LOGS_DIR}/${ns}_${pod}"
  file="${dir}/${container}.log"
  mkdir -p "${dir}"
  now="$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)"
  : >"${file}.tmp"
  while IFS= read -r line || [[ -n "${line}" ]]; do
    printf '%s stdout F %s\n' "${now}" "${line}" >>"${file}.tmp"
  done
  mv "${file}.tmp" "${file}"
  apply_pod_logs "${ns}" "${pod}"
}

apply_pod_logs() { # ns pod: the ClusterLogs object naming every container log of the pod
  local ns=$1 pod=$2 dir f name
  dir="${POD_LOGS_DIR}/${ns}_${pod}"
  {
    echo "apiVersion: kwok.x-k8s.io/v1alpha1"
    echo "kind: ClusterLogs"
    echo "metadata:"
    echo "  name: $(printf '%s' "pod-logs.${ns}.${pod}" | cut -c1-253)"
    echo "  labels: {opsbus.io/pod-logs: \"true\"}"
    echo "spec:"
    echo "  selector: {matchNamespaces: [\"${ns}\"], matchNames: [\"${pod}\"]}"
    echo "  logs:"
    for f in "${dir}"/*.log; do
      name="$(basename "${f}" .log)"
      echo "  - {containers: [\"${name}\"], logsFile: \"${f}\", previousLogsFile: \"${f}\"}"
    done
  } | kctl apply -f - >/dev/null
}

# A crashing container's last words: a start, a few lines of work, then the error (the line in
# OPSBUS_CHAOS_LOG_LINE when set).
crash_log() { # fault container
  local fault=$1 container=$2
  echo "level=info msg=\"starting ${container}\" version=1"
  echo "level=info msg=\"listening on :8080\""
  if [[ "${fault}" == oomkilled ]]; then
    echo "level=info msg=\"loading cache\" entries=1048576"
    echo "${OPSBUS_CHAOS_LOG_LINE:-fatal error: runtime: out of memory}"
  else
    echo "${OPSBUS_CHAOS_LOG_LINE:-level=fatal msg=\"exiting\" error=\"unrecoverable error in ${container}\"}"
  fi
}

pod_crash_logs() { # fault pod ns
  local fault=$1 pod=$2 ns=$3 c
  for c in $(kctl -n "${ns}" get "pod/${pod}" -o jsonpath='{.spec.containers[*].name}'); do
    crash_log "${fault}" "${c}" | write_pod_log "${ns}" "${pod}" "${c}"
  done
}

cmd_log() {
  local ns=${1:-} pod=${2:-} container=${3:-} file=${4:--}
  [[ -n "${ns}" && -n "${pod}" && -n "${container}" ]] || die "usage: sandbox.sh log NAMESPACE POD CONTAINER [FILE]"
  require_installed
  if [[ "${file}" == - ]]; then
    write_pod_log "${ns}" "${pod}" "${container}"
  else
    write_pod_log "${ns}" "${pod}" "${container}" <"${file}"
  fi
}

cmd_scale() {
  local nodes=${1:-} pods=${2:-} ns=${3:-opsbus-scale}
  [[ "${nodes}" =~ ^[0-9]+$ && "${pods}" =~ ^[0-9]+$ ]] || die "usage: sandbox.sh scale NODES PODS [NAMESPACE]"
  require_installed
  cluster_exists || die "the sandbox is not up: run 'bash deploy/sandbox/sandbox.sh up' first"
  local start
  start=$(date +%s)
  log "scaling to ${nodes} fake nodes"
  kwokctl scale node --replicas "${nodes}" >&2
  wait_for "${nodes} Ready nodes" 1800 nodes_ready "${nodes}"
  log "${nodes} nodes Ready after $(human $(( $(date +%s) - start )))"
  kctl get namespace "${ns}" >/dev/null 2>&1 || kctl create namespace "${ns}" >&2
  start=$(date +%s)
  log "scaling to ${pods} pods in namespace ${ns} (the scheduler places them, kwok runs them)"
  kwokctl scale pod --replicas "${pods}" --namespace "${ns}" >&2
  local running=0 deadline=$(( $(date +%s) + 3600 ))
  while :; do
    running="$(kctl get pods -n "${ns}" --field-selector=status.phase=Running --no-headers 2>/dev/null | wc -l)"
    (( running >= pods )) && break
    (( $(date +%s) > deadline )) && die "only ${running}/${pods} pods Running after an hour"
    log "      ${running}/${pods} pods Running"
    sleep 10
  done
  log "${pods} pods Running after $(human $(( $(date +%s) - start )))"
}

cmd_help() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
  echo
  usage_faults
}

main() {
  local cmd=${1:-help}
  shift || true
  case "${cmd}" in
    install) cmd_install ;;
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) echo "export KUBECONFIG=${KUBECONFIG_PATH}" ;;
    bin-dir) bin_dir ;;
    kubectl) require_installed; KCTL_KUBECONFIG="${OPSBUS_KUBECONFIG:-}" kctl "$@" ;;
    chaos) KCTL_KUBECONFIG="${OPSBUS_KUBECONFIG:-}" cmd_chaos chaos "$@" ;;
    heal) KCTL_KUBECONFIG="${OPSBUS_KUBECONFIG:-}" cmd_chaos heal "$@" ;;
    log) KCTL_KUBECONFIG="${OPSBUS_KUBECONFIG:-}" cmd_log "$@" ;;
    scale) cmd_scale "$@" ;;
    help|-h|--help) cmd_help ;;
    *) cmd_help >&2; die "unknown command '${cmd}'" ;;
  esac
}

main "$@"
