package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestDemoPrintsTheFiltersGreeting(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"demo",
		"-filter", "../../examples/filters/my-filter/my-filter.wasm",
		"-listen", "127.0.0.1:0",
		"-config", `{"my_greeting":"hello from the test"}`}, &out, &errOut)
	if err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "the filter set X-Greeting: hello from the test") {
		t.Fatalf("demo output lacks the greeting:\n%s", out.String())
	}
}

func TestUnknownSubcommandIsNamed(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"frobnicate"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), `"frobnicate"`) {
		t.Fatalf("want an error naming the subcommand, got %v", err)
	}
}
