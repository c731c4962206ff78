package wasm

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.uber.org/zap"
)

// FailurePolicy is what a stream gets when its filter's instance fails
// (Envoy's failure_policy / fail_open).
type FailurePolicy int

// Failure policies.
const (
	// FailClosed answers the stream with a local 503 (Envoy's default).
	FailClosed FailurePolicy = iota
	// FailOpen skips the filter for the stream.
	FailOpen
	// FailReload answers the stream with a local 503, like FailClosed;
	// the instance is replaced in both cases (see docs/proxy-wasm.md).
	FailReload
)

func (p FailurePolicy) String() string {
	switch p {
	case FailOpen:
		return "FAIL_OPEN"
	case FailReload:
		return "FAIL_RELOAD"
	}
	return "FAIL_CLOSED"
}

// PluginConfig describes a plugin: Envoy's PluginConfig without vm_config.
type PluginConfig struct {
	Name          string
	RootID        string
	Configuration []byte
	FailurePolicy FailurePolicy
	// Properties answers property paths the host does not know for the
	// plugin's root context (node, xds...). May be nil.
	Properties Properties
}

// Plugin is a plugin configuration running on a VM: one root context per
// instance.
type Plugin struct {
	vm  *VM
	cfg PluginConfig
	log *zap.Logger

	mu     sync.Mutex
	closed bool
}

// NewPlugin starts a plugin on the VM: in every instance it creates a root
// context and calls proxy_on_vm_start and proxy_on_configure. A false
// return from either fails the plugin with an error saying which.
func (vm *VM) NewPlugin(ctx context.Context, cfg PluginConfig) (*Plugin, error) {
	p := &Plugin{
		vm:  vm,
		cfg: cfg,
		log: vm.log.With(zap.String("plugin", cfg.Name), zap.String("root_id", cfg.RootID)),
	}
	vm.mu.Lock()
	if vm.closed {
		vm.mu.Unlock()
		return nil, errors.New("wasm: vm closed")
	}
	vm.plugins = append(vm.plugins, p)
	vm.mu.Unlock()
	for _, inst := range vm.liveInstances() {
		if err := inst.startPlugin(p); err != nil {
			var f *InstanceFailure
			if errors.As(err, &f) {
				// The instance died starting the plugin; its replacement
				// will retry. Only a false return is the plugin's fault.
				continue
			}
			p.Close(ctx)
			return nil, fmt.Errorf("plugin %q: %w", cfg.Name, err)
		}
	}
	return p, nil
}

// Name is the plugin's name.
func (p *Plugin) Name() string { return p.cfg.Name }

// Config returns the plugin's configuration.
func (p *Plugin) Config() PluginConfig { return p.cfg }

// VM is the plugin's VM.
func (p *Plugin) VM() *VM { return p.vm }

// Close removes the plugin's root contexts (proxy_on_done, proxy_on_log,
// proxy_on_delete) from every instance.
func (p *Plugin) Close(ctx context.Context) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	vm := p.vm
	vm.mu.Lock()
	for k, q := range vm.plugins {
		if q == p {
			vm.plugins = append(vm.plugins[:k], vm.plugins[k+1:]...)
			break
		}
	}
	vm.mu.Unlock()
	for _, inst := range vm.liveInstances() {
		inst.stopPlugin(p)
	}
}

// startPlugin creates p's root context in the instance.
func (i *instance) startPlugin(p *Plugin) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if _, ok := i.roots[p]; ok {
		return nil
	}
	root := i.newContextLocked(p, nil)
	i.roots[p] = root
	saved := i.deadline.Load()
	i.deadline.Store(int64(i.vm.cfg.StartTimeout))
	defer i.deadline.Store(saved)
	if err := i.enterLocked(root, i.fns.onContextCreate, uint64(root.id), 0); err != nil {
		return err
	}
	if i.fns.onVMStart != nil {
		ok, err := i.enterResultLocked(root, i.fns.onVMStart, uint64(root.id), uint64(len(i.vm.cfg.Configuration)))
		if err != nil {
			return err
		}
		if ok == 0 {
			i.removeContextLocked(root)
			delete(i.roots, p)
			return fmt.Errorf("proxy_on_vm_start returned false (vm_id %q)", i.vm.cfg.ID)
		}
	}
	if i.fns.onConfigure != nil {
		ok, err := i.enterResultLocked(root, i.fns.onConfigure, uint64(root.id), uint64(len(p.cfg.Configuration)))
		if err != nil {
			return err
		}
		if ok == 0 {
			i.removeContextLocked(root)
			delete(i.roots, p)
			return fmt.Errorf("proxy_on_configure returned false (root_id %q)", p.cfg.RootID)
		}
	}
	return nil
}

// stopPlugin finishes p's root context in the instance.
func (i *instance) stopPlugin(p *Plugin) {
	i.mu.Lock()
	defer i.mu.Unlock()
	root, ok := i.roots[p]
	if !ok {
		return
	}
	delete(i.roots, p)
	i.finishContextLocked(root)
	// A root whose proxy_on_done returned false keeps its timer, as in
	// Envoy: it usually calls proxy_done from proxy_on_tick. Once finished,
	// the timer no longer fires into it (scheduleTickLocked).
	if !root.pendingDone {
		root.stopTick()
	}
}
