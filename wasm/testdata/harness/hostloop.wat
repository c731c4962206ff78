;; hostloop — ABI v0.2.1; measures the cost of one host call.
;;
;; The plugin configuration is a decimal count N (empty or invalid: 0),
;; read in proxy_on_configure with proxy_get_buffer_bytes(7, ...).
;;   proxy_on_request_headers  makes N calls of
;;       proxy_get_header_map_value(HTTP_REQUEST_HEADERS=0, ":path", ...)
;;     (each copies the value into guest memory through malloc)
;;   proxy_on_response_headers makes N calls of
;;       proxy_log(TRACE=0, "hostloop trace line", 19)
;;     (a level the benchmark's logger drops)
;;   proxy_on_request_body makes N calls of
;;       proxy_get_header_map_size(HTTP_REQUEST_HEADERS=0, ...)
;;     (no guest allocation)
;; and each returns CONTINUE (0). The heap is reset at the start of every
;; callback, so memory does not grow with the number of requests.
(module $hostloop
  (import "env" "proxy_log"
    (func $proxy_log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes"
    (func $proxy_get_buffer_bytes (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value"
    (func $proxy_get_header_map_value (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_size"
    (func $proxy_get_header_map_size (param i32 i32) (result i32)))

  (memory (export "memory") 2)

  (data (i32.const 0x0400) ":path")               ;; 5
  (data (i32.const 0x0410) "hostloop trace line") ;; 19

  (global $n (mut i32) (i32.const 0))

  (global $heap (mut i32) (i32.const 0x10000))
  (func $malloc (export "malloc") (param $size i32) (result i32)
    (local $ptr i32) (local $end i32) (local $pages i32)
    (local.set $ptr (global.get $heap))
    (local.set $end
      (i32.and (i32.add (i32.add (local.get $ptr) (local.get $size)) (i32.const 7))
               (i32.const -8)))
    (if (i32.lt_u (local.get $end) (local.get $ptr)) (then (return (i32.const 0))))
    (local.set $pages
      (i32.add (i32.shr_u (local.get $end) (i32.const 16))
               (i32.ne (i32.and (local.get $end) (i32.const 0xFFFF)) (i32.const 0))))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (local.get $ptr))

  (func $proxy_abi_version_0_2_1 (export "proxy_abi_version_0_2_1"))
  (func $proxy_on_context_create (export "proxy_on_context_create")
    (param $ctx i32) (param $parent i32))
  (func $proxy_on_vm_start (export "proxy_on_vm_start")
    (param $root i32) (param $size i32) (result i32)
    (i32.const 1))
  (func $proxy_on_done (export "proxy_on_done") (param $ctx i32) (result i32)
    (i32.const 1))

  ;; N = decimal value of the plugin configuration.
  (func $proxy_on_configure (export "proxy_on_configure")
    (param $root i32) (param $size i32) (result i32)
    (local $p i32) (local $end i32) (local $c i32) (local $v i32)
    (i32.store (i32.const 0x0104) (i32.const 0))
    (if (i32.eqz (local.get $size)) (then (return (i32.const 1))))
    (if (call $proxy_get_buffer_bytes
          (i32.const 7) (i32.const 0) (local.get $size) (i32.const 0x0100) (i32.const 0x0104))
      (then (return (i32.const 1))))
    (local.set $p (i32.load (i32.const 0x0100)))
    (local.set $end (i32.add (local.get $p) (i32.load (i32.const 0x0104))))
    (block $done
      (loop $digits
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $c (i32.sub (i32.load8_u (local.get $p)) (i32.const 0x30)))
        (br_if $done (i32.gt_u (local.get $c) (i32.const 9)))
        (local.set $v (i32.add (i32.mul (local.get $v) (i32.const 10)) (local.get $c)))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $digits)))
    (global.set $n (local.get $v))
    (global.set $heap (i32.const 0x10000))
    (i32.const 1))

  (func $proxy_on_request_headers (export "proxy_on_request_headers")
    (param $ctx i32) (param $num i32) (param $eos i32) (result i32)
    (local $i i32)
    (local.set $i (global.get $n))
    (block $done
      (loop $again
        (br_if $done (i32.eqz (local.get $i)))
        (global.set $heap (i32.const 0x10000))
        (drop (call $proxy_get_header_map_value
          (i32.const 0) (i32.const 0x0400) (i32.const 5) (i32.const 0x0100) (i32.const 0x0104)))
        (local.set $i (i32.sub (local.get $i) (i32.const 1)))
        (br $again)))
    (i32.const 0))

  (func $proxy_on_request_body (export "proxy_on_request_body")
    (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
    (local $i i32)
    (local.set $i (global.get $n))
    (block $done
      (loop $again
        (br_if $done (i32.eqz (local.get $i)))
        (drop (call $proxy_get_header_map_size (i32.const 0) (i32.const 0x0104)))
        (local.set $i (i32.sub (local.get $i) (i32.const 1)))
        (br $again)))
    (i32.const 0))

  (func $proxy_on_response_headers (export "proxy_on_response_headers")
    (param $ctx i32) (param $num i32) (param $eos i32) (result i32)
    (local $i i32)
    (local.set $i (global.get $n))
    (block $done
      (loop $again
        (br_if $done (i32.eqz (local.get $i)))
        (drop (call $proxy_log (i32.const 0) (i32.const 0x0410) (i32.const 19)))
        (local.set $i (i32.sub (local.get $i) (i32.const 1)))
        (br $again)))
    (i32.const 0))
)
