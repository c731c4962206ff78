package hcm

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestWorkerPool(t *testing.T) {
	const period = 20 * time.Millisecond
	waitFor := func(t *testing.T, what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	t.Run("a waiting worker takes the next stream", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		p := newWorkerPool(ctx, time.Hour)
		for i := 0; i < 50; i++ {
			done := make(chan struct{})
			p.run(func() { close(done) })
			<-done
			waitFor(t, "the worker to wait again", func() bool { return p.waiting.Load() == 1 })
		}
		if n := p.spawned.Load(); n != 1 {
			t.Fatalf("%d workers for 50 streams one after the other, want 1", n)
		}
	})
	t.Run("workers unused for a period retire", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		p := newWorkerPool(ctx, period)
		release := make(chan struct{})
		var started sync.WaitGroup
		started.Add(5)
		for i := 0; i < 5; i++ {
			p.run(func() { started.Done(); <-release })
		}
		started.Wait()
		close(release)
		waitFor(t, "five waiting workers", func() bool { return p.waiting.Load() == 5 })
		waitFor(t, "all of them to retire", func() bool { return p.waiting.Load() == 0 })
	})
	t.Run("a worker in use every period stays", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		p := newWorkerPool(ctx, period)
		for start := time.Now(); time.Since(start) < 8*period; {
			done := make(chan struct{})
			p.run(func() { close(done) })
			<-done
			time.Sleep(period / 10)
		}
		if n := p.spawned.Load(); n != 1 {
			t.Fatalf("%d workers started for a steady trickle of streams, want 1 (the busy worker was retired)", n)
		}
	})
	t.Run("workers end with the server", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		p := newWorkerPool(ctx, time.Hour)
		done := make(chan struct{})
		p.run(func() { close(done) })
		<-done
		waitFor(t, "the worker to wait", func() bool { return p.waiting.Load() == 1 })
		cancel()
		waitFor(t, "the worker to end", func() bool { return p.waiting.Load() == 0 })
	})
}
