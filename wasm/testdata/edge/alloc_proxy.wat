;; alloc_proxy — ABI v0.2.1; allocator exported as proxy_on_memory_allocate only.
;;
;; Exports proxy_on_memory_allocate (i32) -> i32 and NO malloc, so the host
;; must allocate guest memory through proxy_on_memory_allocate.
;; proxy_on_configure(root_ctx, size) calls
;;   env.proxy_get_buffer_bytes(PLUGIN_CONFIGURATION=7, 0, size, 0x0100, 0x0104)
;; and then:
;;   * status != OK -> logs at ERROR (4)
;;       `alloc_proxy: proxy_get_buffer_bytes failed`, returns 0;
;;   * the returned pointer is not the one proxy_on_memory_allocate handed out
;;     last -> logs at ERROR (4)
;;       `alloc_proxy: configuration not in memory from proxy_on_memory_allocate`,
;;     returns 0;
;;   * otherwise logs the configuration at INFO (2) as `config: <bytes>` and
;;     returns 1.
;;
;; Test asserts: with a non-empty plugin configuration (e.g. `hello`) the
;; plugin starts and the INFO line is exactly `config: hello`; no ERROR line
;; from alloc_proxy is logged; loading does not fail for lack of `malloc`.
;;
;; Memory layout (page 0 static, heap from 0x10000):
;;   0x0100 i32  return slot: data pointer written by the host
;;   0x0104 i32  return slot: size written by the host
;;   0x0400..    constant strings (below)
(module $alloc_proxy
  (import "env" "proxy_log"
    (func $proxy_log (param $level i32) (param $ptr i32) (param $size i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes"
    (func $proxy_get_buffer_bytes
      (param $buffer i32) (param $start i32) (param $max_size i32)
      (param $ret_ptr_ptr i32) (param $ret_size_ptr i32) (result i32)))

  (memory (export "memory") 2)

  (data (i32.const 0x0400) "config: ")                                    ;;  8 bytes
  (data (i32.const 0x0420) "alloc_proxy: proxy_get_buffer_bytes failed")  ;; 42 bytes
  (data (i32.const 0x0460)
    "alloc_proxy: configuration not in memory from proxy_on_memory_allocate") ;; 70 bytes

  ;; ---- bump allocator over $heap (never frees); grows memory on demand ----
  (global $heap (mut i32) (i32.const 0x10000))
  (func $alloc (param $size i32) (result i32)
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

  ;; The host-facing allocator; remembers the last pointer it handed out.
  (global $last_host_alloc (mut i32) (i32.const 0))
  (func $proxy_on_memory_allocate (export "proxy_on_memory_allocate")
    (param $size i32) (result i32)
    (global.set $last_host_alloc (call $alloc (local.get $size)))
    (global.get $last_host_alloc))

  ;; ---- ABI marker and lifecycle ----
  (func $proxy_abi_version_0_2_1 (export "proxy_abi_version_0_2_1"))

  (func $proxy_on_context_create (export "proxy_on_context_create")
    (param $ctx i32) (param $parent i32))

  (func $proxy_on_vm_start (export "proxy_on_vm_start")
    (param $root_ctx i32) (param $vm_config_size i32) (result i32)
    (i32.const 1))

  ;; Logs "config: " followed by the PLUGIN_CONFIGURATION bytes.
  (func $proxy_on_configure (export "proxy_on_configure")
    (param $root_ctx i32) (param $config_size i32) (result i32)
    (local $cfg_ptr i32) (local $cfg_len i32) (local $line i32)
    (i32.store (i32.const 0x0100) (i32.const 0))
    (i32.store (i32.const 0x0104) (i32.const 0))
    (if (call $proxy_get_buffer_bytes
          (i32.const 7) (i32.const 0) (local.get $config_size)
          (i32.const 0x0100) (i32.const 0x0104))
      (then
        (drop (call $proxy_log (i32.const 4) (i32.const 0x0420) (i32.const 42)))
        (return (i32.const 0))))
    (local.set $cfg_ptr (i32.load (i32.const 0x0100)))
    (local.set $cfg_len (i32.load (i32.const 0x0104)))
    (if (i32.ne (local.get $cfg_ptr) (global.get $last_host_alloc))
      (then
        (drop (call $proxy_log (i32.const 4) (i32.const 0x0460) (i32.const 70)))
        (return (i32.const 0))))
    ;; line = "config: " ++ configuration (allocated internally, not via the export)
    (local.set $line (call $alloc (i32.add (i32.const 8) (local.get $cfg_len))))
    (if (i32.eqz (local.get $line)) (then unreachable))
    (memory.copy (local.get $line) (i32.const 0x0400) (i32.const 8))
    (memory.copy (i32.add (local.get $line) (i32.const 8)) (local.get $cfg_ptr) (local.get $cfg_len))
    (drop (call $proxy_log (i32.const 2) (local.get $line) (i32.add (i32.const 8) (local.get $cfg_len))))
    (i32.const 1))

  (func $proxy_on_done (export "proxy_on_done") (param $ctx i32) (result i32)
    (i32.const 1))
)
