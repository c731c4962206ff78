;; shared — ABI v0.2.1; exercises shared data, shared queues and metrics.
;;
;; Callbacks (the realistic paths):
;;   proxy_on_vm_start         returns 1.
;;   proxy_on_configure        if the plugin configuration is not empty, it is
;;                             a queue name: proxy_register_shared_queue(name),
;;                             the id is kept in $queue. Returns 0 if the
;;                             registration fails, else 1.
;;   proxy_on_request_headers  - request header `x-cas` present: increments the
;;                               u32 (little endian) under shared data key
;;                               `counter` with a get / set(cas) loop, retrying
;;                               on CAS_MISMATCH; adds request header
;;                               `x-cas-retries: <retries>`.
;;                             - request header `x-enqueue` present: enqueues
;;                               its value on $queue, or, when `x-queue-vm` is
;;                               present, on the queue resolved from vm_id
;;                               `x-queue-vm` and name `x-queue-name`; adds
;;                               `x-enqueue-status: <status>` (and
;;                               `x-resolve-status: <status>` when resolving
;;                               failed, without enqueueing).
;;                             Returns CONTINUE.
;;   proxy_on_queue_ready      counts the call ($ready_count, $last_ready_q,
;;                             $last_ready_root); unless draining is off
;;                             (t_set_drain 0), dequeues until the status is not
;;                             OK and logs every item at INFO as
;;                             `queue_ready: <item>` (items over 56 KiB are
;;                             logged without the prefix), counting them in
;;                             $ready_items.
;;
;; Trampolines for tests (each forwards its arguments to the host function of
;; the same name and returns the status unchanged):
;;   t_get_shared_data t_set_shared_data t_register_shared_queue
;;   t_resolve_shared_queue t_enqueue_shared_queue t_dequeue_shared_queue
;;   t_define_metric t_increment_metric t_record_metric t_get_metric
;; and helpers: t_enqueue_probe(id, ptr, size) enqueues and returns
;; $ready_count as seen right after the hostcall; t_increment_loop(id, n) calls proxy_increment_metric(id, 1)
;; n times and returns the last status; t_ready_count, t_ready_items,
;; t_last_ready_q, t_last_ready_root read the counters; t_set_drain(on).
;;
;; Memory: 40 pages (2.5 MiB), no maximum.
;;   0x0100..  constant strings
;;   0x0800..  return slots
;;   0x0900..  decimal digits
;;   0x1000..0xF000  log line buffer
;;   0x10000..0x280000  heap (malloc: bump allocator that wraps around; it
;;                      never frees, tests only)
(module $shared
  (import "env" "proxy_log"
    (func $proxy_log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes"
    (func $proxy_get_buffer_bytes (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value"
    (func $proxy_get_header_map_value (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value"
    (func $proxy_add_header_map_value (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_shared_data"
    (func $proxy_get_shared_data
      (param $key_ptr i32) (param $key_size i32)
      (param $ret_value_ptr_ptr i32) (param $ret_value_size_ptr i32) (param $ret_cas_ptr i32)
      (result i32)))
  (import "env" "proxy_set_shared_data"
    (func $proxy_set_shared_data
      (param $key_ptr i32) (param $key_size i32)
      (param $value_ptr i32) (param $value_size i32) (param $cas i32)
      (result i32)))
  (import "env" "proxy_register_shared_queue"
    (func $proxy_register_shared_queue
      (param $name_ptr i32) (param $name_size i32) (param $ret_id_ptr i32) (result i32)))
  (import "env" "proxy_resolve_shared_queue"
    (func $proxy_resolve_shared_queue
      (param $vm_id_ptr i32) (param $vm_id_size i32)
      (param $name_ptr i32) (param $name_size i32) (param $ret_id_ptr i32) (result i32)))
  (import "env" "proxy_enqueue_shared_queue"
    (func $proxy_enqueue_shared_queue
      (param $id i32) (param $value_ptr i32) (param $value_size i32) (result i32)))
  (import "env" "proxy_dequeue_shared_queue"
    (func $proxy_dequeue_shared_queue
      (param $id i32) (param $ret_ptr_ptr i32) (param $ret_size_ptr i32) (result i32)))
  (import "env" "proxy_define_metric"
    (func $proxy_define_metric
      (param $type i32) (param $name_ptr i32) (param $name_size i32) (param $ret_id_ptr i32)
      (result i32)))
  (import "env" "proxy_increment_metric"
    (func $proxy_increment_metric (param $id i32) (param $delta i64) (result i32)))
  (import "env" "proxy_record_metric"
    (func $proxy_record_metric (param $id i32) (param $value i64) (result i32)))
  (import "env" "proxy_get_metric"
    (func $proxy_get_metric (param $id i32) (param $ret_value_ptr i32) (result i32)))

  (memory (export "memory") 40)

  (data (i32.const 0x0100) "counter")            ;; 7
  (data (i32.const 0x0110) "x-cas")              ;; 5
  (data (i32.const 0x0120) "x-cas-retries")      ;; 13
  (data (i32.const 0x0130) "x-enqueue")          ;; 9
  (data (i32.const 0x0140) "x-queue-vm")         ;; 10
  (data (i32.const 0x0150) "x-queue-name")       ;; 12
  (data (i32.const 0x0160) "x-enqueue-status")   ;; 16
  (data (i32.const 0x0180) "x-resolve-status")   ;; 16
  (data (i32.const 0x01A0) "queue_ready: ")      ;; 13

  (global $bump (mut i32) (i32.const 0x10000))
  (global $queue (mut i32) (i32.const 0))
  (global $drain (mut i32) (i32.const 1))
  (global $ready_count (mut i32) (i32.const 0))
  (global $ready_items (mut i32) (i32.const 0))
  (global $last_ready_q (mut i32) (i32.const 0))
  (global $last_ready_root (mut i32) (i32.const 0))

  (func $proxy_abi_version_0_2_1 (export "proxy_abi_version_0_2_1"))

  ;; Bump allocator over [0x10000, 0x280000); wraps to the start when the
  ;; request does not fit at the end; 0 when it can never fit.
  (func $malloc (export "malloc") (param $size i32) (result i32)
    (local $p i32)
    (if (i32.gt_u (local.get $size) (i32.const 0x270000))
      (then (return (i32.const 0))))
    (if (i32.gt_u (i32.add (global.get $bump) (local.get $size)) (i32.const 0x280000))
      (then (global.set $bump (i32.const 0x10000))))
    (local.set $p (global.get $bump))
    (global.set $bump
      (i32.and (i32.add (i32.add (local.get $p) (local.get $size)) (i32.const 7))
               (i32.const 0xFFFFFFF8)))
    (local.get $p))

  ;; Writes the decimal digits of $v at 0x0900 and returns their count.
  (func $itoa (param $v i32) (result i32)
    (local $n i32) (local $t i32) (local $i i32)
    (local.set $t (local.get $v))
    (loop $count
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (local.set $t (i32.div_u (local.get $t) (i32.const 10)))
      (br_if $count (local.get $t)))
    (local.set $i (local.get $n))
    (local.set $t (local.get $v))
    (loop $digits
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8 (i32.add (i32.const 0x0900) (local.get $i))
        (i32.add (i32.const 48) (i32.rem_u (local.get $t) (i32.const 10))))
      (local.set $t (i32.div_u (local.get $t) (i32.const 10)))
      (br_if $digits (local.get $i)))
    (local.get $n))

  ;; Adds request header (key, decimal v).
  (func $add_num_header (param $key i32) (param $key_len i32) (param $v i32)
    (local $n i32)
    (local.set $n (call $itoa (local.get $v)))
    (drop (call $proxy_add_header_map_value (i32.const 0)
      (local.get $key) (local.get $key_len) (i32.const 0x0900) (local.get $n))))

  ;; Reads request header key into return slots 0x0800 (ptr) / 0x0804 (size).
  (func $header (param $key i32) (param $key_len i32) (param $slot i32) (result i32)
    (call $proxy_get_header_map_value (i32.const 0)
      (local.get $key) (local.get $key_len)
      (local.get $slot) (i32.add (local.get $slot) (i32.const 4))))

  ;; Increments shared key `counter` with compare-and-swap; returns retries.
  (func $cas_increment (result i32)
    (local $retries i32) (local $st i32) (local $v i32) (local $cas i32)
    (loop $again
      (local.set $v (i32.const 0))
      (local.set $cas (i32.const 0))
      (local.set $st (call $proxy_get_shared_data
        (i32.const 0x0100) (i32.const 7) (i32.const 0x0810) (i32.const 0x0814) (i32.const 0x0818)))
      (if (i32.eqz (local.get $st))
        (then
          (local.set $cas (i32.load (i32.const 0x0818)))
          (if (i32.eq (i32.load (i32.const 0x0814)) (i32.const 4))
            (then (local.set $v (i32.load (i32.load (i32.const 0x0810))))))))
      (i32.store (i32.const 0x0820) (i32.add (local.get $v) (i32.const 1)))
      (local.set $st (call $proxy_set_shared_data
        (i32.const 0x0100) (i32.const 7) (i32.const 0x0820) (i32.const 4) (local.get $cas)))
      (if (i32.eq (local.get $st) (i32.const 8))
        (then
          (local.set $retries (i32.add (local.get $retries) (i32.const 1)))
          (br $again))))
    (local.get $retries))

  (func (export "proxy_on_context_create") (param $ctx i32) (param $parent i32))

  (func (export "proxy_on_vm_start") (param $root i32) (param $size i32) (result i32)
    (i32.const 1))

  (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)
    (if (i32.eqz (local.get $size)) (then (return (i32.const 1))))
    (if (call $proxy_get_buffer_bytes (i32.const 7) (i32.const 0) (local.get $size)
          (i32.const 0x0840) (i32.const 0x0844))
      (then (return (i32.const 0))))
    (if (call $proxy_register_shared_queue
          (i32.load (i32.const 0x0840)) (i32.load (i32.const 0x0844)) (i32.const 0x0848))
      (then (return (i32.const 0))))
    (global.set $queue (i32.load (i32.const 0x0848)))
    (i32.const 1))

  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32)
    (result i32)
    (local $q i32) (local $st i32)
    (if (i32.eqz (call $header (i32.const 0x0110) (i32.const 5) (i32.const 0x0850)))
      (then (call $add_num_header (i32.const 0x0120) (i32.const 13) (call $cas_increment))))
    (if (i32.eqz (call $header (i32.const 0x0130) (i32.const 9) (i32.const 0x0860)))
      (then
        (local.set $q (global.get $queue))
        (if (i32.eqz (call $header (i32.const 0x0140) (i32.const 10) (i32.const 0x0868)))
          (then
            (drop (call $header (i32.const 0x0150) (i32.const 12) (i32.const 0x0870)))
            (local.set $st (call $proxy_resolve_shared_queue
              (i32.load (i32.const 0x0868)) (i32.load (i32.const 0x086C))
              (i32.load (i32.const 0x0870)) (i32.load (i32.const 0x0874))
              (i32.const 0x0878)))
            (if (local.get $st)
              (then
                (call $add_num_header (i32.const 0x0180) (i32.const 16) (local.get $st))
                (return (i32.const 0))))
            (local.set $q (i32.load (i32.const 0x0878)))))
        (call $add_num_header (i32.const 0x0160) (i32.const 16)
          (call $proxy_enqueue_shared_queue (local.get $q)
            (i32.load (i32.const 0x0860)) (i32.load (i32.const 0x0864))))))
    (i32.const 0))

  (func (export "proxy_on_queue_ready") (param $root i32) (param $q i32)
    (local $ptr i32) (local $len i32)
    (global.set $ready_count (i32.add (global.get $ready_count) (i32.const 1)))
    (global.set $last_ready_q (local.get $q))
    (global.set $last_ready_root (local.get $root))
    (if (i32.eqz (global.get $drain)) (then (return)))
    (loop $drain
      (if (i32.eqz (call $proxy_dequeue_shared_queue (local.get $q) (i32.const 0x0880) (i32.const 0x0884)))
        (then
          (global.set $ready_items (i32.add (global.get $ready_items) (i32.const 1)))
          (local.set $ptr (i32.load (i32.const 0x0880)))
          (local.set $len (i32.load (i32.const 0x0884)))
          (if (i32.le_u (local.get $len) (i32.const 0xE000))
            (then
              (memory.copy (i32.const 0x1000) (i32.const 0x01A0) (i32.const 13))
              (memory.copy (i32.const 0x100D) (local.get $ptr) (local.get $len))
              (drop (call $proxy_log (i32.const 2) (i32.const 0x1000)
                (i32.add (local.get $len) (i32.const 13)))))
            (else
              (drop (call $proxy_log (i32.const 2) (local.get $ptr) (local.get $len)))))
          (br $drain)))))

  ;; Trampolines.
  (func (export "t_get_shared_data") (param i32 i32 i32 i32 i32) (result i32)
    (call $proxy_get_shared_data
      (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4)))
  (func (export "t_set_shared_data") (param i32 i32 i32 i32 i32) (result i32)
    (call $proxy_set_shared_data
      (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4)))
  (func (export "t_register_shared_queue") (param i32 i32 i32) (result i32)
    (call $proxy_register_shared_queue (local.get 0) (local.get 1) (local.get 2)))
  (func (export "t_resolve_shared_queue") (param i32 i32 i32 i32 i32) (result i32)
    (call $proxy_resolve_shared_queue
      (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4)))
  (func (export "t_enqueue_shared_queue") (param i32 i32 i32) (result i32)
    (call $proxy_enqueue_shared_queue (local.get 0) (local.get 1) (local.get 2)))
  (func (export "t_dequeue_shared_queue") (param i32 i32 i32) (result i32)
    (call $proxy_dequeue_shared_queue (local.get 0) (local.get 1) (local.get 2)))
  (func (export "t_define_metric") (param i32 i32 i32 i32) (result i32)
    (call $proxy_define_metric (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func (export "t_increment_metric") (param i32 i64) (result i32)
    (call $proxy_increment_metric (local.get 0) (local.get 1)))
  (func (export "t_record_metric") (param i32 i64) (result i32)
    (call $proxy_record_metric (local.get 0) (local.get 1)))
  (func (export "t_get_metric") (param i32 i32) (result i32)
    (call $proxy_get_metric (local.get 0) (local.get 1)))

  ;; Enqueues like t_enqueue_shared_queue but returns $ready_count as seen
  ;; right after the hostcall: proof that proxy_on_queue_ready did not run
  ;; inside it.
  (func (export "t_enqueue_probe") (param i32 i32 i32) (result i32)
    (drop (call $proxy_enqueue_shared_queue (local.get 0) (local.get 1) (local.get 2)))
    (global.get $ready_count))

  (func (export "t_increment_loop") (param $id i32) (param $n i32) (result i32)
    (local $st i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $st (call $proxy_increment_metric (local.get $id) (i64.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $st))

  (func (export "t_ready_count") (result i32) (global.get $ready_count))
  (func (export "t_ready_items") (result i32) (global.get $ready_items))
  (func (export "t_last_ready_q") (result i32) (global.get $last_ready_q))
  (func (export "t_last_ready_root") (result i32) (global.get $last_ready_root))
  (func (export "t_set_drain") (param $on i32) (global.set $drain (local.get $on)))
  (func (export "t_queue") (result i32) (global.get $queue))
)
