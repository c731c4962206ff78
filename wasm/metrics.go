package wasm

import "sync"

// MetricRegistry holds the metrics plugins define.
// TODO(metrics helper): host functions.
type MetricRegistry struct {
	mu sync.Mutex
}

// NewMetricRegistry returns an empty registry.
func NewMetricRegistry() *MetricRegistry { return &MetricRegistry{} }

func metricFuncs() []hostFunc { return nil }
