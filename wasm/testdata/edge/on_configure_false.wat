;; on_configure_false — ABI v0.2.1; the plugin rejects its configuration.
;;
;; proxy_on_vm_start returns 1 (true). proxy_on_configure logs at WARN (3)
;;   `on_configure_false: rejecting configuration`
;; and returns 0 (false). proxy_on_request_headers would add request header
;; `x-on-configure-false: ran` (CONTINUE) — it must never be reached.
;;
;; Test asserts: starting the plugin fails with an error that says
;; proxy_on_configure returned false (naming the plugin); the WARN line above
;; was logged first (so the callback really ran); no request is ever served
;; with `x-on-configure-false: ran` (the host neither serves traffic through
;; the plugin nor silently skips it).
(module $on_configure_false
  (import "env" "proxy_log"
    (func $proxy_log (param $level i32) (param $ptr i32) (param $size i32) (result i32)))
  (import "env" "proxy_add_header_map_value"
    (func $proxy_add_header_map_value
      (param $map i32) (param $key_ptr i32) (param $key_size i32)
      (param $value_ptr i32) (param $value_size i32) (result i32)))

  (memory (export "memory") 2)

  (data (i32.const 0x0400) "on_configure_false: rejecting configuration") ;; 43 bytes
  (data (i32.const 0x0440) "x-on-configure-false")                        ;; 20 bytes
  (data (i32.const 0x0460) "ran")                                         ;;  3 bytes

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

  ;; ---- ABI marker and lifecycle ----
  (func $proxy_abi_version_0_2_1 (export "proxy_abi_version_0_2_1"))

  (func $proxy_on_context_create (export "proxy_on_context_create")
    (param $ctx i32) (param $parent i32))

  (func $proxy_on_vm_start (export "proxy_on_vm_start")
    (param $root_ctx i32) (param $vm_config_size i32) (result i32)
    (i32.const 1))

  (func $proxy_on_configure (export "proxy_on_configure")
    (param $root_ctx i32) (param $config_size i32) (result i32)
    (drop (call $proxy_log (i32.const 3) (i32.const 0x0400) (i32.const 43)))
    (i32.const 0)) ;; false: configuration rejected

  (func $proxy_on_request_headers (export "proxy_on_request_headers")
    (param $ctx i32) (param $num_headers i32) (param $end_of_stream i32) (result i32)
    (drop (call $proxy_add_header_map_value
      (i32.const 0) (i32.const 0x0440) (i32.const 20) (i32.const 0x0460) (i32.const 3)))
    (i32.const 0))

  (func $proxy_on_done (export "proxy_on_done") (param $ctx i32) (result i32)
    (i32.const 1))
)
