{{- define "sentistream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sentistream.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sentistream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sentistream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: worker
{{- end -}}

{{- define "sentistream.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "sentistream.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sentistream
{{- end -}}

{{/* The most workers that can do work: one per input partition. */}}
{{- define "sentistream.maxReplicas" -}}
{{- $partitions := int .Values.kafka.inputPartitions -}}
{{- if lt $partitions 1 -}}
{{- fail "kafka.inputPartitions must be at least 1" -}}
{{- end -}}
{{- min (int .Values.autoscaling.keda.maxReplicas) $partitions -}}
{{- end -}}
