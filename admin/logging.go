package admin

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// levelNames are Envoy's log level names, in order.
var levelNames = []string{"trace", "debug", "info", "warning", "error", "critical", "off"}

// requestParams are the query parameters, plus the form values of a POST
// body (Envoy's admin accepts both).
func requestParams(r *http.Request) url.Values {
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err == nil {
			return r.Form
		}
	}
	return r.URL.Query()
}

// loggingChanges drops the empty level= and paths= a form sends when left
// blank, as Envoy does.
func loggingChanges(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		if (k == "level" || k == "paths") && (len(v) == 0 || v[0] == "") {
			continue
		}
		out[k] = v
	}
	return out
}

// readOnlyLogging reports whether a /logging request only lists, so it may
// be answered for GET too.
func readOnlyLogging(r *http.Request) bool {
	return len(loggingChanges(r.URL.Query())) == 0
}

// handleLogging answers /logging: with no parameter it lists the loggers;
// level=<l> sets all of them, <name>=<l> one, paths=<n1>:<l1>,<n2>:<l2>
// several. A bad request answers 400 with the error and the usage, and
// the list in either case.
func (a *Admin) handleLogging(w http.ResponseWriter, r *http.Request) {
	code := http.StatusOK
	var b strings.Builder
	if err := a.changeLevels(loggingChanges(requestParams(r))); err != nil {
		code = http.StatusBadRequest
		fmt.Fprintf(&b, "error: %v\n\n", err)
		b.WriteString("usage: /logging?<name>=<level> (change single level)\n")
		b.WriteString("usage: /logging?paths=name1:level1,name2:level2,... (change multiple levels)\n")
		b.WriteString("usage: /logging?level=<level> (change all levels)\n")
		b.WriteString("levels: ")
		for _, l := range levelNames {
			b.WriteString(l + " ")
		}
		b.WriteByte('\n')
	}
	b.WriteString("active loggers:\n")
	if a.o.Logging != nil {
		for _, cl := range a.o.Logging.Levels() {
			fmt.Fprintf(&b, "  %s: %s\n", cl[0], cl[1])
		}
	}
	b.WriteByte('\n')
	writeText(w, code, b.String())
}

func (a *Admin) changeLevels(q url.Values) error {
	if len(q) == 0 {
		return nil
	}
	if len(q) != 1 {
		return errors.New("invalid number of parameters")
	}
	if a.o.Logging == nil {
		return errors.New("unknown logger name")
	}
	if lv, ok := q["level"]; ok {
		lvl, err := a.parseLevel(lv[0])
		if err != nil {
			return err
		}
		a.o.Logging.SetAll(lvl)
		a.log.Info("change all log levels", zap.String("level", lv[0]))
		return nil
	}
	changes := map[string]zapcore.Level{}
	var order []string
	if paths, ok := q["paths"]; ok {
		for _, nl := range strings.Split(paths[0], ",") {
			nl = strings.TrimSpace(nl)
			if nl == "" {
				continue
			}
			name, level, _ := strings.Cut(nl, ":")
			name, level = strings.TrimSpace(name), strings.TrimSpace(level)
			if name == "" || level == "" {
				return errors.New("empty logger name or empty logger level")
			}
			lvl, err := a.parseLevel(level)
			if err != nil {
				return err
			}
			if _, dup := changes[name]; !dup {
				order = append(order, name)
			}
			changes[name] = lvl
		}
	} else {
		for name, v := range q {
			lvl, err := a.parseLevel(v[0])
			if err != nil {
				return err
			}
			changes[name] = lvl
			order = append(order, name)
		}
	}
	known := map[string]bool{}
	for _, cl := range a.o.Logging.Levels() {
		known[cl[0]] = true
	}
	for _, name := range order {
		if !known[name] {
			return fmt.Errorf("unknown logger name %q", name)
		}
	}
	for _, name := range order {
		a.o.Logging.Set(name, changes[name])
		a.log.Info("change log level", zap.String("name", name), zap.String("level", changes[name].String()))
	}
	return nil
}

func (a *Admin) parseLevel(s string) (zapcore.Level, error) {
	lvl, err := a.o.ParseLevel(s)
	if err != nil {
		return lvl, fmt.Errorf("unknown logger level %q", s)
	}
	return lvl, nil
}
