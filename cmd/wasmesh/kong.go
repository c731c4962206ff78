package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/wasmesh/wasmesh/kong"
)

const kongUsage = `usage: wasmesh kong <command> [flags]

Kong gateway mode (DB-less), configured by KONG_* variables over kong.conf:

  start [-c kong.conf] [--demo-upstream addr]   run the gateway and its Admin API
  config parse [-c kong.conf] <kong.yml>        validate a declarative configuration
  health [-c kong.conf]                         check the Admin API answers /status
  translate [-c kong.conf] [--format yaml|json] <kong.yml>
                                                print the xDS resources (an Envoy bootstrap)`

// runKong is `wasmesh kong ...`, the counterpart of Kong's CLI.
func runKong(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, kongUsage)
		return errors.New("kong: no command given")
	}
	switch args[0] {
	case "start":
		return kongStart(ctx, args[1:], stdout, stderr)
	case "config":
		if len(args) < 2 || args[1] != "parse" {
			fmt.Fprintln(stderr, kongUsage)
			return errors.New("kong config: only `kong config parse <file>` is supported")
		}
		return kongParse(args[2:], stdout, stderr)
	case "health":
		return kongHealth(ctx, args[1:], stdout, stderr)
	case "translate":
		return kongTranslate(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, kongUsage)
		return nil
	}
	fmt.Fprintln(stderr, kongUsage)
	return fmt.Errorf("kong: unknown command %q", args[0])
}

// kongFlags parses the common -c flag and loads the settings from the
// process environment and the file.
func kongFlags(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (*kong.Settings, *flag.FlagSet, error) {
	fs := flag.NewFlagSet("wasmesh kong "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	conf := fs.String("c", "", "kong.conf file (KONG_* variables win over it)")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	src := kong.Sources{Env: os.Environ(), NumCPU: runtime.NumCPU(), ConfPath: *conf}
	if *conf != "" {
		b, err := os.ReadFile(*conf)
		if err != nil {
			return nil, nil, fmt.Errorf("kong: %w", err)
		}
		src.ConfFile = b
	}
	s, warns, err := kong.LoadSettings(src)
	for _, w := range warns {
		fmt.Fprintln(stderr, "warn:", w)
	}
	return s, fs, err
}

func kongStart(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var demo string
	s, _, err := kongFlags("start", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&demo, "demo-upstream", "", "also serve a tiny built-in upstream on this address (e.g. 127.0.0.1:8080)")
	})
	if err != nil {
		return err
	}
	if demo != "" {
		ln, err := net.Listen("tcp", demo)
		if err != nil {
			return fmt.Errorf("kong: --demo-upstream: %w", err)
		}
		up := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello from the demo upstream: %s %s\n", r.Method, r.URL.Path)
		})}
		go up.Serve(ln) //nolint:errcheck // ends with Close
		defer up.Close()
	}
	g, err := kong.Start(ctx, kong.Options{Settings: s, Warn: stderr})
	if err != nil {
		return err
	}
	switch {
	case g.ClusterAddr() != nil:
		fmt.Fprintf(stdout, "Kong started (wasmesh, control plane): xDS on %s, Admin API on %s\n", g.ClusterAddr(), addrs(g.AdminAddrs()))
	case s.Role == kong.RoleDataPlane:
		fmt.Fprintf(stdout, "Kong started (wasmesh, data plane): proxy on %s\n", g.ProxyAddr(0))
	default:
		fmt.Fprintf(stdout, "Kong started (wasmesh): proxy on %s, Admin API on %s\n", g.ProxyAddr(0), addrs(g.AdminAddrs()))
	}
	select {
	case <-ctx.Done():
	case <-g.Done():
	}
	g.Shutdown(context.Background())
	fmt.Fprintln(stdout, "Kong stopped")
	return nil
}

func addrs(as []net.Addr) string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	if len(out) == 0 {
		return "(off)"
	}
	return strings.Join(out, ", ")
}

// kongParse validates a declarative configuration as `kong config parse`
// does, with the filters of wasm_filters_path.
func kongParse(args []string, stdout, stderr io.Writer) error {
	s, fs, err := kongFlags("config parse", args, stderr, nil)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("kong config parse: expected one declarative configuration file")
	}
	raw, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("kong config parse: %w", err)
	}
	if _, _, err := kong.Prepare(s, raw, nil); err != nil {
		var ke *kong.Error
		if errors.As(err, &ke) {
			b, _ := json.MarshalIndent(ke.Kong, "", "  ")
			fmt.Fprintf(stderr, "Error: Failed parsing:\n%s\n", b)
			return fmt.Errorf("kong config parse: %s: %s", fs.Arg(0), ke.Kong.Message)
		}
		return err
	}
	fmt.Fprintln(stdout, "parse successful")
	return nil
}

// kongHealth asks the first plain-HTTP admin_listen address for /status.
func kongHealth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, _, err := kongFlags("health", args, stderr, nil)
	if err != nil {
		return err
	}
	for _, l := range s.AdminListen {
		if l.SSL {
			continue
		}
		host, port, _ := net.SplitHostPort(l.Address)
		if host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		u := "http://" + net.JoinHostPort(host, port)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(cctx, "GET", u+"/status", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("kong health: Kong is not running at %s: %w", u, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("kong health: %s/status answered %d", u, resp.StatusCode)
		}
		fmt.Fprintf(stdout, "Kong is healthy at %s\n", u)
		return nil
	}
	return errors.New("kong health: admin_listen has no plain HTTP address")
}

// kongTranslate prints the translation as an Envoy bootstrap with static
// resources, which Envoy or a control plane can take as is.
func kongTranslate(args []string, stdout, stderr io.Writer) error {
	var format string
	s, fs, err := kongFlags("translate", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&format, "format", "yaml", "yaml or json")
	})
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("kong translate: expected one declarative configuration file")
	}
	if format != "yaml" && format != "json" {
		return fmt.Errorf("kong translate: --format %q: yaml or json", format)
	}
	raw, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("kong translate: %w", err)
	}
	_, res, err := kong.Prepare(s, raw, func(w string) { fmt.Fprintln(stderr, "warn:", w) })
	if err != nil {
		return err
	}
	b := res.Bootstrap(&corev3.Node{Id: "kong", Cluster: "kong"})
	js, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true}.Marshal(b)
	if err != nil {
		return fmt.Errorf("kong translate: %w", err)
	}
	if format == "yaml" {
		y, err := yaml.JSONToYAML(js)
		if err != nil {
			return fmt.Errorf("kong translate: %w", err)
		}
		js = y
	}
	_, err = stdout.Write(js)
	return err
}
