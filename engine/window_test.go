package engine

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestWindowSizes(t *testing.T) {
	for _, tc := range []struct {
		size, limit, grown, shrunk int
	}{
		{size: 50, limit: 400, grown: 52, shrunk: 25},
		{size: 399, limit: 400, grown: 400, shrunk: 199},
		{size: 400, limit: 400, grown: 400, shrunk: 200},
		{size: 1, limit: 400, grown: 3, shrunk: 1},
		{size: 3, limit: 3, grown: 3, shrunk: 1},
	} {
		if got := grown(tc.size, tc.limit); got != tc.grown {
			t.Errorf("grown(%d, %d) = %d, want %d", tc.size, tc.limit, got, tc.grown)
		}
		if got := shrunk(tc.size); got != tc.shrunk {
			t.Errorf("shrunk(%d) = %d, want %d", tc.size, got, tc.shrunk)
		}
	}
}

func TestWindowFixedNeverMoves(t *testing.T) {
	w := newWindow(20, 20)
	w.grow()
	w.shrink()
	if got := w.size; got != 20 {
		t.Errorf("a fixed window of 20 is %d after grow and shrink", got)
	}
	var nilWindow *window
	nilWindow.grow()
	nilWindow.shrink()
}

// TestWindowBoundsInFlight runs many holders at once and checks that no more
// than the window's size ever hold a slot, as it grows and shrinks.
func TestWindowBoundsInFlight(t *testing.T) {
	w := newWindow(2, 8)
	ctx := context.Background()
	var (
		mu            sync.Mutex
		inFlight, top int
		wg            sync.WaitGroup
	)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.acquire(ctx); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			inFlight++
			top = max(top, inFlight)
			mu.Unlock()
			if i%5 == 0 {
				w.shrink()
			} else {
				w.grow()
			}
			mu.Lock()
			inFlight--
			mu.Unlock()
			w.release()
		}()
	}
	wg.Wait()
	if top > 8 {
		t.Errorf("%d in flight at once, over the limit of 8", top)
	}
}

// TestWindowOpensAndCloses holds slots and checks who else gets one.
func TestWindowOpensAndCloses(t *testing.T) {
	w := newWindow(2, 3)
	quick := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		return w.acquire(ctx)
	}
	for range 2 {
		if err := quick(); err != nil {
			t.Fatal(err)
		}
	}
	if quick() == nil {
		t.Fatal("a third slot in a window of 2")
	}
	w.grow()
	if err := quick(); err != nil {
		t.Fatalf("no third slot after the window grew to 3: %v", err)
	}
	w.shrink() // to 1, with 3 in flight
	w.release()
	w.release()
	if quick() == nil {
		t.Fatal("a slot with 1 in flight in a window shrunk to 1")
	}
	w.release()
	if err := quick(); err != nil {
		t.Fatalf("no slot in an empty window of 1: %v", err)
	}
}

func TestWindowAcquireEndsWithContext(t *testing.T) {
	w := newWindow(1, 1)
	if err := w.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.acquire(ctx); err == nil {
		t.Fatal("a second slot of a window of one was given")
	}
	w.release()
	if err := w.acquire(context.Background()); err != nil {
		t.Fatalf("after a release: %v", err)
	}
}
