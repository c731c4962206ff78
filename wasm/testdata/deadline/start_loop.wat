;; start_loop — ABI v0.2.1; the start section never returns.
;;
;; The start function spins in a loop that makes no host call. The host
;; turns a start section into an exported function it calls after
;; instantiation (wasm/instrument.go), under VMConfig.StartTimeout.
;;
;; Test asserts (TestInstrumentStartLoopStopped): creating the VM fails with
;; an InstanceFailure of kind timeout soon after StartTimeout, never hangs.
(module $start_loop
  (memory (export "memory") 1)
  (func $spin
    (loop $l (br $l)))
  (start $spin)
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1)))
