package client

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"go.uber.org/zap"

	"github.com/wasmesh/wasmesh/xds/bootstrap"
)

// checkFiles serves path_config_source: CDS and LDS from files holding a
// DiscoveryResponse, re-applied whenever their content changes. A file
// that cannot be read or parsed keeps the last accepted version.
func (c *Client) checkFiles(ctx context.Context) {
	last := c.files
	for _, f := range []struct{ path, typeURL string }{{c.cfg.CDSPath, TypeCluster}, {c.cfg.LDSPath, TypeListener}} {
		if f.typeURL == TypeListener && !c.cdsInit {
			continue
		}
		data, err := os.ReadFile(f.path)
		if err != nil {
			if last[f.path] == nil {
				c.log.Warn("xds file not readable", zap.String("path", f.path), zap.Error(err))
				last[f.path] = []byte{} // log once until it appears
			}
			continue
		}
		if last[f.path] != nil && bytes.Equal(data, last[f.path]) {
			continue
		}
		last[f.path] = data
		c.applyFile(ctx, f.path, f.typeURL, data)
	}
}

// applyFile applies one file's DiscoveryResponse as a SotW update.
func (c *Client) applyFile(ctx context.Context, path, typeURL string, data []byte) {
	sub := c.subs[typeURL]
	sub.attempt.Inc()
	resp := &discoveryv3.DiscoveryResponse{}
	err := bootstrap.Parse(data, resp, false)
	if err == nil {
		if resp.GetTypeUrl() == "" {
			resp.TypeUrl = typeURL
		}
		if resp.GetTypeUrl() != typeURL {
			err = fmt.Errorf("type_url: %q in a file for %q", resp.GetTypeUrl(), typeURL)
		} else {
			err = c.applySotW(ctx, resp)
		}
	} else {
		err = fmt.Errorf("%s: %w", path, err)
	}
	switch typeURL {
	case TypeCluster:
		c.cdsAnswered = true
	case TypeListener:
		c.ldsInit = true
	}
	c.updateInit()
	if err != nil {
		sub.rejected.Inc()
		c.setVersion(typeURL, "", err.Error())
		c.log.Warn("xds file update rejected", zap.String("path", path), zap.Error(err))
		return
	}
	sub.success.Inc()
	sub.updateTime.Set(uint64(time.Now().UnixMilli()))
	c.setVersion(typeURL, resp.GetVersionInfo(), "")
	c.log.Info("xds file update accepted", zap.String("path", path), zap.String("version", resp.GetVersionInfo()))
}
