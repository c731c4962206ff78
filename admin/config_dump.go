package admin

import (
	"fmt"
	"net/http"
	"regexp"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// configSections returns clones of the config dumps in Envoy's order
// (the config tracker's keys sorted: bootstrap, clusters, endpoints,
// listeners, routes, secrets), leaving out the absent ones.
func (a *Admin) configSections(includeEDS bool) []proto.Message {
	d := a.o.ConfigDumpers
	var out []proto.Message
	add := func(m proto.Message) {
		// A typed nil pointer is not a valid message.
		if m.ProtoReflect().IsValid() {
			out = append(out, proto.Clone(m))
		}
	}
	if d.Bootstrap != nil {
		add(d.Bootstrap())
	}
	if d.Clusters != nil {
		add(d.Clusters())
	}
	if includeEDS && d.Endpoints != nil {
		add(d.Endpoints())
	}
	if d.Listeners != nil {
		add(d.Listeners())
	}
	if d.Routes != nil {
		add(d.Routes())
	}
	if d.Secrets != nil {
		add(d.Secrets())
	}
	return out
}

// handleConfigDump answers /config_dump: {"configs":[Any...]} with one
// entry per section, or with ?resource=<field> one entry per item of that
// repeated field of the first section that has it. ?mask= trims, and
// ?name_regex= keeps the resources whose name matches. Secrets and other
// sensitive fields are redacted.
func (a *Admin) handleConfigDump(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var mask *maskNode
	if q.Has("mask") {
		mask = parseMask(q.Get("mask"))
	}
	var nameRe *regexp.Regexp
	if s := q.Get("name_regex"); s != "" {
		re, err := regexp.Compile(`^(?:` + s + `)$`)
		if err != nil {
			writeText(w, http.StatusBadRequest, fmt.Sprintf("invalid name_regex %q: %v\n", s, err))
			return
		}
		nameRe = re
	}
	sections := a.configSections(q.Has("include_eds"))
	dump := &adminv3.ConfigDump{}
	pack := func(m proto.Message) bool {
		redact(m.ProtoReflect(), false)
		any, err := anypb.New(m)
		if err != nil {
			writeText(w, http.StatusInternalServerError, "admin: config_dump: "+err.Error()+"\n")
			return false
		}
		dump.Configs = append(dump.Configs, any)
		return true
	}
	if q.Has("resource") {
		resource := q.Get("resource")
		found := false
		for _, sec := range sections {
			m := sec.ProtoReflect()
			fd := m.Descriptor().Fields().ByName(protoreflect.Name(resource))
			if fd == nil {
				continue
			}
			if !fd.IsList() || fd.Message() == nil {
				writeText(w, http.StatusBadRequest, fmt.Sprintf("%s is not a repeated field. Use ?mask=%s to get only this field", fd.Name(), fd.Name()))
				return
			}
			found = true
			list := m.Get(fd).List()
			for i := 0; i < list.Len(); i++ {
				item := list.Get(i).Message()
				if nameRe != nil && !nameRe.MatchString(resourceName(item)) {
					continue
				}
				if mask != nil {
					trimMessage(item, mask)
				}
				if !pack(item.Interface()) {
					return
				}
			}
			break
		}
		if !found {
			writeText(w, http.StatusNotFound, resource+" not found in config dump")
			return
		}
	} else {
		for _, sec := range sections {
			m := sec.ProtoReflect()
			if nameRe != nil {
				filterByName(m, nameRe)
			}
			if mask != nil {
				trimMessage(m, mask)
			}
			if !pack(sec) {
				return
			}
		}
	}
	writeJSON(w, dump, false)
}

// filterByName drops, from every repeated message field of a dump, the
// resources whose name does not match. The bootstrap is never filtered.
func filterByName(m protoreflect.Message, re *regexp.Regexp) {
	if m.Descriptor().FullName() == "envoy.admin.v3.BootstrapConfigDump" {
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if !fd.IsList() || fd.Message() == nil {
			return true
		}
		list := v.List()
		kept := 0
		for i := 0; i < list.Len(); i++ {
			item := list.Get(i)
			if re.MatchString(resourceName(item.Message())) {
				list.Set(kept, item)
				kept++
			}
		}
		list.Truncate(kept)
		return true
	})
}

// resourceName is the name a config dump item is matched on: its own
// name field (dynamic listeners, secrets), else the name (or cluster_name
// for a ClusterLoadAssignment) of the resource in its Any field.
func resourceName(item protoreflect.Message) string {
	if s := stringField(item, "name"); s != "" {
		return s
	}
	fields := item.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if fd.IsList() || fd.IsMap() || fd.Message() == nil || fd.Message().FullName() != "google.protobuf.Any" || !item.Has(fd) {
			continue
		}
		anyMsg, ok := item.Get(fd).Message().Interface().(*anypb.Any)
		if !ok {
			continue
		}
		inner, err := anyMsg.UnmarshalNew()
		if err != nil {
			continue
		}
		im := inner.ProtoReflect()
		if s := stringField(im, "name"); s != "" {
			return s
		}
		if s := stringField(im, "cluster_name"); s != "" {
			return s
		}
	}
	return ""
}

func stringField(m protoreflect.Message, name protoreflect.Name) string {
	fd := m.Descriptor().Fields().ByName(name)
	if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
		return ""
	}
	return m.Get(fd).String()
}
