package server

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/wasmesh/wasmesh/xds/client"
)

// What xDS applied shows in /config_dump's dynamic sections with the
// accepted versions; removed clusters and listeners leave it.
func TestDynamicResourcesDump(t *testing.T) {
	d := &dynamicResources{version: func(typeURL string) string {
		return map[string]string{client.TypeCluster: "c7", client.TypeListener: "l3"}[typeURL]
	}}
	d.setCluster(&clusterv3.Cluster{Name: "b"})
	d.setCluster(&clusterv3.Cluster{Name: "a"})
	d.setCluster(&clusterv3.Cluster{Name: "gone"})
	d.removeCluster("gone")
	d.setListeners([]*listenerv3.Listener{{Name: "x"}, {Name: "y"}})
	d.setListeners([]*listenerv3.Listener{{Name: "y"}})

	cs := d.dumpClusters()
	if len(cs) != 2 || cs[0].GetVersionInfo() != "c7" || cs[0].GetLastUpdated() == nil {
		t.Fatalf("clusters dump: %v", cs)
	}
	c := &clusterv3.Cluster{}
	if err := cs[0].GetCluster().UnmarshalTo(c); err != nil || c.GetName() != "a" {
		t.Fatalf("first cluster %v (%v), want a", c.GetName(), err)
	}
	ls := d.dumpListeners()
	if len(ls) != 1 || ls[0].GetName() != "y" || ls[0].GetActiveState().GetVersionInfo() != "l3" {
		t.Fatalf("listeners dump: %v", ls)
	}
}
