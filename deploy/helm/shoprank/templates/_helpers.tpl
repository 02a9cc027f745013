{{/* Names: <release>-shoprank unless the release name already says shoprank. */}}
{{- define "shoprank.fullname" -}}
{{- if contains "shoprank" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-shoprank" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "shoprank.labels" -}}
app.kubernetes.io/name: shoprank
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: include "shoprank.selector" (list $ "web") */}}
{{- define "shoprank.selector" -}}
{{- $ctx := index . 0 -}}
app.kubernetes.io/name: shoprank
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "shoprank.image" -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- end -}}

{{/*
The environment of every shoprank container: non-secret settings from .Values.config, the secret ones from the
existing Secret (never from values), datastore URLs from that Secret or from the in-cluster trial services.
*/}}
{{- define "shoprank.env" -}}
{{- $fullname := include "shoprank.fullname" . -}}
{{- range $name := keys .Values.config | sortAlpha }}
- name: {{ $name }}
  value: {{ index $.Values.config $name | toString | quote }}
{{- end }}
- name: SHOPRANK_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.name }}
      key: {{ .Values.secrets.keys.secretKey }}
- name: SHOPRANK_METRICS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.name }}
      key: {{ .Values.secrets.keys.metricsToken }}
{{- if .Values.postgresql.enabled }}
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.postgresql.existingSecret }}
      key: {{ .Values.postgresql.passwordKey }}
- name: SHOPRANK_DATABASE_URL
  value: {{ printf "postgresql+psycopg://shoprank:$(POSTGRES_PASSWORD)@%s-postgresql:5432/shoprank" $fullname | quote }}
{{- else }}
- name: SHOPRANK_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.name }}
      key: {{ .Values.secrets.keys.databaseUrl }}
{{- end }}
{{- if .Values.redis.enabled }}
- name: SHOPRANK_REDIS_URL
  value: {{ printf "redis://%s-redis-cache:6379/0" $fullname | quote }}
- name: SHOPRANK_BROKER_URL
  value: {{ printf "redis://%s-redis-broker:6379/0" $fullname | quote }}
{{- else }}
- name: SHOPRANK_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.name }}
      key: {{ .Values.secrets.keys.redisUrl }}
- name: SHOPRANK_BROKER_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.name }}
      key: {{ .Values.secrets.keys.brokerUrl }}
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by every shoprank pod. */}}
{{- define "shoprank.podCommon" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The search index volume (shared RWX claim, or a per-pod emptyDir). */}}
{{- define "shoprank.indexVolume" -}}
- name: search-index
{{- if .Values.index.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "shoprank.fullname" . }}-index
{{- else }}
  emptyDir: {}
{{- end }}
{{- end -}}

{{/* PromQL label matchers: the queue's, plus the operator's (e.g. namespace="shop"). */}}
{{- define "shoprank.promLabels" -}}
{{- $ctx := index . 0 -}}
{{- $own := index . 1 -}}
{{- $extra := $ctx.Values.autoscaling.prometheus.labelMatchers -}}
{{- if and $own $extra -}}{{ printf "{%s,%s}" $own $extra }}
{{- else if $own -}}{{ printf "{%s}" $own }}
{{- else if $extra -}}{{ printf "{%s}" $extra }}
{{- end -}}
{{- end -}}
