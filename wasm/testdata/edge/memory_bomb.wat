;; memory_bomb — ABI v0.2.1; proxy_on_request_headers grows memory until the
;; host's limit on demand.
;;
;; The memory starts at 2 pages and declares NO maximum, so only the host's
;; own memory limit stops it. proxy_on_request_headers looks up request header
;; `x-bomb` with env.proxy_get_header_map_value(HTTP_REQUEST_HEADERS=0):
;;   * present (status OK) -> calls `memory.grow 16` (1 MiB) in a loop until it
;;     returns -1, then logs at ERROR (4)
;;       `memory_bomb: memory.grow failed, pages=<memory.size in pages>`
;;     and executes `unreachable` (what a real allocator does when it cannot
;;     get memory);
;;   * absent -> adds request header `x-bomb-ok: 1` and returns CONTINUE (0).
;;
;; Test asserts: with a host memory limit of L pages, a request with `x-bomb`
;; fails with a trap, the error log line shows pages=N with L-16 < N <= L (the
;; limit was enforced, the host did not hand out more), the process survives
;; and its RSS does not grow by much more than L*64KiB; a later request
;; without `x-bomb` succeeds on a fresh instance with `x-bomb-ok: 1`.
;;
;; Memory layout (page 0 static, heap from 0x10000):
;;   0x0100 i32  return slot: value pointer written by the host
;;   0x0104 i32  return slot: value size written by the host
;;   0x0400..    constant strings (below); the page count is written at 0x0527
(module $memory_bomb
  (import "env" "proxy_log"
    (func $proxy_log (param $level i32) (param $ptr i32) (param $size i32) (result i32)))
  (import "env" "proxy_get_header_map_value"
    (func $proxy_get_header_map_value
      (param $map i32) (param $key_ptr i32) (param $key_size i32)
      (param $ret_ptr_ptr i32) (param $ret_size_ptr i32) (result i32)))
  (import "env" "proxy_add_header_map_value"
    (func $proxy_add_header_map_value
      (param $map i32) (param $key_ptr i32) (param $key_size i32)
      (param $value_ptr i32) (param $value_size i32) (result i32)))

  ;; initial 2 pages, no maximum
  (memory (export "memory") 2)

  (data (i32.const 0x0400) "x-bomb")                                  ;;  6 bytes
  (data (i32.const 0x0420) "x-bomb-ok")                               ;;  9 bytes
  (data (i32.const 0x0440) "1")                                       ;;  1 byte
  (data (i32.const 0x0500) "memory_bomb: memory.grow failed, pages=") ;; 39 bytes

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

  ;; Writes $value as unsigned decimal at $dst; returns the number of bytes.
  (func $utoa (param $value i32) (param $dst i32) (result i32)
    (local $len i32) (local $rest i32) (local $i i32)
    (local.set $len (i32.const 1))
    (local.set $rest (local.get $value))
    (block $counted
      (loop $count
        (br_if $counted (i32.lt_u (local.get $rest) (i32.const 10)))
        (local.set $rest (i32.div_u (local.get $rest) (i32.const 10)))
        (local.set $len (i32.add (local.get $len) (i32.const 1)))
        (br $count)))
    (local.set $i (local.get $len))
    (loop $digit
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8 (i32.add (local.get $dst) (local.get $i))
        (i32.add (i32.const 0x30) (i32.rem_u (local.get $value) (i32.const 10))))
      (local.set $value (i32.div_u (local.get $value) (i32.const 10)))
      (br_if $digit (local.get $i)))
    (local.get $len))

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

  ;; Grows memory by 16 pages until memory.grow fails, logs, then traps.
  (func $explode
    (local $digits i32)
    (loop $grow
      (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    (local.set $digits (call $utoa (memory.size) (i32.const 0x0527)))
    (drop (call $proxy_log
      (i32.const 4) (i32.const 0x0500) (i32.add (i32.const 39) (local.get $digits))))
    unreachable)

  (func $proxy_on_request_headers (export "proxy_on_request_headers")
    (param $ctx i32) (param $num_headers i32) (param $end_of_stream i32) (result i32)
    (if (call $has_request_header (i32.const 0x0400) (i32.const 6))
      (then (call $explode)))
    (drop (call $proxy_add_header_map_value
      (i32.const 0) (i32.const 0x0420) (i32.const 9) (i32.const 0x0440) (i32.const 1)))
    (i32.const 0)) ;; CONTINUE
)
