package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/wasmesh/wasmesh/xds/bootstrap"
)

// Main runs the proxy with Envoy's command line (args without the program
// name) and returns the process exit code.
func Main(ctx context.Context, binary string, args []string, stdout, stderr io.Writer) error {
	o, err := ParseFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.Version {
		fmt.Fprint(stdout, VersionLine(binary, revision()))
		return nil
	}
	if o.HotRestartVersion {
		fmt.Fprintln(stdout, "disabled")
		return nil
	}
	tuneGC()
	b, err := LoadBootstrap(o)
	if o.Mode == "validate" && b != nil {
		// Report the bootstrap's problems and the compilers' together.
		var all []error
		var be *bootstrap.Errors
		if errors.As(err, &be) {
			all = append(all, be.List...)
		} else if err != nil {
			return err
		}
		var se *Errors
		if verr := Validate(ctx, o, b); errors.As(verr, &se) {
			all = append(all, se.List...)
		} else if verr != nil {
			all = append(all, verr)
		}
		if len(all) > 0 {
			return &Errors{List: all}
		}
		fmt.Fprintf(stdout, "configuration '%s' OK\n", o.ConfigPath)
		return nil
	}
	if err != nil {
		return err
	}
	switch o.Mode {
	case "validate":
		fmt.Fprintf(stdout, "configuration '%s' OK\n", o.ConfigPath)
		return nil
	}
	return Serve(ctx, o, b)
}

// LoadBootstrap loads the bootstrap and applies the node flags. A bootstrap
// that parsed but failed its checks is returned with the error.
func LoadBootstrap(o *Options) (*bootstrapv3.Bootstrap, error) {
	b, err := bootstrap.Load(bootstrap.Options{
		Path:               o.ConfigPath,
		ConfigYAML:         o.ConfigYAML,
		AllowUnknownFields: o.AllowUnknownStatic,
	})
	if b != nil {
		ApplyNodeFlags(b, o)
	}
	return b, err
}

// ApplyNodeFlags fills node identity from --service-node, --service-cluster
// and --service-zone (the flags win, as in Envoy) and the user agent fields.
func ApplyNodeFlags(b *bootstrapv3.Bootstrap, o *Options) {
	if b.Node == nil {
		b.Node = &corev3.Node{}
	}
	n := b.Node
	if o.ServiceNode != "" {
		n.Id = o.ServiceNode
	}
	if o.ServiceCluster != "" {
		n.Cluster = o.ServiceCluster
	}
	if o.ServiceZone != "" {
		if n.Locality == nil {
			n.Locality = &corev3.Locality{}
		}
		n.Locality.Zone = o.ServiceZone
	}
	n.UserAgentName = "envoy"
	n.UserAgentVersionType = &corev3.Node_UserAgentVersion{UserAgentVersion: EnvoyAPIVersion}
}

func revision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) == 40 {
				return s.Value
			}
		}
	}
	return ""
}
