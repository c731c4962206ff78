package directresponse

import (
	"context"
	"errors"
	"fmt"
	"os"

	directv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/direct_response/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/wasmesh/wasmesh/internal/protocheck"
	"github.com/wasmesh/wasmesh/listener/network"
)

// TypeURL is the filter's typed_config type.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.network.direct_response.v3.Config"

// Register adds the filter's factory to r.
func Register(r *network.Registry) { r.Add(factory{}) }

type factory struct{}

func (factory) TypeURLs() []string { return []string{TypeURL} }

func (factory) Compile(_ context.Context, _ string, raw *anypb.Any, _ *network.Env) (any, error) {
	cfg := &directv3.Config{}
	if err := raw.UnmarshalTo(cfg); err != nil {
		return nil, fmt.Errorf("decode %s: %w", TypeURL, err)
	}
	if err := cfg.ValidateAll(); err != nil {
		return nil, err
	}
	c := &Config{}
	if r := cfg.GetResponse(); r != nil {
		if errs := protocheck.Only("response", r, "specifier"); len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		switch {
		case r.GetFilename() != "":
			b, err := os.ReadFile(r.GetFilename())
			if err != nil {
				return nil, fmt.Errorf("response.filename: %w", err)
			}
			c.body = b
		case r.GetInlineBytes() != nil:
			c.body = r.GetInlineBytes()
		case r.GetInlineString() != "":
			c.body = []byte(r.GetInlineString())
		case r.GetEnvironmentVariable() != "":
			v, ok := os.LookupEnv(r.GetEnvironmentVariable())
			if !ok {
				return nil, fmt.Errorf("response.environment_variable: %q is not set", r.GetEnvironmentVariable())
			}
			c.body = []byte(v)
		}
	}
	return c, nil
}

// Config is the response to write.
type Config struct {
	body []byte
}

var _ network.TerminalConfig = (*Config)(nil)

// Open writes the response (through the write filters) and closes the
// connection after it.
func (c *Config) Open(_ context.Context, conn *network.Conn) (*network.Upstream, error) {
	conn.WriteDownstream(c.body, true)
	conn.Close()
	return nil, nil
}
