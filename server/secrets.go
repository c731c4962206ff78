package server

import (
	"errors"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wasmesh/wasmesh/cluster"
	"github.com/wasmesh/wasmesh/listener/tlsctx"
	"github.com/wasmesh/wasmesh/xds/client"
)

// serverSecrets resolves the secret names of listeners and clusters:
// static_resources.secrets by name, and secrets delivered over SDS on the
// ADS stream (an SdsSecretConfig with sds_config).
type serverSecrets struct{ s *Server }

var (
	_ tlsctx.SDSLookup  = serverSecrets{}
	_ cluster.SDSLookup = serverSecrets{}
)

func (l serverSecrets) Secret(name string) (*tlsv3.Secret, bool) { return l.s.secrets.Secret(name) }

// SDSSecret reads a secret from the xDS client's store.
func (l serverSecrets) SDSSecret(name string, src *corev3.ConfigSource) (func() *tlsv3.Secret, error) {
	if l.s.bootstrap.GetDynamicResources().GetAdsConfig() == nil {
		return nil, errors.New("SDS needs dynamic_resources.ads_config (secrets come over the ADS stream)")
	}
	if !l.s.dyn.sdsStarted.Load() {
		// Static resources compile before the xDS client starts, and only
		// the dynamic ones' secrets are subscribed.
		return nil, errors.New("SDS secrets in static_resources are not implemented by wasmesh (use a static secret, or deliver the listener or cluster over xDS)")
	}
	return l.s.dyn.secretStore().SDSSecret(name, src)
}

// secretStore is the store of SDS secrets, shared by the compiled
// listeners and clusters and the xDS client that fills it.
func (d *dynamicResources) secretStore() *client.Secrets {
	d.sdsOnce.Do(func() { d.sds = client.NewSecrets() })
	return d.sds
}

// startSDS hands the secret store to the xDS client: from now on
// listeners and clusters may read SDS secrets.
func (d *dynamicResources) startSDS() *client.Secrets {
	d.sdsStarted.Store(true)
	return d.secretStore()
}

// ValidateSecret checks an SDS secret before the client accepts it
// (client.SecretValidator).
func (d dynamicPlane) ValidateSecret(s *tlsv3.Secret) error { return tlsctx.CheckSecret(s) }

// dumpSecrets gives /config_dump's dynamic_active_secrets (the admin
// redacts the private keys).
func (d *dynamicResources) dumpSecrets() []*adminv3.SecretsConfigDump_DynamicSecret {
	var out []*adminv3.SecretsConfigDump_DynamicSecret
	for _, e := range d.secretStore().Dump() {
		a, _ := anypb.New(e.Secret)
		out = append(out, &adminv3.SecretsConfigDump_DynamicSecret{
			Name: e.Name, VersionInfo: e.Version, LastUpdated: timestamppb.New(e.Updated), Secret: a,
		})
	}
	return out
}
