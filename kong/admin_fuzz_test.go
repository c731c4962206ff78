package kong

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzConfigBody feeds POST /config bodies of every accepted content type
// to the body reader.
func FuzzConfigBody(f *testing.F) {
	f.Add("application/json", `{"config":"_format_version: \"3.0\""}`)
	f.Add("application/x-www-form-urlencoded", "config=_format_version%3A+%223.0%22")
	f.Add("multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"config\"; filename=\"k.yml\"\r\n\r\na: b\r\n--x--\r\n")
	f.Add("", "_format_version: \"3.0\"\n")
	f.Fuzz(func(t *testing.T, ctype, body string) {
		r := httptest.NewRequest("POST", "/config", strings.NewReader(body))
		r.Header.Set("Content-Type", ctype)
		b, err := configBody(r)
		if err == nil && b == nil && body != "" && !strings.Contains(ctype, "form") {
			t.Fatalf("no body and no error for %q", body)
		}
	})
}
