package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/wasmesh/wasmesh/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "wasmesh:", err)
		os.Exit(1)
	}
}

// run is the testable entry point.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return fmt.Errorf("no subcommand given")
	}
	// Envoy's command line: installed as `envoy`, or flags first.
	if filepath.Base(os.Args[0]) == "envoy" || strings.HasPrefix(args[0], "-") {
		return server.Main(ctx, "wasmesh", args, stdout, stderr)
	}
	switch args[0] {
	case "envoy":
		return server.Main(ctx, "wasmesh", args[1:], stdout, stderr)
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr)
	case "kong":
		return runKong(ctx, args[1:], stdout, stderr)
	case "version":
		return server.Main(ctx, "wasmesh", []string{"--version"}, stdout, stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return nil
	}
	usage(stderr)
	return fmt.Errorf("unknown subcommand %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, `usage: wasmesh <subcommand> [flags]

  wasmesh -c envoy.yaml [Envoy's flags]   run as Envoy would (also: wasmesh envoy ...)

subcommands:
  kong      Kong gateway mode: kong start | config parse | health | translate
  demo      run an example Proxy-Wasm filter in front of an embedded upstream
  version   print the version`)
}
