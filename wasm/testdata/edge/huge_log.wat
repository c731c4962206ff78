;; huge_log — ABI v0.2.1; one 16 MiB log line.
;;
;; Memory starts at 300 pages (~18.75 MiB). proxy_on_request_headers fills the
;; first 16 MiB, [0, 0x1000000), with 'A' (memory.fill), calls
;;   env.proxy_log(INFO=2, ptr=0, size=16*1024*1024)
;; and then adds request header `x-log-status: <decimal status of proxy_log>`
;; and returns CONTINUE (0). Every request repeats this.
;;
;; Test asserts: the process survives; the request reaches the upstream with
;; `x-log-status` equal to 0 (OK, logged after truncation) or 2 (BAD_ARGUMENT,
;; refused as too long); if anything reached the logger, it is one line made
;; only of 'A's (plus the host's own prefix/suffix marking truncation) and far
;; shorter than 16 MiB, i.e. no longer than the host's documented maximum log
;; line length.
;;
;; Memory layout (static data lives ABOVE the 16 MiB that get overwritten):
;;   0x00000000..0x00FFFFFF  log line, filled with 'A' on every request
;;   0x01000000..            constant strings (below)
;;   0x01000100..            decimal digits of the status
;;   0x01100000..            heap
(module $huge_log
  (import "env" "proxy_log"
    (func $proxy_log (param $level i32) (param $ptr i32) (param $size i32) (result i32)))
  (import "env" "proxy_add_header_map_value"
    (func $proxy_add_header_map_value
      (param $map i32) (param $key_ptr i32) (param $key_size i32)
      (param $value_ptr i32) (param $value_size i32) (result i32)))

  (memory (export "memory") 300)

  (data (i32.const 0x01000000) "x-log-status") ;; 12 bytes

  ;; ---- bump allocator over $heap (never frees); grows memory on demand ----
  (global $heap (mut i32) (i32.const 0x01100000))
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

  (func $proxy_on_request_headers (export "proxy_on_request_headers")
    (param $ctx i32) (param $num_headers i32) (param $end_of_stream i32) (result i32)
    (local $status i32) (local $digits i32)
    (memory.fill (i32.const 0) (i32.const 0x41) (i32.const 0x01000000)) ;; 16 MiB of 'A'
    (local.set $status
      (call $proxy_log (i32.const 2) (i32.const 0) (i32.const 0x01000000)))
    (local.set $digits (call $utoa (local.get $status) (i32.const 0x01000100)))
    (drop (call $proxy_add_header_map_value
      (i32.const 0) (i32.const 0x01000000) (i32.const 12)
      (i32.const 0x01000100) (local.get $digits)))
    (i32.const 0)) ;; CONTINUE
)
