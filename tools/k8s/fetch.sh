#!/usr/bin/env bash
# Helm and the CRDs the chart tests validate against, from the Go module proxy, cached under
# .cache/k8s/ (like the Kafka jars under .cache/kafka/). Needs Go; nothing else.
#
#   tools/k8s/fetch.sh          build helm and fetch the CRDs (once; later runs reuse them)
#   tools/k8s/fetch.sh paths    print HELM=... and one NAME_CRD=... line per CRD file
#
# Versions: helm v3.22.0; KEDA v2.21.0 (ScaledObject, TriggerAuthentication); prometheus-operator
# v0.85.0 (ServiceMonitor; the newest root-module version the Go proxy serves).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
KEDA_VERSION="${KEDA_VERSION:-v2.21.0}"
PROM_OPERATOR_VERSION="${PROM_OPERATOR_VERSION:-v0.85.0}"
CACHE="${K8S_CACHE_DIR:-${REPO_ROOT}/.cache/k8s}"
HELM_DIR="${CACHE}/helm-${HELM_VERSION}"
CRD_DIR="${CACHE}/crds"
HELM="${HELM_DIR}/helm"
SCALEDOBJECT_CRD="${CRD_DIR}/keda-${KEDA_VERSION}-scaledobjects.yaml"
TRIGGERAUTHENTICATION_CRD="${CRD_DIR}/keda-${KEDA_VERSION}-triggerauthentications.yaml"
SERVICEMONITOR_CRD="${CRD_DIR}/prometheus-operator-${PROM_OPERATOR_VERSION}-servicemonitors.yaml"

die() {
    echo "tools/k8s/fetch.sh: $*" >&2
    exit 1
}

paths() {
    echo "HELM=${HELM}"
    echo "SCALEDOBJECT_CRD=${SCALEDOBJECT_CRD}"
    echo "TRIGGERAUTHENTICATION_CRD=${TRIGGERAUTHENTICATION_CRD}"
    echo "SERVICEMONITOR_CRD=${SERVICEMONITOR_CRD}"
}

# The directory a Go module was unpacked to (go mod download works outside any module).
module_dir() {
    (cd "${CACHE}" && go mod download -json "$1") \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p'
}

fetch() {
    command -v go >/dev/null || die "Go is not installed (https://go.dev/dl/); it builds helm"
    mkdir -p "${HELM_DIR}" "${CRD_DIR}"
    if [[ ! -x "${HELM}" ]]; then
        echo "building helm ${HELM_VERSION} from the Go module proxy (about 100 s)..." >&2
        GOBIN="${HELM_DIR}" GOFLAGS=-buildvcs=false go install "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
    fi
    if [[ ! -s "${SCALEDOBJECT_CRD}" || ! -s "${TRIGGERAUTHENTICATION_CRD}" ]]; then
        dir="$(module_dir "github.com/kedacore/keda/v2@${KEDA_VERSION}")"
        [[ -n "${dir}" ]] || die "go mod download gave no directory for KEDA ${KEDA_VERSION}"
        cp "${dir}/config/crd/bases/keda.sh_scaledobjects.yaml" "${SCALEDOBJECT_CRD}"
        cp "${dir}/config/crd/bases/keda.sh_triggerauthentications.yaml" \
            "${TRIGGERAUTHENTICATION_CRD}"
    fi
    if [[ ! -s "${SERVICEMONITOR_CRD}" ]]; then
        dir="$(module_dir "github.com/prometheus-operator/prometheus-operator@${PROM_OPERATOR_VERSION}")"
        [[ -n "${dir}" ]] || die "go mod download gave no directory for prometheus-operator"
        cp "${dir}/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" \
            "${SERVICEMONITOR_CRD}"
    fi
    chmod -R u+w "${CRD_DIR}"  # the module cache is read-only; the copies need not be
}

case "${1:-fetch}" in
    fetch) fetch && paths ;;
    paths) paths ;;
    *) die "unknown command $1 (fetch, paths)" ;;
esac
