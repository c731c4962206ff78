;; no_abi — a valid Wasm module that is NOT a Proxy-Wasm plugin.
;;
;; Exports memory, malloc and proxy_on_request_headers (v0.2.x signature), but
;; no proxy_abi_version_* marker. It imports nothing, so it instantiates fine
;; anywhere: the only thing wrong with it is the missing ABI marker.
;;
;; Test asserts: loading the plugin fails before any callback runs, with an
;; error saying no proxy_abi_version_* export was found (the host must not
;; guess an ABI version, e.g. fall back to 0.2.1).
(module $no_abi
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

  ;; Would return CONTINUE; a host must never call it (no ABI marker).
  (func $proxy_on_request_headers (export "proxy_on_request_headers")
    (param $ctx i32) (param $num_headers i32) (param $end_of_stream i32) (result i32)
    (i32.const 0))
)
