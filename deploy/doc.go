// Package deploy holds hookmail's deployment artefacts (Dockerfile, compose
// file, systemd unit, Kubernetes manifests, Prometheus rules, Grafana
// dashboard) and, in its tests, the checks that keep them true to hookmail:
// the metrics they name exist, the config they carry loads and validates,
// the env vars they set are config keys, and promtool and systemd-analyze
// accept the rules and the unit. It has no code of its own.
package deploy
