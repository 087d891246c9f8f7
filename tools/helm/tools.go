//go:build tools

// Package tools pins helm.sh/helm/v3 so tools/build-helm.sh can build
// helm.sh/helm/v3/cmd/helm from this module (go.mod/go.sum are the pin).
package tools

import _ "helm.sh/helm/v3/cmd/helm"
