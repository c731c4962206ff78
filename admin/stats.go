package admin

import (
	"bytes"
	"net/http"

	"github.com/wasmesh/wasmesh/stats"
)

// handleStats answers /stats: text by default, ?format=json or
// ?format=prometheus, with the stats package's filter, usedonly, type and
// histogram_buckets parameters.
func (a *Admin) handleStats(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	format := q.Get("format")
	switch format {
	case "", "text", "json", "prometheus":
	default:
		writeText(w, http.StatusBadRequest, "usage: /stats?format=(text|json|prometheus)\n\n")
		return
	}
	o, err := stats.ParseQuery(q)
	if err != nil {
		writeText(w, http.StatusBadRequest, err.Error()+"\n")
		return
	}
	if format == "prometheus" {
		a.writePrometheus(w, o)
		return
	}
	if a.o.Stats == nil {
		if format == "json" {
			w.Header().Set("Content-Type", contentTypeJSON)
			w.Write([]byte(`{"stats":[]}`))
		}
		return
	}
	var buf bytes.Buffer
	if format == "json" {
		err = a.o.Stats.WriteJSON(&buf, o)
	} else {
		err = a.o.Stats.WriteText(&buf, o)
	}
	if err != nil {
		writeText(w, http.StatusBadRequest, err.Error()+"\n")
		return
	}
	if format == "json" {
		w.Header().Set("Content-Type", contentTypeJSON)
	}
	w.Write(buf.Bytes())
}

func (a *Admin) handlePrometheus(w http.ResponseWriter, r *http.Request) {
	o, err := stats.ParseQuery(r.URL.Query())
	if err != nil {
		writeText(w, http.StatusBadRequest, err.Error()+"\n")
		return
	}
	a.writePrometheus(w, o)
}

func (a *Admin) writePrometheus(w http.ResponseWriter, o stats.WriteOptions) {
	if a.o.Stats == nil {
		return
	}
	var buf bytes.Buffer
	if err := a.o.Stats.WritePrometheus(&buf, o); err != nil {
		writeText(w, http.StatusBadRequest, err.Error()+"\n")
		return
	}
	w.Write(buf.Bytes())
}

func (a *Admin) handleResetCounters(w http.ResponseWriter, _ *http.Request) {
	if a.o.Stats != nil {
		a.o.Stats.ResetCounters()
	}
	w.Write([]byte("OK\n"))
}
