{{/* Names, labels and the pieces every pod shares. */}}

{{- define "aip.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name, kept short enough for "-dask-scheduler" and friends to stay within 63. */}}
{{- define "aip.fullname" -}}
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

{{- define "aip.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "aip.labels" -}}
helm.sh/chart: {{ include "aip.chart" . }}
app.kubernetes.io/name: {{ include "aip.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: airflow-imaging-privacy
{{- end -}}

{{/* Selector labels of one component: include "aip.selectorLabels" (list . "dask-scheduler") */}}
{{- define "aip.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "aip.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "aip.schedulerName" -}}
{{- printf "%s-dask-scheduler" (include "aip.fullname" .) -}}
{{- end -}}

{{- define "aip.workerName" -}}
{{- printf "%s-dask-worker" (include "aip.fullname" .) -}}
{{- end -}}

{{- define "aip.settingsName" -}}
{{- printf "%s-settings" (include "aip.fullname" .) -}}
{{- end -}}

{{- define "aip.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "aip.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The scheduler's address as clients in any namespace of the cluster reach it. */}}
{{- define "aip.schedulerAddress" -}}
{{- printf "tcp://%s.%s.svc:%v" (include "aip.schedulerName" .) .Release.Namespace .Values.dask.scheduler.port -}}
{{- end -}}

{{- define "aip.image" -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- end -}}

{{/* Refuse port collisions: the scheduler, worker, nanny and dashboards each need their own port. */}}
{{- define "aip.checkPorts" -}}
{{- $s := .Values.dask.scheduler -}}
{{- $w := .Values.dask.worker -}}
{{- if eq (int $s.port) (int $s.dashboardPort) -}}
{{- fail (printf "dask.scheduler.port and dask.scheduler.dashboardPort are both %v; give the dashboard its own port, e.g. 8787" $s.port) -}}
{{- end -}}
{{- $ports := list (int $w.port) (int $w.nannyPort) (int $w.dashboardPort) -}}
{{- if ne (len (uniq $ports)) 3 -}}
{{- fail (printf "dask.worker.port (%v), dask.worker.nannyPort (%v) and dask.worker.dashboardPort (%v) must differ, e.g. 8789, 8790 and 8788" $w.port $w.nannyPort $w.dashboardPort) -}}
{{- end -}}
{{- end -}}

{{/* Pod-level security: never root, the runtime's default seccomp profile, no API token. */}}
{{- define "aip.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level security: read-only root file system (writes go to the /tmp emptyDir). */}}
{{- define "aip.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Environment every Dask container shares. */}}
{{- define "aip.daskEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: DASK_TEMPORARY_DIRECTORY
  value: /tmp
{{- end -}}

{{/* Where every pod that reads the pseudonym key finds it (a Secret volume, never an environment variable). */}}
{{- define "aip.keyFile" -}}
/run/secrets/imaging-privacy/pseudonym.key
{{- end -}}

{{/* The preflight script: the two Connections load through the provider's own hooks (as Airflow's tasks
will load them), the ledger is PostgreSQL, and opening it creates or completes its schema. */}}
{{- define "aip.preflightScript" -}}
import sys

from operators.hooks.ledger import PrivacyLedgerHook
from operators.hooks.pseudonym_key import PseudonymKeyHook
from privacy_core.dp.ledger import open_ledger, redact_url

url = PrivacyLedgerHook().ledger_url()
if not url.startswith("postgresql://"):
    sys.exit(
        f"the ledger Connection resolves to {redact_url(url)!r}: pods on several machines can share the "
        "privacy-budget ledger only on PostgreSQL; put "
        "imaging-privacy-ledger://USER:PASSWORD@HOST:5432/DATABASE?schema=privacy_ledger in that Secret"
    )
with open_ledger(url) as ledger:
    print(f"ledger ready at {ledger.url}: tables and append-only triggers in place")
key = PseudonymKeyHook().get_conn()
print(f"pseudonym key loaded, fingerprint {key.fingerprint}")
{{- end -}}
