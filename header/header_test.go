package header

import (
	"reflect"
	"testing"
)

func TestMapOperations(t *testing.T) {
	tests := []struct {
		name string
		do   func(m *Map)
		want []Field
	}{
		{"add lower-cases keys", func(m *Map) { m.Add("X-A", "1") }, []Field{{":path", "/"}, {"x-a", "1"}}},
		{"set replaces the first and drops the rest", func(m *Map) {
			m.Add("x-a", "1")
			m.Add("x-b", "2")
			m.Add("x-a", "3")
			m.Set("X-A", "9")
		}, []Field{{":path", "/"}, {"x-a", "9"}, {"x-b", "2"}}},
		{"set appends when absent", func(m *Map) { m.Set("x-new", "v") }, []Field{{":path", "/"}, {"x-new", "v"}}},
		{"del removes every value", func(m *Map) {
			m.Add("x-a", "1")
			m.Add("x-a", "2")
			m.Del("X-a")
		}, []Field{{":path", "/"}}},
		{"pseudo-headers are settable", func(m *Map) { m.Set(":path", "/new") }, []Field{{":path", "/new"}}},
		{"reset lower-cases", func(m *Map) { m.Reset([]Field{{"A", "b"}}) }, []Field{{"a", "b"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := New(":path", "/")
			tc.do(m)
			if !reflect.DeepEqual(m.Fields(), tc.want) {
				t.Fatalf("got %v, want %v", m.Fields(), tc.want)
			}
		})
	}
}

func TestGetAndValues(t *testing.T) {
	m := New("a", "1", "B", "2", "a", "3")
	if v, ok := m.Get("A"); !ok || v != "1" {
		t.Fatalf("Get(A) = %q, %v", v, ok)
	}
	if _, ok := m.Get("missing"); ok {
		t.Fatal("Get(missing) found a value")
	}
	if got := m.Values("a"); !reflect.DeepEqual(got, []string{"1", "3"}) {
		t.Fatalf("Values(a) = %v", got)
	}
	var nilMap *Map
	if nilMap.Len() != 0 || nilMap.Fields() != nil {
		t.Fatal("nil map is not empty")
	}
	c := m.Clone()
	c.Set("a", "x")
	if v, _ := m.Get("a"); v != "1" {
		t.Fatal("Clone shares storage")
	}
}
