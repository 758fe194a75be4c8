package commands

import "sync"

// Lanes runs chat requests in order per key (a chat: a group, a channel, a
// DM) and different keys side by side, so "/lock" then "/deploy" in one chat
// never swap while a slow "/status" in one chat makes nobody elsewhere wait.
// A key's worker goroutine exists only while it has work; at most Workers
// requests run at once, and at most Queue wait, after which Do blocks (the
// adapter stops reading, which is what a flood deserves).
type Lanes struct {
	sem chan struct{}

	mu      sync.Mutex
	cond    *sync.Cond // signalled when a queued request leaves the queue
	lanes   map[string]*lane
	queued  int
	maxWait int
	wg      sync.WaitGroup
}

type lane struct {
	queue []job
}

type job struct {
	f    func()
	done chan struct{}
}

// Default sizes of NewLanes(0, 0).
const (
	defaultLaneWorkers = 16
	defaultLaneQueue   = 1024
)

// NewLanes returns Lanes running at most workers requests at once with at
// most queue waiting; 0 picks 16 and 1024.
func NewLanes(workers, queue int) *Lanes {
	if workers <= 0 {
		workers = defaultLaneWorkers
	}
	if queue <= 0 {
		queue = defaultLaneQueue
	}
	l := &Lanes{sem: make(chan struct{}, workers), lanes: map[string]*lane{}, maxWait: queue}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// Do queues f behind the earlier requests of key and returns a channel
// closed once f has run.
func (l *Lanes) Do(key string, f func()) <-chan struct{} {
	j := job{f: f, done: make(chan struct{})}
	l.mu.Lock()
	for l.queued >= l.maxWait {
		l.cond.Wait()
	}
	l.queued++
	ln := l.lanes[key]
	if ln == nil {
		ln = &lane{}
		l.lanes[key] = ln
		l.wg.Add(1)
		go l.run(key, ln)
	}
	ln.queue = append(ln.queue, j)
	l.mu.Unlock()
	return j.done
}

// run works through one key's queue and exits when it is empty.
func (l *Lanes) run(key string, ln *lane) {
	defer l.wg.Done()
	for {
		l.mu.Lock()
		if len(ln.queue) == 0 {
			delete(l.lanes, key)
			l.mu.Unlock()
			return
		}
		j := ln.queue[0]
		ln.queue[0] = job{}
		ln.queue = ln.queue[1:]
		l.queued--
		l.cond.Signal()
		l.mu.Unlock()
		l.sem <- struct{}{}
		j.f()
		<-l.sem
		close(j.done)
	}
}

// Wait returns once everything queued so far has run.
func (l *Lanes) Wait() { l.wg.Wait() }

// Active is how many keys have a worker now (for tests and metrics).
func (l *Lanes) Active() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lanes)
}
