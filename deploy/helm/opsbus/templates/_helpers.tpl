{{/* The services of opsbus, in start order. */}}
{{- define "opsbus.services" -}}
watcher healer deployer optimizer notifier analyzer gateway
{{- end -}}

{{/* Services with a database schema (and so a `migrate` command). */}}
{{- define "opsbus.migrating" -}}
healer deployer optimizer notifier analyzer gateway
{{- end -}}

{{/* Services that talk to the Kubernetes API (the others get no token mounted; the notifier and the analyzer one
only when they read the cluster: notifier.readKubernetesSecrets, analyzer.readCluster). */}}
{{- define "opsbus.kubeClients" -}}
watcher healer deployer optimizer
{{- end -}}

{{- define "opsbus.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Name of one service's objects: dict "root" $ "name" "watcher" */}}
{{- define "opsbus.name" -}}
{{- printf "%s-%s" (include "opsbus.fullname" .root) .name -}}
{{- end -}}

{{- define "opsbus.selectorLabels" -}}
app.kubernetes.io/name: opsbus
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "opsbus.labels" -}}
{{ include "opsbus.selectorLabels" . }}
app.kubernetes.io/part-of: opsbus
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "opsbus.image" -}}
{{- printf "%s-%s:%s" .root.Values.image.repository .name (default .root.Chart.AppVersion .root.Values.image.tag) -}}
{{- end -}}

{{/* The OPSBUS_* environment shared by every service: dict "root" $ "name" "watcher" */}}
{{- define "opsbus.commonEnv" -}}
{{- $v := .root.Values -}}
- name: OPSBUS_ENVIRONMENT
  value: {{ $v.environment | quote }}
- name: OPSBUS_CLUSTER
  value: {{ $v.clusterName | quote }}
- name: OPSBUS_INSTANCE
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: OPSBUS_HTTP__HOST
  value: "0.0.0.0"
- name: OPSBUS_HTTP__PORT
  value: {{ $v.healthPort | quote }}
- name: OPSBUS_NATS__URL
  value: {{ $v.nats.url | quote }}
- name: OPSBUS_NATS__STREAM_REPLICAS
  value: {{ $v.nats.streamReplicas | quote }}
{{- if $v.nats.auth.existingSecret }}
- name: OPSBUS_NATS__USER
  valueFrom:
    secretKeyRef:
      name: {{ $v.nats.auth.existingSecret }}
      key: {{ printf "%s-user" .name }}
- name: OPSBUS_NATS__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $v.nats.auth.existingSecret }}
      key: {{ printf "%s-password" .name }}
{{- end }}
{{- /* The watcher has no schema, but the shared settings refuse the built-in placeholder URL outside development. */}}
- name: OPSBUS_DATABASE__URL
  valueFrom:
    secretKeyRef:
      name: {{ $v.database.existingSecret }}
      key: {{ $v.database.urlKey }}
- name: OPSBUS_DATABASE__POOL_SIZE
  value: {{ $v.database.poolSize | quote }}
{{- with $v.telemetry.otlpEndpoint }}
- name: OPSBUS_TELEMETRY__OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
- name: OPSBUS_TELEMETRY__SAMPLE_RATIO
  value: {{ $v.telemetry.sampleRatio | quote }}
- name: OPSBUS_TELEMETRY__LOG_LEVEL
  value: {{ $v.telemetry.logLevel | quote }}
- name: OPSBUS_SHUTDOWN_GRACE_SECONDS
  value: {{ sub $v.terminationGracePeriodSeconds 5 | quote }}
{{- end -}}

{{/* Each service's own OPSBUS_<SERVICE>__* settings. */}}
{{- define "opsbus.serviceEnv" -}}
{{- $v := .root.Values -}}
{{- $s := index $v .name -}}
{{- if eq .name "watcher" }}
- name: OPSBUS_WATCHER__NAMESPACES
  value: {{ $s.namespaces | toJson | quote }}
- name: OPSBUS_WATCHER__WATCH_SECRETS
  value: {{ ne $s.watchSecrets false | quote }}
{{- with $s.prometheusUrl }}
- name: OPSBUS_WATCHER__PROMETHEUS__URL
  value: {{ . | quote }}
{{- end }}
{{- else if eq .name "healer" }}
- name: OPSBUS_HEALER__DRY_RUN
  value: {{ $s.dryRun | quote }}
{{- if $s.policy }}
- name: OPSBUS_HEALER__POLICY_FILE
  value: /etc/opsbus/policy.yaml
{{- end }}
{{- else if eq .name "deployer" }}
{{- with $s.prometheusUrl }}
- name: OPSBUS_DEPLOYER__PROMETHEUS_URL
  value: {{ . | quote }}
{{- end }}
{{- else if eq .name "optimizer" }}
- name: OPSBUS_OPTIMIZER__DEFAULT_MODE
  value: {{ $s.defaultMode | quote }}
- name: OPSBUS_OPTIMIZER__MODES
  value: {{ $s.modes | toJson | quote }}
- name: OPSBUS_OPTIMIZER__GUARDRAILS__DRY_RUN
  value: {{ $s.dryRun | quote }}
{{- with $s.prometheusUrl }}
- name: OPSBUS_OPTIMIZER__PROMETHEUS_URL
  value: {{ . | quote }}
{{- end }}
{{- with $s.forecast }}
- name: OPSBUS_OPTIMIZER__FORECAST__ENABLED
  value: {{ ne .enabled false | quote }}
- name: OPSBUS_OPTIMIZER__FORECAST__WORKLOADS_PER_PASS
  value: {{ .workloadsPerPass | default 20 | quote }}
- name: OPSBUS_OPTIMIZER__FORECAST__REFRESH_SECONDS
  value: {{ .refreshSeconds | default 21600 | quote }}
- name: OPSBUS_OPTIMIZER__FORECAST__IN_PLACE_RESIZE
  value: {{ .inPlaceResize | default "auto" | quote }}
{{- end }}
{{- with $s.history }}
- name: OPSBUS_OPTIMIZER__HISTORY__STEP_SECONDS
  value: {{ .stepSeconds | default 300 | quote }}
- name: OPSBUS_OPTIMIZER__HISTORY__MAX_AGE_DAYS
  value: {{ .maxAgeDays | default 35 | quote }}
- name: OPSBUS_OPTIMIZER__HISTORY__MAX_POINTS
  value: {{ .maxPoints | default 10080 | quote }}
{{- end }}
{{- else if eq .name "analyzer" }}
- name: OPSBUS_ANALYZER__READ_CLUSTER
  value: {{ ne $s.readCluster false | quote }}
{{- else if eq .name "notifier" }}
- name: OPSBUS_NOTIFIER__CONFIG_FILE
  value: /etc/opsbus/notifier.yaml
{{- with $s.gatewayUrl }}
- name: OPSBUS_NOTIFIER__GATEWAY_URL
  value: {{ . | quote }}
{{- end }}
{{- with $s.jaegerUrl }}
- name: OPSBUS_NOTIFIER__JAEGER_URL
  value: {{ . | quote }}
{{- end }}
- name: OPSBUS_NOTIFIER__SECRETS__NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- with $s.secretKeysSecret }}
- name: OPSBUS_NOTIFIER__SECRETS__KEYS
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: keys
{{- end }}
{{- else if eq .name "gateway" }}
- name: OPSBUS_GATEWAY__HOST
  value: "0.0.0.0"
- name: OPSBUS_GATEWAY__PORT
  value: {{ $s.port | quote }}
{{- with $s.publicUrl }}
- name: OPSBUS_GATEWAY__PUBLIC_URL
  value: {{ . | quote }}
{{- end }}
{{- with $s.jaegerUrl }}
- name: OPSBUS_GATEWAY__CONSOLE__JAEGER_URL
  value: {{ . | quote }}
{{- end }}
{{- with $s.oidc.issuer }}
- name: OPSBUS_GATEWAY__OIDC__ISSUER
  value: {{ . | quote }}
{{- end }}
{{- with $s.oidc.audience }}
- name: OPSBUS_GATEWAY__OIDC__AUDIENCE
  value: {{ . | quote }}
{{- end }}
{{- with $s.oidc.jwksUrl }}
- name: OPSBUS_GATEWAY__OIDC__JWKS_URL
  value: {{ . | quote }}
{{- end }}
{{- with $s.oidc.clientId }}
- name: OPSBUS_GATEWAY__OIDC__CLIENT_ID
  value: {{ . | quote }}
{{- end }}
{{- with $s.oidc.clientSecretSecret }}
- name: OPSBUS_GATEWAY__OIDC__CLIENT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: client-secret
{{- end }}
{{- with $s.oidc.scopes }}
- name: OPSBUS_GATEWAY__OIDC__SCOPES
  value: {{ toJson . | quote }}
{{- end }}
{{- with $s.oidc.acrValues }}
- name: OPSBUS_GATEWAY__OIDC__ACR_VALUES
  value: {{ . | quote }}
{{- end }}
{{- with $s.alertmanagerSecret }}
- name: OPSBUS_GATEWAY__ALERTMANAGER__BEARER_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: bearer-token
{{- end }}
{{- with $s.zabbixSecret }}
- name: OPSBUS_GATEWAY__ZABBIX__BEARER_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: bearer-token
- name: OPSBUS_GATEWAY__ZABBIX__API_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: api-token
      optional: true
{{- end }}
{{- with ($s.zabbix).apiUrl }}
- name: OPSBUS_GATEWAY__ZABBIX__API_URL
  value: {{ . | quote }}
{{- end }}
{{- if ($s.zabbix).close }}
- name: OPSBUS_GATEWAY__ZABBIX__CLOSE
  value: "true"
{{- end }}
{{- with ($s.slack).signingSecretSecret }}
- name: OPSBUS_GATEWAY__SLACK__SIGNING_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: signing-secret
{{- end }}
{{- with ($s.slack).approvers }}
- name: OPSBUS_GATEWAY__SLACK__APPROVERS
  value: {{ toJson . | quote }}
{{- end }}
{{- with ($s.feishu).secret }}
- name: OPSBUS_GATEWAY__FEISHU__VERIFICATION_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: verification-token
- name: OPSBUS_GATEWAY__FEISHU__ENCRYPT_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: encrypt-key
      optional: true
{{- end }}
{{- with ($s.feishu).approvers }}
- name: OPSBUS_GATEWAY__FEISHU__APPROVERS
  value: {{ toJson . | quote }}
{{- end }}
{{- end }}
{{- range $key, $value := $s.env }}
- name: {{ $key }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}
