{{/* The four stages, in start order. */}}
{{- define "voxmesh.stages" -}}
vad voxtral orpheus gateway
{{- end -}}

{{- define "voxmesh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "voxmesh.fullname" -}}
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

{{- define "voxmesh.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "voxmesh.labels" -}}
helm.sh/chart: {{ include "voxmesh.chart" . }}
app.kubernetes.io/name: {{ include "voxmesh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: voxmesh
{{- end -}}

{{/* Selector labels of one stage: (dict "ctx" $ "stage" "vad") */}}
{{- define "voxmesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "voxmesh.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .stage }}
{{- end -}}

{{- define "voxmesh.stageName" -}}
{{- printf "%s-%s" (include "voxmesh.fullname" .ctx) .stage | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "voxmesh.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "voxmesh.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "voxmesh.secretName" -}}
{{- default (printf "%s-secrets" (include "voxmesh.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* true when a stage runs on a GPU: voxtral/orpheus with gpu.enabled. */}}
{{- define "voxmesh.onGpu" -}}
{{- if and .ctx.Values.gpu.enabled (has .stage (list "voxtral" "orpheus")) -}}true{{- end -}}
{{- end -}}

{{- define "voxmesh.image" -}}
{{- $img := ternary .ctx.Values.image.gpu .ctx.Values.image.cpu (eq (include "voxmesh.onGpu" .) "true") -}}
{{- printf "%s:%s" $img.repository $img.tag -}}
{{- end -}}

{{- define "voxmesh.engine" -}}
{{- $s := index .ctx.Values .stage -}}
{{- if $s.engine -}}
{{- $s.engine -}}
{{- else if eq .stage "voxtral" -}}
{{- ternary "vllm" "echo" .ctx.Values.gpu.enabled -}}
{{- else if eq .stage "orpheus" -}}
{{- ternary "vllm" "espeak" .ctx.Values.gpu.enabled -}}
{{- end -}}
{{- end -}}

{{/* gRPC address of a stage inside the cluster. */}}
{{- define "voxmesh.stageAddr" -}}
{{- $s := index .ctx.Values .stage -}}
{{- printf "%s:%v" (include "voxmesh.stageName" .) $s.port -}}
{{- end -}}

{{/* voxtral and orpheus get a volume at /models whatever modelCache.type: HF_HOME and the
vLLM, Triton, inductor and FlashInfer caches the images point there must be writable
under the read-only root filesystem (type none: a per-pod emptyDir). */}}
{{- define "voxmesh.usesModels" -}}
{{- if has .stage (list "voxtral" "orpheus") -}}true{{- end -}}
{{- end -}}

{{/* The gateway's session limit as it is rendered: gateway.maxSessions, else the GPU
memory profile's, else empty (the service default). The Realtime edge defaults to it:
each WebSocket is one gateway session, so more sockets than that only wait to be refused. */}}
{{- define "voxmesh.gatewayMaxSessions" -}}
{{- $v := .Values.gateway.maxSessions -}}
{{- if or $v (kindIs "float64" $v) (kindIs "int64" $v) -}}
{{- $v -}}
{{- else if .Values.gpu.enabled -}}
{{- $profile := index .Values.gpu.memoryProfiles .Values.gpu.memoryProfile | default dict -}}
{{- index $profile "VOXMESH_GATEWAY_MAX_SESSIONS" | default "" -}}
{{- end -}}
{{- end -}}

{{/* How a probe reaches a stage's health service: a native gRPC probe, or over
mutual TLS (which native probes cannot speak) `voxmesh health` with the pod's
own certificate. (dict "ctx" $ "stage" "vad") */}}
{{- define "voxmesh.probe" -}}
{{- $s := index .ctx.Values .stage -}}
{{- if and .ctx.Values.tls.enabled (ne .stage "gateway") -}}
exec:
  command: ["voxmesh", "health", "127.0.0.1:{{ $s.port }}", "--tls-ca=/etc/voxmesh/tls/ca.crt", "--tls-cert=/etc/voxmesh/tls/tls.crt", "--tls-key=/etc/voxmesh/tls/tls.key", "--tls-server-name={{ .ctx.Values.tls.serverName }}"]
{{- else -}}
grpc:
  port: {{ $s.port }}
{{- if and .liveness (eq .stage "gateway") }}
  # Alive is not ready: "" says NOT_SERVING while a stage is unusable
  # (voxmesh.gateway.stage_check), and a restart would not bring the stage back.
  service: liveness
{{- end -}}
{{- end -}}
{{- end -}}
