package admin

import (
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"
)

// fakeRuntime has a static disk layer and an admin layer.
type fakeRuntime struct {
	mu    sync.Mutex
	disk  map[string]string
	admin map[string]string
	err   error
}

func (r *fakeRuntime) Layers() []RuntimeLayer {
	r.mu.Lock()
	defer r.mu.Unlock()
	adm := map[string]string{}
	for k, v := range r.admin {
		adm[k] = v
	}
	return []RuntimeLayer{{Name: "disk", Values: r.disk}, {Name: "admin", Values: adm}}
}

func (r *fakeRuntime) MergeValues(values map[string]string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	for k, v := range values {
		if v == "" {
			delete(r.admin, k)
		} else {
			r.admin[k] = v
		}
	}
	return nil
}

func TestRuntime(t *testing.T) {
	rt := &fakeRuntime{
		disk:  map[string]string{"a.flag": "true", "b.pct": "50"},
		admin: map[string]string{"b.pct": "75", "c.new": "x"},
	}
	ta := startAdmin(t, Options{Runtime: rt})

	check := func(wantLayers []string, wantEntries map[string][]string, wantFinal map[string]string) {
		t.Helper()
		var doc structpb.Struct
		ta.getJSON(t, "/runtime", &doc)
		m := doc.AsMap()
		layers, _ := m["layers"].([]any)
		if len(layers) != len(wantLayers) {
			t.Fatalf("layers %v, want %v", layers, wantLayers)
		}
		for i := range wantLayers {
			if layers[i] != wantLayers[i] {
				t.Errorf("layers %v, want %v", layers, wantLayers)
			}
		}
		entries, _ := m["entries"].(map[string]any)
		if len(entries) != len(wantEntries) {
			t.Errorf("entries %v, want keys of %v", entries, wantEntries)
		}
		for k, wantVals := range wantEntries {
			e, _ := entries[k].(map[string]any)
			vals, _ := e["layer_values"].([]any)
			if len(vals) != len(wantVals) {
				t.Errorf("%s layer_values %v, want %v", k, vals, wantVals)
				continue
			}
			for i := range wantVals {
				if vals[i] != wantVals[i] {
					t.Errorf("%s layer_values %v, want %v", k, vals, wantVals)
				}
			}
			if e["final_value"] != wantFinal[k] {
				t.Errorf("%s final_value %v, want %q", k, e["final_value"], wantFinal[k])
			}
		}
	}
	check([]string{"disk", "admin"},
		map[string][]string{"a.flag": {"true", ""}, "b.pct": {"50", "75"}, "c.new": {"", "x"}},
		map[string]string{"a.flag": "true", "b.pct": "75", "c.new": "x"})

	if code, body := ta.post(t, "/runtime_modify?a.flag=false&c.new="); code != 200 || body != "OK\n" {
		t.Fatalf("/runtime_modify = %d %q", code, body)
	}
	check([]string{"disk", "admin"},
		map[string][]string{"a.flag": {"true", "false"}, "b.pct": {"50", "75"}},
		map[string]string{"a.flag": "false", "b.pct": "75"})

	if code, _ := ta.postForm(t, "/runtime_modify", url.Values{"d.form": {"1"}}); code != 200 {
		t.Errorf("form /runtime_modify = %d", code)
	}
	if rt.Layers()[1].Values["d.form"] != "1" {
		t.Error("form value not merged")
	}

	if code, body := ta.post(t, "/runtime_modify"); code != 400 || body[:len("usage: /runtime_modify")] != "usage: /runtime_modify" {
		t.Errorf("/runtime_modify without values = %d %q", code, body)
	}
	rt.mu.Lock()
	rt.err = errors.New("runtime: key a.flag is read-only")
	rt.mu.Unlock()
	if code, body := ta.post(t, "/runtime_modify?a.flag=1"); code != 503 || body != "runtime: key a.flag is read-only" {
		t.Errorf("/runtime_modify failing = %d %q", code, body)
	}
}

func TestRuntimeWithoutRuntime(t *testing.T) {
	ta := startAdmin(t, Options{})
	var doc structpb.Struct
	ta.getJSON(t, "/runtime", &doc)
	m := doc.AsMap()
	if l, _ := m["layers"].([]any); len(l) != 0 {
		t.Errorf("layers %v", l)
	}
	if e, ok := m["entries"].(map[string]any); !ok || len(e) != 0 {
		t.Errorf("entries %v", m["entries"])
	}
	if code, _ := ta.post(t, "/runtime_modify?a=b"); code != 503 {
		t.Errorf("/runtime_modify without Runtime = %d, want 503", code)
	}
}

// Found by FuzzQuery: a runtime key that is not UTF-8 made /runtime fail
// with 500 for everyone. /runtime_modify now refuses such keys and values,
// and /runtime shows bytes a layer holds anyway as U+FFFD.
func TestRuntimeNonUTF8(t *testing.T) {
	rt := &fakeRuntime{disk: map[string]string{"bad\xc1key": "v\xff"}, admin: map[string]string{}}
	ta := startAdmin(t, Options{Runtime: rt})
	if code, body := ta.post(t, "/runtime_modify?name_re%C1ex=1"); code != 400 || !strings.Contains(body, "UTF-8") {
		t.Errorf("/runtime_modify with a non-UTF-8 key = %d %q", code, body)
	}
	if code, _ := ta.post(t, "/runtime_modify?k=%FF"); code != 400 {
		t.Errorf("/runtime_modify with a non-UTF-8 value = %d", code)
	}
	if len(rt.Layers()[1].Values) != 0 {
		t.Error("a refused value was merged")
	}
	var doc structpb.Struct
	ta.getJSON(t, "/runtime", &doc)
	e, _ := doc.AsMap()["entries"].(map[string]any)
	entry, ok := e["bad\uFFFDkey"].(map[string]any)
	if !ok || entry["final_value"] != "v\uFFFD" {
		t.Errorf("entries %v", e)
	}
}
