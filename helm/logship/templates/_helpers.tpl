{{/* Names ---------------------------------------------------------------------------------- */}}

{{- define "logship.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified base name; component suffixes (-ingest, -loader, …) are appended to it,
     so it is kept to 40 characters. */}}
{{- define "logship.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "logship.ingest.fullname" -}}{{ include "logship.fullname" . }}-ingest{{- end -}}
{{- define "logship.ingest.headless" -}}{{ include "logship.fullname" . }}-ingest-headless{{- end -}}
{{- define "logship.loader.fullname" -}}{{ include "logship.fullname" . }}-loader{{- end -}}
{{- define "logship.registry.configMap" -}}
{{- if .Values.registry.existingConfigMap -}}
{{- .Values.registry.existingConfigMap -}}
{{- else -}}
{{- include "logship.fullname" . }}-registry
{{- end -}}
{{- end -}}

{{- define "logship.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels ---------------------------------------------------------------------------------- */}}

{{- define "logship.labels" -}}
helm.sh/chart: {{ include "logship.chart" . }}
app.kubernetes.io/name: {{ include "logship.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: logship
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "ingest") */}}
{{- define "logship.selectorLabels" -}}
app.kubernetes.io/name: {{ include "logship.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "logship.componentLabels" -}}
{{ include "logship.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "logship.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "logship.serviceAccountName" -}}
{{- $sa := .values.serviceAccount -}}
{{- if $sa.create -}}
{{- default .fullname $sa.name -}}
{{- else -}}
{{- default "default" $sa.name -}}
{{- end -}}
{{- end -}}

{{/* Quantities ----------------------------------------------------------------------------- */}}

{{/* A Kubernetes storage quantity ("10Gi", "500M", "1073741824") in bytes, as an int64.
     Fails the render on a form it does not understand. */}}
{{- define "logship.quantityBytes" -}}
{{- $q := toString . -}}
{{- $m := regexFind "^[0-9]+" $q -}}
{{- $suffix := trimPrefix $m $q -}}
{{- $units := dict "" 1 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 -}}
{{- if or (not $m) (not (hasKey $units $suffix)) -}}
{{- fail (printf "cannot read the storage quantity %q (use e.g. 10Gi, 500Mi, 20G)" $q) -}}
{{- end -}}
{{- mul (int64 $m) (index $units $suffix) -}}
{{- end -}}

{{/* terminationGracePeriodSeconds of ingest: longer than the drain (LOGSHIP_SHUTDOWN_TIMEOUT_S),
     computed when not set, refused when set too short. */}}
{{- define "logship.ingest.terminationGrace" -}}
{{- $drain := .Values.ingest.shutdownTimeoutSeconds | float64 | ceil | int64 -}}
{{- $set := .Values.ingest.terminationGracePeriodSeconds -}}
{{- if kindIs "invalid" $set -}}
{{- add $drain .Values.ingest.terminationGraceMarginSeconds -}}
{{- else if le (int64 $set) $drain -}}
{{- fail (printf "ingest.terminationGracePeriodSeconds (%v) must be longer than ingest.shutdownTimeoutSeconds (%v): the kubelet would SIGKILL the pod while it drains its spool" $set .Values.ingest.shutdownTimeoutSeconds) -}}
{{- else -}}
{{- int64 $set -}}
{{- end -}}
{{- end -}}

{{/* Pod-level pieces shared by both workloads ------------------------------------------------ */}}

{{- define "logship.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}

{{- define "logship.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext -}}
{{- end -}}

{{/* The AWS_* environment shared by both containers (S3 lake; IRSA needs none of it). */}}
{{- define "logship.awsEnv" -}}
{{- with .Values.aws.region }}
- name: AWS_REGION
  value: {{ . | quote }}
- name: AWS_DEFAULT_REGION
  value: {{ . | quote }}
{{- end }}
{{- with .Values.aws.endpointUrl }}
- name: AWS_ENDPOINT_URL_S3
  value: {{ . | quote }}
{{- end }}
{{- with .Values.aws.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $.Values.aws.accessKeyIdKey | quote }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $.Values.aws.secretAccessKeyKey | quote }}
{{- end }}
{{- end -}}

{{/* topologySpreadConstraints with this component's labelSelector filled in when absent. */}}
{{- define "logship.topologySpread" -}}
{{- $out := list -}}
{{- range .constraints -}}
{{- $c := deepCopy . -}}
{{- if not (hasKey $c "labelSelector") -}}
{{- $_ := set $c "labelSelector" (dict "matchLabels" (include "logship.selectorLabels" (dict "ctx" $.ctx "component" $.component) | fromYaml)) -}}
{{- end -}}
{{- $out = append $out $c -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* Registry volume + mount, and the checksum that rolls pods when the registry changes. */}}
{{- define "logship.registry.enabled" -}}
{{- if or .Values.registry.content .Values.registry.existingConfigMap -}}true{{- end -}}
{{- end -}}

{{- define "logship.registry.checksum" -}}
{{- if .Values.registry.content -}}
{{- .Values.registry.content | sha256sum -}}
{{- else if .Values.registry.existingConfigMap -}}
{{- printf "configmap/%s/%s" .Values.registry.existingConfigMap .Values.registry.existingConfigMapKey | sha256sum -}}
{{- else -}}
{{- "bundled" | sha256sum -}}
{{- end -}}
{{- end -}}

{{- define "logship.registry.key" -}}
{{- if .Values.registry.existingConfigMap -}}
{{- .Values.registry.existingConfigMapKey -}}
{{- else -}}
registry.yaml
{{- end -}}
{{- end -}}

{{/* A number as an env value: integral values without exponent or fraction (Helm reads every
     YAML number as float64, which would print 8589934592 as 8.589934592e+09). */}}
{{- define "logship.num" -}}
{{- if eq (float64 .) (float64 (int64 .)) -}}
{{- int64 . | toString | quote -}}
{{- else -}}
{{- . | toString | quote -}}
{{- end -}}
{{- end -}}

{{/* DNS, always allowed when egress is restricted. */}}
{{- define "logship.dnsEgress" -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end -}}

{{/* Environment from Secrets and extras: secrets only ever through secretKeyRef. */}}
{{- define "logship.ingest.env" -}}
{{- $v := .Values.ingest -}}
{{- with $v.auth.existingSecret }}
- name: LOGSHIP_AUTH_TOKENS
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $v.auth.existingSecretKey | quote }}
{{- end }}
{{- with $v.piiHash.existingSecret }}
- name: LOGSHIP_PII_HASH_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $v.piiHash.existingSecretKey | quote }}
{{- end }}
{{- include "logship.awsEnv" . }}
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "logship.loader.env" -}}
{{- $v := .Values.loader -}}
- name: LOGSHIP_WAREHOUSE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $v.warehouse.existingSecret | quote }}
      key: {{ $v.warehouse.existingSecretKey | quote }}
{{- include "logship.awsEnv" . }}
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}
