// Package pluginconfig turns Envoy's Proxy-Wasm configuration protos
// (envoy.extensions.wasm.v3.PluginConfig and VmConfig) into a running
// wasm.Plugin on a shared wasm.VM. The HTTP filter, the network filter and
// the bootstrap WasmService all load plugins through it, so the three behave
// the same: same vm_id and code share a VM, configuration encodings follow
// Envoy (StringValue → its string, BytesValue → its bytes, Struct → JSON,
// anything else → the Any's serialized bytes), fail_open and failure_policy
// map onto the host's failure policies.
package pluginconfig
