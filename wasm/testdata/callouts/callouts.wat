;; callouts — ABI v0.2.1; HTTP and gRPC callouts driven by request headers.
;;
;; Every callback reports what it saw as one INFO log line; the host tests
;; (wasm/callouts_test.go) match those lines.
;;
;; proxy_on_configure(root, size): a non-empty plugin configuration is a
;;   cluster name: proxy_http_call(config, {:method GET, :path /root,
;;   :authority root.test}, no body, no trailers, 5000 ms) from the root
;;   context; logs `root http_call status=<s> id=<id>`. Returns 1.
;;
;; proxy_on_request_headers(ctx, n, eos), first matching request header wins:
;;   x-http-cluster  proxy_http_call(x-http-cluster, x-http-headers (a
;;                   serialized map, may be absent), x-http-body, x-http-trailers
;;                   (serialized), x-timeout (decimal ms, absent = 0));
;;                   logs `http_call status=<s> id=<id>`; PAUSE when OK,
;;                   else CONTINUE.
;;   x-grpc-cluster  the upstream bytes (a cluster name or a serialized
;;                   GrpcService), with x-grpc-service, x-grpc-method,
;;                   x-grpc-md (serialized map), x-grpc-msg, x-timeout:
;;                   * with x-grpc-stream: proxy_grpc_stream, then if
;;                     x-grpc-msg is present proxy_grpc_send(id, msg, 0); logs
;;                     `grpc_stream status=<s> id=<id>` (and `grpc_send
;;                     status=<s>`); CONTINUE.
;;                   * else proxy_grpc_call; logs `grpc_call status=<s>
;;                     id=<id>`; PAUSE when OK, else CONTINUE.
;;   The context id is remembered per callout id for the response.
;;
;; proxy_on_request_body(ctx, size, eos): proxy_grpc_send(last stream id,
;;   body, eos); logs `grpc_send status=<s>`. CONTINUE.
;; proxy_on_request_trailers(ctx, n), by request trailer present:
;;   cancel -> proxy_grpc_cancel(last id), logs `grpc_cancel status=<s>`;
;;   close  -> proxy_grpc_close(last id), logs `grpc_close status=<s>`;
;;   bogus  -> logs `bogus send_unknown=<grpc_send(0x7ffffff2)>
;;             send_last=<grpc_send(last gRPC id)>
;;             cancel_http=<grpc_cancel(last HTTP call id)>
;;             close_unknown=<grpc_close(0x7ffffff1)>
;;             close_http=<grpc_close(last HTTP call id)>
;;             cancel_unknown=<grpc_cancel(0x7ffffff0)>`.
;;
;; proxy_on_http_call_response(root, id, nh, body, nt): logs
;;   `http_response root=<root> id=<id> headers=<nh> body=<bytes>
;;   trailers=<nt> status=<:status> trailer=<x-trailer> data=<body bytes>
;;   get_status=<code> <message>` (fields after trailers only when present);
;;   traps when the response has header x-trap; then, for a callout made by a
;;   stream: proxy_set_effective_context(that stream), and either (response
;;   header x-local) proxy_send_local_response(403, "callout", body) or sets
;;   request header x-callout-status to :status ("none" without one) and
;;   proxy_continue_stream(REQUEST); logs `resumed ctx=<ctx> status=<s>`.
;;
;; gRPC callbacks log:
;;   `grpc_initial_metadata id=<id> n=<n> x-md=<value>`
;;   `grpc_receive id=<id> size=<n> msg=<bytes>`
;;   `grpc_trailing_metadata id=<id> n=<n> x-tr=<value>`
;;   `grpc_close id=<id> code=<code> get_status=<code> <message>`
;; and for a unary call (id & 3 == 1) receive and close resume the stream
;; that made it as above (x-callout-status = "grpc").
;;
;; Memory layout (page 0 static, heap from 0x10000):
;;   0x0100 i32  return slot: pointer written by the host
;;   0x0104 i32  return slot: size written by the host
;;   0x0108 i32  return slot: callout id
;;   0x010C i32  return slot: status code of proxy_get_status
;;   0x0400..    NUL-terminated constant strings
;;   0x3000..    64 (callout id, context id) pairs
;;   0x6000..    serialized map under construction
;;   0x8000..    log line under construction (to 0xFF00)
(module $callouts
  (import "env" "proxy_log" (func $proxy_log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value"
    (func $proxy_get_header_map_value (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value"
    (func $proxy_replace_header_map_value (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes"
    (func $proxy_get_buffer_bytes (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_http_call"
    (func $proxy_http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_grpc_call"
    (func $proxy_grpc_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_grpc_stream"
    (func $proxy_grpc_stream (param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_grpc_send" (func $proxy_grpc_send (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_grpc_cancel" (func $proxy_grpc_cancel (param i32) (result i32)))
  (import "env" "proxy_grpc_close" (func $proxy_grpc_close (param i32) (result i32)))
  (import "env" "proxy_get_status" (func $proxy_get_status (param i32 i32 i32) (result i32)))
  (import "env" "proxy_set_effective_context"
    (func $proxy_set_effective_context (param i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $proxy_continue_stream (param i32) (result i32)))
  (import "env" "proxy_send_local_response"
    (func $proxy_send_local_response (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 2)

  ;; ---- constant strings, NUL-terminated ----
  (data (i32.const 0x0400) "x-http-cluster\00")
  (data (i32.const 0x0420) "x-http-headers\00")
  (data (i32.const 0x0440) "x-http-body\00")
  (data (i32.const 0x0460) "x-http-trailers\00")
  (data (i32.const 0x0480) "x-timeout\00")
  (data (i32.const 0x04a0) "x-grpc-cluster\00")
  (data (i32.const 0x04c0) "x-grpc-service\00")
  (data (i32.const 0x04e0) "x-grpc-method\00")
  (data (i32.const 0x0500) "x-grpc-md\00")
  (data (i32.const 0x0520) "x-grpc-msg\00")
  (data (i32.const 0x0540) "x-grpc-stream\00")
  (data (i32.const 0x0560) "cancel\00")
  (data (i32.const 0x0570) "close\00")
  (data (i32.const 0x0580) "bogus\00")
  (data (i32.const 0x0590) ":status\00")
  (data (i32.const 0x05a0) "x-trailer\00")
  (data (i32.const 0x05b0) "x-trap\00")
  (data (i32.const 0x05c0) "x-local\00")
  (data (i32.const 0x05d0) "x-callout-status\00")
  (data (i32.const 0x05f0) "none\00")
  (data (i32.const 0x0600) "grpc\00")
  (data (i32.const 0x0610) "x-md\00")
  (data (i32.const 0x0620) "x-tr\00")
  (data (i32.const 0x0630) "callout\00")
  (data (i32.const 0x0640) ":method\00")
  (data (i32.const 0x0650) "GET\00")
  (data (i32.const 0x0660) ":path\00")
  (data (i32.const 0x0670) "/root\00")
  (data (i32.const 0x0680) ":authority\00")
  (data (i32.const 0x0690) "root.test\00")
  ;; log fragments
  (data (i32.const 0x0800) "root http_call status=\00")
  (data (i32.const 0x0820) " id=\00")
  (data (i32.const 0x0830) "http_call status=\00")
  (data (i32.const 0x0850) "grpc_stream status=\00")
  (data (i32.const 0x0870) "grpc_send status=\00")
  (data (i32.const 0x0890) "grpc_call status=\00")
  (data (i32.const 0x08b0) "grpc_cancel status=\00")
  (data (i32.const 0x08d0) "grpc_close status=\00")
  (data (i32.const 0x08f0) "bogus send_unknown=\00")
  (data (i32.const 0x0910) " send_last=\00")
  (data (i32.const 0x0920) " cancel_http=\00")
  (data (i32.const 0x0930) " close_unknown=\00")
  (data (i32.const 0x0940) " close_http=\00")
  (data (i32.const 0x0950) "http_response root=\00")
  (data (i32.const 0x0970) " headers=\00")
  (data (i32.const 0x0980) " body=\00")
  (data (i32.const 0x0990) " trailers=\00")
  (data (i32.const 0x09a0) " status=\00")
  (data (i32.const 0x09b0) " trailer=\00")
  (data (i32.const 0x09c0) " data=\00")
  (data (i32.const 0x09d0) " get_status=\00")
  (data (i32.const 0x09e0) " \00")
  (data (i32.const 0x09f0) "resumed ctx=\00")
  (data (i32.const 0x0a00) "grpc_initial_metadata id=\00")
  (data (i32.const 0x0a20) " n=\00")
  (data (i32.const 0x0a30) " x-md=\00")
  (data (i32.const 0x0a40) "grpc_receive id=\00")
  (data (i32.const 0x0a60) " size=\00")
  (data (i32.const 0x0a70) " msg=\00")
  (data (i32.const 0x0a80) "grpc_trailing_metadata id=\00")
  (data (i32.const 0x0aa0) " x-tr=\00")
  (data (i32.const 0x0ab0) "grpc_close id=\00")
  (data (i32.const 0x0ac0) " code=\00")
  (data (i32.const 0x0ad0) "local_response status=\00")
  (data (i32.const 0x0af0) " cancel_unknown=\00")

  ;; ---- bump allocator over $heap (never frees); grows memory on demand ----
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

  ;; ---- strings ----
  (func $strlen (param $p i32) (result i32)
    (local $n i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $n))

  ;; decimal u32 of (p, n); stops at the first non-digit
  (func $atoi (param $p i32) (param $n i32) (result i32)
    (local $i i32) (local $v i32) (local $c i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $c (i32.sub (i32.load8_u (i32.add (local.get $p) (local.get $i))) (i32.const 48)))
        (br_if $done (i32.gt_u (local.get $c) (i32.const 9)))
        (local.set $v (i32.add (i32.mul (local.get $v) (i32.const 10)) (local.get $c)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $v))

  ;; ---- log line builder at 0x8000 ----
  (global $ln (mut i32) (i32.const 0x8000))
  (func $ln_reset (global.set $ln (i32.const 0x8000)))
  (func $ln_bytes (param $p i32) (param $n i32)
    (if (i32.gt_u (i32.add (global.get $ln) (local.get $n)) (i32.const 0xFF00))
      (then (local.set $n (i32.sub (i32.const 0xFF00) (global.get $ln)))))
    (memory.copy (global.get $ln) (local.get $p) (local.get $n))
    (global.set $ln (i32.add (global.get $ln) (local.get $n))))
  (func $ln_c (param $p i32) (call $ln_bytes (local.get $p) (call $strlen (local.get $p))))
  (func $ln_u32 (param $v i32)
    (local $tmp i32) (local $n i32)
    ;; digits backwards into 0x7FF0..0x7FFF, then copy
    (local.set $tmp (i32.const 0x8000))
    (loop $next
      (local.set $tmp (i32.sub (local.get $tmp) (i32.const 1)))
      (i32.store8 (local.get $tmp)
        (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
      (local.set $v (i32.div_u (local.get $v) (i32.const 10)))
      (br_if $next (local.get $v)))
    (call $ln_bytes (local.get $tmp) (i32.sub (i32.const 0x8000) (local.get $tmp))))
  (func $ln_emit
    (drop (call $proxy_log (i32.const 2) (i32.const 0x8000)
      (i32.sub (global.get $ln) (i32.const 0x8000)))))

  ;; ---- host helpers ----
  (global $vp (mut i32) (i32.const 0))
  (global $vl (mut i32) (i32.const 0))
  ;; header map value of NUL-terminated key; status, value in $vp/$vl
  (func $get (param $map i32) (param $key i32) (result i32)
    (local $s i32)
    (global.set $vp (i32.const 0))
    (global.set $vl (i32.const 0))
    (i32.store (i32.const 0x0100) (i32.const 0))
    (i32.store (i32.const 0x0104) (i32.const 0))
    (local.set $s (call $proxy_get_header_map_value (local.get $map) (local.get $key)
      (call $strlen (local.get $key)) (i32.const 0x0100) (i32.const 0x0104)))
    (if (i32.eqz (local.get $s))
      (then
        (global.set $vp (i32.load (i32.const 0x0100)))
        (global.set $vl (i32.load (i32.const 0x0104)))))
    (local.get $s))
  ;; buffer bytes; status, data in $vp/$vl
  (func $buf (param $type i32) (param $size i32) (result i32)
    (local $s i32)
    (global.set $vp (i32.const 0))
    (global.set $vl (i32.const 0))
    (i32.store (i32.const 0x0100) (i32.const 0))
    (i32.store (i32.const 0x0104) (i32.const 0))
    (local.set $s (call $proxy_get_buffer_bytes (local.get $type) (i32.const 0) (local.get $size)
      (i32.const 0x0100) (i32.const 0x0104)))
    (if (i32.eqz (local.get $s))
      (then
        (global.set $vp (i32.load (i32.const 0x0100)))
        (global.set $vl (i32.load (i32.const 0x0104)))))
    (local.get $s))

  ;; ---- callout id -> context id, 64 slots at 0x3000 ----
  (func $remember (param $id i32) (param $ctx i32)
    (local $slot i32)
    (local.set $slot (i32.add (i32.const 0x3000)
      (i32.shl (i32.and (local.get $id) (i32.const 63)) (i32.const 3))))
    (i32.store (local.get $slot) (local.get $id))
    (i32.store offset=4 (local.get $slot) (local.get $ctx)))
  (func $recall (param $id i32) (result i32)
    (local $slot i32)
    (local.set $slot (i32.add (i32.const 0x3000)
      (i32.shl (i32.and (local.get $id) (i32.const 63)) (i32.const 3))))
    (if (result i32) (i32.eq (i32.load (local.get $slot)) (local.get $id))
      (then (i32.load offset=4 (local.get $slot)))
      (else (i32.const 0))))

  ;; ---- serialized map builder at 0x6000 ----
  (global $pdata (mut i32) (i32.const 0))
  (func $pairs (param $count i32)
    (i32.store (i32.const 0x6000) (local.get $count))
    (global.set $pdata (i32.add (i32.const 0x6004) (i32.shl (local.get $count) (i32.const 3)))))
  (func $pair (param $i i32) (param $k i32) (param $v i32)
    (local $kl i32) (local $vl i32) (local $sizes i32)
    (local.set $kl (call $strlen (local.get $k)))
    (local.set $vl (call $strlen (local.get $v)))
    (local.set $sizes (i32.add (i32.const 0x6004) (i32.shl (local.get $i) (i32.const 3))))
    (i32.store (local.get $sizes) (local.get $kl))
    (i32.store offset=4 (local.get $sizes) (local.get $vl))
    (memory.copy (global.get $pdata) (local.get $k) (i32.add (local.get $kl) (i32.const 1)))
    (global.set $pdata (i32.add (global.get $pdata) (i32.add (local.get $kl) (i32.const 1))))
    (memory.copy (global.get $pdata) (local.get $v) (i32.add (local.get $vl) (i32.const 1)))
    (global.set $pdata (i32.add (global.get $pdata) (i32.add (local.get $vl) (i32.const 1)))))

  ;; ---- lifecycle ----
  (func $proxy_abi_version_0_2_1 (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param $ctx i32) (param $parent i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))

  (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)
    (local $s i32) (local $cp i32) (local $cl i32)
    (if (i32.eqz (local.get $size)) (then (return (i32.const 1))))
    (if (call $buf (i32.const 7) (local.get $size)) (then (return (i32.const 0))))
    (local.set $cp (global.get $vp))
    (local.set $cl (global.get $vl))
    (call $pairs (i32.const 3))
    (call $pair (i32.const 0) (i32.const 0x0640) (i32.const 0x0650))
    (call $pair (i32.const 1) (i32.const 0x0660) (i32.const 0x0670))
    (call $pair (i32.const 2) (i32.const 0x0680) (i32.const 0x0690))
    (i32.store (i32.const 0x0108) (i32.const 0))
    (local.set $s (call $proxy_http_call (local.get $cp) (local.get $cl)
      (i32.const 0x6000) (i32.sub (global.get $pdata) (i32.const 0x6000))
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
      (i32.const 5000) (i32.const 0x0108)))
    (if (i32.eqz (local.get $s))
      (then (call $remember (i32.load (i32.const 0x0108)) (local.get $root))))
    (call $ln_reset)
    (call $ln_c (i32.const 0x0800))
    (call $ln_u32 (local.get $s))
    (call $ln_c (i32.const 0x0820))
    (call $ln_u32 (i32.load (i32.const 0x0108)))
    (call $ln_emit)
    (i32.const 1))

  ;; ---- stream callbacks ----
  (global $last (mut i32) (i32.const 0))
  (global $last_http (mut i32) (i32.const 0))

  (func (export "proxy_on_request_headers")
    (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (local $s i32) (local $s2 i32) (local $timeout i32)
    (local $up i32) (local $upl i32) (local $hp i32) (local $hl i32)
    (local $bp i32) (local $bl i32) (local $tp i32) (local $tl i32)
    (local $svp i32) (local $svl i32) (local $mp i32) (local $ml i32)
    (if (i32.eqz (call $get (i32.const 0) (i32.const 0x0480)))
      (then (local.set $timeout (call $atoi (global.get $vp) (global.get $vl)))))
    (i32.store (i32.const 0x0108) (i32.const 0))

    ;; HTTP call
    (if (i32.eqz (call $get (i32.const 0) (i32.const 0x0400)))
      (then
        (local.set $up (global.get $vp)) (local.set $upl (global.get $vl))
        (drop (call $get (i32.const 0) (i32.const 0x0420)))
        (local.set $hp (global.get $vp)) (local.set $hl (global.get $vl))
        (drop (call $get (i32.const 0) (i32.const 0x0440)))
        (local.set $bp (global.get $vp)) (local.set $bl (global.get $vl))
        (drop (call $get (i32.const 0) (i32.const 0x0460)))
        (local.set $tp (global.get $vp)) (local.set $tl (global.get $vl))
        (local.set $s (call $proxy_http_call (local.get $up) (local.get $upl)
          (local.get $hp) (local.get $hl) (local.get $bp) (local.get $bl)
          (local.get $tp) (local.get $tl) (local.get $timeout) (i32.const 0x0108)))
        (call $ln_reset)
        (call $ln_c (i32.const 0x0830))
        (call $ln_u32 (local.get $s))
        (call $ln_c (i32.const 0x0820))
        (call $ln_u32 (i32.load (i32.const 0x0108)))
        (call $ln_emit)
        (if (i32.eqz (local.get $s))
          (then
            (global.set $last_http (i32.load (i32.const 0x0108)))
            (call $remember (global.get $last_http) (local.get $ctx))
            (return (i32.const 1))))
        (return (i32.const 0))))

    ;; gRPC call or stream
    (if (call $get (i32.const 0) (i32.const 0x04a0)) (then (return (i32.const 0))))
    (local.set $up (global.get $vp)) (local.set $upl (global.get $vl))
    (drop (call $get (i32.const 0) (i32.const 0x04c0)))
    (local.set $svp (global.get $vp)) (local.set $svl (global.get $vl))
    (drop (call $get (i32.const 0) (i32.const 0x04e0)))
    (local.set $mp (global.get $vp)) (local.set $ml (global.get $vl))
    (drop (call $get (i32.const 0) (i32.const 0x0500)))
    (local.set $hp (global.get $vp)) (local.set $hl (global.get $vl))
    (local.set $s2 (call $get (i32.const 0) (i32.const 0x0520)))
    (local.set $bp (global.get $vp)) (local.set $bl (global.get $vl))

    (if (i32.eqz (call $get (i32.const 0) (i32.const 0x0540)))
      (then
        (local.set $s (call $proxy_grpc_stream (local.get $up) (local.get $upl)
          (local.get $svp) (local.get $svl) (local.get $mp) (local.get $ml)
          (local.get $hp) (local.get $hl) (i32.const 0x0108)))
        (call $ln_reset)
        (call $ln_c (i32.const 0x0850))
        (call $ln_u32 (local.get $s))
        (call $ln_c (i32.const 0x0820))
        (call $ln_u32 (i32.load (i32.const 0x0108)))
        (call $ln_emit)
        (if (local.get $s) (then (return (i32.const 0))))
        (global.set $last (i32.load (i32.const 0x0108)))
        (call $remember (global.get $last) (local.get $ctx))
        (if (i32.eqz (local.get $s2))
          (then
            (local.set $s (call $proxy_grpc_send (global.get $last)
              (local.get $bp) (local.get $bl) (i32.const 0)))
            (call $ln_reset)
            (call $ln_c (i32.const 0x0870))
            (call $ln_u32 (local.get $s))
            (call $ln_emit)))
        (return (i32.const 0))))

    (local.set $s (call $proxy_grpc_call (local.get $up) (local.get $upl)
      (local.get $svp) (local.get $svl) (local.get $mp) (local.get $ml)
      (local.get $hp) (local.get $hl) (local.get $bp) (local.get $bl)
      (local.get $timeout) (i32.const 0x0108)))
    (call $ln_reset)
    (call $ln_c (i32.const 0x0890))
    (call $ln_u32 (local.get $s))
    (call $ln_c (i32.const 0x0820))
    (call $ln_u32 (i32.load (i32.const 0x0108)))
    (call $ln_emit)
    (if (local.get $s) (then (return (i32.const 0))))
    (global.set $last (i32.load (i32.const 0x0108)))
    (call $remember (global.get $last) (local.get $ctx))
    (i32.const 1))

  (func (export "proxy_on_request_body")
    (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
    (local $s i32)
    (drop (call $buf (i32.const 0) (local.get $size)))
    (local.set $s (call $proxy_grpc_send (global.get $last)
      (global.get $vp) (global.get $vl) (local.get $eos)))
    (call $ln_reset)
    (call $ln_c (i32.const 0x0870))
    (call $ln_u32 (local.get $s))
    (call $ln_emit)
    (i32.const 0))

  (func (export "proxy_on_request_trailers") (param $ctx i32) (param $n i32) (result i32)
    (if (i32.eqz (call $get (i32.const 1) (i32.const 0x0560)))
      (then
        (call $ln_reset)
        (call $ln_c (i32.const 0x08b0))
        (call $ln_u32 (call $proxy_grpc_cancel (global.get $last)))
        (call $ln_emit)))
    (if (i32.eqz (call $get (i32.const 1) (i32.const 0x0570)))
      (then
        (call $ln_reset)
        (call $ln_c (i32.const 0x08d0))
        (call $ln_u32 (call $proxy_grpc_close (global.get $last)))
        (call $ln_emit)))
    (if (i32.eqz (call $get (i32.const 1) (i32.const 0x0580)))
      (then
        (call $ln_reset)
        (call $ln_c (i32.const 0x08f0))
        (call $ln_u32 (call $proxy_grpc_send (i32.const 0x7ffffff2) (i32.const 0) (i32.const 0) (i32.const 0)))
        (call $ln_c (i32.const 0x0910))
        (call $ln_u32 (call $proxy_grpc_send (global.get $last) (i32.const 0) (i32.const 0) (i32.const 0)))
        (call $ln_c (i32.const 0x0920))
        (call $ln_u32 (call $proxy_grpc_cancel (global.get $last_http)))
        (call $ln_c (i32.const 0x0930))
        (call $ln_u32 (call $proxy_grpc_close (i32.const 0x7ffffff1)))
        (call $ln_c (i32.const 0x0940))
        (call $ln_u32 (call $proxy_grpc_close (global.get $last_http)))
        (call $ln_c (i32.const 0x0af0))
        (call $ln_u32 (call $proxy_grpc_cancel (i32.const 0x7ffffff0)))
        (call $ln_emit)))
    (i32.const 0))

  ;; resume the stream that made callout $id with x-callout-status = value
  (func $resume (param $id i32) (param $vp i32) (param $vl i32)
    (local $ctx i32) (local $s i32)
    (local.set $ctx (call $recall (local.get $id)))
    (if (i32.eqz (local.get $ctx)) (then (return)))
    (drop (call $proxy_set_effective_context (local.get $ctx)))
    (drop (call $proxy_replace_header_map_value (i32.const 0)
      (i32.const 0x05d0) (call $strlen (i32.const 0x05d0)) (local.get $vp) (local.get $vl)))
    (local.set $s (call $proxy_continue_stream (i32.const 0)))
    (call $ln_reset)
    (call $ln_c (i32.const 0x09f0))
    (call $ln_u32 (local.get $ctx))
    (call $ln_c (i32.const 0x09a0))
    (call $ln_u32 (local.get $s))
    (call $ln_emit))

  ;; appends " get_status=<code> <message>" when proxy_get_status answers
  (func $ln_status
    (i32.store (i32.const 0x010C) (i32.const 0))
    (i32.store (i32.const 0x0100) (i32.const 0))
    (i32.store (i32.const 0x0104) (i32.const 0))
    (if (i32.eqz (call $proxy_get_status (i32.const 0x010C) (i32.const 0x0100) (i32.const 0x0104)))
      (then
        (call $ln_c (i32.const 0x09d0))
        (call $ln_u32 (i32.load (i32.const 0x010C)))
        (call $ln_c (i32.const 0x09e0))
        (call $ln_bytes (i32.load (i32.const 0x0100)) (i32.load (i32.const 0x0104))))))

  (func (export "proxy_on_http_call_response")
    (param $root i32) (param $id i32) (param $nh i32) (param $bs i32) (param $nt i32)
    (local $sp i32) (local $sl i32) (local $ctx i32) (local $s i32)
    (call $ln_reset)
    (call $ln_c (i32.const 0x0950))
    (call $ln_u32 (local.get $root))
    (call $ln_c (i32.const 0x0820))
    (call $ln_u32 (local.get $id))
    (call $ln_c (i32.const 0x0970))
    (call $ln_u32 (local.get $nh))
    (call $ln_c (i32.const 0x0980))
    (call $ln_u32 (local.get $bs))
    (call $ln_c (i32.const 0x0990))
    (call $ln_u32 (local.get $nt))
    (local.set $sp (i32.const 0x05f0))
    (local.set $sl (i32.const 4))
    (if (i32.eqz (call $get (i32.const 6) (i32.const 0x0590)))
      (then
        (local.set $sp (global.get $vp)) (local.set $sl (global.get $vl))
        (call $ln_c (i32.const 0x09a0))
        (call $ln_bytes (local.get $sp) (local.get $sl))))
    (if (i32.eqz (call $get (i32.const 7) (i32.const 0x05a0)))
      (then
        (call $ln_c (i32.const 0x09b0))
        (call $ln_bytes (global.get $vp) (global.get $vl))))
    (if (i32.eqz (call $buf (i32.const 4) (local.get $bs)))
      (then
        (if (global.get $vl)
          (then
            (call $ln_c (i32.const 0x09c0))
            (call $ln_bytes (global.get $vp) (global.get $vl))))))
    (call $ln_status)
    (call $ln_emit)
    (if (i32.eqz (call $get (i32.const 6) (i32.const 0x05b0))) (then unreachable))
    (local.set $ctx (call $recall (local.get $id)))
    (if (i32.or (i32.eqz (local.get $ctx)) (i32.eq (local.get $ctx) (local.get $root)))
      (then (return)))
    (if (i32.eqz (call $get (i32.const 6) (i32.const 0x05c0)))
      (then
        (drop (call $buf (i32.const 4) (local.get $bs)))
        (drop (call $proxy_set_effective_context (local.get $ctx)))
        (local.set $s (call $proxy_send_local_response (i32.const 403)
          (i32.const 0x0630) (i32.const 7) (global.get $vp) (global.get $vl)
          (i32.const 0) (i32.const 0) (i32.const -1)))
        (call $ln_reset)
        (call $ln_c (i32.const 0x0ad0))
        (call $ln_u32 (local.get $s))
        (call $ln_emit)
        (return)))
    (call $resume (local.get $id) (local.get $sp) (local.get $sl)))

  ;; ---- gRPC callbacks ----
  (func (export "proxy_on_grpc_receive_initial_metadata")
    (param $root i32) (param $id i32) (param $n i32)
    (call $ln_reset)
    (call $ln_c (i32.const 0x0a00))
    (call $ln_u32 (local.get $id))
    (call $ln_c (i32.const 0x0a20))
    (call $ln_u32 (local.get $n))
    (if (i32.eqz (call $get (i32.const 4) (i32.const 0x0610)))
      (then
        (call $ln_c (i32.const 0x0a30))
        (call $ln_bytes (global.get $vp) (global.get $vl))))
    (call $ln_emit))

  (func (export "proxy_on_grpc_receive") (param $root i32) (param $id i32) (param $size i32)
    (call $ln_reset)
    (call $ln_c (i32.const 0x0a40))
    (call $ln_u32 (local.get $id))
    (call $ln_c (i32.const 0x0a60))
    (call $ln_u32 (local.get $size))
    (if (i32.eqz (call $buf (i32.const 5) (local.get $size)))
      (then
        (call $ln_c (i32.const 0x0a70))
        (call $ln_bytes (global.get $vp) (global.get $vl))))
    (call $ln_emit)
    (if (i32.eq (i32.and (local.get $id) (i32.const 3)) (i32.const 1))
      (then (call $resume (local.get $id) (i32.const 0x0600) (i32.const 4)))))

  (func (export "proxy_on_grpc_receive_trailing_metadata")
    (param $root i32) (param $id i32) (param $n i32)
    (call $ln_reset)
    (call $ln_c (i32.const 0x0a80))
    (call $ln_u32 (local.get $id))
    (call $ln_c (i32.const 0x0a20))
    (call $ln_u32 (local.get $n))
    (if (i32.eqz (call $get (i32.const 5) (i32.const 0x0620)))
      (then
        (call $ln_c (i32.const 0x0aa0))
        (call $ln_bytes (global.get $vp) (global.get $vl))))
    (call $ln_emit))

  (func (export "proxy_on_grpc_close") (param $root i32) (param $id i32) (param $code i32)
    (call $ln_reset)
    (call $ln_c (i32.const 0x0ab0))
    (call $ln_u32 (local.get $id))
    (call $ln_c (i32.const 0x0ac0))
    (call $ln_u32 (local.get $code))
    (call $ln_status)
    (call $ln_emit)
    (if (i32.eq (i32.and (local.get $id) (i32.const 3)) (i32.const 1))
      (then (call $resume (local.get $id) (i32.const 0x0600) (i32.const 4)))))
)
