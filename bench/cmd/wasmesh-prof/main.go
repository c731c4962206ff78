// Command wasmesh-prof is bin/wasmesh with profiling, for bench/run.sh
// --profile: it takes Envoy's flags as wasmesh does and, until it exits,
// records a CPU profile to $WASMESH_CPUPROFILE and, at exit, a heap profile
// to $WASMESH_MEMPROFILE (each only when its variable is set). It is a
// benchmark aid, not a second proxy: everything else is server.Main.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/wasmesh/wasmesh/server"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "wasmesh-prof:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if path := os.Getenv("WASMESH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	err := server.Main(ctx, "wasmesh", os.Args[1:], os.Stdout, os.Stderr)
	if path := os.Getenv("WASMESH_MEMPROFILE"); path != "" {
		if werr := writeHeap(path); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

func writeHeap(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC()
	return pprof.Lookup("heap").WriteTo(f, 0)
}
