{{/*
Labels. Object names are fixed (vramfit-agent, vramfit-scheduler, ...): the agent's Lease name,
its service-account name in the admission policy and the extender's view of the agents all
depend on them, so the chart installs once per cluster, as deploy/ does.
*/}}

{{- define "vramfit.chart" -}}
{{ .Chart.Name }}-{{ .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* Labels of every object; "component" is the app.kubernetes.io/name, when there is one. */}}
{{- define "vramfit.labels" -}}
app.kubernetes.io/part-of: vramfit
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ include "vramfit.chart" .root }}
{{- with .component }}
app.kubernetes.io/name: {{ . }}
{{- end }}
{{- end }}

{{/* The vramfit image, its tag defaulting to the chart's appVersion. */}}
{{- define "vramfit.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The extender's scheduler verbs: http or https. */}}
{{- define "vramfit.extenderScheme" -}}
{{ ternary "https" "http" .Values.extender.tls.enabled }}
{{- end }}

{{/* Where the TLS Secret is mounted in the extender and kube-scheduler containers. */}}
{{- define "vramfit.tlsDir" -}}
/etc/vramfit-tls
{{- end }}

{{/* The extender's own flags (both modes); "listen" is its scheduler-verb listener. */}}
{{- define "vramfit.extenderArgs" -}}
- --listen={{ .listen }}
# Probes and Prometheus: /healthz, /readyz and /metrics only.
- --metrics-listen=0.0.0.0:{{ .root.Values.extender.metricsPort }}
- --policy={{ .root.Values.extender.policy }}
- --mode={{ .root.Values.extender.mode }}
{{- if .root.Values.extender.nominateAhead }}
- --nominate-ahead
{{- end }}
{{- if ne .root.Values.extender.nvlink "preferred" }}
- --nvlink={{ .root.Values.extender.nvlink }}
{{- end }}
{{- if ne .root.Release.Namespace "vramfit-system" }}
- --agent-namespace={{ .root.Release.Namespace }}
{{- end }}
{{- if ne .root.Values.extender.logLevel "info" }}
- --log-level={{ .root.Values.extender.logLevel }}
{{- end }}
{{- if .root.Values.extender.tls.enabled }}
- --tls-cert={{ include "vramfit.tlsDir" .root }}/tls.crt
- --tls-key={{ include "vramfit.tlsDir" .root }}/tls.key
{{- end }}
{{- with .root.Values.extender.extraArgs }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The extender container (both modes). */}}
{{- define "vramfit.extenderContainer" -}}
{{- if eq (int .root.Values.extender.port) (int .root.Values.extender.metricsPort) }}
{{- fail "extender.port and extender.metricsPort must differ: the scheduler verbs and the probes have listeners of their own" }}
{{- end -}}
- name: extender
  image: {{ include "vramfit.image" .root }}
  {{- if ne .root.Values.image.pullPolicy "IfNotPresent" }}
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  {{- end }}
  command:
  - vramfit-extender
  {{- include "vramfit.extenderArgs" . | nindent 2 }}
  ports:
  {{- if .servicePort }}
  - name: scheduler
    containerPort: {{ .root.Values.extender.port }}
  {{- end }}
  - name: metrics
    containerPort: {{ .root.Values.extender.metricsPort }}
  livenessProbe:
    httpGet: {path: /healthz, port: {{ .root.Values.extender.metricsPort }}}
    initialDelaySeconds: 10
  # Not ready until every reservation is rebuilt from pods.
  readinessProbe:
    httpGet: {path: /readyz, port: {{ .root.Values.extender.metricsPort }}}
    periodSeconds: 5
  resources:
    {{- toYaml .root.Values.extender.resources | nindent 4 }}
  securityContext:
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    runAsNonRoot: true
    runAsUser: 65532
    capabilities: {drop: [ALL]}
  volumeMounts:
  - name: tmp
    mountPath: /tmp
  {{- if .root.Values.extender.tls.enabled }}
  - name: tls
    mountPath: {{ include "vramfit.tlsDir" .root }}
    readOnly: true
  {{- end }}
{{- end }}

{{/* The `extenders` entry of a KubeSchedulerConfiguration that calls vramfit at "url". */}}
{{- define "vramfit.extenderEntry" -}}
- urlPrefix: {{ .url }}
  filterVerb: filter
  # Only called in --mode all-feasible: in the default mode filter returns one node, and
  # kube-scheduler does not score a single feasible node.
  prioritizeVerb: prioritize
  weight: {{ .root.Values.extender.weight }}
  bindVerb: bind
  # kube-scheduler counts whole GPUs when it preempts; the extender keeps only the nodes
  # where the pod fits by VRAM once the victims are gone, and only the victims it needs.
  preemptVerb: preempt
  enableHTTPS: {{ .root.Values.extender.tls.enabled }}
  {{- if .root.Values.extender.tls.enabled }}
  tlsConfig:
    caFile: {{ .caFile }}
    serverName: {{ .root.Values.extender.tls.serverName }}
  {{- end }}
  # Node names only: the extender keeps its own view of the nodes from watches.
  nodeCacheCapable: true
  # Filter and bind fail the pod's attempt when they time out (it is retried).
  httpTimeout: {{ .root.Values.extender.httpTimeout }}
  ignorable: {{ .root.Values.extender.ignorable }}
  {{- if .managed }}
  managedResources:
  # In the cluster's own scheduler only pods that request nvidia.com/gpu reach the extender
  # (kube-scheduler reads containers[].resources, never resources.claims: a pod that claims
  # its GPUs through a DRA ResourceClaim does not). The scheduler still counts whole GPUs
  # per node itself (ignoredByScheduler: false), a second safety net.
  - name: nvidia.com/gpu
    ignoredByScheduler: false
  {{- else }}
  # No managedResources: every pod of this profile reaches the extender, which passes a pod
  # without GPU demand untouched. With managedResources, kube-scheduler calls the extender
  # only for pods whose containers request or limit one of them (HTTPExtender.IsInterested
  # reads containers[].resources, never resources.claims), so a pod that claims its GPUs
  # through a ResourceClaim (DRA) would never reach it. kube-scheduler still counts whole
  # nvidia.com/gpu per node itself (nothing sets ignoredByScheduler), a second safety net.
  {{- end }}
{{- end }}

{{/* Pod placement of the extender's pods (both modes). */}}
{{- define "vramfit.extenderPlacement" -}}
priorityClassName: {{ .Values.extender.priorityClassName }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.extender.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.extender.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
