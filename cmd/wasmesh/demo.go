package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wasmesh/wasmesh/wasm"
)

// demoDefaultConfig is the configuration of Kong's Proxy-Wasm walk-through.
const demoDefaultConfig = `{"my_greeting": "Hello from wasmesh using WebAssembly!"}`

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	filter := fs.String("filter", "examples/filters/my-filter/my-filter.wasm", "Proxy-Wasm filter to run")
	config := fs.String("config", demoDefaultConfig, "plugin configuration passed to the filter")
	listen := fs.String("listen", "127.0.0.1:8000", "address of the proxy front")
	serve := fs.Bool("serve", false, "keep serving after the demo request (Ctrl-C to stop)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	code, err := os.ReadFile(*filter)
	if err != nil {
		return fmt.Errorf("demo: read filter: %w", err)
	}

	logCfg := zap.NewDevelopmentConfig()
	logCfg.Level = zap.NewAtomicLevelAt(zapcore.InfoLevel)
	logCfg.OutputPaths = []string{"stderr"}
	logger, err := logCfg.Build()
	if err != nil {
		return err
	}
	defer logger.Sync()

	rt, err := wasm.NewRuntime(ctx, wasm.Options{Logger: logger})
	if err != nil {
		return err
	}
	defer rt.Close(context.Background())
	vm, err := rt.VM(ctx, wasm.VMConfig{ID: "demo", Code: code})
	if err != nil {
		return fmt.Errorf("demo: load %s: %w", *filter, err)
	}
	defer vm.Close(context.Background())
	plugin, err := vm.NewPlugin(ctx, wasm.PluginConfig{Name: "my-filter", Configuration: []byte(*config)})
	if err != nil {
		return fmt.Errorf("demo: start plugin: %w", err)
	}
	defer plugin.Close(context.Background())

	// The embedded default upstream echoes what it received.
	upstream, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	upSrv := &http.Server{Handler: http.HandlerFunc(echoUpstream), ReadHeaderTimeout: 5 * time.Second}
	go upSrv.Serve(upstream)
	defer upSrv.Close()

	front, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("demo: listen %s: %w", *listen, err)
	}
	target := &url.URL{Scheme: "http", Host: upstream.Addr().String()}
	frontSrv := &http.Server{Handler: &filteringProxy{plugin: plugin, target: target}, ReadHeaderTimeout: 5 * time.Second}
	go frontSrv.Serve(front)
	defer frontSrv.Close()

	fmt.Fprintf(stdout, "wasmesh demo: filter %s (Proxy-Wasm ABI %s) in front of upstream %s, listening on http://%s\n",
		*filter, vm.ABI(), upstream.Addr(), front.Addr())
	resp, err := http.Get("http://" + front.Addr().String() + "/demo")
	if err != nil {
		return fmt.Errorf("demo request: %w", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Fprintf(stdout, "GET /demo -> %s\n", resp.Status)
	keys := make([]string, 0, len(resp.Header))
	for k := range resp.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(stdout, "  %s: %s\n", k, strings.Join(resp.Header[k], ", "))
	}
	fmt.Fprintf(stdout, "  body: %s\n", strings.TrimSpace(string(body)))
	if g := resp.Header.Get("X-Greeting"); g != "" {
		fmt.Fprintf(stdout, "the filter set X-Greeting: %s\n", g)
	} else {
		return errors.New("demo: the filter did not set X-Greeting")
	}
	if !*serve {
		return nil
	}
	fmt.Fprintf(stdout, "serving; try: curl -i http://%s/\n", front.Addr())
	<-ctx.Done()
	return nil
}

func echoUpstream(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "upstream saw %s %s\n", r.Method, r.URL.Path)
}

// filteringProxy is the demo's front: a reverse proxy that runs one
// Proxy-Wasm HTTP stream per request (headers only).
type filteringProxy struct {
	plugin *wasm.Plugin
	target *url.URL
}

func (p *filteringProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := p.plugin.NewHTTPStream(wasm.StreamOptions{})
	defer s.Close()
	reqH := wasm.NewHeaders(":method", r.Method, ":path", r.URL.RequestURI(), ":authority", r.Host, ":scheme", "http")
	for k, vs := range r.Header {
		for _, v := range vs {
			reqH.Add(k, v)
		}
	}
	s.OnRequestHeaders(reqH, r.ContentLength == 0)
	if lr := s.LocalResponse(); lr != nil {
		writeLocal(w, lr)
		return
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(p.target)
			pr.Out.Header = http.Header{}
			for _, f := range reqH.Fields() {
				if !strings.HasPrefix(f.Key, ":") {
					pr.Out.Header.Add(f.Key, f.Value)
				}
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			respH := wasm.NewHeaders(":status", fmt.Sprint(resp.StatusCode))
			for k, vs := range resp.Header {
				for _, v := range vs {
					respH.Add(k, v)
				}
			}
			s.OnResponseHeaders(respH, resp.ContentLength == 0)
			resp.Header = http.Header{}
			for _, f := range respH.Fields() {
				if !strings.HasPrefix(f.Key, ":") {
					resp.Header.Add(f.Key, f.Value)
				}
			}
			return nil
		},
	}
	rp.ServeHTTP(w, r)
}

func writeLocal(w http.ResponseWriter, lr *wasm.LocalResponse) {
	for _, f := range lr.Headers {
		w.Header().Add(f.Key, f.Value)
	}
	w.WriteHeader(int(lr.StatusCode))
	w.Write(lr.Body)
}
