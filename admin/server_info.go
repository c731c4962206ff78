package admin

import (
	"net/http"
	"runtime"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// hotRestartVersion is what Envoy prints when hot restart is disabled;
// wasmesh never hot restarts.
const hotRestartVersion = "disabled"

// state is the server state the admin reports: the server's own, with
// LIVE turned into DRAINING while /healthcheck/fail is in effect.
func (a *Admin) state() adminv3.ServerInfo_State {
	s := a.o.Server.State()
	if s == adminv3.ServerInfo_LIVE && a.HealthCheckFailed() {
		return adminv3.ServerInfo_DRAINING
	}
	return s
}

func (a *Admin) handleServerInfo(w http.ResponseWriter, _ *http.Request) {
	srv := a.o.Server
	up := a.now().Sub(srv.StartTime()).Truncate(1e9)
	if up < 0 {
		up = 0
	}
	info := &adminv3.ServerInfo{
		Version:            srv.Version(),
		State:              a.state(),
		UptimeCurrentEpoch: durationpb.New(up),
		UptimeAllEpochs:    durationpb.New(up),
		HotRestartVersion:  hotRestartVersion,
		CommandLineOptions: srv.CommandLineOptions(),
		Node:               srv.Node(),
	}
	writeJSON(w, info, true)
}

func (a *Admin) handleReady(w http.ResponseWriter, _ *http.Request) {
	s := a.state()
	code := http.StatusOK
	if s != adminv3.ServerInfo_LIVE {
		code = http.StatusServiceUnavailable
	}
	writeText(w, code, s.String()+"\n")
}

func (a *Admin) handleHotRestartVersion(w http.ResponseWriter, _ *http.Request) {
	w.Write([]byte(hotRestartVersion))
}

func (a *Admin) handleHealthcheckFail(w http.ResponseWriter, _ *http.Request) {
	a.SetHealthCheckFailed(true)
	w.Write([]byte("OK\n"))
}

func (a *Admin) handleHealthcheckOK(w http.ResponseWriter, _ *http.Request) {
	a.SetHealthCheckFailed(false)
	w.Write([]byte("OK\n"))
}

func (a *Admin) handleQuit(w http.ResponseWriter, _ *http.Request) {
	if a.o.Quit == nil {
		writeText(w, http.StatusNotImplemented, "quitquitquit is not available in this process\n")
		return
	}
	a.log.Info("shutting down: admin /quitquitquit")
	w.Write([]byte("OK\n"))
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	a.o.Quit()
}

// handleMemory maps Go's memory statistics onto Envoy's tcmalloc fields:
//
//	allocated            HeapAlloc: bytes of live and not yet swept heap objects
//	heap_size            HeapSys: heap bytes obtained from the OS
//	pageheap_unmapped    HeapReleased: heap bytes returned to the OS
//	pageheap_free        HeapIdle - HeapReleased: idle heap spans still mapped
//	total_thread_cache   MCacheInuse: the per-P allocation caches
//	total_physical_bytes Sys - HeapReleased: everything mapped and not released
func (a *Admin) handleMemory(w http.ResponseWriter, _ *http.Request) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	writeJSON(w, memoryFrom(&ms), true)
}

func memoryFrom(ms *runtime.MemStats) *adminv3.Memory {
	return &adminv3.Memory{
		Allocated:          ms.HeapAlloc,
		HeapSize:           ms.HeapSys,
		PageheapUnmapped:   ms.HeapReleased,
		PageheapFree:       ms.HeapIdle - ms.HeapReleased,
		TotalThreadCache:   ms.MCacheInuse,
		TotalPhysicalBytes: ms.Sys - ms.HeapReleased,
	}
}

// jsonOptions are Envoy's admin JSON: proto field names, pretty-printed.
// withDefaults is Envoy's always_print_primitive_fields.
func jsonOptions(withDefaults bool) protojson.MarshalOptions {
	return protojson.MarshalOptions{
		Multiline:         true,
		Indent:            " ",
		UseProtoNames:     true,
		EmitDefaultValues: withDefaults,
	}
}

// writeJSON answers 200 with a message as JSON, or 500 if it cannot be
// marshalled (an Any of an unlinked type).
func writeJSON(w http.ResponseWriter, m proto.Message, withDefaults bool) {
	b, err := jsonOptions(withDefaults).Marshal(m)
	if err != nil {
		writeText(w, http.StatusInternalServerError, "admin: marshal "+string(m.ProtoReflect().Descriptor().FullName())+": "+err.Error()+"\n")
		return
	}
	w.Header().Set("Content-Type", contentTypeJSON)
	w.Write(b)
}
