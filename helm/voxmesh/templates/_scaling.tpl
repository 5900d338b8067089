{{/*
Scaling out (docs/deploy.md, "Scaling"). The gateway places each session on
a stage replica itself (gateway/placement.py), so it must see every replica:
a headless Service per stage gives one DNS record per ready pod, and the
gateway re-resolves dns:///<stage>-replicas:<port> every
scaling.resolveIntervalSeconds. With scaling.headlessStages=false it dials the
stage's ClusterIP Service (one connection: kube-proxy picks one pod per
connection, so sessions spread only as connections age out).
*/}}
{{- define "voxmesh.replicasName" -}}
{{- printf "%s-replicas" (include "voxmesh.stageName" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "voxmesh.stageTarget" -}}
{{- $s := index .ctx.Values .stage -}}
{{- if .ctx.Values.scaling.headlessStages -}}
{{- printf "dns:///%s:%v" (include "voxmesh.replicasName" .) $s.port -}}
{{- else -}}
{{- include "voxmesh.stageAddr" . -}}
{{- end -}}
{{- end -}}
