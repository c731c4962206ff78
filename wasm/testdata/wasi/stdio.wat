;; stdio: a Proxy-Wasm filter (ABI 0.2.1) that writes to stdout and stderr
;; through wasi_unstable.fd_write and exits through wasi_unstable.proc_exit,
;; like a C filter's printf/fprintf/exit.
;;
;; proxy_on_request_headers:
;;   1. fd_write(1, ["hello " "stdout\n"]) -- two iovecs, one INFO line
;;      "hello stdout"
;;   2. fd_write(2, ["oops\n"])              -- one ERROR line "oops"
;;   3. fd_write(1, [(0xFFFFFFF0, 100)])     -- iovec out of bounds: FAULT
;;   4. fd_write(3, ["x"])                   -- not a stream: BADF
;;   adds request header x-wasi-errnos: "<e1>,<e2>,<e3>,<e4>", each errno
;;   as two decimal digits (expected "00,00,21,08"), then, if request
;;   header x-exit is present, calls proc_exit(3) (the instance ends).
;;   Returns CONTINUE.
(module $stdio
  (import "wasi_unstable" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_unstable" "proc_exit" (func $proc_exit (param i32)))
  (import "env" "proxy_get_header_map_value"
    (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value"
    (func $add_header (param i32 i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 0x10000))

  ;; 0x0100, 0x0104: return slots. 0x0200: iovec arrays. 0x0400: strings.
  (data (i32.const 0x0400) "hello ")           ;; 6
  (data (i32.const 0x0410) "stdout\n")         ;; 7
  (data (i32.const 0x0420) "oops\n")           ;; 5
  (data (i32.const 0x0430) "x-wasi-errnos")    ;; 13
  (data (i32.const 0x0440) "00,00,00,00")      ;; 11, digits patched
  (data (i32.const 0x0450) "x-exit")           ;; 6
  ;; iovecs: 0x0200 = [hello][stdout], 0x0210 = [oops], 0x0218 = [bad]
  (data (i32.const 0x0200) "\00\04\00\00\06\00\00\00\10\04\00\00\07\00\00\00")
  (data (i32.const 0x0210) "\20\04\00\00\05\00\00\00")
  (data (i32.const 0x0218) "\f0\ff\ff\ff\64\00\00\00")

  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))

  (func (export "malloc") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (global.set $heap (i32.add (local.get $p) (local.get $size)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (return (i32.const 0))))
    (local.get $p))

  ;; put2 writes errno e as two decimal digits at addr.
  (func $put2 (param $addr i32) (param $e i32)
    (i32.store8 (local.get $addr)
      (i32.add (i32.const 48) (i32.div_u (local.get $e) (i32.const 10))))
    (i32.store8 (i32.add (local.get $addr) (i32.const 1))
      (i32.add (i32.const 48) (i32.rem_u (local.get $e) (i32.const 10)))))

  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (call $put2 (i32.const 0x0440)
      (call $fd_write (i32.const 1) (i32.const 0x0200) (i32.const 2) (i32.const 0x0100)))
    (call $put2 (i32.const 0x0443)
      (call $fd_write (i32.const 2) (i32.const 0x0210) (i32.const 1) (i32.const 0x0100)))
    (call $put2 (i32.const 0x0446)
      (call $fd_write (i32.const 1) (i32.const 0x0218) (i32.const 1) (i32.const 0x0100)))
    (call $put2 (i32.const 0x0449)
      (call $fd_write (i32.const 3) (i32.const 0x0210) (i32.const 1) (i32.const 0x0100)))
    (drop (call $add_header (i32.const 0)
      (i32.const 0x0430) (i32.const 13) (i32.const 0x0440) (i32.const 11)))
    (if (i32.eqz (call $get_header (i32.const 0)
          (i32.const 0x0450) (i32.const 6) (i32.const 0x0100) (i32.const 0x0104)))
      (then (call $proc_exit (i32.const 3)) (unreachable)))
    (i32.const 0))
)
