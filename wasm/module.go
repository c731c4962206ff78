package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
)

// Module is compiled code with its detected ABI, shared by every VM that
// runs the same bytes.
type Module struct {
	SHA256   string
	ABI      ABIVersion
	compiled wazero.CompiledModule
	exports  map[string]bool
	// paramCounts holds the parameter count of each exported function, so
	// callbacks whose arity changed between ABI versions are called right.
	paramCounts map[string]int
	// engine is the wazero runtime the code is compiled for.
	engine *engine
	// stopCheck: the code was rewritten with loop stop checks
	// (instrument.go) and runs without wazero's termination checks;
	// startExport: its start section became the export startFuncExport.
	stopCheck, startExport bool
}

// MissingImportsError lists the imports a module needs that the host does
// not provide for its ABI version.
type MissingImportsError struct {
	ABI     ABIVersion
	Missing []string // "module.name"
}

func (e *MissingImportsError) Error() string {
	return fmt.Sprintf("module (Proxy-Wasm ABI %s) imports %d function(s) the host does not provide: %s",
		e.ABI, len(e.Missing), strings.Join(e.Missing, ", "))
}

// compile compiles code in rt, detects its ABI and checks every import
// against the functions the host links for that ABI, before anything is
// instantiated.
func compile(ctx context.Context, rt wazero.Runtime, code []byte, provided map[string]hostFunc) (*Module, error) {
	sum := sha256.Sum256(code)
	compiled, err := rt.CompileModule(ctx, code)
	if err != nil {
		return nil, fmt.Errorf("compile module: %w", err)
	}
	m := &Module{
		SHA256:      hex.EncodeToString(sum[:]),
		compiled:    compiled,
		exports:     map[string]bool{},
		paramCounts: map[string]int{},
	}
	for name, def := range compiled.ExportedFunctions() {
		m.exports[name] = true
		m.paramCounts[name] = len(def.ParamTypes())
	}
	m.ABI, err = detectABI(m.exports)
	if err != nil {
		compiled.Close(ctx)
		return nil, err
	}
	if err := checkImports(compiled, m.ABI, provided); err != nil {
		compiled.Close(ctx)
		return nil, err
	}
	if len(compiled.ImportedMemories()) > 0 {
		compiled.Close(ctx)
		return nil, fmt.Errorf("module imports a memory; Proxy-Wasm modules must define and export their own")
	}
	if _, ok := compiled.ExportedMemories()["memory"]; !ok {
		compiled.Close(ctx)
		return nil, fmt.Errorf("module does not export its memory as \"memory\"")
	}
	return m, nil
}

func checkImports(compiled wazero.CompiledModule, abi ABIVersion, provided map[string]hostFunc) error {
	var missing []string
	for _, def := range compiled.ImportedFunctions() {
		mod, name, _ := def.Import()
		key := mod + "." + name
		f, ok := provided[key]
		if !ok || !f.supports(abi) {
			missing = append(missing, key)
			continue
		}
		if !slices.Equal(def.ParamTypes(), f.params) || !slices.Equal(def.ResultTypes(), f.results) {
			missing = append(missing, fmt.Sprintf("%s (signature %v -> %v, host has %v -> %v)",
				key, def.ParamTypes(), def.ResultTypes(), f.params, f.results))
		}
	}
	if len(missing) > 0 {
		return &MissingImportsError{ABI: abi, Missing: missing}
	}
	return nil
}

// has reports whether the module exports a function.
func (m *Module) has(name string) bool { return m.exports[name] }

// Exports reports whether the module exports a function (e.g. whether a
// filter has body callbacks).
func (m *Module) Exports(name string) bool { return m.exports[name] }
