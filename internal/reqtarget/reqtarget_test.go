package reqtarget

import (
	"net/url"
	"reflect"
	"testing"
)

var targetSeeds = []string{
	"/", "/a/b?c=d", "/a?", "/a??", "/a?b?c", "/%41b", "/a b", "/a#frag", "/a!b", "/ü", "//double",
	"/a?q=1 2", "/a?q=\x7f", "/\x01", "*", "http://example.com/x", "", "?x", "/a:b@c;d=e&f+g,h$i~j",
}

func TestParseMatchesParseRequestURI(t *testing.T) {
	for _, s := range targetSeeds {
		checkTarget(t, s)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range targetSeeds {
		f.Add(s)
	}
	f.Fuzz(checkTarget)
}

func checkTarget(t *testing.T, s string) {
	got, gerr := Parse(s)
	want, werr := url.ParseRequestURI(s)
	if (gerr == nil) != (werr == nil) {
		t.Fatalf("Parse(%q) error %v, url.ParseRequestURI %v", s, gerr, werr)
	}
	if gerr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("Parse(%q) = %#v, want %#v", s, got, want)
	}
}
