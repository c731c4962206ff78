;; trap — ABI v0.2.1; proxy_on_request_headers traps on demand.
;;
;; proxy_on_request_headers looks up request header `x-trap` with
;; env.proxy_get_header_map_value(HTTP_REQUEST_HEADERS=0, "x-trap"):
;;   * status OK (0), i.e. present  -> executes `unreachable` (a guest trap);
;;   * any other status (absent)    -> adds request header `x-trap-ok: 1` and
;;                                     returns CONTINUE (0).
;;
;; Test asserts: a request with `x-trap` fails (the host answers it with an
;; error, e.g. 500/503, and logs the trap with "unreachable") and the process
;; survives; the host discards the trapped instance; a later request without
;; `x-trap` on the same plugin succeeds on a fresh instance and reaches the
;; upstream with `x-trap-ok: 1`.
;;
;; Memory layout (page 0 static, heap from 0x10000):
;;   0x0100 i32  return slot: value pointer written by the host
;;   0x0104 i32  return slot: value size written by the host
;;   0x0400..    constant strings (below)
(module $trap
  (import "env" "proxy_get_header_map_value"
    (func $proxy_get_header_map_value
      (param $map i32) (param $key_ptr i32) (param $key_size i32)
      (param $ret_ptr_ptr i32) (param $ret_size_ptr i32) (result i32)))
  (import "env" "proxy_add_header_map_value"
    (func $proxy_add_header_map_value
      (param $map i32) (param $key_ptr i32) (param $key_size i32)
      (param $value_ptr i32) (param $value_size i32) (result i32)))

  (memory (export "memory") 2)

  (data (i32.const 0x0400) "x-trap")    ;; 6 bytes
  (data (i32.const 0x0420) "x-trap-ok") ;; 9 bytes
  (data (i32.const 0x0440) "1")         ;; 1 byte

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
    (i32.const 1))

  (func $proxy_on_done (export "proxy_on_done") (param $ctx i32) (result i32)
    (i32.const 1))

  ;; 1 when request header (key_ptr, key_size) is present (hostcall status OK).
  (func $has_request_header (param $key_ptr i32) (param $key_size i32) (result i32)
    (i32.eqz (call $proxy_get_header_map_value
      (i32.const 0) (local.get $key_ptr) (local.get $key_size)
      (i32.const 0x0100) (i32.const 0x0104))))

  (func $proxy_on_request_headers (export "proxy_on_request_headers")
    (param $ctx i32) (param $num_headers i32) (param $end_of_stream i32) (result i32)
    (if (call $has_request_header (i32.const 0x0400) (i32.const 6))
      (then unreachable))
    (drop (call $proxy_add_header_map_value
      (i32.const 0) (i32.const 0x0420) (i32.const 9) (i32.const 0x0440) (i32.const 1)))
    (i32.const 0)) ;; CONTINUE
)
