package route

import (
	"slices"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Identical routes are copied, validated and compiled once per Compile.
//
// Control planes repeat routes: a translation that puts every route without
// hosts into each host's virtual host (Kong's did) turns 5,000 routes over
// 100 hosts into hundreds of thousands of route messages, most of them
// equal.
// Compile keeps one copy of each distinct route message (by content), runs
// protoc-gen-validate on it once, and compiles it once per distinct
// virtual-host context: the virtual host's fields that a compiled route
// reads (header mutations, typed_per_filter_config, retry_policy, buffer
// limits, ...), i.e. everything but name, domains, routes,
// virtual_clusters and metadata. Virtual hosts with equal contexts then
// hold the same *Route, which also shares everything keyed by the route
// pointer downstream (the connection manager's filter plans).

// sharing is the state of one compilation's deduplication.
type sharing struct {
	// copies maps each input route message, by pointer and by content, to
	// the Table's private copy and its validation result.
	byPtr     map[*routev3.Route]*routeCopy
	byContent map[string]*routeCopy
	// contexts interns virtual-host contexts.
	contexts map[string]int
	// compiled holds the routes compiled without errors.
	compiled map[compiledKey]*Route
	buf      []byte
	shared   bool // some *Route is held twice
}

type routeCopy struct {
	msg *routev3.Route
	err error // ValidateAll's
}

type compiledKey struct {
	msg *routev3.Route
	ctx int
}

var deterministic = proto.MarshalOptions{Deterministic: true}

// own returns the Table's private copy of rc, validated with
// protoc-gen-validate's rules (errors added to c). Equal route messages
// become one copy.
func (c *compiler) own(rc *routev3.RouteConfiguration) *routev3.RouteConfiguration {
	top := without(rc, "virtual_hosts")
	if err := top.ValidateAll(); err != nil {
		c.addValidation("", err)
	}
	out := proto.Clone(top).(*routev3.RouteConfiguration)
	out.VirtualHosts = make([]*routev3.VirtualHost, len(rc.GetVirtualHosts()))
	for i, v := range rc.GetVirtualHosts() {
		p := idx("", "virtual_hosts", i)
		if v == nil {
			v = &routev3.VirtualHost{}
		}
		vv := without(v, "routes")
		if err := vv.ValidateAll(); err != nil {
			c.addValidation(p, err)
		}
		vc := proto.Clone(vv).(*routev3.VirtualHost)
		vc.Routes = make([]*routev3.Route, len(v.GetRoutes()))
		for j, r := range v.GetRoutes() {
			vc.Routes[j] = c.ownRoute(p, j, r)
		}
		out.VirtualHosts[i] = vc
	}
	return out
}

// ownRoute returns the copy of route j of the virtual host at vhPath.
func (c *compiler) ownRoute(vhPath string, j int, r *routev3.Route) *routev3.Route {
	if r == nil {
		r = &routev3.Route{}
	}
	s := &c.sharing
	rc, ok := s.byPtr[r]
	if !ok {
		var err error
		s.buf, err = deterministic.MarshalAppend(s.buf[:0], r)
		if err == nil {
			rc, ok = s.byContent[string(s.buf)]
		}
		if !ok {
			rc = &routeCopy{msg: proto.Clone(r).(*routev3.Route), err: r.ValidateAll()}
			if err == nil {
				if s.byContent == nil {
					s.byContent = map[string]*routeCopy{}
				}
				s.byContent[string(s.buf)] = rc
			}
		}
		if s.byPtr == nil {
			s.byPtr = map[*routev3.Route]*routeCopy{}
		}
		s.byPtr[r] = rc
	}
	if rc.err != nil {
		c.addValidation(idx(vhPath, "routes", j), rc.err)
	}
	return rc.msg
}

// vhostContext interns the virtual host's fields that compiled routes
// depend on; virtual hosts with the same context can share routes.
func (c *compiler) vhostContext(v *routev3.VirtualHost, i int) int {
	s := &c.sharing
	b, err := deterministic.Marshal(without(v, "name", "domains", "routes", "virtual_clusters", "metadata"))
	if err != nil {
		return -1 - i // not shared
	}
	if n, ok := s.contexts[string(b)]; ok {
		return n
	}
	if s.contexts == nil {
		s.contexts = map[string]int{}
	}
	n := len(s.contexts)
	s.contexts[string(b)] = n
	return n
}

// without is a message that shares m's fields except the named ones.
func without[M proto.Message](m M, fields ...protoreflect.Name) M {
	src := m.ProtoReflect()
	dst := src.New()
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if !slices.Contains(fields, fd.Name()) {
			dst.Set(fd, v)
		}
		return true
	})
	if u := src.GetUnknown(); len(u) > 0 {
		dst.SetUnknown(u)
	}
	return dst.Interface().(M)
}

// sharedRoute compiles a virtual host's route, or returns the route
// compiled for an equal message in a virtual host with the same context.
// Routes with errors are not shared, so each occurrence reports its own.
func (c *compiler) sharedRoute(path string, vh *VirtualHost, ctx int, r *routev3.Route, index int) *Route {
	k := compiledKey{msg: r, ctx: ctx}
	if rt, ok := c.sharing.compiled[k]; ok {
		c.sharing.shared = true
		return rt
	}
	n := len(c.list)
	rt := c.route(path, vh, r, index)
	if len(c.list) == n {
		if c.sharing.compiled == nil {
			c.sharing.compiled = map[compiledKey]*Route{}
		}
		c.sharing.compiled[k] = rt
	}
	return rt
}
