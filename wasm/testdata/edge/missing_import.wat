;; missing_import — an ABI v0.2.0 plugin whose imports the host cannot satisfy.
;;
;; Imports, in this order:
;;   env.proxy_log                                 (i32 i32 i32) -> i32  provided by every host
;;   env.proxy_does_not_exist                      (i32) -> i32          missing #1
;;   wasi_snapshot_preview1.not_a_wasi_function    () -> i32             missing #2
;;   unknown_module.some_function                  () -> ()              missing #3
;;
;; Test asserts: loading fails before instantiation (no callback runs) and the
;; error lists ALL three missing imports as module.name, in import order:
;;   env.proxy_does_not_exist, wasi_snapshot_preview1.not_a_wasi_function,
;;   unknown_module.some_function
;; and does not list env.proxy_log. (wazero's own instantiate error names only
;; the first unresolved import, so the host has to walk the module's imports.)
(module $missing_import
  (import "env" "proxy_log"
    (func $proxy_log (param $level i32) (param $ptr i32) (param $size i32) (result i32)))
  (import "env" "proxy_does_not_exist"
    (func $proxy_does_not_exist (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "not_a_wasi_function"
    (func $not_a_wasi_function (result i32)))
  (import "unknown_module" "some_function"
    (func $some_function))

  (memory (export "memory") 2)

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

  (func $proxy_abi_version_0_2_0 (export "proxy_abi_version_0_2_0"))

  ;; Uses every import so none of them is dead code; never reached because the
  ;; module cannot be instantiated.
  (func $proxy_on_request_headers (export "proxy_on_request_headers")
    (param $ctx i32) (param $num_headers i32) (param $end_of_stream i32) (result i32)
    (drop (call $proxy_log (i32.const 2) (i32.const 0) (i32.const 0)))
    (drop (call $proxy_does_not_exist (i32.const 0)))
    (drop (call $not_a_wasi_function))
    (call $some_function)
    (i32.const 0))
)
