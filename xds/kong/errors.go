package kong

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Kong's error codes (kong/db/errors.lua) for the errors this package
// returns.
const (
	CodeSchemaViolation   = 2
	CodeDeclarativeConfig = 14
)

// Error is a declarative configuration error in Kong's shape:
//
//	{"code":14,"name":"invalid declarative configuration",
//	 "message":"declarative config is invalid: {services={{port=\"...\"}}}",
//	 "fields":{"services":[{"port":"..."}]}}
//
// Fields mirrors the input: an entity list is a JSON array whose entries
// without errors are null, an entity is an object of field → message.
// Every error in the input is reported at once.
type Error struct {
	Code    int            `json:"code"`
	Name    string         `json:"name"`
	Message string         `json:"message"`
	Fields  map[string]any `json:"fields"`
}

func (e *Error) Error() string { return "kong: " + e.Message }

// errNode collects the errors of one object: field → string, errNode or
// *errList.
type errNode map[string]any

// errList collects the errors of the entries of one array by index.
type errList struct{ items map[int]any }

func (n errNode) set(field, msg string) {
	if _, ok := n[field]; !ok {
		n[field] = msg
	}
}

// child returns the node for entry i of the array field.
func (n errNode) child(field string, i int) errNode {
	l, ok := n[field].(*errList)
	if !ok {
		l = &errList{items: map[int]any{}}
		n[field] = l
	}
	c, ok := l.items[i].(errNode)
	if !ok {
		c = errNode{}
		l.items[i] = c
	}
	return c
}

// setAt reports msg for entry i of the array field (a scalar list).
func (n errNode) setAt(field string, i int, msg string) {
	l, ok := n[field].(*errList)
	if !ok {
		l = &errList{items: map[int]any{}}
		n[field] = l
	}
	if _, ok := l.items[i]; !ok {
		l.items[i] = msg
	}
}

// sub returns the node of an object field.
func (n errNode) sub(field string) errNode {
	c, ok := n[field].(errNode)
	if !ok {
		c = errNode{}
		n[field] = c
	}
	return c
}

// prune drops empty nodes and lists; it reports whether n is empty.
func prune(v any) bool {
	switch v := v.(type) {
	case errNode:
		for k, c := range v {
			if prune(c) {
				delete(v, k)
			}
		}
		return len(v) == 0
	case *errList:
		for k, c := range v.items {
			if prune(c) {
				delete(v.items, k)
			}
		}
		return len(v.items) == 0
	}
	return false
}

// plain turns the tree into JSON-ready maps and slices.
func plain(v any) any {
	switch v := v.(type) {
	case errNode:
		m := make(map[string]any, len(v))
		for k, c := range v {
			m[k] = plain(c)
		}
		return m
	case *errList:
		max := -1
		for i := range v.items {
			max = maxInt(max, i)
		}
		out := make([]any, max+1)
		for i, c := range v.items {
			out[i] = plain(c)
		}
		return out
	}
	return v
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// luaPretty renders the tree as Kong's message does (pl.pretty.write on
// one line): {services={{port="..."}}}; a list with holes names indexes.
func luaPretty(b *strings.Builder, v any) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			if isLuaIdent(k) {
				b.WriteString(k)
			} else {
				b.WriteString("[" + strconv.Quote(k) + "]")
			}
			b.WriteByte('=')
			luaPretty(b, v[k])
		}
		b.WriteByte('}')
	case []any:
		holes := false
		for _, c := range v {
			holes = holes || c == nil
		}
		b.WriteByte('{')
		first := true
		for i, c := range v {
			if c == nil {
				continue
			}
			if !first {
				b.WriteByte(',')
			}
			first = false
			if holes {
				fmt.Fprintf(b, "[%d]=", i+1)
			}
			luaPretty(b, c)
		}
		b.WriteByte('}')
	case string:
		b.WriteString(strconv.Quote(v))
	default:
		j, _ := json.Marshal(v)
		b.Write(j)
	}
}

func isLuaIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9' {
			continue
		}
		return false
	}
	return true
}

// newError builds the Error from a collected tree, or nil when it is empty.
func newError(root errNode) *Error {
	if prune(root) {
		return nil
	}
	fields := plain(root).(map[string]any)
	var b strings.Builder
	luaPretty(&b, fields)
	return &Error{
		Code:    CodeDeclarativeConfig,
		Name:    "invalid declarative configuration",
		Message: "declarative config is invalid: " + b.String(),
		Fields:  fields,
	}
}
