;; tcp — ABI v0.2.1; a network (TCP) filter for the harness tests.
;;
;; Logs at INFO (2):
;;   new_connection <ctx>             proxy_on_new_connection
;;   downstream_close <peer>          proxy_on_downstream_connection_close
;;   upstream_close <peer>            proxy_on_upstream_connection_close
;;   log <ctx>, delete <ctx>
;;
;; proxy_on_downstream_data reads the first byte of DOWNSTREAM_DATA (2):
;;   't' -> unreachable (the instance traps)
;;   'c' -> proxy_close_stream(DOWNSTREAM=2), returns PAUSE (1)
;;   'p' -> returns PAUSE (1) without changing the data, unless
;;          end_of_stream is set
;;   else   prepends ">" (proxy_set_buffer_bytes(2, 0, 0, ">", 1)) and
;;          returns CONTINUE (0).
;; proxy_on_upstream_data appends "<" to UPSTREAM_DATA (3)
;; (proxy_set_buffer_bytes(3, size, 0, "<", 1)) and returns CONTINUE.
;;
;; Memory layout (page 0 static, heap from 0x10000, reset per callback):
;;   0x0100 i32  return slot: pointer; 0x0104 i32 return slot: size
;;   0x0400..    constant strings; 0x2000.. log line being built
(module $tcp
  (import "env" "proxy_log"
    (func $proxy_log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes"
    (func $proxy_get_buffer_bytes (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes"
    (func $proxy_set_buffer_bytes (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_close_stream"
    (func $proxy_close_stream (param i32) (result i32)))

  (memory (export "memory") 2)

  (data (i32.const 0x0400) "new_connection")    ;; 14
  (data (i32.const 0x0410) "downstream_close")  ;; 16
  (data (i32.const 0x0430) "upstream_close")    ;; 14
  (data (i32.const 0x0440) "log")               ;; 3
  (data (i32.const 0x0450) "delete")            ;; 6
  (data (i32.const 0x0460) ">")                 ;; 1
  (data (i32.const 0x0470) "<")                 ;; 1

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

  ;; logs "<name> <decimal value>" at INFO, built at 0x2000
  (func $log1 (param $ptr i32) (param $size i32) (param $value i32)
    (local $n i32) (local $rest i32) (local $i i32) (local $dst i32)
    (memory.copy (i32.const 0x2000) (local.get $ptr) (local.get $size))
    (i32.store8 (i32.add (i32.const 0x2000) (local.get $size)) (i32.const 0x20))
    (local.set $n (i32.const 1))
    (local.set $rest (local.get $value))
    (block $counted
      (loop $count
        (br_if $counted (i32.lt_u (local.get $rest) (i32.const 10)))
        (local.set $rest (i32.div_u (local.get $rest) (i32.const 10)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $count)))
    (local.set $dst (i32.add (i32.const 0x2001) (local.get $size)))
    (local.set $i (local.get $n))
    (loop $digit
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8 (i32.add (local.get $dst) (local.get $i))
        (i32.add (i32.const 0x30) (i32.rem_u (local.get $value) (i32.const 10))))
      (local.set $value (i32.div_u (local.get $value) (i32.const 10)))
      (br_if $digit (local.get $i)))
    (drop (call $proxy_log (i32.const 2) (i32.const 0x2000)
      (i32.add (i32.add (local.get $size) (i32.const 1)) (local.get $n)))))

  (func $proxy_abi_version_0_2_1 (export "proxy_abi_version_0_2_1"))
  (func $proxy_on_context_create (export "proxy_on_context_create")
    (param $ctx i32) (param $parent i32))
  (func $proxy_on_vm_start (export "proxy_on_vm_start")
    (param $root i32) (param $size i32) (result i32)
    (i32.const 1))
  (func $proxy_on_configure (export "proxy_on_configure")
    (param $root i32) (param $size i32) (result i32)
    (i32.const 1))
  (func $proxy_on_done (export "proxy_on_done") (param $ctx i32) (result i32)
    (i32.const 1))
  (func $proxy_on_log (export "proxy_on_log") (param $ctx i32)
    (call $log1 (i32.const 0x0440) (i32.const 3) (local.get $ctx)))
  (func $proxy_on_delete (export "proxy_on_delete") (param $ctx i32)
    (call $log1 (i32.const 0x0450) (i32.const 6) (local.get $ctx)))

  (func $proxy_on_new_connection (export "proxy_on_new_connection")
    (param $ctx i32) (result i32)
    (call $log1 (i32.const 0x0400) (i32.const 14) (local.get $ctx))
    (i32.const 0))

  (func $proxy_on_downstream_data (export "proxy_on_downstream_data")
    (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
    (local $first i32)
    (global.set $heap (i32.const 0x10000))
    (i32.store (i32.const 0x0104) (i32.const 0))
    (drop (call $proxy_get_buffer_bytes
      (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 0x0100) (i32.const 0x0104)))
    (if (i32.load (i32.const 0x0104))
      (then (local.set $first (i32.load8_u (i32.load (i32.const 0x0100))))))
    (if (i32.eq (local.get $first) (i32.const 0x74)) ;; 't'
      (then unreachable))
    (if (i32.eq (local.get $first) (i32.const 0x63)) ;; 'c'
      (then
        (drop (call $proxy_close_stream (i32.const 2)))
        (return (i32.const 1))))
    (if (i32.and (i32.eq (local.get $first) (i32.const 0x70)) ;; 'p'
                 (i32.eqz (local.get $eos)))
      (then (return (i32.const 1))))
    (drop (call $proxy_set_buffer_bytes
      (i32.const 2) (i32.const 0) (i32.const 0) (i32.const 0x0460) (i32.const 1)))
    (i32.const 0))

  (func $proxy_on_upstream_data (export "proxy_on_upstream_data")
    (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
    (drop (call $proxy_set_buffer_bytes
      (i32.const 3) (local.get $size) (i32.const 0) (i32.const 0x0470) (i32.const 1)))
    (i32.const 0))

  (func $proxy_on_downstream_connection_close (export "proxy_on_downstream_connection_close")
    (param $ctx i32) (param $peer i32)
    (call $log1 (i32.const 0x0410) (i32.const 16) (local.get $peer)))

  (func $proxy_on_upstream_connection_close (export "proxy_on_upstream_connection_close")
    (param $ctx i32) (param $peer i32)
    (call $log1 (i32.const 0x0430) (i32.const 14) (local.get $peer)))
)
