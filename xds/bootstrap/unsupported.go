package bootstrap

import (
	"fmt"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// fieldSupport says, for the bootstrap-level messages, which fields wasmesh
// implements ("ok"), accepts without effect because they concern Envoy's
// process internals ("noop"), or rejects with a reason. Resources inside
// static_resources are checked by their own compilers (listener, cluster,
// route), which name their fields the same way. A field missing from a
// listed message is rejected as not implemented.
var fieldSupport = map[protoreflect.FullName]map[protoreflect.Name]string{
	"envoy.config.bootstrap.v3.Bootstrap": {
		"node":                          "ok",
		"node_context_params":           "noop",
		"static_resources":              "ok",
		"admin":                         "ok",
		"layered_runtime":               "ok",
		"stats_config":                  "ok",
		"stats_flush_interval":          "ok",
		"bootstrap_extensions":          "ok",
		"watchdog":                      "noop",
		"watchdogs":                     "noop",
		"enable_dispatcher_stats":       "noop",
		"fatal_actions":                 "noop",
		"stats_server_version_override": "ok",
		"use_tcp_for_dns_lookups":       "ok",
		"dns_resolution_config":         "ok",
		"default_regex_engine":          "ok",
		"application_log_config":        "noop",
		"memory_allocator_manager":      "noop",
		"enable_worker_cpu_affinity":    "noop",
		"cluster_manager":               "ok",
		"hds_config":                    "health discovery (HDS) is not supported",
		"dynamic_resources":             "ok",
	},
	"envoy.config.bootstrap.v3.Bootstrap.StaticResources": {
		"listeners": "ok",
		"clusters":  "ok",
		"secrets":   "ok",
	},
	"envoy.config.bootstrap.v3.ClusterManager": {
		"local_cluster_name":   "ok",
		"outlier_detection":    "noop",
		"upstream_bind_config": "upstream_bind_config is not supported",
		"load_stats_config":    "load reporting (LRS) is not supported",
	},
	"envoy.config.bootstrap.v3.Admin": {
		"address":                  "ok",
		"access_log":               "ok",
		"access_log_path":          "ok",
		"profile_path":             "noop",
		"ignore_global_conn_limit": "noop",
	},
}

// Unsupported lists every set field of the bootstrap-level messages that
// wasmesh does not implement, each naming its path.
func Unsupported(b *bootstrapv3.Bootstrap) []error {
	var errs []error
	checkFields(b.ProtoReflect(), "", &errs)
	return errs
}

func checkFields(m protoreflect.Message, path string, errs *[]error) {
	support, listed := fieldSupport[m.Descriptor().FullName()]
	if !listed {
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := joinPath(path, string(fd.Name()))
		verdict, ok := support[fd.Name()]
		switch {
		case !ok:
			*errs = append(*errs, fmt.Errorf("%s: not implemented by wasmesh", p))
			return true
		case verdict != "ok" && verdict != "noop":
			*errs = append(*errs, fmt.Errorf("%s: %s", p, verdict))
			return true
		}
		if fd.Message() != nil && !fd.IsList() && !fd.IsMap() {
			checkFields(v.Message(), p, errs)
		}
		return true
	})
}
