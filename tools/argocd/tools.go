//go:build tools

// Package tools pins Argo CD's command for tools/build-argocd.sh.
package tools

import _ "github.com/argoproj/argo-cd/v3/cmd"
