{{/* The selector labels: the same on every object of a release. */}}
{{- define "redhac.selector" -}}
app.kubernetes.io/name: redhac
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Every object's labels. */}}
{{- define "redhac.labels" -}}
{{ include "redhac.selector" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{/*
HA_HOSTS: one entry per replica, each pod by its DNS name under the headless
service (<release>-<i>.<release>), in ordinal order.
*/}}
{{- define "redhac.hosts" -}}
{{- $scheme := ternary "https" "http" .Values.tls.enabled -}}
{{- $hosts := list -}}
{{- range $i := until (int .Values.replicaCount) -}}
{{- $hosts = append $hosts (printf "%s://%s-%d.%s:%d" $scheme $.Release.Name $i $.Release.Name (int $.Values.clusterPort)) -}}
{{- end -}}
{{- join "," $hosts -}}
{{- end }}

{{/* The memory limit: 6x the cache's bytes plus 64 MiB, in MiB rounded up. */}}
{{- define "redhac.memory" -}}
{{- $cache := int64 .Values.cacheMaxBytes -}}
{{- printf "%dMi" (add 64 (div (add (mul 6 $cache) 1048575) 1048576)) -}}
{{- end }}
