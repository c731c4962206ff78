package admin

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"
)

func TestLogging(t *testing.T) {
	const usage = "usage: /logging?<name>=<level> (change single level)\n" +
		"usage: /logging?paths=name1:level1,name2:level2,... (change multiple levels)\n" +
		"usage: /logging?level=<level> (change all levels)\n" +
		"levels: trace debug info warning error critical off \n"
	for _, tc := range []struct {
		name, method, query string
		code                int
		// errLine is the first line of a 400 answer.
		errLine string
		// want are the levels after the request.
		want map[string]string
	}{
		{"POST lists", "POST", "", 200, "", map[string]string{"admin": "info", "http": "info", "wasm": "info"}},
		{"GET lists", "GET", "", 200, "", map[string]string{"admin": "info", "http": "info", "wasm": "info"}},
		{"empty level and paths list", "POST", "?level=&paths=", 200, "", map[string]string{"admin": "info", "http": "info", "wasm": "info"}},
		{"all levels", "POST", "?level=debug", 200, "", map[string]string{"admin": "debug", "http": "debug", "wasm": "debug"}},
		{"trace is debug", "POST", "?level=trace", 200, "", map[string]string{"admin": "debug", "http": "debug", "wasm": "debug"}},
		{"one logger", "POST", "?http=warning", 200, "", map[string]string{"admin": "info", "http": "warning", "wasm": "info"}},
		{"paths", "POST", "?paths=http:error,wasm:critical", 200, "", map[string]string{"admin": "info", "http": "error", "wasm": "critical"}},
		{"paths with spaces", "POST", "?paths=" + url.QueryEscape(" http : off , admin:debug "), 200, "", map[string]string{"admin": "debug", "http": "off", "wasm": "info"}},
		{"bad level for all", "POST", "?level=loud", 400, `error: unknown logger level "loud"`, nil},
		{"bad level for one", "POST", "?http=loud", 400, `error: unknown logger level "loud"`, nil},
		{"unknown logger", "POST", "?nosuch=debug", 400, `error: unknown logger name "nosuch"`, nil},
		{"unknown logger in paths changes none", "POST", "?paths=http:debug,nosuch:debug", 400, `error: unknown logger name "nosuch"`, nil},
		{"empty name in paths", "POST", "?paths=:debug", 400, "error: empty logger name or empty logger level", nil},
		{"empty level in paths", "POST", "?paths=http:", 400, "error: empty logger name or empty logger level", nil},
		{"two parameters", "POST", "?http=debug&wasm=debug", 400, "error: invalid number of parameters", nil},
		{"level with another", "POST", "?level=debug&http=info", 400, "error: invalid number of parameters", nil},
		{"GET that changes is refused", "GET", "?level=debug", 405, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lg := newFakeLogging("admin", "http", "wasm")
			ta := startAdmin(t, Options{Logging: lg, ParseLevel: fakeParseLevel})
			code, body, _ := ta.do(t, tc.method, "/logging"+tc.query)
			if code != tc.code {
				t.Fatalf("%s /logging%s = %d %q, want %d", tc.method, tc.query, code, body, tc.code)
			}
			want := tc.want
			if want == nil {
				want = map[string]string{"admin": "info", "http": "info", "wasm": "info"}
			}
			for _, cl := range lg.Levels() {
				if cl[1] != want[cl[0]] {
					t.Errorf("%s level %s, want %s", cl[0], cl[1], want[cl[0]])
				}
			}
			if code == http.StatusMethodNotAllowed {
				return
			}
			list := "active loggers:\n"
			for _, c := range []string{"admin", "http", "wasm"} {
				list += "  " + c + ": " + want[c] + "\n"
			}
			list += "\n"
			wantBody := list
			if tc.errLine != "" {
				wantBody = tc.errLine + "\n\n" + usage + list
			}
			if body != wantBody {
				t.Errorf("body:\n%s\nwant\n%s", body, wantBody)
			}
		})
	}
}

func TestLoggingForm(t *testing.T) {
	lg := newFakeLogging("admin", "http")
	ta := startAdmin(t, Options{Logging: lg, ParseLevel: fakeParseLevel})
	code, body := ta.postForm(t, "/logging", url.Values{"level": {"error"}})
	if code != 200 || !strings.HasPrefix(body, "active loggers:\n") {
		t.Fatalf("form POST /logging = %d %q", code, body)
	}
	if lg.levels["http"] != zapcore.ErrorLevel {
		t.Errorf("http level %v after form level=error", lg.levels["http"])
	}
}

func TestLoggingWithoutLogging(t *testing.T) {
	ta := startAdmin(t, Options{})
	if code, body := ta.post(t, "/logging"); code != 200 || body != "active loggers:\n\n" {
		t.Errorf("/logging = %d %q", code, body)
	}
	if code, _ := ta.post(t, "/logging?level=info"); code != 400 {
		t.Errorf("/logging?level=info without Logging = %d, want 400", code)
	}
}
