;; oob — ABI v0.2.1; hostcalls with out-of-bounds pointers and lengths.
;;
;; proxy_on_request_headers reads request header `x-case` and makes exactly ONE
;; bad hostcall selected by its value, then adds request header
;; `x-status: <decimal status the hostcall returned>` and returns CONTINUE (0).
;; The status value and the header name/value are built in in-bounds memory.
;; A missing or unknown `x-case` makes no bad call and adds
;; `x-oob-error: unknown-case` instead.
;;
;;   x-case           bad hostcall
;;   log-ptr          proxy_log(INFO, ptr=0xFFFFFFF0, size=100)        ptr+size wraps 2^32
;;   log-len          proxy_log(INFO, ptr=0, size=0x7FFFFFFF)           size beyond memory
;;   get-header-ret   proxy_get_header_map_value(0, ":path", 5,
;;                      ret_ptr_ptr=0xFFFFFFFC, ret_size_ptr=0xFFFFFFFC)
;;   add-header-key   proxy_add_header_map_value(0, key_ptr=<memory size in
;;                      bytes, i.e. first byte past the end>, key_size=8, "1", 1)
;;   set-pairs        proxy_set_header_map_pairs(0, ptr, 16): map header says
;;                      1000000 pairs, buffer is 16 bytes
;;   set-pairs-lens   proxy_set_header_map_pairs(0, ptr, 16): 1 pair whose key
;;                      length is 0xFFFFFF00 (value length 0)
;;   buffer-ret       proxy_get_buffer_bytes(HTTP_REQUEST_BODY=0, 0, 10,
;;                      ret_ptr_ptr=0xFFFFFFF8, ret_size_ptr=0xFFFFFFFC)
;;   property-path    proxy_get_property(path_ptr=0xFFFFFFF0, path_size=16,
;;                      valid return slots)                    ptr+size wraps 2^32
;;   shared-data-key  proxy_set_shared_data(key_ptr=valid, key_size=0x7FFFFFFF,
;;                      "1", 1, cas=0)
;;
;; Test asserts, for every case: the process survives (no Go panic, no host
;; memory corruption) and EITHER the request reaches the upstream with
;; `x-status` equal to 6 (INVALID_MEMORY_ACCESS) or 2 (BAD_ARGUMENT), OR the
;; host traps the guest and the request fails (then a later request on a fresh
;; instance must work). `x-status: 0` is always a failure: the host claimed
;; success for memory it could not have read or written. Extra notes:
;;   * buffer-ret: 1 (NOT_FOUND) is also acceptable when the host exposes no
;;     request body during proxy_on_request_headers.
;;   * set-pairs / set-pairs-lens: the original request headers (e.g. :path)
;;     must be unchanged; the host must not allocate per the claimed count.
;;   * add-header-key: no header is added besides `x-status`.
;;
;; Memory layout (page 0 static, heap from 0x10000):
;;   0x0100 i32  return slot: value pointer written by the host
;;   0x0104 i32  return slot: value size written by the host
;;   0x0200..    decimal digits of the status
;;   0x0400..    constant strings, case names and serialized maps (below)
(module $oob
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
  (import "env" "proxy_set_header_map_pairs"
    (func $proxy_set_header_map_pairs
      (param $map i32) (param $pairs_ptr i32) (param $pairs_size i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes"
    (func $proxy_get_buffer_bytes
      (param $buffer i32) (param $start i32) (param $max_size i32)
      (param $ret_ptr_ptr i32) (param $ret_size_ptr i32) (result i32)))
  (import "env" "proxy_get_property"
    (func $proxy_get_property
      (param $path_ptr i32) (param $path_size i32)
      (param $ret_ptr_ptr i32) (param $ret_size_ptr i32) (result i32)))
  (import "env" "proxy_set_shared_data"
    (func $proxy_set_shared_data
      (param $key_ptr i32) (param $key_size i32)
      (param $value_ptr i32) (param $value_size i32) (param $cas i32) (result i32)))

  (memory (export "memory") 2)

  ;; header names and values
  (data (i32.const 0x0400) "x-case")          ;;  6 bytes
  (data (i32.const 0x0410) "x-status")        ;;  8 bytes
  (data (i32.const 0x0420) "x-oob-error")     ;; 11 bytes
  (data (i32.const 0x0430) "unknown-case")    ;; 12 bytes
  (data (i32.const 0x0440) ":path")           ;;  5 bytes
  (data (i32.const 0x0448) "1")               ;;  1 byte
  ;; case names, one per 0x20 slot
  (data (i32.const 0x0500) "log-ptr")         ;;  7 bytes
  (data (i32.const 0x0520) "log-len")         ;;  7 bytes
  (data (i32.const 0x0540) "get-header-ret")  ;; 14 bytes
  (data (i32.const 0x0560) "add-header-key")  ;; 14 bytes
  (data (i32.const 0x0580) "set-pairs")       ;;  9 bytes
  (data (i32.const 0x05A0) "set-pairs-lens")  ;; 14 bytes
  (data (i32.const 0x05C0) "buffer-ret")      ;; 10 bytes
  (data (i32.const 0x05E0) "property-path")   ;; 13 bytes
  (data (i32.const 0x0600) "shared-data-key") ;; 15 bytes
  ;; serialized maps (little-endian), 16 bytes each
  (data (i32.const 0x0700)                    ;; set-pairs
    "\40\42\0f\00"                            ;;   count = 1000000
    "\00\00\00\00\00\00\00\00\00\00\00\00")   ;;   12 bytes, room for 1.5 size pairs
  (data (i32.const 0x0720)                    ;; set-pairs-lens
    "\01\00\00\00"                            ;;   count = 1
    "\00\ff\ff\ff"                            ;;   key length   = 0xFFFFFF00
    "\00\00\00\00"                            ;;   value length = 0
    "k\00\00\00")                             ;;   "k" NUL, padding

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

  ;; 1 when the byte strings (a, a_len) and (b, b_len) are equal.
  (func $bytes_equal (param $a i32) (param $a_len i32) (param $b i32) (param $b_len i32) (result i32)
    (local $i i32)
    (if (i32.ne (local.get $a_len) (local.get $b_len)) (then (return (i32.const 0))))
    (block $different
      (loop $next
        (if (i32.eq (local.get $i) (local.get $a_len)) (then (return (i32.const 1))))
        (br_if $different
          (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i)))
                  (i32.load8_u (i32.add (local.get $b) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 0))

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

  ;; Makes the one bad hostcall named by (name, name_len) and returns its
  ;; status, or -1 (no call made) for an unknown name.
  (func $run_case (param $name i32) (param $name_len i32) (result i32)
    (if (call $bytes_equal (local.get $name) (local.get $name_len) (i32.const 0x0500) (i32.const 7))
      (then (return ;; log-ptr
        (call $proxy_log (i32.const 2) (i32.const 0xFFFFFFF0) (i32.const 100)))))
    (if (call $bytes_equal (local.get $name) (local.get $name_len) (i32.const 0x0520) (i32.const 7))
      (then (return ;; log-len
        (call $proxy_log (i32.const 2) (i32.const 0) (i32.const 0x7FFFFFFF)))))
    (if (call $bytes_equal (local.get $name) (local.get $name_len) (i32.const 0x0540) (i32.const 14))
      (then (return ;; get-header-ret
        (call $proxy_get_header_map_value
          (i32.const 0) (i32.const 0x0440) (i32.const 5)
          (i32.const 0xFFFFFFFC) (i32.const 0xFFFFFFFC)))))
    (if (call $bytes_equal (local.get $name) (local.get $name_len) (i32.const 0x0560) (i32.const 14))
      (then (return ;; add-header-key: key starts at the first byte past the memory
        (call $proxy_add_header_map_value
          (i32.const 0) (i32.shl (memory.size) (i32.const 16)) (i32.const 8)
          (i32.const 0x0448) (i32.const 1)))))
    (if (call $bytes_equal (local.get $name) (local.get $name_len) (i32.const 0x0580) (i32.const 9))
      (then (return ;; set-pairs
        (call $proxy_set_header_map_pairs (i32.const 0) (i32.const 0x0700) (i32.const 16)))))
    (if (call $bytes_equal (local.get $name) (local.get $name_len) (i32.const 0x05A0) (i32.const 14))
      (then (return ;; set-pairs-lens
        (call $proxy_set_header_map_pairs (i32.const 0) (i32.const 0x0720) (i32.const 16)))))
    (if (call $bytes_equal (local.get $name) (local.get $name_len) (i32.const 0x05C0) (i32.const 10))
      (then (return ;; buffer-ret
        (call $proxy_get_buffer_bytes
          (i32.const 0) (i32.const 0) (i32.const 10)
          (i32.const 0xFFFFFFF8) (i32.const 0xFFFFFFFC)))))
    (if (call $bytes_equal (local.get $name) (local.get $name_len) (i32.const 0x05E0) (i32.const 13))
      (then (return ;; property-path
        (call $proxy_get_property
          (i32.const 0xFFFFFFF0) (i32.const 16) (i32.const 0x0100) (i32.const 0x0104)))))
    (if (call $bytes_equal (local.get $name) (local.get $name_len) (i32.const 0x0600) (i32.const 15))
      (then (return ;; shared-data-key
        (call $proxy_set_shared_data
          (i32.const 0x0400) (i32.const 0x7FFFFFFF) (i32.const 0x0448) (i32.const 1)
          (i32.const 0)))))
    (i32.const -1))

  (func $proxy_on_request_headers (export "proxy_on_request_headers")
    (param $ctx i32) (param $num_headers i32) (param $end_of_stream i32) (result i32)
    (local $status i32) (local $digits i32)
    (local.set $status (i32.const -1))
    ;; x-case value -> (load 0x0100, load 0x0104)
    (if (i32.eqz (call $proxy_get_header_map_value
          (i32.const 0) (i32.const 0x0400) (i32.const 6) (i32.const 0x0100) (i32.const 0x0104)))
      (then
        (local.set $status
          (call $run_case (i32.load (i32.const 0x0100)) (i32.load (i32.const 0x0104))))))
    (if (i32.eq (local.get $status) (i32.const -1))
      (then
        (drop (call $proxy_add_header_map_value
          (i32.const 0) (i32.const 0x0420) (i32.const 11) (i32.const 0x0430) (i32.const 12)))
        (return (i32.const 0))))
    (local.set $digits (call $utoa (local.get $status) (i32.const 0x0200)))
    (drop (call $proxy_add_header_map_value
      (i32.const 0) (i32.const 0x0410) (i32.const 8) (i32.const 0x0200) (local.get $digits)))
    (i32.const 0)) ;; CONTINUE
)
