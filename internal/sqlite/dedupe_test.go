package sqlite_test

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/sqlite"
)

func TestFirstSeenOnceAcrossConcurrencyAndRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.db")
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var fresh atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := db.FirstSeen(ctx, "telegram:update:42")
			if err != nil {
				t.Error(err)
			}
			if ok {
				fresh.Add(1)
			}
		}()
	}
	wg.Wait()
	if fresh.Load() != 1 {
		t.Fatalf("%d callers saw the key as new, want 1", fresh.Load())
	}
	db.Close()
	db, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if ok, _ := db.FirstSeen(ctx, "telegram:update:42"); ok {
		t.Fatal("key forgotten across a restart")
	}
	if ok, _ := db.FirstSeen(ctx, "telegram:update:43"); !ok {
		t.Fatal("a new key was not new")
	}
	if n, err := db.ForgetSeenBefore(ctx, time.Now().Add(time.Minute)); err != nil || n != 2 {
		t.Fatalf("forgot %d, %v", n, err)
	}
}
