// AssemblyScript Proxy-Wasm test filter for wasmesh, written against the
// third-party SDK @solo-io/proxy-runtime (see ../README.md).
//
// Configuration: the whole plugin configuration string is used verbatim as the
// value of the response header `x-as-filter` ("as-default" when empty).

// Re-export the SDK's ABI entry points (proxy_on_*, malloc, the
// proxy_abi_version_0_2_0 marker, ...) so the host can call us.
export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext,
  Context,
  registerRootContext,
  FilterHeadersStatusValues,
  LogLevelValues,
  log,
  stream_context,
} from "@solo-io/proxy-runtime";

const ROOT_ID = "as_filter";
const HEADER_NAME = "x-as-filter";
const DEFAULT_VALUE = "as-default";

class AsFilterRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new AsFilter(context_id, this);
  }

  onConfigure(configuration_size: u32): bool {
    // The SDK's RootContext.onConfigure reads the PluginConfiguration buffer
    // via proxy_get_buffer_bytes and stores it for getConfiguration().
    // It is skipped for an empty configuration: with size 0 the host writes
    // nothing back and the SDK would decode a stale buffer pointer.
    if (configuration_size > 0) {
      if (!super.onConfigure(configuration_size)) {
        return false;
      }
    }
    log(LogLevelValues.info, "as-filter configured: " + this.getConfiguration());
    return true;
  }
}

class AsFilter extends Context {
  constructor(context_id: u32, root_context: AsFilterRoot) {
    super(context_id, root_context);
  }

  onRequestHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.request.add("x-as-request", "1");
    return FilterHeadersStatusValues.Continue;
  }

  onResponseHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    let value = this.root_context.getConfiguration();
    if (value == "") {
      value = DEFAULT_VALUE;
    }
    stream_context.headers.response.add(HEADER_NAME, value);
    return FilterHeadersStatusValues.Continue;
  }
}

function newRoot(context_id: u32): RootContext {
  return new AsFilterRoot(context_id);
}

// The SDK picks the factory by the host property "plugin_root_id"; register
// under our root id and under "" so a host with an empty root_id works too.
registerRootContext(newRoot, ROOT_ID);
registerRootContext(newRoot, "");
