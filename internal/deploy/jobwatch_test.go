package deploy

import "testing"

func TestJobWatchWakesOnlyItsJobAndCoalesces(t *testing.T) {
	w := NewJobWatch()
	one, stopOne := w.Watch(1)
	two, stopTwo := w.Watch(2)
	defer stopTwo()
	w.JobChanged(Job{ID: 1})
	w.JobChanged(Job{ID: 1}) // coalesced: the waiter reads the newest state once
	select {
	case <-one:
	default:
		t.Fatal("job 1's watcher was not woken")
	}
	select {
	case <-one:
		t.Fatal("two changes queued two wakes; one pending wake is enough")
	default:
	}
	select {
	case <-two:
		t.Fatal("job 2's watcher woke for job 1")
	default:
	}
	stopOne()
	w.JobChanged(Job{ID: 1})
	select {
	case <-one:
		t.Fatal("a stopped watch was woken")
	default:
	}
	if len(w.subs) != 1 {
		t.Fatalf("stopped watches are kept: %d jobs watched, want 1", len(w.subs))
	}
}
