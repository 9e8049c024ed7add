{{/*
The pod spec, the same for the StatefulSet and the Deployment but for the
members' variables (HA_HOSTS, or HA_DISCOVER and the dynamic mode's) and the
grace period's default. Included at the template's spec (nindent 6).
*/}}
{{- define "redhac.pod" -}}
terminationGracePeriodSeconds: {{ include "redhac.grace" . }}
securityContext:
  runAsNonRoot: true
  runAsUser: 65534
  runAsGroup: 65534
  seccompProfile:
    type: RuntimeDefault
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "redhac.selector" . | nindent 8 }}
containers:
  - name: redhac
    image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    ports:
      - name: cluster
        containerPort: {{ .Values.clusterPort }}
      - name: http
        containerPort: {{ .Values.httpPort }}
    env:
      {{- if include "redhac.dynamic" . }}
      {{- $d := .Values.dynamic }}
      # Before HA_ADVERTISE: Kubernetes expands $(POD_IP) only from
      # variables defined earlier in the list.
      - name: POD_IP
        valueFrom:
          fieldRef:
            fieldPath: status.podIP
      - name: HA_MODE
        value: "true"
      - name: HA_DISCOVER
        value: "{{ ternary "https" "http" .Values.tls.enabled }}://{{ include "redhac.peers" . }}:{{ .Values.clusterPort }}"
      - name: HA_ADVERTISE
        value: "$(POD_IP)"
      - name: HA_BOOTSTRAP_EXPECT
        value: {{ include "redhac.bootstrapExpect" . | quote }}
      - name: HA_VOTERS
        value: {{ include "redhac.voters" . | quote }}
      {{- with include "redhac.duration" (list "dynamic.discoverInterval" $d.discoverInterval) }}
      - name: HA_DISCOVER_INTERVAL
        value: {{ . | quote }}
      {{- end }}
      {{- with include "redhac.duration" (list "dynamic.replaceAfter" $d.replaceAfter) }}
      - name: HA_REPLACE_AFTER
        value: {{ . | quote }}
      {{- end }}
      {{- with include "redhac.duration" (list "dynamic.removeAfter" $d.removeAfter) }}
      - name: HA_REMOVE_AFTER
        value: {{ . | quote }}
      {{- end }}
      {{- with include "redhac.duration" (list "dynamic.leaveTimeout" $d.leaveTimeout) }}
      - name: HA_LEAVE_TIMEOUT
        value: {{ . | quote }}
      {{- end }}
      {{- else }}
      - name: POD_NAME
        valueFrom:
          fieldRef:
            fieldPath: metadata.name
      - name: HA_MODE
        value: "true"
      - name: HA_HOSTS
        value: {{ include "redhac.hosts" . | quote }}
      - name: HOSTNAME_OVERWRITE
        value: "$(POD_NAME).{{ .Release.Name }}"
      {{- end }}
      - name: NODE_HTTP_ADDR
        value: "0.0.0.0:{{ .Values.httpPort }}"
      - name: NODE_CACHE_MAX_BYTES
        value: {{ .Values.cacheMaxBytes | int64 | toString | quote }}
      - name: CACHE_AUTH_TOKEN
        valueFrom:
          secretKeyRef:
            name: {{ .Values.auth.secretName }}
            key: CACHE_AUTH_TOKEN
      - name: CACHE_AUTH_TOKEN_PREVIOUS
        valueFrom:
          secretKeyRef:
            name: {{ .Values.auth.secretName }}
            key: CACHE_AUTH_TOKEN_PREVIOUS
            optional: true
      - name: CACHE_TLS
        value: {{ .Values.tls.enabled | toString | quote }}
      {{- if .Values.tls.enabled }}
      - name: CACHE_TLS_SERVER_CERT
        value: /tls/redhac.cert-chain.pem
      - name: CACHE_TLS_SERVER_KEY
        value: /tls/redhac.key.pem
      - name: CACHE_TLS_CA_SERVER
        value: /tls/ca-chain.cert.pem
      - name: CACHE_TLS_CA_CLIENT
        value: /tls/ca-chain.cert.pem
      - name: CACHE_TLS_CLIENT_CERT
        value: /tls/redhac.cert-chain.pem
      - name: CACHE_TLS_CLIENT_KEY
        value: /tls/redhac.key.pem
      - name: CACHE_TLS_CLIENT_VALIDATE_DOMAIN
        value: {{ .Values.tls.validateDomain | quote }}
    volumeMounts:
      - name: tls
        mountPath: /tls
        readOnly: true
      {{- end }}
    readinessProbe:
      httpGet:
        path: /health/ready
        port: http
      periodSeconds: 2
      failureThreshold: 2
    livenessProbe:
      httpGet:
        path: /health/live
        port: http
      periodSeconds: 10
      failureThreshold: 3
    lifecycle:
      preStop:
        sleep:
          seconds: 2
    resources:
      requests:
        cpu: {{ .Values.cpuRequest }}
        memory: {{ include "redhac.memory" . }}
      limits:
        memory: {{ include "redhac.memory" . }}
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities:
        drop: ["ALL"]
{{- if .Values.tls.enabled }}
volumes:
  - name: tls
    secret:
      secretName: {{ .Values.tls.secretName }}
{{- end }}
{{- end }}
