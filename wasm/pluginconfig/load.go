package pluginconfig

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/wasmesh/wasmesh/wasm"
)

// RemoteFetcher fetches vm_config.code.remote through a cluster (the data
// plane implements it). Nil rejects remote code.
type RemoteFetcher interface {
	Fetch(ctx context.Context, cluster, uri string, timeoutMillis int64, retries uint32) ([]byte, error)
}

// Options are the process-level settings a plugin is loaded with.
type Options struct {
	// Instances per VM (Envoy's --concurrency); 0 means the CPU count.
	Instances int
	// Remote fetches remote code; nil rejects it.
	Remote RemoteFetcher
	// LookupEnv reads the host environment for host_env_keys (os.LookupEnv
	// by default).
	LookupEnv func(string) (string, bool)
	// ReadFile reads code.local.filename (os.ReadFile by default).
	ReadFile func(string) ([]byte, error)
	// Properties answers root-context properties (node, xds...).
	Properties wasm.Properties
}

// Loaded is a plugin running on its VM. Close releases both.
type Loaded struct {
	Plugin *wasm.Plugin
	VM     *wasm.VM
}

// Close stops the plugin and releases the VM reference.
func (l *Loaded) Close() {
	ctx := context.Background()
	l.Plugin.Close(ctx)
	l.VM.Close(ctx)
}

// supportedRuntimes are Envoy's runtime names; all run on wazero here.
var supportedRuntimes = map[string]bool{
	"":                            true,
	"envoy.wasm.runtime.v8":       true,
	"envoy.wasm.runtime.wamr":     true,
	"envoy.wasm.runtime.wasmtime": true,
	"envoy.wasm.runtime.wavm":     true,
	"envoy.wasm.runtime.wazero":   true,
}

// Load validates pc, loads its code, and starts the plugin. Errors name the
// field (e.g. "vm_config.code.local.filename: open ...").
func Load(ctx context.Context, rt *wasm.Runtime, pc *wasmv3.PluginConfig, opts Options) (*Loaded, error) {
	if pc == nil {
		return nil, errors.New("config: missing")
	}
	if pc.GetCapabilityRestrictionConfig() != nil {
		return nil, errors.New("capability_restriction_config: not supported")
	}
	if pc.GetReloadConfig() != nil && pc.GetFailurePolicy() != wasmv3.FailurePolicy_FAIL_RELOAD {
		return nil, errors.New("reload_config: only meaningful with failure_policy FAIL_RELOAD")
	}
	vmc := pc.GetVmConfig()
	if vmc == nil {
		if pc.GetVm() != nil {
			return nil, errors.New("vm: only vm_config is supported")
		}
		return nil, errors.New("vm_config: missing")
	}
	if !supportedRuntimes[vmc.GetRuntime()] {
		if vmc.GetRuntime() == "envoy.wasm.runtime.null" {
			return nil, fmt.Errorf("vm_config.runtime: %q runs native C++ plugins compiled into Envoy; wasmesh runs .wasm code only", vmc.GetRuntime())
		}
		return nil, fmt.Errorf("vm_config.runtime: unknown runtime %q", vmc.GetRuntime())
	}
	if vmc.GetCapabilityRestrictionConfig() != nil {
		return nil, errors.New("vm_config.capability_restriction_config: not supported")
	}
	code, err := loadCode(ctx, vmc, opts)
	if err != nil {
		return nil, err
	}
	vmConf, err := AnyToBytes(vmc.GetConfiguration())
	if err != nil {
		return nil, fmt.Errorf("vm_config.configuration: %w", err)
	}
	env, err := environment(vmc.GetEnvironmentVariables(), opts)
	if err != nil {
		return nil, fmt.Errorf("vm_config.environment_variables: %w", err)
	}
	pluginConf, err := AnyToBytes(pc.GetConfiguration())
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	vm, err := rt.VM(ctx, wasm.VMConfig{
		ID:            vmc.GetVmId(),
		Code:          code,
		Configuration: vmConf,
		Env:           env,
		Instances:     opts.Instances,
	})
	if err != nil {
		return nil, fmt.Errorf("vm_config: %w", err)
	}
	plugin, err := vm.NewPlugin(ctx, wasm.PluginConfig{
		Name:          pc.GetName(),
		RootID:        pc.GetRootId(),
		Configuration: pluginConf,
		FailurePolicy: FailurePolicy(pc),
		Properties:    opts.Properties,
	})
	if err != nil {
		vm.Close(ctx)
		return nil, fmt.Errorf("plugin %q: %w", pc.GetName(), err)
	}
	return &Loaded{Plugin: plugin, VM: vm}, nil
}

// FailurePolicy maps fail_open and failure_policy (which wins when set).
func FailurePolicy(pc *wasmv3.PluginConfig) wasm.FailurePolicy {
	switch pc.GetFailurePolicy() {
	case wasmv3.FailurePolicy_FAIL_OPEN:
		return wasm.FailOpen
	case wasmv3.FailurePolicy_FAIL_RELOAD:
		return wasm.FailReload
	case wasmv3.FailurePolicy_FAIL_CLOSED:
		return wasm.FailClosed
	}
	if pc.GetFailOpen() {
		return wasm.FailOpen
	}
	return wasm.FailClosed
}

func loadCode(ctx context.Context, vmc *wasmv3.VmConfig, opts Options) ([]byte, error) {
	src := vmc.GetCode()
	if src == nil {
		return nil, errors.New("vm_config.code: missing")
	}
	if local := src.GetLocal(); local != nil {
		switch {
		case local.GetFilename() != "":
			read := opts.ReadFile
			if read == nil {
				read = os.ReadFile
			}
			b, err := read(local.GetFilename())
			if err != nil {
				return nil, fmt.Errorf("vm_config.code.local.filename: %w", err)
			}
			return b, nil
		case local.GetInlineBytes() != nil:
			return local.GetInlineBytes(), nil
		case local.GetInlineString() != "":
			return []byte(local.GetInlineString()), nil
		case local.GetEnvironmentVariable() != "":
			return nil, errors.New("vm_config.code.local.environment_variable: not supported for code")
		}
		return nil, errors.New("vm_config.code.local: empty data source")
	}
	if remote := src.GetRemote(); remote != nil {
		if opts.Remote == nil {
			return nil, errors.New("vm_config.code.remote: remote code needs a cluster manager")
		}
		hu := remote.GetHttpUri()
		if hu == nil || hu.GetCluster() == "" || hu.GetUri() == "" {
			return nil, errors.New("vm_config.code.remote.http_uri: uri and cluster are required")
		}
		if remote.GetSha256() == "" {
			return nil, errors.New("vm_config.code.remote.sha256: required (Envoy refuses unverified remote code)")
		}
		retries := uint32(1)
		if rp := remote.GetRetryPolicy(); rp != nil && rp.GetNumRetries() != nil {
			retries = rp.GetNumRetries().GetValue()
		}
		b, err := opts.Remote.Fetch(ctx, hu.GetCluster(), hu.GetUri(), hu.GetTimeout().AsDuration().Milliseconds(), retries)
		if err != nil {
			return nil, fmt.Errorf("vm_config.code.remote: fetch %s: %w", hu.GetUri(), err)
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, remote.GetSha256()) {
			return nil, fmt.Errorf("vm_config.code.remote.sha256: mismatch: fetched %s, want %s", got, remote.GetSha256())
		}
		return b, nil
	}
	return nil, errors.New("vm_config.code: neither local nor remote")
}

func environment(ev *wasmv3.EnvironmentVariables, opts Options) ([]wasm.Field, error) {
	if ev == nil {
		return nil, nil
	}
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	var out []wasm.Field
	seen := map[string]bool{}
	for _, k := range ev.GetHostEnvKeys() {
		if v, ok := lookup(k); ok {
			out = append(out, wasm.Field{Key: k, Value: v})
			seen[k] = true
		}
	}
	keys := make([]string, 0, len(ev.GetKeyValues()))
	for k := range ev.GetKeyValues() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if seen[k] {
			return nil, fmt.Errorf("key_values[%q]: also listed in host_env_keys", k)
		}
		out = append(out, wasm.Field{Key: k, Value: ev.GetKeyValues()[k]})
	}
	return out, nil
}

// AnyToBytes encodes a configuration Any as Envoy hands it to a plugin:
// StringValue → the string, BytesValue → the bytes, Struct → its JSON,
// anything else → the Any's serialized value. Nil is empty.
func AnyToBytes(a *anypb.Any) ([]byte, error) {
	if a == nil {
		return nil, nil
	}
	switch a.GetTypeUrl() {
	case "type.googleapis.com/google.protobuf.StringValue":
		v := &wrapperspb.StringValue{}
		if err := a.UnmarshalTo(v); err != nil {
			return nil, err
		}
		return []byte(v.GetValue()), nil
	case "type.googleapis.com/google.protobuf.BytesValue":
		v := &wrapperspb.BytesValue{}
		if err := a.UnmarshalTo(v); err != nil {
			return nil, err
		}
		return v.GetValue(), nil
	case "type.googleapis.com/google.protobuf.Struct":
		v := &structpb.Struct{}
		if err := a.UnmarshalTo(v); err != nil {
			return nil, err
		}
		return protojson.Marshal(v)
	}
	return a.GetValue(), nil
}
