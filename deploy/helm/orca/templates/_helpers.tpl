{{/* The name every object starts with: the release's name ("orca" -> orca-worker, orca-watcher). */}}
{{- define "orca.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object; the selector labels are the kustomize base's. */}}
{{- define "orca.labels" -}}
app.kubernetes.io/name: orca
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: orca
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "orca.selectorLabels" -}}
app.kubernetes.io/name: orca
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "orca.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "orca.nodeName" -}}
{{ .Values.config.node.name | default "orca-aws-node" }}
{{- end -}}

{{- define "orca.leaseName" -}}
{{ (.Values.config.watcher.leaderElection).leaseName | default "orca-watcher" }}
{{- end -}}

{{/* The port of config.temporal.address (host:port). */}}
{{- define "orca.temporalPort" -}}
{{ regexFind "[0-9]+$" (.Values.config.temporal.address | default "localhost:7233") }}
{{- end -}}

{{/* The restricted Pod Security Standard, for both processes. */}}
{{- define "orca.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "orca.containerSecurityContext" -}}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The Temporal connection (the kustomize components temporal-mtls, temporal-private-ca and
temporal-cloud-api-key), as env entries; "orca.temporalMounts" and "orca.temporalVolumes" mount
the TLS Secret outside the read-only /etc/orca. */}}
{{- define "orca.temporalEnv" -}}
{{- with .Values.temporalTLS }}
{{- if .secretName }}
- name: ORCA_TEMPORAL__TLS__ENABLED
  value: "true"
{{- if .clientCertificate }}
- name: ORCA_TEMPORAL__TLS__CLIENT_CERT_PATH
  value: /etc/orca-tls/temporal/tls.crt
- name: ORCA_TEMPORAL__TLS__CLIENT_KEY_PATH
  value: /etc/orca-tls/temporal/tls.key
{{- end }}
{{- if .privateCA }}
- name: ORCA_TEMPORAL__TLS__SERVER_ROOT_CA_PATH
  value: /etc/orca-tls/temporal/ca.crt
{{- end }}
{{- end }}
{{- end }}
{{- with .Values.temporalAPIKey }}
{{- if .secretName }}
- name: ORCA_TEMPORAL__API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .key }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "orca.temporalMounts" -}}
{{- if .Values.temporalTLS.secretName }}
- name: temporal-tls
  mountPath: /etc/orca-tls/temporal
  readOnly: true
{{- end }}
{{- end -}}

{{- define "orca.temporalVolumes" -}}
{{- if .Values.temporalTLS.secretName }}
- name: temporal-tls
  secret:
    secretName: {{ .Values.temporalTLS.secretName }}
    defaultMode: 0440
{{- end }}
{{- end -}}
