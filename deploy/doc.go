// Package deploy holds ctwatch's deployment files: the systemd unit and
// its example environment file (systemd/), Kubernetes manifests
// (kubernetes/), Prometheus rules (prometheus/) and the Debian package
// definition (nfpm.yaml, built by scripts/package).
//
// It has no code. Its tests check that the files keep the promises the
// README makes for them: the unit's hardening, the pod's capabilities,
// the PrometheusRule generated from the rules file (go test ./deploy
// -update regenerates it), and that the package installs.
package deploy
