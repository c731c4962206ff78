;; abi_v010 — a Proxy-Wasm ABI v0.1.0 plugin (the oldest ABI a host may accept).
;;
;; Exports proxy_abi_version_0_1_0 and uses the v0.1.0 signatures:
;;   * proxy_on_configure reads the plugin configuration with the v0.1.0-only
;;     hostcall env.proxy_get_configuration(return_ptr_ptr, return_size_ptr)
;;     and logs it verbatim at INFO (2) as `v010 config: <configuration>`.
;;     If the hostcall fails it logs `v010: proxy_get_configuration failed` at
;;     ERROR (4) and returns 0 (plugin start fails).
;;   * proxy_on_request_headers(ctx, num_headers) -> action (2 params, no
;;     end_of_stream in v0.1.0) adds request header `x-abi: 0.1.0`, CONTINUE.
;;   * proxy_on_response_headers(ctx, num_headers) -> action adds response
;;     header `x-abi: 0.1.0`, CONTINUE.
;; env.proxy_continue_request, env.proxy_get_header_map_value and
;; env.proxy_replace_header_map_value are imported but never called: they only
;; check that the host links the v0.1.0 signatures at instantiation.
;;
;; Test asserts: plugin loads as ABI 0.1.0; the configuration is logged at info
;; as exactly "v010 config: " + configuration bytes; every request reaches the
;; upstream with `x-abi: 0.1.0` and every response carries `x-abi: 0.1.0`.
;;
;; Memory layout (page 0 static, heap from 0x10000):
;;   0x0100 i32  return slot: data pointer written by the host
;;   0x0104 i32  return slot: size written by the host
;;   0x0400..    constant strings (below)
(module $abi_v010
  (import "env" "proxy_log"
    (func $proxy_log (param $level i32) (param $ptr i32) (param $size i32) (result i32)))
  (import "env" "proxy_get_configuration"
    (func $proxy_get_configuration (param $ret_ptr_ptr i32) (param $ret_size_ptr i32) (result i32)))
  (import "env" "proxy_continue_request"
    (func $proxy_continue_request (result i32)))
  (import "env" "proxy_get_header_map_value"
    (func $proxy_get_header_map_value
      (param $map i32) (param $key_ptr i32) (param $key_size i32)
      (param $ret_ptr_ptr i32) (param $ret_size_ptr i32) (result i32)))
  (import "env" "proxy_add_header_map_value"
    (func $proxy_add_header_map_value
      (param $map i32) (param $key_ptr i32) (param $key_size i32)
      (param $value_ptr i32) (param $value_size i32) (result i32)))
  (import "env" "proxy_replace_header_map_value"
    (func $proxy_replace_header_map_value
      (param $map i32) (param $key_ptr i32) (param $key_size i32)
      (param $value_ptr i32) (param $value_size i32) (result i32)))

  (memory (export "memory") 2)

  (data (i32.const 0x0400) "v010 config: ")                        ;; 13 bytes
  (data (i32.const 0x0420) "x-abi")                                ;;  5 bytes
  (data (i32.const 0x0430) "0.1.0")                                ;;  5 bytes
  (data (i32.const 0x0440) "v010: proxy_get_configuration failed") ;; 36 bytes

  ;; ---- bump allocator over $heap (never frees); grows memory on demand ----
  (global $heap (mut i32) (i32.const 0x10000))
  (func $malloc (export "malloc") (param $size i32) (result i32)
    (local $ptr i32) (local $end i32) (local $pages i32)
    (local.set $ptr (global.get $heap))
    ;; end = align8(ptr + size); a 32-bit wrap-around means "too big"
    (local.set $end
      (i32.and (i32.add (i32.add (local.get $ptr) (local.get $size)) (i32.const 7))
               (i32.const -8)))
    (if (i32.lt_u (local.get $end) (local.get $ptr)) (then (return (i32.const 0))))
    ;; pages needed to hold [0, end)
    (local.set $pages
      (i32.add (i32.shr_u (local.get $end) (i32.const 16))
               (i32.ne (i32.and (local.get $end) (i32.const 0xFFFF)) (i32.const 0))))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (local.get $ptr))

  ;; ---- ABI marker ----
  (func $proxy_abi_version_0_1_0 (export "proxy_abi_version_0_1_0"))

  ;; ---- lifecycle ----
  (func $proxy_on_context_create (export "proxy_on_context_create")
    (param $ctx i32) (param $parent i32))

  (func $proxy_on_vm_start (export "proxy_on_vm_start")
    (param $root_ctx i32) (param $vm_config_size i32) (result i32)
    (i32.const 1))

  ;; Logs "v010 config: " followed by the configuration bytes.
  (func $proxy_on_configure (export "proxy_on_configure")
    (param $root_ctx i32) (param $config_size i32) (result i32)
    (local $cfg_ptr i32) (local $cfg_len i32) (local $line i32)
    (i32.store (i32.const 0x0100) (i32.const 0))
    (i32.store (i32.const 0x0104) (i32.const 0))
    (if (call $proxy_get_configuration (i32.const 0x0100) (i32.const 0x0104))
      (then
        (drop (call $proxy_log (i32.const 4) (i32.const 0x0440) (i32.const 36)))
        (return (i32.const 0))))
    (local.set $cfg_ptr (i32.load (i32.const 0x0100)))
    (local.set $cfg_len (i32.load (i32.const 0x0104)))
    ;; line = "v010 config: " ++ configuration
    (local.set $line (call $malloc (i32.add (i32.const 13) (local.get $cfg_len))))
    (if (i32.eqz (local.get $line)) (then unreachable))
    (memory.copy (local.get $line) (i32.const 0x0400) (i32.const 13))
    (memory.copy (i32.add (local.get $line) (i32.const 13)) (local.get $cfg_ptr) (local.get $cfg_len))
    (drop (call $proxy_log (i32.const 2) (local.get $line) (i32.add (i32.const 13) (local.get $cfg_len))))
    (i32.const 1))

  ;; v0.1.0 signature: (context_id, num_headers) -> action
  (func $proxy_on_request_headers (export "proxy_on_request_headers")
    (param $ctx i32) (param $num_headers i32) (result i32)
    ;; x-abi: 0.1.0 on HTTP_REQUEST_HEADERS (0)
    (drop (call $proxy_add_header_map_value
      (i32.const 0) (i32.const 0x0420) (i32.const 5) (i32.const 0x0430) (i32.const 5)))
    (i32.const 0)) ;; CONTINUE

  ;; v0.1.0 signature: (context_id, num_headers) -> action
  (func $proxy_on_response_headers (export "proxy_on_response_headers")
    (param $ctx i32) (param $num_headers i32) (result i32)
    ;; x-abi: 0.1.0 on HTTP_RESPONSE_HEADERS (2)
    (drop (call $proxy_add_header_map_value
      (i32.const 2) (i32.const 0x0420) (i32.const 5) (i32.const 0x0430) (i32.const 5)))
    (i32.const 0)) ;; CONTINUE

  (func $proxy_on_done (export "proxy_on_done") (param $ctx i32) (result i32)
    (i32.const 1))
)
