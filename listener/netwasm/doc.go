// Package netwasm is envoy.filters.network.wasm: a Proxy-Wasm plugin as a
// network filter. Each downstream connection gets one TCP context
// (proxy_on_new_connection, proxy_on_downstream_data,
// proxy_on_upstream_data, the close callbacks with the peer that ended each
// side); a PAUSE keeps the data buffered until the plugin continues the
// stream; proxy_close_stream closes the connection. Plugins load through
// wasm/pluginconfig, like the HTTP filter, so the same vm_id and code
// share a VM.
package netwasm
