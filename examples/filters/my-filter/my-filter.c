/*
 * my-filter: the "my-filter" example from Kong's Proxy-Wasm walk-through,
 * written in plain C against Proxy-Wasm ABI v0.2.1.
 *
 * Plugin configuration (JSON):
 *
 *     {"my_greeting": "Hello from wasmesh using WebAssembly!"}
 *
 * Every response gets the header `x-greeting: <my_greeting>` (replacing any
 * existing value). Without `my_greeting` (or without any configuration) the
 * greeting is "Hello World!". Invalid JSON makes proxy_on_configure fail.
 *
 * Each root (plugin) context has its own greeting; each stream context uses
 * the greeting of the root context it was created under.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- Proxy-Wasm ABI v0.2.1 (only what this filter uses) ---------------- */

#define IMPORT(name) __attribute__((import_module("env"), import_name(#name)))
#define EXPORT(name) __attribute__((export_name(#name)))

enum { LOG_INFO = 2, LOG_ERROR = 4 };
enum { ACTION_CONTINUE = 0 };
enum { STATUS_OK = 0 };
enum { BUFFER_PLUGIN_CONFIGURATION = 7 };
enum { MAP_RESPONSE_HEADERS = 2 };

IMPORT(proxy_log)
uint32_t proxy_log(uint32_t level, const char *msg, size_t msg_size);
IMPORT(proxy_get_buffer_bytes)
uint32_t proxy_get_buffer_bytes(uint32_t buffer, size_t start, size_t max_size,
                                char **ret_data, size_t *ret_size);
IMPORT(proxy_replace_header_map_value)
uint32_t proxy_replace_header_map_value(uint32_t map, const char *key,
                                        size_t key_size, const char *value,
                                        size_t value_size);

EXPORT(proxy_abi_version_0_2_1) void proxy_abi_version_0_2_1(void) {}

static void log_str(uint32_t level, const char *a, const char *b, size_t b_len) {
    size_t a_len = strlen(a);
    char *msg = malloc(a_len + b_len + 1);
    if (msg == NULL) return;
    memcpy(msg, a, a_len);
    memcpy(msg + a_len, b, b_len);
    proxy_log(level, msg, a_len + b_len);
    free(msg);
}

/* ---- contexts ------------------------------------------------------------ */

static const char default_greeting[] = "Hello World!";

/* A root context (root_id == 0) or a stream context (root_id = its parent). */
struct context {
    uint32_t id;
    uint32_t root_id;
    char *greeting; /* root contexts only; NULL means the default greeting */
    size_t greeting_len;
};

static struct context *contexts;
static size_t n_contexts, cap_contexts;

static struct context *find_context(uint32_t id) {
    for (size_t i = 0; i < n_contexts; i++)
        if (contexts[i].id == id) return &contexts[i];
    return NULL;
}

static struct context *add_context(uint32_t id, uint32_t root_id) {
    struct context *c = find_context(id);
    if (c == NULL) {
        if (n_contexts == cap_contexts) {
            size_t cap = cap_contexts ? cap_contexts * 2 : 16;
            struct context *grown = realloc(contexts, cap * sizeof *grown);
            if (grown == NULL) return NULL;
            contexts = grown;
            cap_contexts = cap;
        }
        c = &contexts[n_contexts++];
        c->greeting = NULL;
    }
    free(c->greeting);
    c->id = id;
    c->root_id = root_id;
    c->greeting = NULL;
    c->greeting_len = 0;
    return c;
}

EXPORT(proxy_on_context_create)
void proxy_on_context_create(uint32_t context_id, uint32_t parent_context_id) {
    add_context(context_id, parent_context_id);
}

EXPORT(proxy_on_delete) void proxy_on_delete(uint32_t context_id) {
    struct context *c = find_context(context_id);
    if (c == NULL) return;
    free(c->greeting);
    *c = contexts[--n_contexts];
}

/* ---- a small JSON reader ---------------------------------------------------
 * Validates the whole document and extracts the top-level string field
 * "my_greeting". String escapes \" \\ \/ \b \f \n \r \t are decoded; \uXXXX
 * is validated and kept as the six characters "\uXXXX".
 */

struct json {
    const char *p, *end;
    const char *error;
};

static void skip_ws(struct json *j) {
    while (j->p < j->end &&
           (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool fail(struct json *j, const char *error) {
    if (j->error == NULL) j->error = error;
    return false;
}

static bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Parses a string at j->p (which must be '"'). When out is not NULL the
 * decoded bytes are stored in *out (malloc'd, NUL-terminated) and *out_len. */
static bool parse_string(struct json *j, char **out, size_t *out_len) {
    if (j->p >= j->end || *j->p != '"') return fail(j, "expected a string");
    j->p++;
    /* The decoded string is never longer than the encoded one. */
    char *buf = NULL;
    if (out != NULL && (buf = malloc((size_t)(j->end - j->p) + 1)) == NULL)
        return fail(j, "out of memory");
    size_t n = 0;
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if ((unsigned char)c < 0x20) {
            free(buf);
            return fail(j, "control character in string");
        }
        if (c == '\\') {
            if (j->p >= j->end) break;
            char e = *j->p++;
            switch (e) {
            case '"': case '\\': case '/': c = e; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'u':
                if (j->end - j->p < 4 || !is_hex(j->p[0]) || !is_hex(j->p[1]) ||
                    !is_hex(j->p[2]) || !is_hex(j->p[3])) {
                    free(buf);
                    return fail(j, "bad \\u escape");
                }
                if (buf != NULL) {
                    buf[n++] = '\\';
                    buf[n++] = 'u';
                    memcpy(buf + n, j->p, 4);
                    n += 4;
                }
                j->p += 4;
                continue;
            default:
                free(buf);
                return fail(j, "bad escape");
            }
        }
        if (buf != NULL) buf[n++] = c;
    }
    if (j->p >= j->end) {
        free(buf);
        return fail(j, "unterminated string");
    }
    j->p++; /* closing quote */
    if (out != NULL) {
        buf[n] = '\0';
        *out = buf;
        *out_len = n;
    }
    return true;
}

static bool skip_literal(struct json *j, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
        return fail(j, "unexpected character");
    j->p += n;
    return true;
}

static bool skip_digits(struct json *j) {
    const char *start = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    return j->p > start || fail(j, "bad number");
}

static bool skip_number(struct json *j) {
    if (*j->p == '-') j->p++;
    if (j->p < j->end && *j->p == '0') j->p++;
    else if (!skip_digits(j)) return false;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (!skip_digits(j)) return false;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        if (!skip_digits(j)) return false;
    }
    return true;
}

static bool skip_value(struct json *j, int depth);

/* Parses an object. At depth 0 the "my_greeting" member is extracted. */
static bool parse_object(struct json *j, int depth, char **greeting, size_t *len) {
    j->p++; /* '{' */
    skip_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return true;
    }
    for (;;) {
        char *key;
        size_t key_len;
        skip_ws(j);
        if (!parse_string(j, &key, &key_len)) return false;
        bool wanted = depth == 0 && key_len == strlen("my_greeting") &&
                      memcmp(key, "my_greeting", key_len) == 0;
        free(key);
        skip_ws(j);
        if (j->p >= j->end || *j->p != ':') return fail(j, "expected ':'");
        j->p++;
        skip_ws(j);
        if (wanted) {
            char *value;
            size_t value_len;
            if (j->p >= j->end || *j->p != '"')
                return fail(j, "my_greeting must be a string");
            if (!parse_string(j, &value, &value_len)) return false;
            free(*greeting); /* the last duplicate key wins */
            *greeting = value;
            *len = value_len;
        } else if (!skip_value(j, depth + 1)) {
            return false;
        }
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            return true;
        }
        return fail(j, "expected ',' or '}'");
    }
}

static bool skip_value(struct json *j, int depth) {
    if (depth > 64) return fail(j, "nested too deeply");
    skip_ws(j);
    if (j->p >= j->end) return fail(j, "unexpected end of input");
    switch (*j->p) {
    case '"': return parse_string(j, NULL, NULL);
    case '{': return parse_object(j, depth, NULL, NULL);
    case '[':
        j->p++;
        skip_ws(j);
        if (j->p < j->end && *j->p == ']') {
            j->p++;
            return true;
        }
        for (;;) {
            if (!skip_value(j, depth + 1)) return false;
            skip_ws(j);
            if (j->p < j->end && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->end && *j->p == ']') {
                j->p++;
                return true;
            }
            return fail(j, "expected ',' or ']'");
        }
    case 't': return skip_literal(j, "true");
    case 'f': return skip_literal(j, "false");
    case 'n': return skip_literal(j, "null");
    default:
        if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9')) return skip_number(j);
        return fail(j, "unexpected character");
    }
}

/* Returns false (and sets *error) for invalid JSON or a non-object document.
 * On success *greeting is the my_greeting value or NULL when absent. */
static bool parse_config(const char *data, size_t size, char **greeting,
                         size_t *len, const char **error) {
    if (data == NULL) data = "", size = 0;
    struct json j = {data, data + size, NULL};
    *greeting = NULL;
    *len = 0;
    skip_ws(&j);
    if (j.p == j.end) return true; /* empty configuration */
    bool ok = false;
    if (*j.p != '{') {
        fail(&j, "configuration must be a JSON object");
    } else if (parse_object(&j, 0, greeting, len)) {
        skip_ws(&j);
        ok = j.p == j.end || fail(&j, "trailing characters after the object");
    }
    if (!ok) {
        free(*greeting);
        *greeting = NULL;
        *error = j.error;
    }
    return ok;
}

/* ---- callbacks ----------------------------------------------------------- */

EXPORT(proxy_on_configure)
uint32_t proxy_on_configure(uint32_t root_id, size_t config_size) {
    char *config = NULL;
    size_t size = 0;
    if (config_size > 0 &&
        proxy_get_buffer_bytes(BUFFER_PLUGIN_CONFIGURATION, 0, config_size,
                               &config, &size) != STATUS_OK) {
        log_str(LOG_ERROR, "my-filter: cannot read the plugin configuration", "", 0);
        return false;
    }

    char *greeting;
    size_t len;
    const char *error = NULL;
    bool ok = parse_config(config, size, &greeting, &len, &error);
    free(config);
    if (!ok) {
        log_str(LOG_ERROR, "my-filter: invalid JSON configuration: ", error,
                strlen(error));
        return false;
    }

    struct context *root = find_context(root_id);
    if (root == NULL) root = add_context(root_id, 0);
    if (root == NULL) {
        free(greeting);
        return false;
    }
    free(root->greeting);
    root->greeting = greeting;
    root->greeting_len = len;
    return true;
}

EXPORT(proxy_on_request_headers)
uint32_t proxy_on_request_headers(uint32_t context_id, size_t num_headers,
                                  uint32_t end_of_stream) {
    return ACTION_CONTINUE;
}

EXPORT(proxy_on_response_headers)
uint32_t proxy_on_response_headers(uint32_t context_id, size_t num_headers,
                                   uint32_t end_of_stream) {
    const char *greeting = default_greeting;
    size_t len = sizeof default_greeting - 1;
    struct context *stream = find_context(context_id);
    struct context *root = stream ? find_context(stream->root_id) : NULL;
    if (root != NULL && root->greeting != NULL) {
        greeting = root->greeting;
        len = root->greeting_len;
    }
    uint32_t status = proxy_replace_header_map_value(
        MAP_RESPONSE_HEADERS, "x-greeting", strlen("x-greeting"), greeting, len);
    if (status != STATUS_OK)
        log_str(LOG_ERROR, "my-filter: cannot set the x-greeting header", "", 0);
    return ACTION_CONTINUE;
}
