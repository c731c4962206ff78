/*
 * hostcalls: a request-driven Proxy-Wasm ABI v0.2.1 test filter.
 *
 * The request path `/t/<area>/<case>` selects a test case that exercises one
 * or more host functions; see README.md for the contract (inputs, callbacks
 * and exact observable results of every case). Other paths pass through.
 *
 * Conventions used throughout:
 *  - Results are reported with report(): in request-phase callbacks (request
 *    headers/body/trailers, HTTP/gRPC callout callbacks) as a local response
 *    (200 + result text, or 4xx/5xx + failure text); in every other callback
 *    as an INFO (success) or ERROR (failure) log line
 *    `hostcalls: <case>: <text>`.
 *  - Memory returned by the host (allocated through proxy_on_memory_allocate)
 *    is freed here, and only when the host call returned OK.
 *  - After a host call that may re-enter the module (local response, continue
 *    or close stream, proxy_done) the stream's state is not touched again.
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wasi/api.h>

#include "proxy_abi.h"

#define UNKNOWN_ID 0x7ffffff0u       /* an id no host hands out in tests */
#define NO_GRPC_STATUS 0xffffffffu   /* grpc_status "none" (-1) */
#define DEFAULT_TIMEOUT_MS 5000u
#define MALFORMED_MAP 1000u          /* pseudo status: bad serialized map */
#define LIT(s) (s), (sizeof(s) - 1)  /* string literal as (pointer, length) */

PROXY_EXPORT(proxy_abi_version_0_2_1) void proxy_abi_version_0_2_1(void) {}

PROXY_EXPORT(proxy_on_memory_allocate) void *proxy_on_memory_allocate(size_t size) {
    return malloc(size);
}

/* ======================================================================== */
/* Small utilities                                                          */
/* ======================================================================== */

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (p == NULL) abort();
    return p;
}

static void *xrealloc(void *p, size_t n) {
    p = realloc(p, n ? n : 1);
    if (p == NULL) abort();
    return p;
}

static char *xstrdup(const char *str) {
    size_t n = strlen(str) + 1;
    return memcpy(xmalloc(n), str, n);
}

/* Growable byte string; p is NUL-terminated whenever it is not NULL. */
typedef struct {
    char *p;
    size_t n, cap;
} sb_t;

static void sb_reserve(sb_t *b, size_t extra) {
    if (extra > SIZE_MAX / 4 || b->n > SIZE_MAX / 4) abort();
    size_t need = b->n + extra + 1;
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

static void sb_add(sb_t *b, const void *data, size_t n) {
    sb_reserve(b, n);
    if (n > 0) memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_adds(sb_t *b, const char *s) { sb_add(b, s, strlen(s)); }

__attribute__((format(printf, 2, 0)))
static void sb_vaddf(sb_t *b, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int len = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (len < 0) return;
    sb_reserve(b, (size_t)len);
    vsnprintf(b->p + b->n, (size_t)len + 1, fmt, ap);
    b->n += (size_t)len;
}

__attribute__((format(printf, 2, 3)))
static void sb_addf(sb_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(b, fmt, ap);
    va_end(ap);
}

static const char *sb_str(const sb_t *b) { return b->p ? b->p : ""; }

static void sb_free(sb_t *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* Owned byte string, NUL-terminated; p == NULL means "absent". */
typedef struct {
    char *p;
    size_t n;
} str_t;

static str_t str_dup(const char *data, size_t n) {
    str_t s = {xmalloc(n + 1), n};
    if (n > 0) memcpy(s.p, data, n);
    s.p[n] = '\0';
    return s;
}

/* Copies host-allocated data into a str_t and frees the host allocation. */
static str_t str_take(char *data, size_t n) {
    str_t s = str_dup(data, n);
    free(data);
    return s;
}

static void str_free(str_t *s) {
    free(s->p);
    s->p = NULL;
    s->n = 0;
}

static bool str_eq(const str_t *s, const char *lit) {
    return s->p != NULL && s->n == strlen(lit) && memcmp(s->p, lit, s->n) == 0;
}

static bool parse_u64(const str_t *s, uint64_t max, uint64_t *out) {
    if (s->p == NULL || s->n == 0) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < s->n; i++) {
        char c = s->p[i];
        if (c < '0' || c > '9') return false;
        uint64_t d = (uint64_t)(c - '0');
        if (v > (max - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool parse_u32(const str_t *s, uint32_t *out) {
    uint64_t v;
    if (!parse_u64(s, UINT32_MAX, &v)) return false;
    *out = (uint32_t)v;
    return true;
}

static bool parse_i64(const str_t *s, int64_t *out) {
    if (s->p == NULL || s->n == 0) return false;
    bool neg = s->p[0] == '-';
    str_t digits = {s->p + neg, s->n - neg};
    uint64_t v;
    if (!parse_u64(&digits, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &v))
        return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static void hex_encode(sb_t *b, const unsigned char *data, size_t n) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        char h[2] = {digits[data[i] >> 4], digits[data[i] & 15]};
        sb_add(b, h, 2);
    }
}

/* ======================================================================== */
/* Logging                                                                  */
/* ======================================================================== */

__attribute__((format(printf, 2, 3)))
static void logf_(uint32_t level, const char *fmt, ...) {
    sb_t b = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(&b, fmt, ap);
    va_end(ap);
    proxy_log(level, sb_str(&b), b.n);
    sb_free(&b);
}

/* Logs "hostcalls: <name>: <data>" (data may contain any bytes). */
static void log_case(uint32_t level, const char *name, const char *data, size_t n) {
    sb_t b = {0};
    sb_adds(&b, "hostcalls: ");
    sb_adds(&b, name);
    sb_adds(&b, ": ");
    sb_add(&b, data, n);
    proxy_log(level, sb_str(&b), b.n);
    sb_free(&b);
}

/* ======================================================================== */
/* Serialized header maps                                                   */
/* ======================================================================== */

struct pair {
    const char *k, *v;
    size_t kn, vn;
};

struct pairs {
    char *raw; /* host allocation the pairs point into */
    size_t raw_n;
    struct pair *p;
    size_t n;
};

static uint32_t rd32(const char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static void wr32(char *p, uint32_t v) { memcpy(p, &v, 4); }

/* Parses a serialized map: u32 count, count x (u32 key_len, u32 value_len),
 * then for each pair key NUL value NUL. Empty: size 0, or a single 0 byte. */
static bool parse_pairs(const char *d, size_t n, struct pair **out, size_t *count) {
    *out = NULL;
    *count = 0;
    if (n == 0 || (n == 1 && d[0] == 0)) return true;
    if (n < 4) return false;
    uint32_t c = rd32(d);
    if (c > (n - 4) / 8) return false;
    struct pair *p = xmalloc((c ? c : 1) * sizeof *p);
    size_t off = 4 + (size_t)c * 8;
    for (uint32_t i = 0; i < c; i++) {
        size_t kn = rd32(d + 4 + 8 * (size_t)i), vn = rd32(d + 8 + 8 * (size_t)i);
        if (kn >= n - off || d[off + kn] != 0) goto bad;
        p[i].k = d + off;
        p[i].kn = kn;
        off += kn + 1;
        if (off >= n || vn >= n - off || d[off + vn] != 0) goto bad;
        p[i].v = d + off;
        p[i].vn = vn;
        off += vn + 1;
    }
    *out = p;
    *count = c;
    return true;
bad:
    free(p);
    return false;
}

static char *serialize_pairs(const struct pair *p, size_t count, size_t *size) {
    size_t n = 4 + 8 * count;
    for (size_t i = 0; i < count; i++) n += p[i].kn + p[i].vn + 2;
    char *d = xmalloc(n), *w = d + 4 + 8 * count;
    wr32(d, (uint32_t)count);
    for (size_t i = 0; i < count; i++) {
        wr32(d + 4 + 8 * i, (uint32_t)p[i].kn);
        wr32(d + 8 + 8 * i, (uint32_t)p[i].vn);
        memcpy(w, p[i].k, p[i].kn);
        w += p[i].kn;
        *w++ = 0;
        memcpy(w, p[i].v, p[i].vn);
        w += p[i].vn;
        *w++ = 0;
    }
    *size = n;
    return d;
}

static struct pair cpair(const char *k, const char *v) {
    struct pair p = {k, v, strlen(k), strlen(v)};
    return p;
}

static void pairs_free(struct pairs *m) {
    free(m->raw);
    free(m->p);
    memset(m, 0, sizeof *m);
}

/* Returns the host status, or MALFORMED_MAP. */
static uint32_t get_pairs(uint32_t map, struct pairs *m) {
    memset(m, 0, sizeof *m);
    proxy_status_t st = proxy_get_header_map_pairs(map, &m->raw, &m->raw_n);
    if (st != PROXY_OK) {
        m->raw = NULL;
        return st;
    }
    if (!parse_pairs(m->raw, m->raw_n, &m->p, &m->n)) {
        pairs_free(m);
        return MALFORMED_MAP;
    }
    return PROXY_OK;
}

/* Appends "k=v" entries joined by sep; only keys starting with prefix. */
static void pairs_text(sb_t *b, const struct pairs *m, const char *sep, const char *prefix) {
    size_t plen = prefix ? strlen(prefix) : 0;
    bool first = true;
    for (size_t i = 0; i < m->n; i++) {
        if (plen && (m->p[i].kn < plen || memcmp(m->p[i].k, prefix, plen) != 0)) continue;
        if (!first) sb_adds(b, sep);
        first = false;
        sb_add(b, m->p[i].k, m->p[i].kn);
        sb_adds(b, "=");
        sb_add(b, m->p[i].v, m->p[i].vn);
    }
}

static proxy_status_t map_get(uint32_t map, const char *key, size_t key_n, str_t *out) {
    char *d = NULL;
    size_t n = 0;
    out->p = NULL;
    out->n = 0;
    proxy_status_t st = proxy_get_header_map_value(map, key, key_n, &d, &n);
    if (st == PROXY_OK) *out = str_take(d, n);
    return st;
}

/* Request header as an owned string; p == NULL when absent. */
static str_t req_header(const char *name) {
    str_t s;
    map_get(PROXY_MAP_REQUEST_HEADERS, name, strlen(name), &s);
    return s;
}

/* ======================================================================== */
/* Contexts                                                                 */
/* ======================================================================== */

struct case_def;

struct root {
    uint32_t id;
    str_t config;
    char *config_checks;
    uint32_t tick_ms, tick_limit, tick_count;
    str_t queue_name;
    uint32_t queue_id;
    bool has_queue;
    bool done_defer, done_pending;
};

enum tick_action { TICK_NONE, TICK_CONTINUE_REQUEST, TICK_CONTINUE_RESPONSE, TICK_DONE };

struct stream {
    uint32_t id, root_id;
    const struct case_def *c; /* NULL: not a test request */
    bool local_sent;          /* a local response was sent for this stream */
    bool handled;             /* body cases: acted at end of stream */
    str_t name, value;        /* x-name, x-value */
    uint32_t start, max;      /* body/request_range */
    bool http_pending, http_continue;
    uint32_t http_id;
    bool grpc_pending, grpc_responded, grpc_close_sent, grpc_end;
    uint32_t grpc_id;
    sb_t grpc_text;
    enum tick_action tick_action;
    bool done_pending;
};

static struct root **roots;
static size_t n_roots;
static struct stream **streams;
static size_t n_streams;

static str_t vm_config;
static char *vm_checks;

static struct root *find_root(uint32_t id) {
    for (size_t i = 0; i < n_roots; i++)
        if (roots[i]->id == id) return roots[i];
    return NULL;
}

static struct root *get_root(uint32_t id) {
    struct root *r = find_root(id);
    if (r != NULL) return r;
    r = xmalloc(sizeof *r);
    memset(r, 0, sizeof *r);
    r->id = id;
    roots = xrealloc(roots, (n_roots + 1) * sizeof *roots);
    roots[n_roots++] = r;
    return r;
}

static struct stream *find_stream(uint32_t id) {
    for (size_t i = 0; i < n_streams; i++)
        if (streams[i]->id == id) return streams[i];
    return NULL;
}

static struct stream *get_stream(uint32_t id, uint32_t root_id) {
    struct stream *s = find_stream(id);
    if (s != NULL) return s;
    s = xmalloc(sizeof *s);
    memset(s, 0, sizeof *s);
    s->id = id;
    s->root_id = root_id;
    streams = xrealloc(streams, (n_streams + 1) * sizeof *streams);
    streams[n_streams++] = s;
    return s;
}

static void free_root(size_t i) {
    struct root *r = roots[i];
    str_free(&r->config);
    free(r->config_checks);
    str_free(&r->queue_name);
    free(r);
    roots[i] = roots[--n_roots];
}

static void free_stream(size_t i) {
    struct stream *s = streams[i];
    str_free(&s->name);
    str_free(&s->value);
    sb_free(&s->grpc_text);
    free(s);
    streams[i] = streams[--n_streams];
}

static uint32_t root_tick_ms(const struct stream *s) {
    struct root *r = find_root(s->root_id);
    return r ? r->tick_ms : 0;
}

/* ======================================================================== */
/* Test cases                                                               */
/* ======================================================================== */

enum case_id {
    C_LOG_LEVELS, C_LOG_GET_LEVEL, C_TIME_NOW, C_TICK_SET, C_CONTEXT_SET_EFFECTIVE,
    C_DONE_NOT_PENDING, C_DONE_DEFER,
    C_CONFIG_PLUGIN, C_CONFIG_VM, C_CONFIG_CHECKS,
    C_BUFFERS_BAD_ID, C_BUFFERS_UNAVAILABLE,
    C_BODY_REQUEST_GET, C_BODY_REQUEST_RANGE, C_BODY_REQUEST_PREPEND,
    C_BODY_REQUEST_APPEND, C_BODY_REQUEST_REPLACE, C_BODY_REQUEST_READBACK,
    C_BODY_RESPONSE_GET, C_BODY_RESPONSE_PREPEND, C_BODY_RESPONSE_APPEND,
    C_BODY_RESPONSE_REPLACE,
    C_MAP, C_PSEUDO, C_MAPS_BAD_ID,
    C_STREAM_CONTINUE_ON_TICK, C_STREAM_CONTINUE_RESPONSE_ON_TICK,
    C_STREAM_CLOSE_REQUEST, C_STREAM_CLOSE_RESPONSE, C_STREAM_BAD_TYPE,
    C_LOCAL_HEADERS, C_LOCAL_GRPC_STATUS, C_LOCAL_EMPTY, C_LOCAL_EMPTY_MAP_BYTE,
    C_LOCAL_FROM_RESPONSE_HEADERS,
    C_HTTP_CALL, C_HTTP_BAD_CLUSTER, C_HTTP_MISSING_HEADERS,
    C_GRPC_CALL, C_GRPC_STREAM, C_GRPC_CANCEL, C_GRPC_BAD_CLUSTER, C_GRPC_UNKNOWN_ID,
    C_SHARED_SET, C_SHARED_GET, C_SHARED_CAS, C_SHARED_GET_MISSING,
    C_QUEUE_REGISTER, C_QUEUE_ENQUEUE, C_QUEUE_DEQUEUE, C_QUEUE_EMPTY,
    C_QUEUE_UNKNOWN_ID, C_QUEUE_RESOLVE_MISSING,
    C_METRICS_COUNTER, C_METRICS_GAUGE, C_METRICS_GAUGE_INCREMENT,
    C_METRICS_HISTOGRAM, C_METRICS_ERRORS,
    C_PROP_GET, C_PROP, C_PROP_REQUEST_HEADER, C_PROP_MISSING, C_PROP_SET_WASM,
    C_PROP_SET, C_PROP_RESPONSE_CODE,
    C_FOREIGN_COMPRESS, C_FOREIGN_UNKNOWN, C_FOREIGN_CLEAR_ROUTE_CACHE,
    C_FOREIGN_SET_FILTER_STATE,
    C_WASI_CLOCK_REALTIME, C_WASI_CLOCK_MONOTONIC, C_WASI_CLOCK_BAD, C_WASI_RANDOM,
    C_WASI_GETENV, C_WASI_STDOUT, C_WASI_STDERR, C_WASI_FD_WRITE, C_WASI_FD_WRITE_BAD,
    C_LIFECYCLE_ON_LOG,
};

enum map_op { OP_GET, OP_ADD, OP_REPLACE, OP_REMOVE, OP_PAIRS, OP_SET_PAIRS, OP_SIZE };
enum prop_fmt { FMT_RAW, FMT_INT, FMT_BOOL, FMT_HEX, FMT_MAP };

struct case_def {
    const char *name;
    enum case_id id;
    int map;          /* C_MAP */
    enum map_op op;   /* C_MAP */
    const char *path; /* C_PROP: dot-separated property path */
    enum prop_fmt fmt;
};

#define MAP_CASES(prefix, m)                                        \
    {prefix "/get", C_MAP, m, OP_GET, NULL, 0},                     \
    {prefix "/add", C_MAP, m, OP_ADD, NULL, 0},                     \
    {prefix "/replace", C_MAP, m, OP_REPLACE, NULL, 0},             \
    {prefix "/remove", C_MAP, m, OP_REMOVE, NULL, 0},               \
    {prefix "/pairs", C_MAP, m, OP_PAIRS, NULL, 0},                 \
    {prefix "/set_pairs", C_MAP, m, OP_SET_PAIRS, NULL, 0},         \
    {prefix "/size", C_MAP, m, OP_SIZE, NULL, 0}

#define CASE(name, id) {name, id, 0, 0, NULL, 0}
#define PROP(name, path, fmt) {name, C_PROP, 0, 0, path, fmt}

static const struct case_def cases[] = {
    CASE("log/levels", C_LOG_LEVELS),
    CASE("log/get_level", C_LOG_GET_LEVEL),
    CASE("time/now", C_TIME_NOW),
    CASE("tick/set", C_TICK_SET),
    CASE("context/set_effective", C_CONTEXT_SET_EFFECTIVE),
    CASE("done/not_pending", C_DONE_NOT_PENDING),
    CASE("done/defer", C_DONE_DEFER),
    CASE("config/plugin", C_CONFIG_PLUGIN),
    CASE("config/vm", C_CONFIG_VM),
    CASE("config/checks", C_CONFIG_CHECKS),
    CASE("buffers/bad_id", C_BUFFERS_BAD_ID),
    CASE("buffers/unavailable", C_BUFFERS_UNAVAILABLE),
    CASE("body/request_get", C_BODY_REQUEST_GET),
    CASE("body/request_range", C_BODY_REQUEST_RANGE),
    CASE("body/request_prepend", C_BODY_REQUEST_PREPEND),
    CASE("body/request_append", C_BODY_REQUEST_APPEND),
    CASE("body/request_replace", C_BODY_REQUEST_REPLACE),
    CASE("body/request_readback", C_BODY_REQUEST_READBACK),
    CASE("body/response_get", C_BODY_RESPONSE_GET),
    CASE("body/response_prepend", C_BODY_RESPONSE_PREPEND),
    CASE("body/response_append", C_BODY_RESPONSE_APPEND),
    CASE("body/response_replace", C_BODY_RESPONSE_REPLACE),
    MAP_CASES("request_headers", PROXY_MAP_REQUEST_HEADERS),
    MAP_CASES("request_trailers", PROXY_MAP_REQUEST_TRAILERS),
    MAP_CASES("response_headers", PROXY_MAP_RESPONSE_HEADERS),
    MAP_CASES("response_trailers", PROXY_MAP_RESPONSE_TRAILERS),
    CASE("request_headers/pseudo", C_PSEUDO),
    CASE("maps/bad_id", C_MAPS_BAD_ID),
    CASE("stream/continue_on_tick", C_STREAM_CONTINUE_ON_TICK),
    CASE("stream/continue_response_on_tick", C_STREAM_CONTINUE_RESPONSE_ON_TICK),
    CASE("stream/close_request", C_STREAM_CLOSE_REQUEST),
    CASE("stream/close_response", C_STREAM_CLOSE_RESPONSE),
    CASE("stream/bad_type", C_STREAM_BAD_TYPE),
    CASE("local/headers", C_LOCAL_HEADERS),
    CASE("local/grpc_status", C_LOCAL_GRPC_STATUS),
    CASE("local/empty", C_LOCAL_EMPTY),
    CASE("local/empty_map_byte", C_LOCAL_EMPTY_MAP_BYTE),
    CASE("local/from_response_headers", C_LOCAL_FROM_RESPONSE_HEADERS),
    CASE("http/call", C_HTTP_CALL),
    CASE("http/bad_cluster", C_HTTP_BAD_CLUSTER),
    CASE("http/missing_headers", C_HTTP_MISSING_HEADERS),
    CASE("grpc/call", C_GRPC_CALL),
    CASE("grpc/stream", C_GRPC_STREAM),
    CASE("grpc/cancel", C_GRPC_CANCEL),
    CASE("grpc/bad_cluster", C_GRPC_BAD_CLUSTER),
    CASE("grpc/unknown_id", C_GRPC_UNKNOWN_ID),
    CASE("shared/set", C_SHARED_SET),
    CASE("shared/get", C_SHARED_GET),
    CASE("shared/cas", C_SHARED_CAS),
    CASE("shared/get_missing", C_SHARED_GET_MISSING),
    CASE("queue/register", C_QUEUE_REGISTER),
    CASE("queue/enqueue", C_QUEUE_ENQUEUE),
    CASE("queue/dequeue", C_QUEUE_DEQUEUE),
    CASE("queue/empty", C_QUEUE_EMPTY),
    CASE("queue/unknown_id", C_QUEUE_UNKNOWN_ID),
    CASE("queue/resolve_missing", C_QUEUE_RESOLVE_MISSING),
    CASE("metrics/counter", C_METRICS_COUNTER),
    CASE("metrics/gauge", C_METRICS_GAUGE),
    CASE("metrics/gauge_increment", C_METRICS_GAUGE_INCREMENT),
    CASE("metrics/histogram", C_METRICS_HISTOGRAM),
    CASE("metrics/errors", C_METRICS_ERRORS),
    CASE("properties/get", C_PROP_GET),
    PROP("properties/request_path", "request.path", FMT_RAW),
    PROP("properties/request_method", "request.method", FMT_RAW),
    PROP("properties/request_headers", "request.headers", FMT_MAP),
    PROP("properties/source_address", "source.address", FMT_RAW),
    PROP("properties/destination_port", "destination.port", FMT_INT),
    PROP("properties/node_id", "node.id", FMT_RAW),
    PROP("properties/plugin_name", "plugin_name", FMT_RAW),
    PROP("properties/plugin_root_id", "plugin_root_id", FMT_RAW),
    PROP("properties/plugin_vm_id", "plugin_vm_id", FMT_RAW),
    PROP("properties/cluster_name", "cluster_name", FMT_RAW),
    PROP("properties/route_name", "route_name", FMT_RAW),
    CASE("properties/request_header", C_PROP_REQUEST_HEADER),
    CASE("properties/missing", C_PROP_MISSING),
    CASE("properties/set_wasm", C_PROP_SET_WASM),
    CASE("properties/set", C_PROP_SET),
    CASE("properties/response_code", C_PROP_RESPONSE_CODE),
    CASE("foreign/compress_roundtrip", C_FOREIGN_COMPRESS),
    CASE("foreign/unknown", C_FOREIGN_UNKNOWN),
    CASE("foreign/clear_route_cache", C_FOREIGN_CLEAR_ROUTE_CACHE),
    CASE("foreign/set_envoy_filter_state", C_FOREIGN_SET_FILTER_STATE),
    CASE("wasi/clock_realtime", C_WASI_CLOCK_REALTIME),
    CASE("wasi/clock_monotonic", C_WASI_CLOCK_MONOTONIC),
    CASE("wasi/clock_bad", C_WASI_CLOCK_BAD),
    CASE("wasi/random", C_WASI_RANDOM),
    CASE("wasi/getenv", C_WASI_GETENV),
    CASE("wasi/stdout", C_WASI_STDOUT),
    CASE("wasi/stderr", C_WASI_STDERR),
    CASE("wasi/fd_write", C_WASI_FD_WRITE),
    CASE("wasi/fd_write_bad", C_WASI_FD_WRITE_BAD),
    CASE("lifecycle/on_log", C_LIFECYCLE_ON_LOG),
};

static const struct case_def *find_case(const char *name, size_t n) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (strlen(cases[i].name) == n && memcmp(cases[i].name, name, n) == 0)
            return &cases[i];
    return NULL;
}

/* ======================================================================== */
/* Reporting                                                                */
/* ======================================================================== */

enum phase { PHASE_REQUEST, PHASE_RESPONSE, PHASE_OTHER };
static enum phase g_phase = PHASE_OTHER;

static uint32_t send_local(struct stream *s, uint32_t code, const char *body, size_t body_n,
                           const char *headers, size_t headers_n, uint32_t grpc_status) {
    if (s != NULL) s->local_sent = true;
    proxy_status_t st = proxy_send_local_response(code, LIT("hostcalls"), body, body_n,
                                                  headers, headers_n, grpc_status);
    if (st != PROXY_OK) {
        logf_(PROXY_LOG_ERROR, "hostcalls: proxy_send_local_response status=%u", st);
        return PROXY_ACTION_CONTINUE;
    }
    return PROXY_ACTION_PAUSE;
}

static uint32_t report(struct stream *s, uint32_t code, const char *text, size_t n) {
    if (g_phase == PHASE_REQUEST) return send_local(s, code, text, n, LIT(""), NO_GRPC_STATUS);
    log_case(code == 200 ? PROXY_LOG_INFO : PROXY_LOG_ERROR, s->c->name, text, n);
    return PROXY_ACTION_CONTINUE;
}

static uint32_t report_str(struct stream *s, uint32_t code, const char *text) {
    return report(s, code, text, strlen(text));
}

static uint32_t report_sb(struct stream *s, uint32_t code, sb_t *b) {
    uint32_t action = report(s, code, sb_str(b), b->n);
    sb_free(b);
    return action;
}

__attribute__((format(printf, 3, 4)))
static uint32_t reportf(struct stream *s, uint32_t code, const char *fmt, ...) {
    sb_t b = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(&b, fmt, ap);
    va_end(ap);
    return report_sb(s, code, &b);
}

static uint32_t report_ok(struct stream *s) { return report_str(s, 200, "ok"); }

static uint32_t fail_status(struct stream *s, const char *fn, uint32_t st) {
    if (st == MALFORMED_MAP) return reportf(s, 500, "%s returned a malformed map", fn);
    return reportf(s, 500, "%s status=%u", fn, st);
}

/* A mutation succeeded: log it and let the stream continue. */
static uint32_t mutated(struct stream *s) {
    log_case(PROXY_LOG_INFO, s->c->name, LIT("ok"));
    return PROXY_ACTION_CONTINUE;
}

#define CHECK_OK(fn, expr)                                        \
    do {                                                          \
        proxy_status_t st_ = (expr);                              \
        if (st_ != PROXY_OK) return fail_status(s, fn, st_);      \
    } while (0)

#define EXPECT(fn, expr, want)                                                   \
    do {                                                                         \
        proxy_status_t st_ = (expr);                                             \
        if (st_ != (proxy_status_t)(want))                                       \
            return reportf(s, 500, "%s status=%u expected=%u", fn, st_,          \
                           (unsigned)(want));                                    \
    } while (0)

/* Reads a required request header into *out; on failure sets *action. */
static bool need(struct stream *s, const char *name, str_t *out, uint32_t *action) {
    *out = req_header(name);
    if (out->p != NULL) return true;
    *action = reportf(s, 400, "missing request header %s", name);
    return false;
}

/* ======================================================================== */
/* Header map cases                                                         */
/* ======================================================================== */

static uint32_t do_map_op(struct stream *s) {
    int map = s->c->map;
    switch (s->c->op) {
    case OP_GET: {
        str_t v;
        CHECK_OK("proxy_get_header_map_value", map_get(map, s->name.p, s->name.n, &v));
        uint32_t action = report(s, 200, v.p, v.n);
        str_free(&v);
        return action;
    }
    case OP_ADD:
        CHECK_OK("proxy_add_header_map_value",
                 proxy_add_header_map_value(map, s->name.p, s->name.n, s->value.p, s->value.n));
        return mutated(s);
    case OP_REPLACE:
        CHECK_OK("proxy_replace_header_map_value",
                 proxy_replace_header_map_value(map, s->name.p, s->name.n, s->value.p,
                                                s->value.n));
        return mutated(s);
    case OP_REMOVE:
        CHECK_OK("proxy_remove_header_map_value",
                 proxy_remove_header_map_value(map, s->name.p, s->name.n));
        return mutated(s);
    case OP_PAIRS: {
        struct pairs m;
        CHECK_OK("proxy_get_header_map_pairs", get_pairs(map, &m));
        sb_t b = {0};
        pairs_text(&b, &m, "\n", NULL);
        pairs_free(&m);
        return report_sb(s, 200, &b);
    }
    case OP_SET_PAIRS: {
        struct pairs m;
        CHECK_OK("proxy_get_header_map_pairs", get_pairs(map, &m));
        struct pair *np = xmalloc((m.n + 1) * sizeof *np);
        size_t k = 0;
        for (size_t i = 0; i < m.n; i++)
            if (m.p[i].kn != s->name.n || memcmp(m.p[i].k, s->name.p, s->name.n) != 0)
                np[k++] = m.p[i];
        np[k].k = s->name.p;
        np[k].kn = s->name.n;
        np[k].v = s->value.p;
        np[k].vn = s->value.n;
        k++;
        size_t size;
        char *data = serialize_pairs(np, k, &size);
        proxy_status_t st = proxy_set_header_map_pairs(map, data, size);
        free(data);
        free(np);
        pairs_free(&m);
        if (st != PROXY_OK) return fail_status(s, "proxy_set_header_map_pairs", st);
        return mutated(s);
    }
    case OP_SIZE: {
        size_t size = 0;
        CHECK_OK("proxy_get_header_map_size", proxy_get_header_map_size(map, &size));
        char *raw = NULL;
        size_t raw_n = 0;
        CHECK_OK("proxy_get_header_map_pairs", proxy_get_header_map_pairs(map, &raw, &raw_n));
        free(raw);
        if (size != raw_n)
            return reportf(s, 500, "proxy_get_header_map_size size=%zu pairs size=%zu", size,
                           raw_n);
        return reportf(s, 200, "%zu", size);
    }
    }
    return PROXY_ACTION_CONTINUE;
}

static uint32_t start_map_case(struct stream *s) {
    uint32_t action;
    enum map_op op = s->c->op;
    if (op != OP_PAIRS && op != OP_SIZE && !need(s, "x-name", &s->name, &action)) return action;
    if ((op == OP_ADD || op == OP_REPLACE || op == OP_SET_PAIRS) &&
        !need(s, "x-value", &s->value, &action))
        return action;
    if (s->c->map == PROXY_MAP_REQUEST_HEADERS) return do_map_op(s);
    return PROXY_ACTION_CONTINUE;
}

/* ======================================================================== */
/* Body cases                                                               */
/* ======================================================================== */

/* Reads the whole buffer (size from proxy_get_buffer_status). */
static proxy_status_t read_buffer(uint32_t buffer, str_t *out, const char **fn) {
    size_t size = 0;
    uint32_t flags = 0;
    *out = str_dup(LIT(""));
    proxy_status_t st = proxy_get_buffer_status(buffer, &size, &flags);
    if (st != PROXY_OK) {
        *fn = "proxy_get_buffer_status";
        return st;
    }
    if (size == 0) return PROXY_OK;
    char *d = NULL;
    size_t n = 0;
    st = proxy_get_buffer_bytes(buffer, 0, size, &d, &n);
    if (st != PROXY_OK) {
        *fn = "proxy_get_buffer_bytes";
        return st;
    }
    str_free(out);
    *out = str_take(d, n);
    return PROXY_OK;
}

static uint32_t do_body(struct stream *s, uint32_t buffer, size_t body_size) {
    switch (s->c->id) {
    case C_BODY_REQUEST_GET:
    case C_BODY_RESPONSE_GET: {
        size_t size = 0;
        uint32_t flags = 0;
        CHECK_OK("proxy_get_buffer_status", proxy_get_buffer_status(buffer, &size, &flags));
        if (size != body_size)
            return reportf(s, 500, "proxy_get_buffer_status size=%zu body_size=%zu", size,
                           body_size);
        char *d = NULL;
        size_t n = 0;
        if (size > 0) CHECK_OK("proxy_get_buffer_bytes",
                               proxy_get_buffer_bytes(buffer, 0, size, &d, &n));
        uint32_t action = report(s, 200, d ? d : "", n);
        free(d);
        return action;
    }
    case C_BODY_REQUEST_RANGE: {
        char *d = NULL;
        size_t n = 0;
        CHECK_OK("proxy_get_buffer_bytes",
                 proxy_get_buffer_bytes(buffer, s->start, s->max, &d, &n));
        uint32_t action = report(s, 200, d ? d : "", n);
        free(d);
        return action;
    }
    case C_BODY_REQUEST_PREPEND:
    case C_BODY_RESPONSE_PREPEND:
        CHECK_OK("proxy_set_buffer_bytes",
                 proxy_set_buffer_bytes(buffer, 0, 0, LIT("prepended:")));
        return mutated(s);
    case C_BODY_REQUEST_APPEND:
    case C_BODY_RESPONSE_APPEND:
        CHECK_OK("proxy_set_buffer_bytes",
                 proxy_set_buffer_bytes(buffer, body_size, 0, LIT(":appended")));
        return mutated(s);
    case C_BODY_REQUEST_REPLACE:
    case C_BODY_RESPONSE_REPLACE:
        CHECK_OK("proxy_set_buffer_bytes",
                 proxy_set_buffer_bytes(buffer, 0, body_size, LIT("replaced")));
        return mutated(s);
    case C_BODY_REQUEST_READBACK: {
        /* prepend "<", append ">", replace the middle with "X", replace all */
        sb_t b = {0};
        str_t cur = {0};
        const char *fn = "";
        proxy_status_t st;
        for (int step = 0; step < 4; step++) {
            if ((st = read_buffer(buffer, &cur, &fn)) != PROXY_OK) goto fail;
            size_t start = 0, size = 0;
            const char *v = "";
            switch (step) {
            case 0: v = "<"; break;
            case 1: start = cur.n; v = ">"; break;
            case 2:
                if (cur.n < 2) {
                    st = PROXY_INTERNAL_FAILURE;
                    fn = "readback (buffer shorter than 2 bytes)";
                    goto fail;
                }
                start = 1;
                size = cur.n - 2;
                v = "X";
                break;
            case 3: size = cur.n; v = "replaced"; break;
            }
            str_free(&cur);
            fn = "proxy_set_buffer_bytes";
            if ((st = proxy_set_buffer_bytes(buffer, start, size, v, strlen(v))) != PROXY_OK)
                goto fail;
            if ((st = read_buffer(buffer, &cur, &fn)) != PROXY_OK) goto fail;
            if (step > 0) sb_adds(&b, "\n");
            sb_add(&b, cur.p, cur.n);
            str_free(&cur);
        }
        return report_sb(s, 200, &b);
    fail:
        str_free(&cur);
        sb_free(&b);
        return fail_status(s, fn, st);
    }
    default:
        return PROXY_ACTION_CONTINUE;
    }
}

static bool is_request_body_case(const struct stream *s) {
    return s->c && s->c->id >= C_BODY_REQUEST_GET && s->c->id <= C_BODY_REQUEST_READBACK;
}

static bool is_response_body_case(const struct stream *s) {
    return s->c && s->c->id >= C_BODY_RESPONSE_GET && s->c->id <= C_BODY_RESPONSE_REPLACE;
}

/* ======================================================================== */
/* Properties                                                               */
/* ======================================================================== */

/* "a.b.c" -> "a\0b\0c" */
static str_t dotted_path(const char *dotted, size_t n) {
    str_t p = str_dup(dotted, n);
    for (size_t i = 0; i < n; i++)
        if (p.p[i] == '.') p.p[i] = '\0';
    return p;
}

static uint32_t report_value(struct stream *s, const char *d, size_t n, enum prop_fmt fmt) {
    sb_t b = {0};
    switch (fmt) {
    case FMT_RAW:
        return report(s, 200, d ? d : "", n);
    case FMT_INT: {
        if (n != 8) return reportf(s, 500, "property size=%zu, expected 8", n);
        int64_t v;
        memcpy(&v, d, 8);
        return reportf(s, 200, "%lld", (long long)v);
    }
    case FMT_BOOL:
        if (n != 1) return reportf(s, 500, "property size=%zu, expected 1", n);
        return report_str(s, 200, d[0] ? "true" : "false");
    case FMT_HEX:
        hex_encode(&b, (const unsigned char *)d, n);
        return report_sb(s, 200, &b);
    case FMT_MAP: {
        struct pairs m = {0};
        if (!parse_pairs(d, n, &m.p, &m.n)) return report_str(s, 500, "malformed map property");
        pairs_text(&b, &m, "\n", NULL);
        free(m.p);
        return report_sb(s, 200, &b);
    }
    }
    return PROXY_ACTION_CONTINUE;
}

static uint32_t get_property(struct stream *s, const char *path, size_t path_n,
                             enum prop_fmt fmt) {
    char *d = NULL;
    size_t n = 0;
    CHECK_OK("proxy_get_property", proxy_get_property(path, path_n, &d, &n));
    uint32_t action = report_value(s, d, n, fmt);
    free(d);
    return action;
}

static uint32_t get_dotted_property(struct stream *s, const char *dotted, enum prop_fmt fmt) {
    str_t path = dotted_path(dotted, strlen(dotted));
    uint32_t action = get_property(s, path.p, path.n, fmt);
    str_free(&path);
    return action;
}

static uint32_t set_then_get_property(struct stream *s, const char *path, size_t path_n,
                                      const char *value, size_t value_n) {
    CHECK_OK("proxy_set_property", proxy_set_property(path, path_n, value, value_n));
    return get_property(s, path, path_n, FMT_RAW);
}

/* ======================================================================== */
/* Callouts                                                                 */
/* ======================================================================== */

static uint32_t start_http_call(struct stream *s) {
    uint32_t action;
    str_t cluster, path = req_header("x-call-path"), body = req_header("x-call-body");
    str_t timeout_s = req_header("x-call-timeout"), then = req_header("x-call-then");
    uint32_t timeout = DEFAULT_TIMEOUT_MS, id = 0;
    if (!need(s, "x-cluster", &cluster, &action)) goto out;
    if (timeout_s.p != NULL && !parse_u32(&timeout_s, &timeout)) {
        action = report_str(s, 400, "bad request header x-call-timeout");
        goto out;
    }
    if (then.p != NULL && !str_eq(&then, "continue") && !str_eq(&then, "respond")) {
        action = report_str(s, 400, "bad request header x-call-then");
        goto out;
    }
    struct pair h[3] = {cpair(":method", body.p ? "POST" : "GET"),
                        cpair(":path", path.p ? path.p : "/"),
                        cpair(":authority", "callout")};
    if (path.p) h[1].vn = path.n;
    size_t hn;
    char *hdrs = serialize_pairs(h, 3, &hn);
    proxy_status_t st = proxy_http_call(cluster.p, cluster.n, hdrs, hn, body.p ? body.p : "",
                                        body.n, LIT(""), timeout, &id);
    free(hdrs);
    if (st != PROXY_OK) {
        action = fail_status(s, "proxy_http_call", st);
        goto out;
    }
    s->http_pending = true;
    s->http_id = id;
    s->http_continue = str_eq(&then, "continue");
    action = PROXY_ACTION_PAUSE;
out:
    str_free(&cluster);
    str_free(&path);
    str_free(&body);
    str_free(&timeout_s);
    str_free(&then);
    return action;
}

static void log_get_status(const char *name) {
    uint32_t code = 0;
    char *msg = NULL;
    size_t msg_n = 0;
    proxy_status_t st = proxy_get_status(&code, &msg, &msg_n);
    if (st != PROXY_OK) {
        logf_(PROXY_LOG_ERROR, "hostcalls: %s: proxy_get_status status=%u", name, st);
        return;
    }
    sb_t b = {0};
    sb_addf(&b, "get_status=%u ", code);
    sb_add(&b, msg, msg_n);
    log_case(PROXY_LOG_INFO, name, sb_str(&b), b.n);
    sb_free(&b);
    free(msg);
}

/* Builds the http/call result text; returns the failing host status (and
 * its function name in *fn) or PROXY_OK. */
static proxy_status_t http_call_result(size_t body_size, size_t num_trailers, sb_t *text,
                                       str_t *status, str_t *body, const char **fn) {
    *body = str_dup(LIT(""));
    *fn = "proxy_get_header_map_value(:status)";
    proxy_status_t st = map_get(PROXY_MAP_HTTP_CALL_RESPONSE_HEADERS, LIT(":status"), status);
    if (st != PROXY_OK) return st;
    if (body_size > 0) {
        char *d = NULL;
        size_t n = 0;
        *fn = "proxy_get_buffer_bytes";
        st = proxy_get_buffer_bytes(PROXY_BUFFER_HTTP_CALL_RESPONSE_BODY, 0, body_size, &d, &n);
        if (st != PROXY_OK) return st;
        str_free(body);
        *body = str_take(d, n);
    }
    struct pairs h, t = {0};
    *fn = "proxy_get_header_map_pairs";
    if ((st = get_pairs(PROXY_MAP_HTTP_CALL_RESPONSE_HEADERS, &h)) != PROXY_OK) return st;
    if (num_trailers > 0 && (st = get_pairs(PROXY_MAP_HTTP_CALL_RESPONSE_TRAILERS, &t)) != PROXY_OK) {
        pairs_free(&h);
        return st;
    }
    sb_adds(text, "status=");
    sb_add(text, status->p, status->n);
    sb_adds(text, "\nbody=");
    sb_add(text, body->p, body->n);
    sb_adds(text, "\nheaders=");
    pairs_text(text, &h, ",", "x-");
    sb_adds(text, "\ntrailers=");
    pairs_text(text, &t, ",", NULL);
    pairs_free(&h);
    pairs_free(&t);
    return PROXY_OK;
}

PROXY_EXPORT(proxy_on_http_call_response)
void proxy_on_http_call_response(uint32_t context_id, uint32_t call_id, size_t num_headers,
                                 size_t body_size, size_t num_trailers) {
    struct stream *s = NULL;
    for (size_t i = 0; i < n_streams; i++)
        if (streams[i]->http_pending && streams[i]->http_id == call_id) s = streams[i];
    if (s == NULL) {
        proxy_log(PROXY_LOG_ERROR, LIT("hostcalls: http: response for unknown call"));
        return;
    }
    enum phase saved = g_phase;
    g_phase = PHASE_REQUEST;
    s->http_pending = false;
    const char *name = s->c->name;
    proxy_status_t st = proxy_set_effective_context(s->id);
    if (st != PROXY_OK)
        logf_(PROXY_LOG_ERROR, "hostcalls: %s: proxy_set_effective_context status=%u", name, st);
    log_get_status(name);
    if (num_headers == 0) {
        report_str(s, 502, "http_call failed");
        g_phase = saved;
        return;
    }
    sb_t text = {0};
    str_t status = {0}, body = {0};
    const char *fn = "";
    st = http_call_result(body_size, num_trailers, &text, &status, &body, &fn);
    if (st != PROXY_OK) {
        fail_status(s, fn, st);
    } else {
        if (s->http_continue) {
            st = proxy_replace_header_map_value(PROXY_MAP_REQUEST_HEADERS, "x-callout-status",
                                                16, status.p, status.n);
            if (st == PROXY_OK)
                st = proxy_replace_header_map_value(PROXY_MAP_REQUEST_HEADERS,
                                                    LIT("x-callout-body"), body.p, body.n);
            if (st != PROXY_OK) {
                fail_status(s, "proxy_replace_header_map_value", st);
            } else {
                st = proxy_continue_stream(PROXY_STREAM_REQUEST);
                if (st != PROXY_OK)
                    fail_status(s, "proxy_continue_stream", st);
                else
                    log_case(PROXY_LOG_INFO, name, LIT("continued"));
            }
        } else {
            report(s, 200, sb_str(&text), text.n);
        }
    }
    sb_free(&text);
    str_free(&status);
    str_free(&body);
    g_phase = saved;
}

/* ---- gRPC ----------------------------------------------------------------- */

static uint32_t start_grpc(struct stream *s, bool streaming, bool cancel) {
    uint32_t action;
    str_t cluster = {0}, service = {0}, method = {0};
    str_t message = req_header("x-grpc-message"), end = req_header("x-grpc-end");
    str_t timeout_s = req_header("x-call-timeout");
    uint32_t timeout = DEFAULT_TIMEOUT_MS, id = 0;
    if (!need(s, "x-cluster", &cluster, &action) ||
        !need(s, "x-grpc-service", &service, &action) ||
        !need(s, "x-grpc-method", &method, &action))
        goto out;
    if (timeout_s.p != NULL && !parse_u32(&timeout_s, &timeout)) {
        action = report_str(s, 400, "bad request header x-call-timeout");
        goto out;
    }
    struct pair md = cpair("x-hostcalls", streaming ? "stream" : "call");
    size_t md_n;
    char *md_data = serialize_pairs(&md, 1, &md_n);
    const char *msg = message.p ? message.p : "";
    proxy_status_t st;
    if (streaming) {
        st = proxy_grpc_stream(cluster.p, cluster.n, service.p, service.n, method.p, method.n,
                               md_data, md_n, &id);
    } else {
        st = proxy_grpc_call(cluster.p, cluster.n, service.p, service.n, method.p, method.n,
                             md_data, md_n, msg, message.n, timeout, &id);
    }
    free(md_data);
    if (st != PROXY_OK) {
        action = fail_status(s, streaming ? "proxy_grpc_stream" : "proxy_grpc_call", st);
        goto out;
    }
    if (cancel) {
        st = proxy_grpc_cancel(id);
        action = st == PROXY_OK ? report_ok(s) : fail_status(s, "proxy_grpc_cancel", st);
        goto out;
    }
    s->grpc_end = str_eq(&end, "1");
    if (streaming) {
        st = proxy_grpc_send(id, msg, message.n, s->grpc_end);
        if (st != PROXY_OK) {
            proxy_grpc_cancel(id);
            action = fail_status(s, "proxy_grpc_send", st);
            goto out;
        }
    }
    s->grpc_pending = true;
    s->grpc_id = id;
    action = PROXY_ACTION_PAUSE;
out:
    str_free(&cluster);
    str_free(&service);
    str_free(&method);
    str_free(&message);
    str_free(&end);
    str_free(&timeout_s);
    return action;
}

/* Finds the stream waiting for gRPC call/stream `id`, makes it the effective
 * context and enters the request phase. */
static struct stream *grpc_enter(uint32_t id, const char *callback) {
    struct stream *s = NULL;
    for (size_t i = 0; i < n_streams; i++)
        if (streams[i]->grpc_pending && streams[i]->grpc_id == id) s = streams[i];
    if (s == NULL) {
        logf_(PROXY_LOG_ERROR, "hostcalls: grpc: %s for unknown call", callback);
        return NULL;
    }
    proxy_status_t st = proxy_set_effective_context(s->id);
    if (st != PROXY_OK)
        logf_(PROXY_LOG_ERROR, "hostcalls: %s: proxy_set_effective_context status=%u",
              s->c->name, st);
    return s;
}

/* Appends one result line to the stream's gRPC text and logs it. */
static void grpc_line(struct stream *s, sb_t *line) {
    if (s->grpc_text.n > 0) sb_adds(&s->grpc_text, "\n");
    sb_add(&s->grpc_text, sb_str(line), line->n);
    log_case(PROXY_LOG_INFO, s->c->name, sb_str(line), line->n);
    sb_free(line);
}

static void grpc_respond(struct stream *s) {
    if (s->grpc_responded) return;
    s->grpc_responded = true;
    sb_t text = s->grpc_text;
    memset(&s->grpc_text, 0, sizeof s->grpc_text);
    report(s, 200, sb_str(&text), text.n);
    sb_free(&text);
}

static void grpc_metadata(uint32_t id, uint32_t map, const char *what) {
    struct stream *s = grpc_enter(id, what);
    if (s == NULL) return;
    struct pairs m;
    proxy_status_t st = get_pairs(map, &m);
    sb_t line = {0};
    if (st != PROXY_OK) {
        sb_addf(&line, "%s=proxy_get_header_map_pairs status=%u", what, st);
    } else {
        sb_addf(&line, "%s=", what);
        pairs_text(&line, &m, ",", "x-");
        pairs_free(&m);
    }
    grpc_line(s, &line);
}

PROXY_EXPORT(proxy_on_grpc_receive_initial_metadata)
void proxy_on_grpc_receive_initial_metadata(uint32_t context_id, uint32_t id, size_t n) {
    enum phase saved = g_phase;
    g_phase = PHASE_REQUEST;
    grpc_metadata(id, PROXY_MAP_GRPC_INITIAL_METADATA, "initial_metadata");
    g_phase = saved;
}

PROXY_EXPORT(proxy_on_grpc_receive_trailing_metadata)
void proxy_on_grpc_receive_trailing_metadata(uint32_t context_id, uint32_t id, size_t n) {
    enum phase saved = g_phase;
    g_phase = PHASE_REQUEST;
    grpc_metadata(id, PROXY_MAP_GRPC_TRAILING_METADATA, "trailing_metadata");
    g_phase = saved;
}

PROXY_EXPORT(proxy_on_grpc_receive)
void proxy_on_grpc_receive(uint32_t context_id, uint32_t id, size_t message_size) {
    enum phase saved = g_phase;
    g_phase = PHASE_REQUEST;
    struct stream *s = grpc_enter(id, "receive");
    if (s == NULL) goto out;
    char *d = NULL;
    size_t n = 0;
    sb_t line = {0};
    proxy_status_t st = PROXY_OK;
    if (message_size > 0)
        st = proxy_get_buffer_bytes(PROXY_BUFFER_GRPC_RECEIVE_BUFFER, 0, message_size, &d, &n);
    if (st != PROXY_OK) {
        sb_addf(&line, "message=proxy_get_buffer_bytes status=%u", st);
    } else {
        sb_adds(&line, "message=");
        sb_add(&line, d, n);
        free(d);
    }
    grpc_line(s, &line);
    if (s->c->id == C_GRPC_CALL) {
        grpc_respond(s);
    } else if (!s->grpc_end && !s->grpc_close_sent) {
        s->grpc_close_sent = true;
        st = proxy_grpc_close(id);
        sb_addf(&line, "proxy_grpc_close status=%u", st);
        grpc_line(s, &line);
    }
out:
    g_phase = saved;
}

PROXY_EXPORT(proxy_on_grpc_close)
void proxy_on_grpc_close(uint32_t context_id, uint32_t id, uint32_t status_code) {
    enum phase saved = g_phase;
    g_phase = PHASE_REQUEST;
    struct stream *s = grpc_enter(id, "close");
    if (s == NULL) goto out;
    s->grpc_pending = false;
    sb_t line = {0};
    sb_addf(&line, "close=%u", status_code);
    grpc_line(s, &line);
    uint32_t code = 0;
    char *msg = NULL;
    size_t msg_n = 0;
    proxy_status_t st = proxy_get_status(&code, &msg, &msg_n);
    if (st != PROXY_OK) {
        sb_addf(&line, "get_status=proxy_get_status status=%u", st);
    } else {
        sb_addf(&line, "get_status=%u ", code);
        sb_add(&line, msg, msg_n);
        free(msg);
    }
    grpc_line(s, &line);
    grpc_respond(s);
out:
    g_phase = saved;
}

/* ======================================================================== */
/* Request headers: case dispatch                                           */
/* ======================================================================== */

static uint32_t tick_required(struct stream *s) {
    return reportf(s, 400, "%s requires a tick period (tick= in the plugin configuration)",
                   s->c->name);
}

static uint32_t run_case(struct stream *s, bool end_of_stream) {
    uint32_t action = PROXY_ACTION_CONTINUE;
    switch (s->c->id) {
    /* ---- logging, time, ticks, contexts ---- */
    case C_LOG_LEVELS: {
        static const char *names[] = {"trace", "debug", "info", "warn", "error", "critical"};
        for (uint32_t level = 0; level < 6; level++) {
            sb_t b = {0};
            sb_addf(&b, "hostcalls: log/levels: %s", names[level]);
            proxy_status_t st = proxy_log(level, sb_str(&b), b.n);
            sb_free(&b);
            CHECK_OK("proxy_log", st);
        }
        EXPECT("proxy_log(level=6)", proxy_log(6, LIT("hostcalls: log/levels: bad")),
               PROXY_BAD_ARGUMENT);
        return report_ok(s);
    }
    case C_LOG_GET_LEVEL: {
        uint32_t level = 0;
        CHECK_OK("proxy_get_log_level", proxy_get_log_level(&level));
        return reportf(s, 200, "%u", level);
    }
    case C_TIME_NOW: {
        uint64_t t = 0;
        CHECK_OK("proxy_get_current_time_nanoseconds", proxy_get_current_time_nanoseconds(&t));
        return reportf(s, 200, "%llu", (unsigned long long)t);
    }
    case C_TICK_SET: {
        str_t ms_s;
        uint32_t ms;
        if (!need(s, "x-tick-ms", &ms_s, &action)) return action;
        bool ok = parse_u32(&ms_s, &ms);
        str_free(&ms_s);
        if (!ok) return report_str(s, 400, "bad request header x-tick-ms");
        CHECK_OK("proxy_set_tick_period_milliseconds", proxy_set_tick_period_milliseconds(ms));
        struct root *r = find_root(s->root_id);
        if (r != NULL) r->tick_ms = ms;
        return report_ok(s);
    }
    case C_CONTEXT_SET_EFFECTIVE:
        CHECK_OK("proxy_set_effective_context", proxy_set_effective_context(s->id));
        EXPECT("proxy_set_effective_context(unknown)", proxy_set_effective_context(UNKNOWN_ID),
               PROXY_BAD_ARGUMENT);
        CHECK_OK("proxy_set_effective_context", proxy_set_effective_context(s->id));
        return report_ok(s);
    case C_DONE_NOT_PENDING:
        EXPECT("proxy_done", proxy_done(), PROXY_NOT_FOUND);
        return report_ok(s);
    case C_DONE_DEFER:
        if (root_tick_ms(s) == 0) return tick_required(s);
        return PROXY_ACTION_CONTINUE;

    /* ---- configuration and buffers ---- */
    case C_CONFIG_PLUGIN: {
        struct root *r = find_root(s->root_id);
        if (r == NULL || r->config.p == NULL) return report(s, 200, LIT(""));
        return report(s, 200, r->config.p, r->config.n);
    }
    case C_CONFIG_VM:
        return report(s, 200, vm_config.p ? vm_config.p : "", vm_config.n);
    case C_CONFIG_CHECKS: {
        struct root *r = find_root(s->root_id);
        const char *pc = r && r->config_checks ? r->config_checks : "not configured";
        return reportf(s, 200, "plugin=%s\nvm=%s", pc, vm_checks ? vm_checks : "not started");
    }
    case C_BUFFERS_BAD_ID: {
        size_t size;
        uint32_t flags;
        char *d = NULL;
        EXPECT("proxy_get_buffer_status", proxy_get_buffer_status(99, &size, &flags),
               PROXY_BAD_ARGUMENT);
        EXPECT("proxy_get_buffer_bytes", proxy_get_buffer_bytes(99, 0, 1, &d, &size),
               PROXY_BAD_ARGUMENT);
        EXPECT("proxy_set_buffer_bytes", proxy_set_buffer_bytes(99, 0, 0, LIT("x")),
               PROXY_BAD_ARGUMENT);
        return report_ok(s);
    }
    case C_BUFFERS_UNAVAILABLE: {
        size_t size;
        uint32_t flags;
        char *d = NULL;
        EXPECT("proxy_get_buffer_status(HTTP_CALL_RESPONSE_BODY)",
               proxy_get_buffer_status(PROXY_BUFFER_HTTP_CALL_RESPONSE_BODY, &size, &flags),
               PROXY_NOT_FOUND);
        EXPECT("proxy_get_buffer_bytes(HTTP_CALL_RESPONSE_BODY)",
               proxy_get_buffer_bytes(PROXY_BUFFER_HTTP_CALL_RESPONSE_BODY, 0, 1, &d, &size),
               PROXY_NOT_FOUND);
        EXPECT("proxy_get_buffer_status(GRPC_RECEIVE_BUFFER)",
               proxy_get_buffer_status(PROXY_BUFFER_GRPC_RECEIVE_BUFFER, &size, &flags),
               PROXY_NOT_FOUND);
        return report_ok(s);
    }

    /* ---- bodies ---- */
    case C_BODY_REQUEST_RANGE: {
        str_t a, b;
        if (!need(s, "x-start", &a, &action)) return action;
        if (!need(s, "x-max", &b, &action)) {
            str_free(&a);
            return action;
        }
        bool ok = parse_u32(&a, &s->start) && parse_u32(&b, &s->max);
        str_free(&a);
        str_free(&b);
        if (!ok) return report_str(s, 400, "bad request header x-start or x-max");
    }
        /* fall through */
    case C_BODY_REQUEST_GET:
    case C_BODY_REQUEST_READBACK:
        if (end_of_stream) return report_str(s, 400, "request body required");
        return PROXY_ACTION_CONTINUE;
    case C_BODY_REQUEST_PREPEND:
    case C_BODY_REQUEST_APPEND:
    case C_BODY_REQUEST_REPLACE:
        if (end_of_stream) return report_str(s, 400, "request body required");
        CHECK_OK("proxy_remove_header_map_value(content-length)",
                 proxy_remove_header_map_value(PROXY_MAP_REQUEST_HEADERS, LIT("content-length")));
        return PROXY_ACTION_CONTINUE;
    case C_BODY_RESPONSE_GET:
    case C_BODY_RESPONSE_PREPEND:
    case C_BODY_RESPONSE_APPEND:
    case C_BODY_RESPONSE_REPLACE:
        return PROXY_ACTION_CONTINUE;

    /* ---- header maps ---- */
    case C_MAP:
        return start_map_case(s);
    case C_PSEUDO: {
        static const char *names[] = {":method", ":path", ":authority", ":scheme"};
        sb_t b = {0};
        for (int i = 0; i < 4; i++) {
            str_t v;
            proxy_status_t st = map_get(PROXY_MAP_REQUEST_HEADERS, names[i], strlen(names[i]), &v);
            if (st != PROXY_OK) {
                sb_free(&b);
                return reportf(s, 500, "proxy_get_header_map_value(%s) status=%u", names[i], st);
            }
            if (i > 0) sb_adds(&b, "\n");
            sb_addf(&b, "%s=", names[i]);
            sb_add(&b, v.p, v.n);
            str_free(&v);
        }
        return report_sb(s, 200, &b);
    }
    case C_MAPS_BAD_ID: {
        char *d = NULL;
        size_t n = 0;
        static const char empty_map[4] = {0, 0, 0, 0};
        EXPECT("proxy_get_header_map_value", proxy_get_header_map_value(99, LIT("a"), &d, &n),
               PROXY_BAD_ARGUMENT);
        EXPECT("proxy_add_header_map_value", proxy_add_header_map_value(99, LIT("a"), LIT("b")),
               PROXY_BAD_ARGUMENT);
        EXPECT("proxy_replace_header_map_value",
               proxy_replace_header_map_value(99, LIT("a"), LIT("b")), PROXY_BAD_ARGUMENT);
        EXPECT("proxy_remove_header_map_value", proxy_remove_header_map_value(99, LIT("a")),
               PROXY_BAD_ARGUMENT);
        EXPECT("proxy_get_header_map_pairs", proxy_get_header_map_pairs(99, &d, &n),
               PROXY_BAD_ARGUMENT);
        EXPECT("proxy_set_header_map_pairs", proxy_set_header_map_pairs(99, empty_map, 4),
               PROXY_BAD_ARGUMENT);
        EXPECT("proxy_get_header_map_size", proxy_get_header_map_size(99, &n),
               PROXY_BAD_ARGUMENT);
        return report_ok(s);
    }

    /* ---- stream control ---- */
    case C_STREAM_CONTINUE_ON_TICK:
        if (root_tick_ms(s) == 0) return tick_required(s);
        s->tick_action = TICK_CONTINUE_REQUEST;
        return PROXY_ACTION_PAUSE;
    case C_STREAM_CONTINUE_RESPONSE_ON_TICK:
        if (root_tick_ms(s) == 0) return tick_required(s);
        return PROXY_ACTION_CONTINUE;
    case C_STREAM_CLOSE_REQUEST: {
        const char *name = s->c->name;
        proxy_status_t st = proxy_close_stream(PROXY_STREAM_REQUEST);
        logf_(st == PROXY_OK ? PROXY_LOG_INFO : PROXY_LOG_ERROR,
              "hostcalls: %s: proxy_close_stream status=%u", name, st);
        return PROXY_ACTION_PAUSE;
    }
    case C_STREAM_CLOSE_RESPONSE:
        return PROXY_ACTION_CONTINUE;
    case C_STREAM_BAD_TYPE:
        EXPECT("proxy_continue_stream", proxy_continue_stream(99), PROXY_BAD_ARGUMENT);
        EXPECT("proxy_close_stream", proxy_close_stream(99), PROXY_BAD_ARGUMENT);
        return report_ok(s);

    /* ---- local responses ---- */
    case C_LOCAL_HEADERS: {
        struct pair h[3] = {cpair("x-local", "yes"), cpair("x-multi", "a"),
                            cpair("x-multi", "b")};
        size_t hn;
        char *hdrs = serialize_pairs(h, 3, &hn);
        action = send_local(s, 201, LIT("created locally"), hdrs, hn, NO_GRPC_STATUS);
        free(hdrs);
        return action;
    }
    case C_LOCAL_GRPC_STATUS: {
        struct pair h = cpair("content-type", "application/grpc");
        size_t hn;
        char *hdrs = serialize_pairs(&h, 1, &hn);
        action = send_local(s, 200, LIT(""), hdrs, hn, 14);
        free(hdrs);
        return action;
    }
    case C_LOCAL_EMPTY:
        return send_local(s, 204, NULL, 0, NULL, 0, NO_GRPC_STATUS);
    case C_LOCAL_EMPTY_MAP_BYTE:
        return send_local(s, 200, LIT("empty map"), "", 1, NO_GRPC_STATUS);
    case C_LOCAL_FROM_RESPONSE_HEADERS:
        return PROXY_ACTION_CONTINUE;

    /* ---- HTTP callouts ---- */
    case C_HTTP_CALL:
        return start_http_call(s);
    case C_HTTP_BAD_CLUSTER: {
        struct pair h[3] = {cpair(":method", "GET"), cpair(":path", "/"),
                            cpair(":authority", "callout")};
        size_t hn;
        uint32_t id;
        char *hdrs = serialize_pairs(h, 3, &hn);
        proxy_status_t st = proxy_http_call(LIT("hostcalls-unknown-cluster"), hdrs, hn, LIT(""),
                                            LIT(""), DEFAULT_TIMEOUT_MS, &id);
        free(hdrs);
        EXPECT("proxy_http_call", st, PROXY_BAD_ARGUMENT);
        return report_ok(s);
    }
    case C_HTTP_MISSING_HEADERS: {
        str_t cluster;
        if (!need(s, "x-cluster", &cluster, &action)) return action;
        struct pair h[2] = {cpair(":method", "GET"), cpair(":path", "/")};
        size_t hn;
        uint32_t id;
        char *hdrs = serialize_pairs(h, 2, &hn);
        proxy_status_t st = proxy_http_call(cluster.p, cluster.n, hdrs, hn, LIT(""), LIT(""),
                                            DEFAULT_TIMEOUT_MS, &id);
        free(hdrs);
        str_free(&cluster);
        EXPECT("proxy_http_call(no :authority)", st, PROXY_BAD_ARGUMENT);
        return report_ok(s);
    }

    /* ---- gRPC callouts ---- */
    case C_GRPC_CALL:
        return start_grpc(s, false, false);
    case C_GRPC_STREAM:
        return start_grpc(s, true, false);
    case C_GRPC_CANCEL:
        return start_grpc(s, false, true);
    case C_GRPC_BAD_CLUSTER: {
        uint32_t id;
        EXPECT("proxy_grpc_call",
               proxy_grpc_call(LIT("hostcalls-unknown-cluster"), LIT("svc"), LIT("Method"), LIT(""),
                               LIT(""), DEFAULT_TIMEOUT_MS, &id),
               PROXY_PARSE_FAILURE);
        EXPECT("proxy_grpc_stream",
               proxy_grpc_stream(LIT("hostcalls-unknown-cluster"), LIT("svc"), LIT("Method"), LIT(""),
                                 &id),
               PROXY_PARSE_FAILURE);
        return report_ok(s);
    }
    case C_GRPC_UNKNOWN_ID:
        EXPECT("proxy_grpc_send", proxy_grpc_send(UNKNOWN_ID, LIT("x"), 0), PROXY_NOT_FOUND);
        EXPECT("proxy_grpc_close", proxy_grpc_close(UNKNOWN_ID), PROXY_NOT_FOUND);
        EXPECT("proxy_grpc_cancel", proxy_grpc_cancel(UNKNOWN_ID), PROXY_NOT_FOUND);
        return report_ok(s);

    /* ---- shared data ---- */
    case C_SHARED_SET: {
        str_t key, value = {0};
        if (!need(s, "x-key", &key, &action) || !need(s, "x-value", &value, &action)) {
            str_free(&key);
            return action;
        }
        proxy_status_t st = proxy_set_shared_data(key.p, key.n, value.p, value.n, 0);
        str_free(&key);
        str_free(&value);
        CHECK_OK("proxy_set_shared_data", st);
        return report_ok(s);
    }
    case C_SHARED_GET: {
        str_t key;
        if (!need(s, "x-key", &key, &action)) return action;
        char *d = NULL;
        size_t n = 0;
        uint32_t cas = 0;
        proxy_status_t st = proxy_get_shared_data(key.p, key.n, &d, &n, &cas);
        str_free(&key);
        CHECK_OK("proxy_get_shared_data", st);
        char cas_s[16];
        snprintf(cas_s, sizeof cas_s, "%u", cas);
        struct pair h = cpair("x-cas", cas_s);
        size_t hn;
        char *hdrs = serialize_pairs(&h, 1, &hn);
        action = send_local(s, 200, d ? d : "", n, hdrs, hn, NO_GRPC_STATUS);
        free(hdrs);
        free(d);
        return action;
    }
    case C_SHARED_CAS: {
        str_t key;
        if (!need(s, "x-key", &key, &action)) return action;
        char *d = NULL;
        size_t n = 0;
        uint32_t cas = 0;
        proxy_status_t st;
        const char *fn = "proxy_set_shared_data(v1, cas=0)";
        if ((st = proxy_set_shared_data(key.p, key.n, LIT("v1"), 0)) != PROXY_OK) goto cas_fail;
        fn = "proxy_get_shared_data";
        if ((st = proxy_get_shared_data(key.p, key.n, &d, &n, &cas)) != PROXY_OK) goto cas_fail;
        free(d);
        d = NULL;
        fn = "proxy_set_shared_data(v2, current cas)";
        if ((st = proxy_set_shared_data(key.p, key.n, LIT("v2"), cas)) != PROXY_OK) goto cas_fail;
        st = proxy_set_shared_data(key.p, key.n, LIT("v3"), cas);
        if (st != PROXY_CAS_MISMATCH) {
            str_free(&key);
            return reportf(s, 500, "proxy_set_shared_data(v3, stale cas) status=%u expected=%u",
                           st, PROXY_CAS_MISMATCH);
        }
        fn = "proxy_get_shared_data";
        if ((st = proxy_get_shared_data(key.p, key.n, &d, &n, &cas)) != PROXY_OK) goto cas_fail;
        str_free(&key);
        bool ok = n == 2 && memcmp(d, LIT("v2")) == 0;
        free(d);
        if (!ok) return report_str(s, 500, "proxy_get_shared_data: value is not v2");
        return report_ok(s);
    cas_fail:
        str_free(&key);
        return fail_status(s, fn, st);
    }
    case C_SHARED_GET_MISSING: {
        char *d = NULL;
        size_t n = 0;
        uint32_t cas = 0;
        EXPECT("proxy_get_shared_data",
               proxy_get_shared_data(LIT("hostcalls:never-set"), &d, &n, &cas), PROXY_NOT_FOUND);
        return report_ok(s);
    }

    /* ---- shared queues ---- */
    case C_QUEUE_REGISTER: {
        str_t name;
        uint32_t id;
        if (!need(s, "x-queue", &name, &action)) return action;
        proxy_status_t st = proxy_register_shared_queue(name.p, name.n, &id);
        str_free(&name);
        CHECK_OK("proxy_register_shared_queue", st);
        return report_ok(s);
    }
    case C_QUEUE_ENQUEUE: {
        str_t name, value = {0}, vm = req_header("x-vm-id");
        uint32_t id;
        proxy_status_t st = PROXY_OK;
        const char *fn = "proxy_resolve_shared_queue";
        if (need(s, "x-queue", &name, &action) && need(s, "x-value", &value, &action)) {
            st = proxy_resolve_shared_queue(vm.p ? vm.p : "", vm.n, name.p, name.n, &id);
            if (st == PROXY_OK) {
                fn = "proxy_enqueue_shared_queue";
                st = proxy_enqueue_shared_queue(id, value.p, value.n);
            }
            action = st == PROXY_OK ? report_ok(s) : fail_status(s, fn, st);
        }
        str_free(&name);
        str_free(&value);
        str_free(&vm);
        return action;
    }
    case C_QUEUE_DEQUEUE: {
        str_t name;
        uint32_t id;
        if (!need(s, "x-queue", &name, &action)) return action;
        proxy_status_t st = proxy_register_shared_queue(name.p, name.n, &id);
        str_free(&name);
        CHECK_OK("proxy_register_shared_queue", st);
        char *d = NULL;
        size_t n = 0;
        CHECK_OK("proxy_dequeue_shared_queue", proxy_dequeue_shared_queue(id, &d, &n));
        action = report(s, 200, d ? d : "", n);
        free(d);
        return action;
    }
    case C_QUEUE_EMPTY: {
        uint32_t id;
        char *d = NULL;
        size_t n = 0;
        CHECK_OK("proxy_register_shared_queue",
                 proxy_register_shared_queue(LIT("hostcalls-empty-queue"), &id));
        EXPECT("proxy_dequeue_shared_queue", proxy_dequeue_shared_queue(id, &d, &n),
               PROXY_EMPTY);
        return report_ok(s);
    }
    case C_QUEUE_UNKNOWN_ID: {
        char *d = NULL;
        size_t n = 0;
        EXPECT("proxy_enqueue_shared_queue", proxy_enqueue_shared_queue(UNKNOWN_ID, LIT("x")),
               PROXY_NOT_FOUND);
        EXPECT("proxy_dequeue_shared_queue", proxy_dequeue_shared_queue(UNKNOWN_ID, &d, &n),
               PROXY_NOT_FOUND);
        return report_ok(s);
    }
    case C_QUEUE_RESOLVE_MISSING: {
        str_t vm = req_header("x-vm-id");
        uint32_t id;
        proxy_status_t st = proxy_resolve_shared_queue(vm.p ? vm.p : "", vm.n,
                                                       LIT("hostcalls-never-registered"), &id);
        str_free(&vm);
        EXPECT("proxy_resolve_shared_queue", st, PROXY_NOT_FOUND);
        return report_ok(s);
    }

    /* ---- metrics ---- */
    case C_METRICS_COUNTER:
    case C_METRICS_GAUGE:
    case C_METRICS_GAUGE_INCREMENT:
    case C_METRICS_HISTOGRAM: {
        enum case_id id = s->c->id;
        uint32_t type = id == C_METRICS_COUNTER     ? PROXY_METRIC_COUNTER
                        : id == C_METRICS_HISTOGRAM ? PROXY_METRIC_HISTOGRAM
                                                    : PROXY_METRIC_GAUGE;
        const char *def = id == C_METRICS_COUNTER     ? "hostcalls_counter"
                          : id == C_METRICS_HISTOGRAM ? "hostcalls_histogram"
                                                      : "hostcalls_gauge";
        bool records = id == C_METRICS_GAUGE || id == C_METRICS_HISTOGRAM;
        str_t name = req_header("x-metric"), num = req_header(records ? "x-value" : "x-delta");
        int64_t v = 1;
        uint32_t mid = 0;
        uint64_t got = 0;
        proxy_status_t st;
        const char *fn;
        if (records && num.p == NULL) {
            action = report_str(s, 400, "missing request header x-value");
            goto metric_out;
        }
        if (num.p != NULL && !parse_i64(&num, &v)) {
            action = reportf(s, 400, "bad request header %s", records ? "x-value" : "x-delta");
            goto metric_out;
        }
        fn = "proxy_define_metric";
        st = name.p ? proxy_define_metric(type, name.p, name.n, &mid)
                    : proxy_define_metric(type, def, strlen(def), &mid);
        if (st == PROXY_OK) {
            fn = records ? "proxy_record_metric" : "proxy_increment_metric";
            st = records ? proxy_record_metric(mid, (uint64_t)v) : proxy_increment_metric(mid, v);
        }
        if (st == PROXY_OK && id != C_METRICS_HISTOGRAM) {
            fn = "proxy_get_metric";
            st = proxy_get_metric(mid, &got);
        }
        if (st != PROXY_OK)
            action = fail_status(s, fn, st);
        else if (id == C_METRICS_HISTOGRAM)
            action = report_ok(s);
        else if (id == C_METRICS_COUNTER)
            action = reportf(s, 200, "%llu", (unsigned long long)got);
        else
            action = reportf(s, 200, "%lld", (long long)got);
    metric_out:
        str_free(&name);
        str_free(&num);
        return action;
    }
    case C_METRICS_ERRORS: {
        uint32_t id;
        uint64_t v;
        CHECK_OK("proxy_define_metric",
                 proxy_define_metric(PROXY_METRIC_COUNTER, LIT("hostcalls_errors_counter"), &id));
        EXPECT("proxy_increment_metric(counter, -1)", proxy_increment_metric(id, -1),
               PROXY_BAD_ARGUMENT);
        EXPECT("proxy_increment_metric(unknown)", proxy_increment_metric(UNKNOWN_ID, 1),
               PROXY_NOT_FOUND);
        EXPECT("proxy_record_metric(unknown)", proxy_record_metric(UNKNOWN_ID, 1),
               PROXY_NOT_FOUND);
        EXPECT("proxy_get_metric(unknown)", proxy_get_metric(UNKNOWN_ID, &v), PROXY_NOT_FOUND);
        EXPECT("proxy_define_metric(type=3)",
               proxy_define_metric(3, LIT("hostcalls_bad_type"), &id), PROXY_BAD_ARGUMENT);
        return report_ok(s);
    }

    /* ---- properties ---- */
    case C_PROP_GET: {
        str_t path, as = req_header("x-prop-as");
        enum prop_fmt fmt = FMT_RAW;
        if (as.p == NULL || str_eq(&as, "raw")) fmt = FMT_RAW;
        else if (str_eq(&as, "int")) fmt = FMT_INT;
        else if (str_eq(&as, "bool")) fmt = FMT_BOOL;
        else if (str_eq(&as, "hex")) fmt = FMT_HEX;
        else if (str_eq(&as, "map")) fmt = FMT_MAP;
        else {
            str_free(&as);
            return report_str(s, 400, "bad request header x-prop-as");
        }
        str_free(&as);
        if (!need(s, "x-prop-path", &path, &action)) return action;
        str_t p = dotted_path(path.p, path.n);
        action = get_property(s, p.p, p.n, fmt);
        str_free(&p);
        str_free(&path);
        return action;
    }
    case C_PROP:
        return get_dotted_property(s, s->c->path, s->c->fmt);
    case C_PROP_REQUEST_HEADER: {
        str_t name;
        if (!need(s, "x-name", &name, &action)) return action;
        sb_t p = {0};
        sb_add(&p, LIT("request\0headers\0"));
        sb_add(&p, name.p, name.n);
        action = get_property(s, sb_str(&p), p.n, FMT_RAW);
        sb_free(&p);
        str_free(&name);
        return action;
    }
    case C_PROP_MISSING: {
        char *d = NULL;
        size_t n = 0;
        EXPECT("proxy_get_property",
               proxy_get_property(LIT("hostcalls_missing_property"), &d, &n), PROXY_NOT_FOUND);
        return report_ok(s);
    }
    case C_PROP_SET_WASM:
        return set_then_get_property(s, LIT("wasm\0hostcalls_user"), LIT("hostcalls-value"));
    case C_PROP_SET: {
        str_t path, value = {0};
        if (need(s, "x-prop-path", &path, &action) &&
            need(s, "x-prop-value", &value, &action)) {
            str_t p = dotted_path(path.p, path.n);
            action = set_then_get_property(s, p.p, p.n, value.p, value.n);
            str_free(&p);
        }
        str_free(&path);
        str_free(&value);
        return action;
    }
    case C_PROP_RESPONSE_CODE:
        return PROXY_ACTION_CONTINUE;

    /* ---- foreign functions ---- */
    case C_FOREIGN_COMPRESS: {
        str_t data;
        if (!need(s, "x-data", &data, &action)) return action;
        char *c = NULL, *u = NULL;
        size_t cn = 0, un = 0;
        proxy_status_t st =
            proxy_call_foreign_function(LIT("compress"), data.p, data.n, &c, &cn);
        if (st != PROXY_OK) {
            str_free(&data);
            return fail_status(s, "proxy_call_foreign_function(compress)", st);
        }
        st = proxy_call_foreign_function(LIT("uncompress"), c ? c : "", cn, &u, &un);
        free(c);
        if (st != PROXY_OK) {
            str_free(&data);
            return fail_status(s, "proxy_call_foreign_function(uncompress)", st);
        }
        bool same = un == data.n && (un == 0 || memcmp(u, data.p, un) == 0);
        free(u);
        str_free(&data);
        return same ? report_ok(s) : report_str(s, 500, "roundtrip mismatch");
    }
    case C_FOREIGN_UNKNOWN: {
        char *d = NULL;
        size_t n = 0;
        EXPECT("proxy_call_foreign_function",
               proxy_call_foreign_function(LIT("hostcalls_no_such_function"), LIT(""), &d, &n),
               PROXY_NOT_FOUND);
        return report_ok(s);
    }
    case C_FOREIGN_CLEAR_ROUTE_CACHE: {
        char *d = NULL;
        size_t n = 0;
        CHECK_OK("proxy_call_foreign_function(clear_route_cache)",
                 proxy_call_foreign_function(LIT("clear_route_cache"), LIT(""), &d, &n));
        free(d);
        return report_ok(s);
    }
    case C_FOREIGN_SET_FILTER_STATE: {
        str_t data = req_header("x-data");
        char *d = NULL;
        size_t n = 0;
        proxy_status_t st = proxy_call_foreign_function(LIT("set_envoy_filter_state"),
                                                        data.p ? data.p : "", data.n, &d, &n);
        if (st == PROXY_OK) free(d);
        str_free(&data);
        return reportf(s, 200, "status=%u", st);
    }

    /* ---- WASI ---- */
    case C_WASI_CLOCK_REALTIME:
    case C_WASI_CLOCK_MONOTONIC: {
        struct timespec ts;
        clockid_t clk = s->c->id == C_WASI_CLOCK_REALTIME ? CLOCK_REALTIME : CLOCK_MONOTONIC;
        if (clock_gettime(clk, &ts) != 0) return report_str(s, 500, "clock_gettime failed");
        unsigned long long ns =
            (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
        return reportf(s, 200, "%llu", ns);
    }
    case C_WASI_CLOCK_BAD: {
        __wasi_timestamp_t t = 0;
        __wasi_errno_t e = __wasi_clock_time_get(99, 1, &t);
        return reportf(s, 200, "errno=%u", (unsigned)e);
    }
    case C_WASI_RANDOM: {
        unsigned char a[16], b[16];
        if (getentropy(a, sizeof a) != 0 || getentropy(b, sizeof b) != 0)
            return report_str(s, 500, "getentropy failed");
        if (memcmp(a, b, sizeof a) == 0)
            return report_str(s, 500, "random_get returned identical bytes twice");
        sb_t out = {0};
        hex_encode(&out, a, sizeof a);
        return report_sb(s, 200, &out);
    }
    case C_WASI_GETENV: {
        str_t name;
        if (!need(s, "x-env", &name, &action)) return action;
        const char *v = getenv(name.p);
        str_free(&name);
        return report_str(s, 200, v ? v : "unset");
    }
    case C_WASI_STDOUT:
        printf("hostcalls: wasi/stdout\n");
        fflush(stdout);
        return report_ok(s);
    case C_WASI_STDERR:
        fputs("hostcalls: wasi/stderr\n", stderr);
        return report_ok(s);
    case C_WASI_FD_WRITE:
    case C_WASI_FD_WRITE_BAD: {
        bool bad = s->c->id == C_WASI_FD_WRITE_BAD;
        const char *tail = bad ? "wasi/fd_write_bad\n" : "wasi/fd_write\n";
        __wasi_ciovec_t iov[2] = {{(const uint8_t *)"hostcalls: ", 11},
                                  {(const uint8_t *)tail, strlen(tail)}};
        __wasi_size_t written = 0;
        __wasi_errno_t e = __wasi_fd_write(bad ? 99 : 1, iov, 2, &written);
        if (bad) {
            if (e != __WASI_ERRNO_BADF)
                return reportf(s, 500, "fd_write errno=%u expected=%u", (unsigned)e,
                               (unsigned)__WASI_ERRNO_BADF);
            return report_ok(s);
        }
        if (e != 0) return reportf(s, 500, "fd_write errno=%u", (unsigned)e);
        if (written != 11 + strlen(tail))
            return reportf(s, 500, "fd_write written=%zu expected=%zu", (size_t)written,
                           11 + strlen(tail));
        return report_ok(s);
    }

    case C_LIFECYCLE_ON_LOG:
        return PROXY_ACTION_CONTINUE;
    }
    return PROXY_ACTION_CONTINUE;
}

/* ======================================================================== */
/* HTTP stream callbacks                                                    */
/* ======================================================================== */

PROXY_EXPORT(proxy_on_context_create)
void proxy_on_context_create(uint32_t context_id, uint32_t parent_context_id) {
    if (parent_context_id == 0)
        get_root(context_id);
    else
        get_stream(context_id, parent_context_id);
}

PROXY_EXPORT(proxy_on_request_headers)
uint32_t proxy_on_request_headers(uint32_t context_id, size_t num_headers,
                                  uint32_t end_of_stream) {
    struct stream *s = get_stream(context_id, 0);
    str_t path = req_header(":path");
    if (path.p == NULL || path.n < 3 || memcmp(path.p, LIT("/t/")) != 0) {
        str_free(&path);
        return PROXY_ACTION_CONTINUE;
    }
    enum phase saved = g_phase;
    g_phase = PHASE_REQUEST;
    const char *name = path.p + 3;
    size_t n = strcspn(name, "?");
    const struct case_def *c = find_case(name, n);
    uint32_t action;
    if (c == NULL) {
        sb_t b = {0};
        sb_adds(&b, "unknown case ");
        sb_add(&b, name, n);
        action = send_local(s, 404, sb_str(&b), b.n, LIT(""), NO_GRPC_STATUS);
        sb_free(&b);
    } else {
        s->c = c;
        action = run_case(s, end_of_stream != 0);
    }
    str_free(&path);
    g_phase = saved;
    return action;
}

PROXY_EXPORT(proxy_on_request_body)
uint32_t proxy_on_request_body(uint32_t context_id, size_t body_size, uint32_t end_of_stream) {
    struct stream *s = find_stream(context_id);
    if (s == NULL || !is_request_body_case(s) || s->handled || s->local_sent)
        return PROXY_ACTION_CONTINUE;
    if (!end_of_stream) return PROXY_ACTION_PAUSE;
    s->handled = true;
    enum phase saved = g_phase;
    g_phase = PHASE_REQUEST;
    uint32_t action = do_body(s, PROXY_BUFFER_REQUEST_BODY, body_size);
    g_phase = saved;
    return action;
}

PROXY_EXPORT(proxy_on_request_trailers)
uint32_t proxy_on_request_trailers(uint32_t context_id, size_t num_trailers) {
    struct stream *s = find_stream(context_id);
    if (s == NULL || s->c == NULL || s->local_sent || s->c->id != C_MAP ||
        s->c->map != PROXY_MAP_REQUEST_TRAILERS)
        return PROXY_ACTION_CONTINUE;
    enum phase saved = g_phase;
    g_phase = PHASE_REQUEST;
    uint32_t action = do_map_op(s);
    g_phase = saved;
    return action;
}

static uint32_t response_headers(struct stream *s) {
    switch (s->c->id) {
    case C_MAP:
        if (s->c->map == PROXY_MAP_RESPONSE_HEADERS) return do_map_op(s);
        return PROXY_ACTION_CONTINUE;
    case C_BODY_RESPONSE_PREPEND:
    case C_BODY_RESPONSE_APPEND:
    case C_BODY_RESPONSE_REPLACE:
        CHECK_OK("proxy_remove_header_map_value(content-length)",
                 proxy_remove_header_map_value(PROXY_MAP_RESPONSE_HEADERS, "content-length",
                                               14));
        return PROXY_ACTION_CONTINUE;
    case C_STREAM_CONTINUE_RESPONSE_ON_TICK:
        s->tick_action = TICK_CONTINUE_RESPONSE;
        return PROXY_ACTION_PAUSE;
    case C_STREAM_CLOSE_RESPONSE: {
        const char *name = s->c->name;
        proxy_status_t st = proxy_close_stream(PROXY_STREAM_RESPONSE);
        logf_(st == PROXY_OK ? PROXY_LOG_INFO : PROXY_LOG_ERROR,
              "hostcalls: %s: proxy_close_stream status=%u", name, st);
        return PROXY_ACTION_PAUSE;
    }
    case C_LOCAL_FROM_RESPONSE_HEADERS:
        return send_local(s, 203, LIT("replaced in response headers"), LIT(""), NO_GRPC_STATUS);
    case C_PROP_RESPONSE_CODE:
        return get_dotted_property(s, "response.code", FMT_INT);
    default:
        return PROXY_ACTION_CONTINUE;
    }
}

PROXY_EXPORT(proxy_on_response_headers)
uint32_t proxy_on_response_headers(uint32_t context_id, size_t num_headers,
                                   uint32_t end_of_stream) {
    struct stream *s = find_stream(context_id);
    if (s == NULL || s->c == NULL || s->local_sent) return PROXY_ACTION_CONTINUE;
    enum phase saved = g_phase;
    g_phase = PHASE_RESPONSE;
    uint32_t action = response_headers(s);
    g_phase = saved;
    return action;
}

PROXY_EXPORT(proxy_on_response_body)
uint32_t proxy_on_response_body(uint32_t context_id, size_t body_size, uint32_t end_of_stream) {
    struct stream *s = find_stream(context_id);
    if (s == NULL || !is_response_body_case(s) || s->handled || s->local_sent)
        return PROXY_ACTION_CONTINUE;
    if (!end_of_stream) return PROXY_ACTION_PAUSE;
    s->handled = true;
    enum phase saved = g_phase;
    g_phase = PHASE_RESPONSE;
    uint32_t action = do_body(s, PROXY_BUFFER_RESPONSE_BODY, body_size);
    g_phase = saved;
    return action;
}

PROXY_EXPORT(proxy_on_response_trailers)
uint32_t proxy_on_response_trailers(uint32_t context_id, size_t num_trailers) {
    struct stream *s = find_stream(context_id);
    if (s == NULL || s->c == NULL || s->local_sent || s->c->id != C_MAP ||
        s->c->map != PROXY_MAP_RESPONSE_TRAILERS)
        return PROXY_ACTION_CONTINUE;
    enum phase saved = g_phase;
    g_phase = PHASE_RESPONSE;
    uint32_t action = do_map_op(s);
    g_phase = saved;
    return action;
}

PROXY_EXPORT(proxy_on_log) void proxy_on_log(uint32_t context_id) {
    struct stream *s = find_stream(context_id);
    if (s == NULL || s->c == NULL) return;
    if (s->c->id == C_DONE_DEFER && !s->local_sent) {
        log_case(PROXY_LOG_INFO, s->c->name, LIT("on_log"));
    } else if (s->c->id == C_LIFECYCLE_ON_LOG) {
        str_t path, status = {0};
        proxy_status_t st = map_get(PROXY_MAP_REQUEST_HEADERS, LIT(":path"), &path);
        if (st == PROXY_OK) st = map_get(PROXY_MAP_RESPONSE_HEADERS, LIT(":status"), &status);
        sb_t b = {0};
        if (st != PROXY_OK) {
            sb_addf(&b, "proxy_get_header_map_value status=%u", st);
        } else {
            sb_adds(&b, ":path=");
            sb_add(&b, path.p, path.n);
            sb_adds(&b, " :status=");
            sb_add(&b, status.p, status.n);
        }
        log_case(st == PROXY_OK ? PROXY_LOG_INFO : PROXY_LOG_ERROR, s->c->name, sb_str(&b), b.n);
        sb_free(&b);
        str_free(&path);
        str_free(&status);
    }
}

PROXY_EXPORT(proxy_on_done) uint32_t proxy_on_done(uint32_t context_id) {
    struct root *r = find_root(context_id);
    if (r != NULL) {
        if (!r->done_defer) return 1;
        r->done_pending = true;
        proxy_log(PROXY_LOG_INFO, LIT("hostcalls: on_done root deferred"));
        return 0;
    }
    struct stream *s = find_stream(context_id);
    if (s != NULL && s->c != NULL && s->c->id == C_DONE_DEFER && !s->local_sent) {
        s->done_pending = true;
        s->tick_action = TICK_DONE;
        log_case(PROXY_LOG_INFO, s->c->name, LIT("on_done deferred"));
        return 0;
    }
    return 1;
}

PROXY_EXPORT(proxy_on_delete) void proxy_on_delete(uint32_t context_id) {
    for (size_t i = 0; i < n_streams; i++) {
        if (streams[i]->id == context_id) {
            if (streams[i]->c != NULL && streams[i]->c->id == C_DONE_DEFER &&
                !streams[i]->local_sent)
                log_case(PROXY_LOG_INFO, streams[i]->c->name, LIT("on_delete"));
            free_stream(i);
            return;
        }
    }
    for (size_t i = 0; i < n_roots; i++) {
        if (roots[i]->id == context_id) {
            free_root(i);
            return;
        }
    }
}

/* ======================================================================== */
/* Root context callbacks                                                   */
/* ======================================================================== */

/* Reads a configuration buffer and checks the buffer hostcalls on it.
 * Returns "ok" or a description of the first failed check (malloc'd). */
static char *read_config_buffer(uint32_t buffer, size_t size, str_t *out) {
    sb_t err = {0};
    *out = str_dup(LIT(""));
    if (size == 0) return xstrdup("ok");
    size_t got = 0;
    uint32_t flags = 0;
    char *d = NULL, *d1 = NULL;
    size_t n = 0, n1 = 0;
    proxy_status_t st = proxy_get_buffer_status(buffer, &got, &flags);
    if (st != PROXY_OK) {
        sb_addf(&err, "proxy_get_buffer_status status=%u", st);
    } else if (got != size) {
        sb_addf(&err, "proxy_get_buffer_status size=%zu expected=%zu", got, size);
    } else if ((st = proxy_get_buffer_bytes(buffer, 0, size, &d, &n)) != PROXY_OK) {
        sb_addf(&err, "proxy_get_buffer_bytes status=%u", st);
    } else {
        str_free(out);
        *out = str_take(d, n);
        if (n != size) {
            sb_addf(&err, "proxy_get_buffer_bytes size=%zu expected=%zu", n, size);
        } else if (size >= 2) {
            st = proxy_get_buffer_bytes(buffer, 1, size - 1, &d1, &n1);
            if (st != PROXY_OK)
                sb_addf(&err, "proxy_get_buffer_bytes(start=1) status=%u", st);
            else if (n1 != size - 1 || memcmp(d1, out->p + 1, n1) != 0)
                sb_adds(&err, "proxy_get_buffer_bytes(start=1) returned the wrong bytes");
            if (st == PROXY_OK) free(d1);
        }
    }
    if (err.n == 0) return xstrdup("ok");
    return err.p;
}

PROXY_EXPORT(proxy_on_vm_start)
uint32_t proxy_on_vm_start(uint32_t root_id, size_t vm_configuration_size) {
    get_root(root_id);
    str_free(&vm_config);
    free(vm_checks);
    vm_checks = read_config_buffer(PROXY_BUFFER_VM_CONFIGURATION, vm_configuration_size,
                                   &vm_config);
    log_case(PROXY_LOG_INFO, "vm_config", vm_config.p, vm_config.n);
    if (strcmp(vm_checks, "ok") != 0)
        log_case(PROXY_LOG_ERROR, "vm_config", vm_checks, strlen(vm_checks));
    return !str_eq(&vm_config, "fail");
}

/* Applies one "key=value" directive; returns false if it is invalid. */
static bool apply_directive(struct root *r, const char *d, size_t n, bool *fail) {
    const char *eq = memchr(d, '=', n);
    if (eq == NULL) return false;
    size_t kn = (size_t)(eq - d);
    str_t v = {(char *)eq + 1, n - kn - 1};
    uint32_t u;
#define KEY(k) (kn == strlen(k) && memcmp(d, k, kn) == 0)
    if (KEY("tick") && parse_u32(&v, &u) && u > 0) {
        r->tick_ms = u;
    } else if (KEY("ticks") && parse_u32(&v, &u) && u > 0) {
        r->tick_limit = u;
    } else if (KEY("queue") && v.n > 0) {
        str_free(&r->queue_name);
        r->queue_name = str_dup(v.p, v.n);
    } else if (KEY("configure") && str_eq(&v, "fail")) {
        *fail = true;
    } else if (KEY("done") && str_eq(&v, "defer")) {
        r->done_defer = true;
    } else {
        return false;
    }
#undef KEY
    return true;
}

PROXY_EXPORT(proxy_on_configure)
uint32_t proxy_on_configure(uint32_t root_id, size_t configuration_size) {
    struct root *r = get_root(root_id);
    str_free(&r->config);
    free(r->config_checks);
    r->config_checks =
        read_config_buffer(PROXY_BUFFER_PLUGIN_CONFIGURATION, configuration_size, &r->config);
    log_case(PROXY_LOG_INFO, "configure", r->config.p, r->config.n);
    if (strcmp(r->config_checks, "ok") != 0)
        log_case(PROXY_LOG_ERROR, "configure", r->config_checks, strlen(r->config_checks));

    /* Directives: key=value items separated by ',' or whitespace. */
    r->tick_ms = r->tick_limit = 0;
    r->done_defer = false;
    r->has_queue = false;
    str_free(&r->queue_name);
    bool fail = false;
    const char *p = r->config.p, *end = r->config.p + r->config.n;
    while (p < end) {
        size_t n = strcspn(p, ", \t\r\n");
        if (p + n > end) n = (size_t)(end - p); /* config may contain NUL bytes */
        if (n > 0 && !apply_directive(r, p, n, &fail)) {
            sb_t b = {0};
            sb_adds(&b, "bad directive \"");
            sb_add(&b, p, n);
            sb_adds(&b, "\"");
            log_case(PROXY_LOG_ERROR, "configure", sb_str(&b), b.n);
            sb_free(&b);
            return 0;
        }
        p += n + 1;
    }
    if (fail) {
        proxy_log(PROXY_LOG_ERROR, LIT("hostcalls: configure: failing as requested"));
        return 0;
    }
    if (r->done_defer && (r->tick_ms == 0 || r->tick_limit > 0)) {
        proxy_log(PROXY_LOG_ERROR,
                  LIT("hostcalls: configure: done=defer requires tick= and no ticks="));
        return 0;
    }
    proxy_status_t st = proxy_set_tick_period_milliseconds(r->tick_ms);
    if (st != PROXY_OK) {
        logf_(PROXY_LOG_ERROR, "hostcalls: configure: proxy_set_tick_period_milliseconds status=%u",
              st);
        return 0;
    }
    if (r->queue_name.p != NULL) {
        st = proxy_register_shared_queue(r->queue_name.p, r->queue_name.n, &r->queue_id);
        if (st != PROXY_OK) {
            logf_(PROXY_LOG_ERROR, "hostcalls: configure: proxy_register_shared_queue status=%u",
                  st);
            return 0;
        }
        r->has_queue = true;
        sb_t b = {0};
        sb_adds(&b, "registered queue ");
        sb_add(&b, r->queue_name.p, r->queue_name.n);
        log_case(PROXY_LOG_INFO, "configure", sb_str(&b), b.n);
        sb_free(&b);
    }
    return 1;
}

PROXY_EXPORT(proxy_on_tick) void proxy_on_tick(uint32_t root_id) {
    struct root *r = get_root(root_id);
    r->tick_count++;
    logf_(PROXY_LOG_INFO, "hostcalls: tick %u", r->tick_count);

    /* Pending stream actions. Collect ids first: the host calls below may
     * re-enter the module and delete streams. */
    size_t n = 0;
    uint32_t *ids = xmalloc((n_streams + 1) * sizeof *ids);
    for (size_t i = 0; i < n_streams; i++)
        if (streams[i]->root_id == root_id && streams[i]->tick_action != TICK_NONE)
            ids[n++] = streams[i]->id;
    for (size_t i = 0; i < n; i++) {
        struct stream *s = find_stream(ids[i]);
        if (s == NULL || s->tick_action == TICK_NONE) continue;
        enum tick_action a = s->tick_action;
        const char *name = s->c->name;
        s->tick_action = TICK_NONE;
        proxy_status_t st = proxy_set_effective_context(s->id);
        if (st != PROXY_OK) {
            logf_(PROXY_LOG_ERROR, "hostcalls: %s: proxy_set_effective_context status=%u", name,
                  st);
            continue;
        }
        const char *fn = "proxy_done";
        if (a == TICK_CONTINUE_REQUEST) {
            fn = "proxy_continue_stream";
            st = proxy_continue_stream(PROXY_STREAM_REQUEST);
        } else if (a == TICK_CONTINUE_RESPONSE) {
            fn = "proxy_continue_stream";
            st = proxy_continue_stream(PROXY_STREAM_RESPONSE);
        } else {
            st = proxy_done();
        }
        logf_(st == PROXY_OK ? PROXY_LOG_INFO : PROXY_LOG_ERROR, "hostcalls: %s: %s status=%u",
              name, fn, st);
    }
    if (n > 0) proxy_set_effective_context(root_id);
    free(ids);

    r = find_root(root_id);
    if (r != NULL && r->done_pending) {
        r->done_pending = false;
        proxy_status_t st = proxy_done();
        logf_(st == PROXY_OK ? PROXY_LOG_INFO : PROXY_LOG_ERROR,
              "hostcalls: proxy_done root status=%u", st);
        return; /* the root context may be gone now */
    }
    if (r != NULL && r->tick_limit > 0 && r->tick_count >= r->tick_limit && r->tick_ms > 0) {
        r->tick_ms = 0;
        proxy_status_t st = proxy_set_tick_period_milliseconds(0);
        logf_(st == PROXY_OK ? PROXY_LOG_INFO : PROXY_LOG_ERROR,
              "hostcalls: tick stopped status=%u", st);
    }
}

PROXY_EXPORT(proxy_on_queue_ready) void proxy_on_queue_ready(uint32_t root_id, uint32_t queue_id) {
    struct root *r = find_root(root_id);
    if (r == NULL || !r->has_queue || r->queue_id != queue_id) {
        proxy_log(PROXY_LOG_INFO, LIT("hostcalls: queue_ready: not a configured queue"));
        return;
    }
    for (;;) {
        char *d = NULL;
        size_t n = 0;
        proxy_status_t st = proxy_dequeue_shared_queue(queue_id, &d, &n);
        if (st == PROXY_EMPTY) return;
        sb_t b = {0};
        sb_adds(&b, "hostcalls: queue_ready ");
        sb_add(&b, r->queue_name.p, r->queue_name.n);
        sb_adds(&b, ": ");
        if (st != PROXY_OK) {
            sb_addf(&b, "proxy_dequeue_shared_queue status=%u", st);
            proxy_log(PROXY_LOG_ERROR, sb_str(&b), b.n);
            sb_free(&b);
            return;
        }
        sb_add(&b, d, n);
        free(d);
        proxy_log(PROXY_LOG_INFO, sb_str(&b), b.n);
        sb_free(&b);
    }
}

PROXY_EXPORT(proxy_on_foreign_function)
void proxy_on_foreign_function(uint32_t root_id, uint32_t function_id, size_t arguments_size) {
    char *d = NULL;
    size_t n = 0;
    proxy_status_t st = PROXY_OK;
    if (arguments_size > 0)
        st = proxy_get_buffer_bytes(PROXY_BUFFER_FOREIGN_FUNCTION_ARGUMENTS, 0, arguments_size,
                                    &d, &n);
    sb_t b = {0};
    sb_addf(&b, "hostcalls: on_foreign_function %u: ", function_id);
    if (st != PROXY_OK) {
        sb_addf(&b, "proxy_get_buffer_bytes status=%u", st);
    } else {
        sb_add(&b, d, n);
        free(d);
    }
    proxy_log(st == PROXY_OK ? PROXY_LOG_INFO : PROXY_LOG_ERROR, sb_str(&b), b.n);
    sb_free(&b);
}
