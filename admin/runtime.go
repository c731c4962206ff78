package admin

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/structpb"
)

// handleRuntime answers /runtime with Envoy's JSON: the layer names, and
// for every key its value in each layer ("" where the layer lacks it) and
// the final value (the highest layer's non-empty value).
func (a *Admin) handleRuntime(w http.ResponseWriter, _ *http.Request) {
	var layers []RuntimeLayer
	if a.o.Runtime != nil {
		layers = a.o.Runtime.Layers()
	}
	// A JSON string must be UTF-8: show invalid bytes as U+FFFD rather
	// than fail the whole answer.
	valid := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
	names := make([]any, 0, len(layers))
	keys := map[string]bool{}
	for _, l := range layers {
		names = append(names, valid(l.Name))
		for k := range l.Values {
			keys[k] = true
		}
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	entries := make(map[string]any, len(sorted))
	for _, k := range sorted {
		values := make([]any, 0, len(layers))
		final := ""
		for _, l := range layers {
			v := valid(l.Values[k])
			if v != "" {
				final = v
			}
			values = append(values, v)
		}
		entries[valid(k)] = map[string]any{"final_value": final, "layer_values": values}
	}
	doc, err := structpb.NewStruct(map[string]any{"layers": names, "entries": entries})
	if err != nil {
		writeText(w, http.StatusInternalServerError, "admin: runtime: "+err.Error()+"\n")
		return
	}
	writeJSON(w, doc, true)
}

// handleRuntimeModify answers POST /runtime_modify?key=value&...: the
// values go to the admin layer, an empty value removes the key there.
func (a *Admin) handleRuntimeModify(w http.ResponseWriter, r *http.Request) {
	q := requestParams(r)
	if len(q) == 0 {
		writeText(w, http.StatusBadRequest, "usage: /runtime_modify?key1=value1&key2=value2&keyN=valueN\n"+
			"(query or form values; an empty value removes a key set here)\n")
		return
	}
	if a.o.Runtime == nil {
		writeText(w, http.StatusServiceUnavailable, "runtime: no layered runtime in this process\n")
		return
	}
	values := make(map[string]string, len(q))
	for k, v := range q {
		if !utf8.ValidString(k) || !utf8.ValidString(v[0]) {
			writeText(w, http.StatusBadRequest, fmt.Sprintf("runtime: key %q: keys and values must be UTF-8\n", k))
			return
		}
		values[k] = v[0]
	}
	if err := a.o.Runtime.MergeValues(values); err != nil {
		writeText(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	w.Write([]byte("OK\n"))
}
