;; start_only — ABI v0.2.1; like start_order.wat but with _start instead of
;; _initialize.
;;
;; Each entry point appends one marker byte to a buffer that directly follows
;; the string "start order: " in memory:
;;   'S'  the Wasm start section (runs inside instantiation, always first)
;;   '_'  exported _start        ()
;;   'M'  exported main          (i32, i32) -> i32  -- must NOT run: a host
;;        calls main only after _initialize, and there is no _initialize
;; proxy_on_configure logs, at INFO (2), "start order: " followed by the
;; markers recorded so far, and returns 1.
;;
;; Test asserts (proxy-wasm-cpp-host: no _initialize, so _start instead): the
;; INFO line is exactly
;;   start order: S_
;; i.e. _start ran exactly once, after the start section, and main never ran.
;; Watch out: wazero's default ModuleConfig already calls _start during
;; instantiation; a host that also calls it explicitly logs "S__".
;;
;; Memory layout:
;;   0x0400..0x040C  "start order: " (13 bytes)
;;   0x040D..0x042C  markers, at most 32 are kept
(module $start_only
  (import "env" "proxy_log"
    (func $proxy_log (param $level i32) (param $ptr i32) (param $size i32) (result i32)))

  (memory (export "memory") 2)

  (data (i32.const 0x0400) "start order: ") ;; 13 bytes, markers follow at 0x040D

  (global $markers (mut i32) (i32.const 0))

  ;; Appends one marker byte after "start order: " (drops it past 32 markers).
  (func $mark (param $marker i32)
    (if (i32.lt_u (global.get $markers) (i32.const 32))
      (then
        (i32.store8 (i32.add (i32.const 0x040D) (global.get $markers)) (local.get $marker))
        (global.set $markers (i32.add (global.get $markers) (i32.const 1))))))

  (func $start_section (call $mark (i32.const 0x53))) ;; 'S'
  (start $start_section)

  (func $_start (export "_start") (call $mark (i32.const 0x5F))) ;; '_'

  ;; Must not run: main is only called after _initialize, which is absent.
  (func $main (export "main") (param $argc i32) (param $argv i32) (result i32)
    (call $mark (i32.const 0x4D)) ;; 'M'
    (i32.const 0))

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

  ;; Logs "start order: <markers>".
  (func $proxy_on_configure (export "proxy_on_configure")
    (param $root_ctx i32) (param $config_size i32) (result i32)
    (drop (call $proxy_log
      (i32.const 2) (i32.const 0x0400) (i32.add (i32.const 13) (global.get $markers))))
    (i32.const 1))

  (func $proxy_on_done (export "proxy_on_done") (param $ctx i32) (result i32)
    (i32.const 1))
)
