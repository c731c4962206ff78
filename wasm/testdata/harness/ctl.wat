;; ctl — ABI v0.2.1; a controllable HTTP filter for the host's lifecycle,
;; containment and harness tests.
;;
;; Every callback logs at INFO (2) one line "<callback> <context id>":
;;   create <ctx> <parent>     proxy_on_context_create
;;   vm_start <root>           proxy_on_vm_start (returns 1)
;;   configure <root> <size>   proxy_on_configure
;;   request_headers <ctx>, request_body <ctx>, request_trailers <ctx>,
;;   response_headers <ctx>, response_body <ctx>, response_trailers <ctx>,
;;   done <ctx>, log <ctx>, delete <ctx>
;;
;; proxy_on_configure: when proxy_get_current_time_nanoseconds reads 0 (a
;; test's clock set to the Unix epoch) it logs WARN
;; "configure rejected: clock is zero" and returns 0, so tests can make the
;; replacement of an instance fail on purpose. When the clock reads 1 ns and
;; the plugin configuration is not empty, it logs INFO "configure slow" and
;; spins for 2^24 loop iterations (tens of milliseconds) first, so tests can
;; act while an instance is being started. Otherwise it returns 1.
;;
;; proxy_on_request_headers, by request header:
;;   x-trap        -> unreachable (the instance traps)
;;   x-local       -> proxy_send_local_response(403, details "ctl_local",
;;                    body "denied") and returns PAUSE (1)
;;   x-defer-done  -> proxy_on_done for this context returns 0 (false) and
;;                    starts a 1 ms tick; proxy_on_tick then calls
;;                    proxy_set_effective_context(ctx) and proxy_done()
;;   x-pause       -> returns PAUSE (1) and starts a 1 ms tick; proxy_on_tick
;;                    calls proxy_set_effective_context(ctx) and
;;                    proxy_continue_stream(HTTP_REQUEST=0)
;;   always (unless it trapped or answered) adds request header `x-ctl: ok`.
;; proxy_on_response_headers adds response header `x-ctl-resp: ok`.
;; Every other stream callback returns CONTINUE (0).
;;
;; Memory layout (page 0 static, heap from 0x10000, reset by every stream
;; callback because nothing on the heap outlives a callback):
;;   0x0100 i32  return slot: pointer written by the host
;;   0x0104 i32  return slot: size written by the host
;;   0x0108 i64  return slot: current time
;;   0x0400..    constant strings
;;   0x2000..    log line being built
(module $ctl
  (import "env" "proxy_log"
    (func $proxy_log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value"
    (func $proxy_get_header_map_value (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value"
    (func $proxy_add_header_map_value (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_current_time_nanoseconds"
    (func $proxy_get_current_time_nanoseconds (param i32) (result i32)))
  (import "env" "proxy_set_tick_period_milliseconds"
    (func $proxy_set_tick_period_milliseconds (param i32) (result i32)))
  (import "env" "proxy_set_effective_context"
    (func $proxy_set_effective_context (param i32) (result i32)))
  (import "env" "proxy_done"
    (func $proxy_done (result i32)))
  (import "env" "proxy_continue_stream"
    (func $proxy_continue_stream (param i32) (result i32)))
  (import "env" "proxy_send_local_response"
    (func $proxy_send_local_response (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 2)

  (data (i32.const 0x0400) "create")             ;; 6
  (data (i32.const 0x0410) "vm_start")           ;; 8
  (data (i32.const 0x0420) "configure")          ;; 9
  (data (i32.const 0x0430) "request_headers")    ;; 15
  (data (i32.const 0x0450) "request_body")       ;; 12
  (data (i32.const 0x0460) "request_trailers")   ;; 16
  (data (i32.const 0x0480) "response_headers")   ;; 16
  (data (i32.const 0x04a0) "response_body")      ;; 13
  (data (i32.const 0x04c0) "response_trailers")  ;; 17
  (data (i32.const 0x04e0) "done")               ;; 4
  (data (i32.const 0x04f0) "log")                ;; 3
  (data (i32.const 0x0500) "delete")             ;; 6
  (data (i32.const 0x0520) "x-trap")             ;; 6
  (data (i32.const 0x0530) "x-defer-done")       ;; 12
  (data (i32.const 0x0540) "x-pause")            ;; 7
  (data (i32.const 0x0550) "x-local")            ;; 7
  (data (i32.const 0x0560) "x-ctl")              ;; 5
  (data (i32.const 0x0570) "ok")                 ;; 2
  (data (i32.const 0x0580) "x-ctl-resp")         ;; 10
  (data (i32.const 0x0590) "denied")             ;; 6
  (data (i32.const 0x05a0) "ctl_local")          ;; 9
  (data (i32.const 0x05b0) "configure rejected: clock is zero") ;; 33
  (data (i32.const 0x05e0) "configure slow")     ;; 14

  ;; ---- bump allocator over $heap; grows memory on demand ----
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

  ;; ---- log line builder at 0x2000 ----
  (global $len (mut i32) (i32.const 0))
  (func $str (param $ptr i32) (param $size i32)
    (memory.copy (i32.add (i32.const 0x2000) (global.get $len)) (local.get $ptr) (local.get $size))
    (global.set $len (i32.add (global.get $len) (local.get $size))))
  ;; appends " <decimal value>"
  (func $num (param $value i32)
    (local $n i32) (local $rest i32) (local $i i32) (local $dst i32)
    (i32.store8 (i32.add (i32.const 0x2000) (global.get $len)) (i32.const 0x20))
    (global.set $len (i32.add (global.get $len) (i32.const 1)))
    (local.set $n (i32.const 1))
    (local.set $rest (local.get $value))
    (block $counted
      (loop $count
        (br_if $counted (i32.lt_u (local.get $rest) (i32.const 10)))
        (local.set $rest (i32.div_u (local.get $rest) (i32.const 10)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $count)))
    (local.set $dst (i32.add (i32.const 0x2000) (global.get $len)))
    (local.set $i (local.get $n))
    (loop $digit
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8 (i32.add (local.get $dst) (local.get $i))
        (i32.add (i32.const 0x30) (i32.rem_u (local.get $value) (i32.const 10))))
      (local.set $value (i32.div_u (local.get $value) (i32.const 10)))
      (br_if $digit (local.get $i)))
    (global.set $len (i32.add (global.get $len) (local.get $n))))
  (func $flush (param $level i32)
    (drop (call $proxy_log (local.get $level) (i32.const 0x2000) (global.get $len)))
    (global.set $len (i32.const 0)))
  ;; logs "<name> <ctx>" at INFO
  (func $log1 (param $ptr i32) (param $size i32) (param $ctx i32)
    (call $str (local.get $ptr) (local.get $size))
    (call $num (local.get $ctx))
    (call $flush (i32.const 2)))

  (func $has_request_header (param $key_ptr i32) (param $key_size i32) (result i32)
    (i32.eqz (call $proxy_get_header_map_value
      (i32.const 0) (local.get $key_ptr) (local.get $key_size)
      (i32.const 0x0100) (i32.const 0x0104))))

  ;; ---- state driven by proxy_on_tick ----
  (global $defer_ctx (mut i32) (i32.const 0))
  (global $pending_done (mut i32) (i32.const 0))
  (global $pending_continue (mut i32) (i32.const 0))

  ;; ---- ABI marker and lifecycle ----
  (func $proxy_abi_version_0_2_1 (export "proxy_abi_version_0_2_1"))

  (func $proxy_on_context_create (export "proxy_on_context_create")
    (param $ctx i32) (param $parent i32)
    (call $str (i32.const 0x0400) (i32.const 6))
    (call $num (local.get $ctx))
    (call $num (local.get $parent))
    (call $flush (i32.const 2)))

  (func $proxy_on_vm_start (export "proxy_on_vm_start")
    (param $root i32) (param $size i32) (result i32)
    (call $log1 (i32.const 0x0410) (i32.const 8) (local.get $root))
    (i32.const 1))

  (func $proxy_on_configure (export "proxy_on_configure")
    (param $root i32) (param $size i32) (result i32)
    (local $spin i32)
    (i64.store (i32.const 0x0108) (i64.const -1))
    (drop (call $proxy_get_current_time_nanoseconds (i32.const 0x0108)))
    (if (i64.eqz (i64.load (i32.const 0x0108)))
      (then
        (drop (call $proxy_log (i32.const 3) (i32.const 0x05b0) (i32.const 33)))
        (return (i32.const 0))))
    (if (i32.and (i64.eq (i64.load (i32.const 0x0108)) (i64.const 1))
                 (i32.ne (local.get $size) (i32.const 0)))
      (then
        (drop (call $proxy_log (i32.const 2) (i32.const 0x05e0) (i32.const 14)))
        (local.set $spin (i32.const 0x1000000))
        (loop $busy
          (local.set $spin (i32.sub (local.get $spin) (i32.const 1)))
          (br_if $busy (local.get $spin)))))
    (call $str (i32.const 0x0420) (i32.const 9))
    (call $num (local.get $root))
    (call $num (local.get $size))
    (call $flush (i32.const 2))
    (i32.const 1))

  (func $proxy_on_request_headers (export "proxy_on_request_headers")
    (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (global.set $heap (i32.const 0x10000))
    (call $log1 (i32.const 0x0430) (i32.const 15) (local.get $ctx))
    (if (call $has_request_header (i32.const 0x0520) (i32.const 6))
      (then unreachable))
    (if (call $has_request_header (i32.const 0x0550) (i32.const 7))
      (then
        (drop (call $proxy_send_local_response
          (i32.const 403) (i32.const 0x05a0) (i32.const 9) (i32.const 0x0590) (i32.const 6)
          (i32.const 0) (i32.const 0) (i32.const -1)))
        (return (i32.const 1))))
    (if (call $has_request_header (i32.const 0x0530) (i32.const 12))
      (then (global.set $defer_ctx (local.get $ctx))))
    (drop (call $proxy_add_header_map_value
      (i32.const 0) (i32.const 0x0560) (i32.const 5) (i32.const 0x0570) (i32.const 2)))
    (if (call $has_request_header (i32.const 0x0540) (i32.const 7))
      (then
        (global.set $pending_continue (local.get $ctx))
        (drop (call $proxy_set_tick_period_milliseconds (i32.const 1)))
        (return (i32.const 1))))
    (i32.const 0))

  (func $proxy_on_request_body (export "proxy_on_request_body")
    (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
    (call $log1 (i32.const 0x0450) (i32.const 12) (local.get $ctx))
    (i32.const 0))

  (func $proxy_on_request_trailers (export "proxy_on_request_trailers")
    (param $ctx i32) (param $n i32) (result i32)
    (call $log1 (i32.const 0x0460) (i32.const 16) (local.get $ctx))
    (i32.const 0))

  (func $proxy_on_response_headers (export "proxy_on_response_headers")
    (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (global.set $heap (i32.const 0x10000))
    (call $log1 (i32.const 0x0480) (i32.const 16) (local.get $ctx))
    (drop (call $proxy_add_header_map_value
      (i32.const 2) (i32.const 0x0580) (i32.const 10) (i32.const 0x0570) (i32.const 2)))
    (i32.const 0))

  (func $proxy_on_response_body (export "proxy_on_response_body")
    (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
    (call $log1 (i32.const 0x04a0) (i32.const 13) (local.get $ctx))
    (i32.const 0))

  (func $proxy_on_response_trailers (export "proxy_on_response_trailers")
    (param $ctx i32) (param $n i32) (result i32)
    (call $log1 (i32.const 0x04c0) (i32.const 17) (local.get $ctx))
    (i32.const 0))

  (func $proxy_on_done (export "proxy_on_done") (param $ctx i32) (result i32)
    (call $log1 (i32.const 0x04e0) (i32.const 4) (local.get $ctx))
    (if (i32.and (i32.ne (global.get $defer_ctx) (i32.const 0))
                 (i32.eq (global.get $defer_ctx) (local.get $ctx)))
      (then
        (global.set $defer_ctx (i32.const 0))
        (global.set $pending_done (local.get $ctx))
        (drop (call $proxy_set_tick_period_milliseconds (i32.const 1)))
        (return (i32.const 0))))
    (i32.const 1))

  (func $proxy_on_log (export "proxy_on_log") (param $ctx i32)
    (call $log1 (i32.const 0x04f0) (i32.const 3) (local.get $ctx)))

  (func $proxy_on_delete (export "proxy_on_delete") (param $ctx i32)
    (call $log1 (i32.const 0x0500) (i32.const 6) (local.get $ctx)))

  (func $proxy_on_tick (export "proxy_on_tick") (param $root i32)
    (if (global.get $pending_done)
      (then
        (drop (call $proxy_set_effective_context (global.get $pending_done)))
        (drop (call $proxy_done))
        (global.set $pending_done (i32.const 0))))
    (if (global.get $pending_continue)
      (then
        (drop (call $proxy_set_effective_context (global.get $pending_continue)))
        (drop (call $proxy_continue_stream (i32.const 0)))
        (global.set $pending_continue (i32.const 0))))
    (drop (call $proxy_set_effective_context (local.get $root)))
    (drop (call $proxy_set_tick_period_milliseconds (i32.const 0))))
)
