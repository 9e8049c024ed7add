{{/*
"true" with membership: dynamic (a Deployment, members found through a
headless service), "" with membership: static (a StatefulSet, HA_HOSTS).
*/}}
{{- define "redhac.dynamic" -}}
{{- if eq (toString .Values.membership) "dynamic" -}}
true
{{- else if ne (toString .Values.membership) "static" -}}
{{- fail (printf "membership is %q; use static (a StatefulSet with a fixed member list, HA_HOSTS) or dynamic (a Deployment whose members find each other, HA_DISCOVER)" (toString .Values.membership)) -}}
{{- end -}}
{{- end }}

{{/*
app.kubernetes.io/name, and the objects' names: the release's name for the
StatefulSet, <release>-dynamic for the Deployment (as deploy/k8s/dynamic), so
the two variants' pods never select each other.
*/}}
{{- define "redhac.name" -}}
{{- ternary "redhac-dynamic" "redhac" (eq (include "redhac.dynamic" .) "true") -}}
{{- end }}

{{- define "redhac.fullname" -}}
{{- if include "redhac.dynamic" . -}}
{{- printf "%s-dynamic" .Release.Name -}}
{{- else -}}
{{- .Release.Name -}}
{{- end -}}
{{- end }}

{{/* The headless service the members find each other through. */}}
{{- define "redhac.peers" -}}
{{- if include "redhac.dynamic" . -}}
{{- printf "%s-peers" .Release.Name -}}
{{- else -}}
{{- .Release.Name -}}
{{- end -}}
{{- end }}

{{/* The selector labels: the same on every object of a release. */}}
{{- define "redhac.selector" -}}
app.kubernetes.io/name: {{ include "redhac.name" . }}
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

{{/*
The pods' grace period: terminationGracePeriodSeconds, else 30 s for the
StatefulSet and 45 s for the Deployment (whose members vote until the leader
removed them; see "redhac.dynamicChecks").
*/}}
{{- define "redhac.grace" -}}
{{- $default := ternary 45 30 (eq (include "redhac.dynamic" .) "true") -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- $default -}}
{{- else if eq (toString .Values.terminationGracePeriodSeconds) "" -}}
{{- $default -}}
{{- else if regexMatch "^[0-9]+$" (toString .Values.terminationGracePeriodSeconds) -}}
{{- int64 .Values.terminationGracePeriodSeconds -}}
{{- else -}}
{{- fail (printf "terminationGracePeriodSeconds is %q; give whole seconds" (toString .Values.terminationGracePeriodSeconds)) -}}
{{- end -}}
{{- end }}

{{/*
A whole number from the values (a count), checked; "" when unset (empty).
Takes (list name value).
*/}}
{{- define "redhac.count" -}}
{{- $name := index . 0 -}}
{{- $raw := trim (toString (index . 1)) -}}
{{- if and (ne $raw "") (ne $raw "<nil>") -}}
{{- if not (regexMatch "^[0-9]+$" $raw) -}}
{{- fail (printf "%s is %q; give a whole number" $name $raw) -}}
{{- end -}}
{{- $raw -}}
{{- end -}}
{{- end }}

{{/*
A duration of the dynamic mode as redhac reads it (whole seconds, or a whole
number with ms, s, m or h), checked and returned as given; "" when unset.
Takes (list name value).
*/}}
{{- define "redhac.duration" -}}
{{- $name := index . 0 -}}
{{- $raw := trim (toString (index . 1)) -}}
{{- if and (ne $raw "") (ne $raw "<nil>") -}}
{{- if not (regexMatch "^[0-9]+ *(ms|s|m|h)?$" $raw) -}}
{{- fail (printf "%s is %q; give whole seconds, or a duration like 500ms, 10s, 1m" $name $raw) -}}
{{- end -}}
{{- if regexMatch "^0+ *(ms|s|m|h)?$" $raw -}}
{{- fail (printf "%s is %q; give a positive duration" $name $raw) -}}
{{- end -}}
{{- $raw -}}
{{- end -}}
{{- end }}

{{/* A duration checked by "redhac.duration", in milliseconds. */}}
{{- define "redhac.millis" -}}
{{- $n := regexFind "^[0-9]+" . -}}
{{- $unit := trim (trimPrefix $n .) -}}
{{- $per := get (dict "none" 1000 "ms" 1 "s" 1000 "m" 60000 "h" 3600000) (default "none" $unit) -}}
{{- mul (int64 $n) $per -}}
{{- end }}

{{/*
The dynamic mode's settings, checked against the values given (replicaCount
as set here: a later `kubectl scale` is not seen, and need not be), the way
the members would refuse them or a cluster could go wrong. Renders nothing.
*/}}
{{- define "redhac.dynamicChecks" -}}
{{- $replicas := int .Values.replicaCount -}}
{{- if lt $replicas 1 -}}
{{- fail (printf "replicaCount is %d; membership: dynamic needs at least one member (to stop every member, kubectl scale deployment %s --replicas=0)" $replicas (include "redhac.fullname" .)) -}}
{{- end -}}
{{- $expect := int (include "redhac.bootstrapExpect" .) -}}
{{- if le (mul $expect 2) $replicas -}}
{{- fail (printf "dynamic.bootstrapExpect is %d, not above half of replicaCount %d: two clusters could form when the members start (that takes twice bootstrapExpect members started before the first elects a leader). Use at least %d" $expect $replicas (add (div $replicas 2) 1)) -}}
{{- end -}}
{{- if gt $expect $replicas -}}
{{- fail (printf "dynamic.bootstrapExpect is %d, above replicaCount %d: no cluster would form. Use at most %d" $expect $replicas $replicas) -}}
{{- end -}}
{{- $voters := int (include "redhac.voters" .) -}}
{{- if or (lt $voters 1) (gt $voters 9) (eq (mod $voters 2) 0) -}}
{{- fail (printf "dynamic.voters is %d; use 3 or 5 (an odd number from 1 to 9: an even one adds no fault tolerance)" $voters) -}}
{{- end -}}
{{- if gt $voters $replicas -}}
{{- fail (printf "dynamic.voters is %d, above replicaCount %d: the cluster would run short of voters. Use at most %d" $voters $replicas $replicas) -}}
{{- end -}}
{{- /* The autopilot's times: those set, else from the election timeout (2 s). */ -}}
{{- $d := .Values.dynamic -}}
{{- $_ := include "redhac.duration" (list "dynamic.discoverInterval" $d.discoverInterval) -}}
{{- $replace := include "redhac.duration" (list "dynamic.replaceAfter" $d.replaceAfter) | default "10s" | include "redhac.millis" | int64 -}}
{{- $remove := include "redhac.duration" (list "dynamic.removeAfter" $d.removeAfter) | default "60s" | include "redhac.millis" | int64 -}}
{{- $leave := include "redhac.duration" (list "dynamic.leaveTimeout" $d.leaveTimeout) | default "20s" | include "redhac.millis" | int64 -}}
{{- if le $remove $replace -}}
{{- fail (printf "dynamic.removeAfter (%d ms; 60 s when empty) is not above dynamic.replaceAfter (%d ms; 10 s when empty): a silent voter would be removed before a learner takes its place; make removeAfter longer" $remove $replace) -}}
{{- end -}}
{{- /* The preStop sleep (2 s), the leave, about 5 s of handover and shutdown. */ -}}
{{- $grace := int64 (include "redhac.grace" .) -}}
{{- $needed := add 2000 $leave 5000 -}}
{{- if le (mul $grace 1000) $needed -}}
{{- fail (printf "terminationGracePeriodSeconds is %d; a member of the dynamic mode needs more than %d ms to leave: the preStop sleep (2 s), the leave timeout (dynamic.leaveTimeout, %d ms; 20 s when empty) and about 5 s of handover and shutdown. Raise it, or lower dynamic.leaveTimeout" $grace $needed $leave) -}}
{{- end -}}
{{- end }}

{{/* HA_BOOTSTRAP_EXPECT: dynamic.bootstrapExpect, else a majority of replicaCount. */}}
{{- define "redhac.bootstrapExpect" -}}
{{- include "redhac.count" (list "dynamic.bootstrapExpect" .Values.dynamic.bootstrapExpect) | default (add (div (int .Values.replicaCount) 2) 1) -}}
{{- end }}

{{/* HA_VOTERS: dynamic.voters, else 3. */}}
{{- define "redhac.voters" -}}
{{- include "redhac.count" (list "dynamic.voters" .Values.dynamic.voters) | default 3 -}}
{{- end }}
