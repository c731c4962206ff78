package route

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestCompileErrorsGolden compiles each testdata/errors/*.yaml and compares
// the error text with the .golden file beside it.
func TestCompileErrorsGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/errors/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	opts := CompileOptions{ClusterExists: func(name string) bool { return name == "known" || name == "c" }}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, cerr := Compile(parseRC(t, string(src)), opts)
			if cerr == nil {
				t.Fatal("compiled without error")
			}
			var fe *FieldError
			if !errors.As(cerr, &fe) {
				t.Errorf("error is not a *FieldError: %T", cerr)
			}
			got := cerr.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got != string(want) {
				t.Errorf("errors differ from %s:\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

func TestUnsupportedIsMarked(t *testing.T) {
	err := compileErr(t, `
virtual_hosts:
- {name: vh, domains: ["*"], cors: {}, routes: []}`)
	if !errors.Is(err, ErrUnsupported) {
		t.Errorf("errors.Is(err, ErrUnsupported) = false: %v", err)
	}
}
