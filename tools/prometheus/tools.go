//go:build tools

// Package tools pins github.com/prometheus/prometheus so
// tools/build-prometheus.sh can build its cmd/promtool and cmd/prometheus
// from this module (go.mod/go.sum are the pin).
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
