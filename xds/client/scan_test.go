package client

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
)

func hcmBytes(t testing.TB, h *hcmv3.HttpConnectionManager) []byte {
	b, err := proto.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func scanSeeds(t testing.TB) map[string][]byte {
	rds := &hcmv3.HttpConnectionManager{
		StatPrefix: "x",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "r1",
			ConfigSource: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}},
		HttpFilters: []*hcmv3.HttpFilter{
			{Name: "wasm", ConfigType: &hcmv3.HttpFilter_ConfigDiscovery{ConfigDiscovery: &corev3.ExtensionConfigSource{TypeUrls: []string{"t"}}}},
			{Name: "envoy.filters.http.router"},
		},
	}
	inline := &hcmv3.HttpConnectionManager{
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{Name: "local",
			VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}}}}},
	}
	// rds then route_config on the wire: the oneof's last field wins.
	both := append(hcmBytes(t, rds), hcmBytes(t, inline)...)
	return map[string][]byte{"rds": hcmBytes(t, rds), "inline": hcmBytes(t, inline), "rds then inline": both, "empty": nil}
}

// scanHCM reads what a full decode reads for rds and http_filters.
func TestScanHCM(t *testing.T) {
	for name, b := range scanSeeds(t) {
		t.Run(name, func(t *testing.T) { checkScan(t, b) })
	}
}

func checkScan(t *testing.T, b []byte) {
	full := &hcmv3.HttpConnectionManager{}
	fullErr := proto.Unmarshal(b, full)
	rds, filters, ok := scanHCM(b)
	if fullErr != nil || !ok {
		return // malformed: the listener is rejected when compiled
	}
	if !proto.Equal(rds, full.GetRds()) {
		t.Fatalf("rds: scan %v, decode %v", rds, full.GetRds())
	}
	if len(filters) != len(full.GetHttpFilters()) {
		t.Fatalf("http_filters: scan %d, decode %d", len(filters), len(full.GetHttpFilters()))
	}
	for i := range filters {
		if !proto.Equal(filters[i], full.GetHttpFilters()[i]) {
			t.Fatalf("http_filters[%d]: scan %v, decode %v", i, filters[i], full.GetHttpFilters()[i])
		}
	}
}

func FuzzScanHCM(f *testing.F) {
	for _, b := range scanSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(checkScan)
}
