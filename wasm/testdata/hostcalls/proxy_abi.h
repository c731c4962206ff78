/*
 * Proxy-Wasm ABI v0.2.1 host function imports and enums, plus the
 * Envoy-specific imports implemented by wasmesh (properties, foreign
 * functions, proxy_get_log_level, proxy_get_status).
 *
 * Written for the hostcalls test filter; sizes are wasm32 (size_t = u32).
 * Functions returning data via `ret_data`/`ret_size` pointers receive memory
 * the host allocated with the module's allocator; the caller frees it.
 */
#ifndef HOSTCALLS_PROXY_ABI_H
#define HOSTCALLS_PROXY_ABI_H

#include <stddef.h>
#include <stdint.h>

#define PROXY_IMPORT(name) __attribute__((import_module("env"), import_name(#name)))
#define PROXY_EXPORT(name) __attribute__((export_name(#name)))

/* ---- enums --------------------------------------------------------------- */

typedef uint32_t proxy_status_t;
enum {
    PROXY_OK = 0,
    PROXY_NOT_FOUND = 1,
    PROXY_BAD_ARGUMENT = 2,
    PROXY_SERIALIZATION_FAILURE = 3,
    PROXY_PARSE_FAILURE = 4,
    PROXY_INVALID_MEMORY_ACCESS = 6,
    PROXY_EMPTY = 7,
    PROXY_CAS_MISMATCH = 8,
    PROXY_INTERNAL_FAILURE = 10,
    PROXY_UNIMPLEMENTED = 12,
};

enum {
    PROXY_LOG_TRACE = 0,
    PROXY_LOG_DEBUG = 1,
    PROXY_LOG_INFO = 2,
    PROXY_LOG_WARN = 3,
    PROXY_LOG_ERROR = 4,
    PROXY_LOG_CRITICAL = 5,
};

enum {
    PROXY_ACTION_CONTINUE = 0,
    PROXY_ACTION_PAUSE = 1,
};

enum {
    PROXY_BUFFER_REQUEST_BODY = 0,
    PROXY_BUFFER_RESPONSE_BODY = 1,
    PROXY_BUFFER_DOWNSTREAM_DATA = 2,
    PROXY_BUFFER_UPSTREAM_DATA = 3,
    PROXY_BUFFER_HTTP_CALL_RESPONSE_BODY = 4,
    PROXY_BUFFER_GRPC_RECEIVE_BUFFER = 5,
    PROXY_BUFFER_VM_CONFIGURATION = 6,
    PROXY_BUFFER_PLUGIN_CONFIGURATION = 7,
    PROXY_BUFFER_FOREIGN_FUNCTION_ARGUMENTS = 8,
};

enum {
    PROXY_MAP_REQUEST_HEADERS = 0,
    PROXY_MAP_REQUEST_TRAILERS = 1,
    PROXY_MAP_RESPONSE_HEADERS = 2,
    PROXY_MAP_RESPONSE_TRAILERS = 3,
    PROXY_MAP_GRPC_INITIAL_METADATA = 4,
    PROXY_MAP_GRPC_TRAILING_METADATA = 5,
    PROXY_MAP_HTTP_CALL_RESPONSE_HEADERS = 6,
    PROXY_MAP_HTTP_CALL_RESPONSE_TRAILERS = 7,
};

enum {
    PROXY_STREAM_REQUEST = 0,
    PROXY_STREAM_RESPONSE = 1,
    PROXY_STREAM_DOWNSTREAM = 2,
    PROXY_STREAM_UPSTREAM = 3,
};

enum {
    PROXY_METRIC_COUNTER = 0,
    PROXY_METRIC_GAUGE = 1,
    PROXY_METRIC_HISTOGRAM = 2,
};

/* ---- logging, time, timers, context ------------------------------------- */

PROXY_IMPORT(proxy_log)
proxy_status_t proxy_log(uint32_t level, const char *msg, size_t msg_size);
PROXY_IMPORT(proxy_get_log_level)
proxy_status_t proxy_get_log_level(uint32_t *ret_level);
PROXY_IMPORT(proxy_get_current_time_nanoseconds)
proxy_status_t proxy_get_current_time_nanoseconds(uint64_t *ret_time);
PROXY_IMPORT(proxy_set_tick_period_milliseconds)
proxy_status_t proxy_set_tick_period_milliseconds(uint32_t period);
PROXY_IMPORT(proxy_set_effective_context)
proxy_status_t proxy_set_effective_context(uint32_t context_id);
PROXY_IMPORT(proxy_done)
proxy_status_t proxy_done(void);

/* ---- buffers ------------------------------------------------------------- */

PROXY_IMPORT(proxy_get_buffer_bytes)
proxy_status_t proxy_get_buffer_bytes(uint32_t buffer, size_t start, size_t max_size,
                                      char **ret_data, size_t *ret_size);
PROXY_IMPORT(proxy_set_buffer_bytes)
proxy_status_t proxy_set_buffer_bytes(uint32_t buffer, size_t start, size_t size,
                                      const char *data, size_t data_size);
PROXY_IMPORT(proxy_get_buffer_status)
proxy_status_t proxy_get_buffer_status(uint32_t buffer, size_t *ret_size,
                                       uint32_t *ret_flags);

/* ---- header maps --------------------------------------------------------- */

PROXY_IMPORT(proxy_get_header_map_pairs)
proxy_status_t proxy_get_header_map_pairs(uint32_t map, char **ret_data, size_t *ret_size);
PROXY_IMPORT(proxy_set_header_map_pairs)
proxy_status_t proxy_set_header_map_pairs(uint32_t map, const char *data, size_t size);
PROXY_IMPORT(proxy_get_header_map_size)
proxy_status_t proxy_get_header_map_size(uint32_t map, size_t *ret_size);
PROXY_IMPORT(proxy_get_header_map_value)
proxy_status_t proxy_get_header_map_value(uint32_t map, const char *key, size_t key_size,
                                          char **ret_data, size_t *ret_size);
PROXY_IMPORT(proxy_add_header_map_value)
proxy_status_t proxy_add_header_map_value(uint32_t map, const char *key, size_t key_size,
                                          const char *value, size_t value_size);
PROXY_IMPORT(proxy_replace_header_map_value)
proxy_status_t proxy_replace_header_map_value(uint32_t map, const char *key,
                                              size_t key_size, const char *value,
                                              size_t value_size);
PROXY_IMPORT(proxy_remove_header_map_value)
proxy_status_t proxy_remove_header_map_value(uint32_t map, const char *key, size_t key_size);

/* ---- streams, local responses, status ------------------------------------ */

PROXY_IMPORT(proxy_continue_stream)
proxy_status_t proxy_continue_stream(uint32_t stream);
PROXY_IMPORT(proxy_close_stream)
proxy_status_t proxy_close_stream(uint32_t stream);
PROXY_IMPORT(proxy_send_local_response)
proxy_status_t proxy_send_local_response(uint32_t status_code, const char *details,
                                         size_t details_size, const char *body,
                                         size_t body_size, const char *headers,
                                         size_t headers_size, uint32_t grpc_status);
PROXY_IMPORT(proxy_get_status)
proxy_status_t proxy_get_status(uint32_t *ret_code, char **ret_msg, size_t *ret_msg_size);

/* ---- HTTP and gRPC callouts ---------------------------------------------- */

PROXY_IMPORT(proxy_http_call)
proxy_status_t proxy_http_call(const char *upstream, size_t upstream_size,
                               const char *headers, size_t headers_size,
                               const char *body, size_t body_size,
                               const char *trailers, size_t trailers_size,
                               uint32_t timeout_ms, uint32_t *ret_call_id);
PROXY_IMPORT(proxy_grpc_call)
proxy_status_t proxy_grpc_call(const char *upstream, size_t upstream_size,
                               const char *service, size_t service_size,
                               const char *method, size_t method_size,
                               const char *metadata, size_t metadata_size,
                               const char *message, size_t message_size,
                               uint32_t timeout_ms, uint32_t *ret_call_id);
PROXY_IMPORT(proxy_grpc_stream)
proxy_status_t proxy_grpc_stream(const char *upstream, size_t upstream_size,
                                 const char *service, size_t service_size,
                                 const char *method, size_t method_size,
                                 const char *metadata, size_t metadata_size,
                                 uint32_t *ret_stream_id);
PROXY_IMPORT(proxy_grpc_send)
proxy_status_t proxy_grpc_send(uint32_t stream_id, const char *message,
                               size_t message_size, uint32_t end_stream);
PROXY_IMPORT(proxy_grpc_cancel)
proxy_status_t proxy_grpc_cancel(uint32_t call_or_stream_id);
PROXY_IMPORT(proxy_grpc_close)
proxy_status_t proxy_grpc_close(uint32_t call_or_stream_id);

/* ---- shared data and queues ---------------------------------------------- */

PROXY_IMPORT(proxy_set_shared_data)
proxy_status_t proxy_set_shared_data(const char *key, size_t key_size, const char *value,
                                     size_t value_size, uint32_t cas);
PROXY_IMPORT(proxy_get_shared_data)
proxy_status_t proxy_get_shared_data(const char *key, size_t key_size, char **ret_value,
                                     size_t *ret_size, uint32_t *ret_cas);
PROXY_IMPORT(proxy_register_shared_queue)
proxy_status_t proxy_register_shared_queue(const char *name, size_t name_size,
                                           uint32_t *ret_queue_id);
PROXY_IMPORT(proxy_resolve_shared_queue)
proxy_status_t proxy_resolve_shared_queue(const char *vm_id, size_t vm_id_size,
                                          const char *name, size_t name_size,
                                          uint32_t *ret_queue_id);
PROXY_IMPORT(proxy_enqueue_shared_queue)
proxy_status_t proxy_enqueue_shared_queue(uint32_t queue_id, const char *value,
                                          size_t value_size);
PROXY_IMPORT(proxy_dequeue_shared_queue)
proxy_status_t proxy_dequeue_shared_queue(uint32_t queue_id, char **ret_value,
                                          size_t *ret_size);

/* ---- metrics ------------------------------------------------------------- */

PROXY_IMPORT(proxy_define_metric)
proxy_status_t proxy_define_metric(uint32_t type, const char *name, size_t name_size,
                                   uint32_t *ret_metric_id);
PROXY_IMPORT(proxy_record_metric)
proxy_status_t proxy_record_metric(uint32_t metric_id, uint64_t value);
PROXY_IMPORT(proxy_increment_metric)
proxy_status_t proxy_increment_metric(uint32_t metric_id, int64_t delta);
PROXY_IMPORT(proxy_get_metric)
proxy_status_t proxy_get_metric(uint32_t metric_id, uint64_t *ret_value);

/* ---- Envoy extensions: properties and foreign functions ------------------ */

PROXY_IMPORT(proxy_get_property)
proxy_status_t proxy_get_property(const char *path, size_t path_size, char **ret_value,
                                  size_t *ret_size);
PROXY_IMPORT(proxy_set_property)
proxy_status_t proxy_set_property(const char *path, size_t path_size, const char *value,
                                  size_t value_size);
PROXY_IMPORT(proxy_call_foreign_function)
proxy_status_t proxy_call_foreign_function(const char *name, size_t name_size,
                                           const char *args, size_t args_size,
                                           char **ret_results, size_t *ret_size);

#endif /* HOSTCALLS_PROXY_ABI_H */
