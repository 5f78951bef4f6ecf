{{/* The web UI (`logship ui`): names, environment and the checks of its values. */}}

{{- define "logship.ui.fullname" -}}{{ include "logship.fullname" . }}-ui{{- end -}}

{{/* Environment from Secrets and extras: secrets only ever through secretKeyRef. The UI gets
     no AWS keys (it reads no lake); AWS_REGION only, for Redshift IAM authentication. */}}
{{- define "logship.ui.env" -}}
{{- $v := .Values.ui -}}
- name: LOGSHIP_WAREHOUSE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $v.warehouse.existingSecret | quote }}
      key: {{ $v.warehouse.existingSecretKey | quote }}
{{- with $v.tokens.existingSecret }}
- name: LOGSHIP_UI_TOKENS
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $v.tokens.existingSecretKey | quote }}
{{- end }}
{{- with .Values.aws.region }}
- name: AWS_REGION
  value: {{ . | quote }}
- name: AWS_DEFAULT_REGION
  value: {{ . | quote }}
{{- end }}
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The UI reads with its own, read-only warehouse user: refuse the loader's Secret key. */}}
{{- define "logship.ui.checks" -}}
{{- $ui := .Values.ui.warehouse -}}
{{- $loader := .Values.loader.warehouse -}}
{{- if and .Values.loader.enabled (eq $ui.existingSecret $loader.existingSecret) (eq $ui.existingSecretKey $loader.existingSecretKey) -}}
{{- fail (printf "ui.warehouse names the loader's warehouse URL (Secret %q, key %q): give the UI a read-only Redshift user's URL in its own Secret or key (the chart README's \"The web UI\" lists the GRANTs)" $ui.existingSecret $ui.existingSecretKey) -}}
{{- end -}}
{{- end -}}
