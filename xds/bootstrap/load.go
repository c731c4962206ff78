package bootstrap

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// Options are the command-line settings that shape loading.
type Options struct {
	// Path is -c/--config-path; may be empty when ConfigYAML is set.
	Path string
	// ConfigYAML is --config-yaml, merged over the file.
	ConfigYAML string
	// AllowUnknownFields is --allow-unknown-static-fields: unknown JSON
	// fields are ignored instead of rejected.
	AllowUnknownFields bool
	// ReadFile reads Path (os.ReadFile by default).
	ReadFile func(string) ([]byte, error)
}

// Load reads, merges, unwraps and validates a bootstrap. The error lists
// every problem, each with its field path; when the bootstrap parsed but
// failed the checks (*Errors), it is returned too, so a caller can go on
// compiling it and report every problem at once.
func Load(opts Options) (*bootstrapv3.Bootstrap, error) {
	if opts.Path == "" && opts.ConfigYAML == "" {
		return nil, errors.New("bootstrap: no configuration: give -c/--config-path or --config-yaml")
	}
	read := opts.ReadFile
	if read == nil {
		read = os.ReadFile
	}
	b := &bootstrapv3.Bootstrap{}
	if opts.Path != "" {
		data, err := read(opts.Path)
		if err != nil {
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
		if err := Parse(data, b, opts.AllowUnknownFields); err != nil {
			return nil, fmt.Errorf("bootstrap %s: %w", opts.Path, err)
		}
	}
	if opts.ConfigYAML != "" {
		over := &bootstrapv3.Bootstrap{}
		if err := Parse([]byte(opts.ConfigYAML), over, opts.AllowUnknownFields); err != nil {
			return nil, fmt.Errorf("bootstrap --config-yaml: %w", err)
		}
		proto.Merge(b, over)
	}
	if err := Check(b); err != nil {
		return b, err
	}
	return b, nil
}

// Parse decodes YAML or JSON into m with Envoy's JSON mapping, then unwraps
// TypedStruct-wrapped Any values.
func Parse(data []byte, m proto.Message, allowUnknown bool) error {
	js := bytes.TrimSpace(data)
	if len(js) == 0 || js[0] != '{' {
		var err error
		js, err = yaml.YAMLToJSON(data)
		if err != nil {
			return fmt.Errorf("yaml: %w", err)
		}
	}
	uo := protojson.UnmarshalOptions{DiscardUnknown: allowUnknown}
	if err := uo.Unmarshal(js, m); err != nil {
		return fmt.Errorf("%s", cleanProtojsonError(err))
	}
	if err := UnwrapTypedStructs(m); err != nil {
		return err
	}
	return nil
}

// Check runs the types' validation and the unsupported-field check and
// returns every problem at once.
func Check(b *bootstrapv3.Bootstrap) error {
	var errs []error
	if err := b.ValidateAll(); err != nil {
		errs = append(errs, splitValidation(err)...)
	}
	errs = append(errs, Unsupported(b)...)
	if len(errs) == 0 {
		return nil
	}
	return &Errors{List: errs}
}

// Errors is every problem found in a bootstrap.
type Errors struct {
	List []error
}

func (e *Errors) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "bootstrap: %d problem(s):", len(e.List))
	for _, err := range e.List {
		sb.WriteString("\n  ")
		sb.WriteString(err.Error())
	}
	return sb.String()
}

func (e *Errors) Unwrap() []error { return e.List }

// splitValidation flattens the generated validators' multi-errors.
func splitValidation(err error) []error {
	type multi interface{ AllErrors() []error }
	if m, ok := err.(multi); ok {
		var out []error
		for _, e := range m.AllErrors() {
			out = append(out, splitValidation(e)...)
		}
		return out
	}
	return []error{err}
}

// cleanProtojsonError drops protojson's "proto: " prefix and its
// randomised non-breaking spaces.
func cleanProtojsonError(err error) string {
	s := strings.ReplaceAll(err.Error(), "\u00a0", " ")
	s = strings.TrimPrefix(s, "proto: ")
	return s
}

func newBootstrap() *bootstrapv3.Bootstrap { return &bootstrapv3.Bootstrap{} }
