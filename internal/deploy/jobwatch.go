package deploy

import "sync"

// JobWatch is an Observer that wakes whoever waits on one job's next change:
// an API event stream, an MCP call waiting for its deploy. A wake carries no
// state; the waiter reads the job again, so a burst of changes costs one read
// and the newest state is never missed.
type JobWatch struct {
	mu   sync.Mutex
	subs map[int64]map[chan struct{}]struct{}
}

var _ Observer = (*JobWatch)(nil)

// NewJobWatch returns a JobWatch with no waiters.
func NewJobWatch() *JobWatch { return &JobWatch{subs: map[int64]map[chan struct{}]struct{}{}} }

// JobChanged implements Observer.
func (w *JobWatch) JobChanged(j Job) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.subs[j.ID] {
		select {
		case ch <- struct{}{}:
		default: // a wake is already pending; the waiter reads the newest state
		}
	}
}

// Watch returns a channel that receives after each change of job id, and
// the function that stops the watch. Watch before the first read of the job,
// so no change falls between the read and the watch.
func (w *JobWatch) Watch(id int64) (chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	if w.subs[id] == nil {
		w.subs[id] = map[chan struct{}]struct{}{}
	}
	w.subs[id][ch] = struct{}{}
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		delete(w.subs[id], ch)
		if len(w.subs[id]) == 0 {
			delete(w.subs, id)
		}
		w.mu.Unlock()
	}
}
