package router

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDeadlineCtx(t *testing.T) {
	t.Run("deadline-passes", func(t *testing.T) {
		c := withDeadline(context.Background(), time.Now().Add(20*time.Millisecond))
		if err := c.Err(); err != nil {
			t.Fatalf("Err before the deadline: %v", err)
		}
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done did not close at the deadline")
		}
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err after the deadline: %v", c.Err())
		}
		c.stop()
	})
	t.Run("no-done-err-by-clock", func(t *testing.T) {
		c := withDeadline(context.Background(), time.Now().Add(-time.Millisecond))
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err past the deadline: %v", c.Err())
		}
		if c.inner != nil {
			t.Fatal("Err made the Done channel")
		}
	})
	t.Run("parent-cancel", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		c := withDeadline(parent, time.Now().Add(time.Hour))
		done := c.Done()
		cancel()
		<-done
		if !errors.Is(c.Err(), context.Canceled) {
			t.Fatalf("Err: %v", c.Err())
		}
	})
	t.Run("stop", func(t *testing.T) {
		c := withDeadline(context.Background(), time.Now().Add(time.Hour))
		c.stop()
		if !errors.Is(c.Err(), context.Canceled) {
			t.Fatalf("Err after stop: %v", c.Err())
		}
		<-c.Done() // closed, not made anew
		c2 := withDeadline(context.Background(), time.Now().Add(time.Hour))
		d := c2.Done()
		c2.stop()
		<-d
	})
	t.Run("child", func(t *testing.T) {
		c := withDeadline(context.Background(), time.Now().Add(time.Hour))
		child, cancel := context.WithCancel(c)
		defer cancel()
		c.stop()
		select {
		case <-child.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("child not cancelled with its parent")
		}
	})
	t.Run("earlier-parent", func(t *testing.T) {
		parent, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if c := withDeadline(parent, time.Now().Add(time.Hour)); c != nil {
			t.Fatal("wrapped a parent that ends first")
		}
	})
}
