;; props: test module for the host's properties (wasm/properties.go) and
;; foreign functions (wasm/foreign.go). ABI 0.2.1.
;;
;; Contract (wasm/properties_test.go and wasm/foreign_test.go rely on it):
;;
;; * proxy_on_context_create(id, 0) of a root context remembers the root id
;;   and calls proxy_get_property("plugin_root_id"); any status but OK traps
;;   (so the plugin fails to start).
;; * proxy_on_configure(root, size) gets "plugin_name" and logs INFO
;;   "props: plugin_name=<value>" (on failure: ERROR "props: get plugin_name
;;   failed" and returns 0). If the configuration is not empty it is passed
;;   as the arguments of the foreign function "declare_property"; a status
;;   other than OK logs ERROR "props: declare_property failed" and returns 0.
;; * proxy_on_request_headers runs one operation chosen by request headers
;;   (the first present of x-get, x-set-path, x-ff, x-oob), then adds
;;   request header x-status: <decimal status> and, when the status is OK,
;;   x-value: <the returned bytes, unchanged>:
;;     x-get: <path>                      proxy_get_property(path)
;;     x-set-path: <path>, x-set-value: v proxy_set_property(path, v) (v may be absent: empty)
;;     x-ff: <name>, x-ff-args: a         proxy_call_foreign_function(name, a)
;;                                        (with x-ff-noret present the return
;;                                        pointers are 0 and 0)
;;     x-oob: <letter>                    one call with an out-of-bounds pointer:
;;       a get_property: path wraps past 2^32     b get_property: path size past memory
;;       c get_property: return pointer slot OOB  d get_property: return size slot OOB
;;       e get_property("abc") with an OOB return pointer slot
;;       f set_property: path wraps past 2^32     g set_property: value past memory
;;       h foreign: name wraps past 2^32          i foreign: arguments past memory
;;       j foreign: return pointer slot OOB       k foreign: return size slot OOB
;;       l foreign "abc" (unknown) with an OOB return pointer slot
;;   With x-ctx: root the operation runs with the root context as the
;;   effective context (proxy_set_effective_context), and the headers are
;;   added after switching back. Returns CONTINUE.
;; * proxy_on_downstream_data(ctx, size, eos) reads the whole downstream
;;   data as a property path, gets it, and replaces the data with
;;   "<decimal status>:<value>". Returns CONTINUE.
;;
;; Memory: 0x100/0x104 header-value return slots, 0x108/0x10c operation
;; return slots, 0x200 decimal scratch, strings from 0x400, heap from
;; 0x10000 (bump malloc, 8-byte aligned, grows memory).
(module $props
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_property" (func $get_property (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_property" (func $set_property (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_call_foreign_function" (func $call_foreign (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $set_effective (param i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $set_buffer (param i32 i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 0x10000))
  (global $root (mut i32) (i32.const 0))

  (data (i32.const 0x400) "x-get")
  (data (i32.const 0x410) "x-set-path")
  (data (i32.const 0x420) "x-set-value")
  (data (i32.const 0x430) "x-ff")
  (data (i32.const 0x440) "x-ff-args")
  (data (i32.const 0x450) "x-ff-noret")
  (data (i32.const 0x460) "x-oob")
  (data (i32.const 0x470) "x-ctx")
  (data (i32.const 0x480) "x-status")
  (data (i32.const 0x490) "x-value")
  (data (i32.const 0x4a0) "plugin_name")
  (data (i32.const 0x4b0) "compress")
  (data (i32.const 0x4c0) "declare_property")
  (data (i32.const 0x4e0) "props: plugin_name=")
  (data (i32.const 0x500) "plugin_root_id")
  (data (i32.const 0x510) "props: get plugin_name failed")
  (data (i32.const 0x530) "props: declare_property failed")
  (data (i32.const 0x550) "abc")

  (func (export "proxy_abi_version_0_2_1"))

  (func $malloc (export "malloc") (param $size i32) (result i32)
    (local $ptr i32) (local $end i32) (local $pages i32)
    (local.set $ptr (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.or (i32.lt_u (local.get $end) (local.get $ptr))
                (i32.gt_u (local.get $end) (i32.const 0xFFFF0000)))
      (then (return (i32.const 0))))
    (local.set $pages (i32.shr_u (i32.add (local.get $end) (i32.const 0xFFFF)) (i32.const 16)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (local.get $ptr))

  ;; $header(name, len) -> status of proxy_get_header_map_value on the
  ;; request headers; the value is at (load 0x100, load 0x104).
  (func $header (param $name i32) (param $len i32) (result i32)
    (call $get_header (i32.const 0) (local.get $name) (local.get $len) (i32.const 0x100) (i32.const 0x104)))

  ;; $utoa(v, dst) -> length of v in decimal, written at dst.
  (func $utoa (param $v i32) (param $dst i32) (result i32)
    (local $n i32) (local $t i32) (local $i i32)
    (local.set $n (i32.const 1))
    (local.set $t (local.get $v))
    (block $done
      (loop $count
        (br_if $done (i32.lt_u (local.get $t) (i32.const 10)))
        (local.set $t (i32.div_u (local.get $t) (i32.const 10)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $count)))
    (local.set $i (local.get $n))
    (local.set $t (local.get $v))
    (loop $write
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8 (i32.add (local.get $dst) (local.get $i))
        (i32.add (i32.const 48) (i32.rem_u (local.get $t) (i32.const 10))))
      (local.set $t (i32.div_u (local.get $t) (i32.const 10)))
      (br_if $write (i32.gt_u (local.get $i) (i32.const 0))))
    (local.get $n))

  (func (export "proxy_on_context_create") (param $id i32) (param $parent i32)
    (if (i32.eqz (local.get $parent))
      (then
        (global.set $root (local.get $id))
        (if (call $get_property (i32.const 0x500) (i32.const 14) (i32.const 0x108) (i32.const 0x10c))
          (then unreachable)))))

  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))

  (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)
    (local $vl i32) (local $buf i32)
    (if (call $get_property (i32.const 0x4a0) (i32.const 11) (i32.const 0x108) (i32.const 0x10c))
      (then
        (drop (call $log (i32.const 4) (i32.const 0x510) (i32.const 29)))
        (return (i32.const 0))))
    (local.set $vl (i32.load (i32.const 0x10c)))
    (local.set $buf (call $malloc (i32.add (i32.const 19) (local.get $vl))))
    (memory.copy (local.get $buf) (i32.const 0x4e0) (i32.const 19))
    (memory.copy (i32.add (local.get $buf) (i32.const 19)) (i32.load (i32.const 0x108)) (local.get $vl))
    (drop (call $log (i32.const 2) (local.get $buf) (i32.add (i32.const 19) (local.get $vl))))
    (if (i32.gt_u (local.get $size) (i32.const 0))
      (then
        (if (call $get_buffer (i32.const 7) (i32.const 0) (local.get $size) (i32.const 0x100) (i32.const 0x104))
          (then (return (i32.const 0))))
        (if (call $call_foreign (i32.const 0x4c0) (i32.const 16)
              (i32.load (i32.const 0x100)) (i32.load (i32.const 0x104))
              (i32.const 0x108) (i32.const 0x10c))
          (then
            (drop (call $log (i32.const 4) (i32.const 0x530) (i32.const 30)))
            (return (i32.const 0))))))
    (i32.const 1))

  ;; $oob(case) -> status of one call with an out-of-bounds pointer; 99 for
  ;; an unknown case.
  (func $oob (param $c i32) (result i32)
    (local $end i32)
    (local.set $end (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.eq (local.get $c) (i32.const 97)) ;; a
      (then (return (call $get_property (i32.const 0xFFFFFFF0) (i32.const 16) (i32.const 0x108) (i32.const 0x10c)))))
    (if (i32.eq (local.get $c) (i32.const 98)) ;; b
      (then (return (call $get_property (i32.const 0) (i32.const 0x7FFFFFFF) (i32.const 0x108) (i32.const 0x10c)))))
    (if (i32.eq (local.get $c) (i32.const 99)) ;; c
      (then (return (call $get_property (i32.const 0x4a0) (i32.const 11) (i32.const 0xFFFFFFFE) (i32.const 0x10c)))))
    (if (i32.eq (local.get $c) (i32.const 100)) ;; d
      (then (return (call $get_property (i32.const 0x4a0) (i32.const 11) (i32.const 0x108) (i32.sub (local.get $end) (i32.const 2))))))
    (if (i32.eq (local.get $c) (i32.const 101)) ;; e
      (then (return (call $get_property (i32.const 0x550) (i32.const 3) (i32.const 0xFFFFFFFE) (i32.const 0x10c)))))
    (if (i32.eq (local.get $c) (i32.const 102)) ;; f
      (then (return (call $set_property (i32.const 0xFFFFFFF0) (i32.const 16) (i32.const 0x550) (i32.const 3)))))
    (if (i32.eq (local.get $c) (i32.const 103)) ;; g
      (then (return (call $set_property (i32.const 0x550) (i32.const 3) (local.get $end) (i32.const 8)))))
    (if (i32.eq (local.get $c) (i32.const 104)) ;; h
      (then (return (call $call_foreign (i32.const 0xFFFFFFF0) (i32.const 16) (i32.const 0x550) (i32.const 3) (i32.const 0x108) (i32.const 0x10c)))))
    (if (i32.eq (local.get $c) (i32.const 105)) ;; i
      (then (return (call $call_foreign (i32.const 0x4b0) (i32.const 8) (local.get $end) (i32.const 16) (i32.const 0x108) (i32.const 0x10c)))))
    (if (i32.eq (local.get $c) (i32.const 106)) ;; j
      (then (return (call $call_foreign (i32.const 0x4b0) (i32.const 8) (i32.const 0x550) (i32.const 3) (i32.const 0xFFFFFFFE) (i32.const 0x10c)))))
    (if (i32.eq (local.get $c) (i32.const 107)) ;; k
      (then (return (call $call_foreign (i32.const 0x4b0) (i32.const 8) (i32.const 0x550) (i32.const 3) (i32.const 0x108) (i32.sub (local.get $end) (i32.const 3))))))
    (if (i32.eq (local.get $c) (i32.const 108)) ;; l
      (then (return (call $call_foreign (i32.const 0x550) (i32.const 3) (i32.const 0x550) (i32.const 3) (i32.const 0xFFFFFFFE) (i32.const 0x10c)))))
    (i32.const 99))

  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (local $status i32) (local $inRoot i32)
    (local $p1 i32) (local $l1 i32) (local $p2 i32) (local $l2 i32)
    (local $ret i32) (local $retSize i32)
    (if (i32.eqz (call $header (i32.const 0x470) (i32.const 5)))
      (then
        (if (i32.and (i32.gt_u (i32.load (i32.const 0x104)) (i32.const 0))
                     (i32.eq (i32.load8_u (i32.load (i32.const 0x100))) (i32.const 114))) ;; 'r'
          (then (local.set $inRoot (i32.const 1))))))
    (i32.store (i32.const 0x108) (i32.const 0))
    (i32.store (i32.const 0x10c) (i32.const 0))
    (local.set $status (i32.const -1))
    (block $op
      (if (i32.eqz (call $header (i32.const 0x400) (i32.const 5)))
        (then
          (local.set $p1 (i32.load (i32.const 0x100)))
          (local.set $l1 (i32.load (i32.const 0x104)))
          (if (local.get $inRoot) (then (drop (call $set_effective (global.get $root)))))
          (local.set $status (call $get_property (local.get $p1) (local.get $l1) (i32.const 0x108) (i32.const 0x10c)))
          (br $op)))
      (if (i32.eqz (call $header (i32.const 0x410) (i32.const 10)))
        (then
          (local.set $p1 (i32.load (i32.const 0x100)))
          (local.set $l1 (i32.load (i32.const 0x104)))
          (if (i32.eqz (call $header (i32.const 0x420) (i32.const 11)))
            (then
              (local.set $p2 (i32.load (i32.const 0x100)))
              (local.set $l2 (i32.load (i32.const 0x104)))))
          (if (local.get $inRoot) (then (drop (call $set_effective (global.get $root)))))
          (local.set $status (call $set_property (local.get $p1) (local.get $l1) (local.get $p2) (local.get $l2)))
          (br $op)))
      (if (i32.eqz (call $header (i32.const 0x430) (i32.const 4)))
        (then
          (local.set $p1 (i32.load (i32.const 0x100)))
          (local.set $l1 (i32.load (i32.const 0x104)))
          (if (i32.eqz (call $header (i32.const 0x440) (i32.const 9)))
            (then
              (local.set $p2 (i32.load (i32.const 0x100)))
              (local.set $l2 (i32.load (i32.const 0x104)))))
          (local.set $ret (i32.const 0x108))
          (local.set $retSize (i32.const 0x10c))
          (if (i32.eqz (call $header (i32.const 0x450) (i32.const 10)))
            (then
              (local.set $ret (i32.const 0))
              (local.set $retSize (i32.const 0))))
          (if (local.get $inRoot) (then (drop (call $set_effective (global.get $root)))))
          (local.set $status (call $call_foreign (local.get $p1) (local.get $l1) (local.get $p2) (local.get $l2)
            (local.get $ret) (local.get $retSize)))
          (br $op)))
      (if (i32.eqz (call $header (i32.const 0x460) (i32.const 5)))
        (then
          (local.set $status (call $oob (i32.load8_u (i32.load (i32.const 0x100)))))
          (br $op))))
    (if (local.get $inRoot) (then (drop (call $set_effective (local.get $ctx)))))
    (if (i32.ne (local.get $status) (i32.const -1))
      (then
        (local.set $l1 (call $utoa (local.get $status) (i32.const 0x200)))
        (drop (call $add_header (i32.const 0) (i32.const 0x480) (i32.const 8) (i32.const 0x200) (local.get $l1)))
        (if (i32.eqz (local.get $status))
          (then
            (drop (call $add_header (i32.const 0) (i32.const 0x490) (i32.const 7)
              (i32.load (i32.const 0x108)) (i32.load (i32.const 0x10c))))))))
    (i32.const 0))

  (func (export "proxy_on_new_connection") (param i32) (result i32) (i32.const 0))

  (func (export "proxy_on_downstream_data") (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
    (local $status i32) (local $vl i32) (local $buf i32) (local $n i32)
    (if (call $get_buffer (i32.const 2) (i32.const 0) (local.get $size) (i32.const 0x100) (i32.const 0x104))
      (then (return (i32.const 0))))
    (i32.store (i32.const 0x108) (i32.const 0))
    (i32.store (i32.const 0x10c) (i32.const 0))
    (local.set $status (call $get_property (i32.load (i32.const 0x100)) (i32.load (i32.const 0x104))
      (i32.const 0x108) (i32.const 0x10c)))
    (local.set $vl (i32.load (i32.const 0x10c)))
    (local.set $buf (call $malloc (i32.add (local.get $vl) (i32.const 12))))
    (local.set $n (call $utoa (local.get $status) (local.get $buf)))
    (i32.store8 (i32.add (local.get $buf) (local.get $n)) (i32.const 58)) ;; ':'
    (local.set $n (i32.add (local.get $n) (i32.const 1)))
    (memory.copy (i32.add (local.get $buf) (local.get $n)) (i32.load (i32.const 0x108)) (local.get $vl))
    (local.set $n (i32.add (local.get $n) (local.get $vl)))
    (drop (call $set_buffer (i32.const 2) (i32.const 0) (local.get $size) (local.get $buf) (local.get $n)))
    (i32.const 0))

  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1)))
