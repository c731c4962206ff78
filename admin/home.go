package admin

import (
	"html"
	"net/http"
	"strings"
)

// handleHome answers "/" with a small HTML page: one row per endpoint, a
// link for those read with GET and a POST form for those that change
// state.
func (a *Admin) handleHome(w http.ResponseWriter, _ *http.Request) {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html><head><title>wasmesh admin</title></head><body>\n")
	b.WriteString("<table>\n<tr><th>Command</th><th>Description</th></tr>\n")
	for _, h := range a.handlers {
		if h.path == "/" {
			continue
		}
		p := html.EscapeString(h.path)
		b.WriteString("<tr><td>")
		if h.mutates {
			b.WriteString(`<form action="` + p + `" method="post"><button type="submit">` + p + `</button></form>`)
		} else {
			b.WriteString(`<a href="` + p + `">` + p + `</a>`)
		}
		b.WriteString("</td><td>" + html.EscapeString(h.help) + "</td></tr>\n")
	}
	b.WriteString("</table>\n</body></html>\n")
	w.Header().Set("Content-Type", contentTypeHTML)
	w.Write([]byte(b.String()))
}
