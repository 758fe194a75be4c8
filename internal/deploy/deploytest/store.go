// Package deploytest has hand-written fakes of the engine's seams: an
// in-memory Store that keeps the real transactional rules (locks, state CAS,
// hash-chained audit) with injectable failures, and a scriptable Driver.
package deploytest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
)

// ErrInjected is what an injected failure returns.
var ErrInjected = errors.New("injected store failure")

// Store is an in-memory deploy.Store and audit.Store.
type Store struct {
	mu        sync.Mutex
	jobs      map[int64]*deploy.Job
	approvals map[string]*deploy.Approval
	locks     map[string]deploy.Lock
	releases  map[string][]deploy.Release
	backups   map[string][]deploy.Backup
	events    []audit.Event
	nextJob   int64
	// unreported are created jobs not yet completed by their first update.
	unreported map[int64]bool

	// FailAppend makes every write that carries audit events fail, as a full
	// disk or a broken database would: the state change is not made either.
	FailAppend bool

	// OnChange, if set, hears every stored change of a job as the sqlite
	// store reports it to the outbox (sqlite.DB.ReportJobs): created (prev
	// ""), updated, its lock released. It runs inside the write, under
	// the store's lock, and must not call the store.
	OnChange func(prev deploy.State, j deploy.Job)
}

func (s *Store) changed(prev deploy.State, j *deploy.Job) {
	if s.OnChange != nil {
		s.OnChange(prev, *cloneJob(j))
	}
}

var (
	_ deploy.Store = (*Store)(nil)
	_ audit.Store  = (*Store)(nil)

	_ deploy.BackupStore = (*Store)(nil)
)

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{jobs: map[int64]*deploy.Job{}, approvals: map[string]*deploy.Approval{},
		locks: map[string]deploy.Lock{}, releases: map[string][]deploy.Release{},
		backups: map[string][]deploy.Backup{}, unreported: map[int64]bool{}}
}

// SetFailAppend switches injected audit failures on or off.
func (s *Store) SetFailAppend(v bool) {
	s.mu.Lock()
	s.FailAppend = v
	s.mu.Unlock()
}

// Events returns a copy of the audit rows.
func (s *Store) Events() []audit.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]audit.Event(nil), s.events...)
}

// Verify checks the hash chain of the stored rows.
func (s *Store) Verify() error {
	var v audit.Verifier
	for _, e := range s.Events() {
		e := e
		if err := v.Next(&e); err != nil {
			return err
		}
	}
	return nil
}

// append seals events; the caller holds mu and has checked FailAppend.
func (s *Store) appendLocked(jobID int64, events []*audit.Event) {
	prev, seq := "", int64(0)
	if n := len(s.events); n > 0 {
		prev, seq = s.events[n-1].Hash, s.events[n-1].Seq
	}
	for _, e := range events {
		if e.JobID == 0 {
			e.JobID = jobID
		}
		seq++
		audit.Prepare(prev, seq, time.Now(), e)
		prev = e.Hash
		c := *e
		c.Args = append([]string(nil), e.Args...)
		c.Closes = nil
		s.events = append(s.events, c)
	}
}

func (s *Store) check(events []*audit.Event) error {
	if s.FailAppend && len(events) > 0 {
		return ErrInjected
	}
	return nil
}

func key(app, env string) string { return app + "/" + env }

func cloneJob(j *deploy.Job) *deploy.Job {
	c := *j
	c.Steps = append([]deploy.Step(nil), j.Steps...)
	c.Output = append([]string(nil), j.Output...)
	return &c
}

func (s *Store) takeLock(j *deploy.Job) error {
	k := key(j.App, j.Env)
	if l, ok := s.locks[k]; ok && l.JobID != j.ID {
		held, isJob := s.jobs[l.JobID]
		if j.TakesOver == 0 || l.JobID != j.TakesOver || !isJob || held.State != deploy.Interrupted || held.LockReleasedBy != "" {
			return &deploy.LockedError{Lock: l}
		}
		// The same handover as the sqlite store: the interrupted job's lock
		// passes to the job started from its card.
		held.LockReleasedBy = fmt.Sprintf("%s (job #%d)", j.RequestedBy.User, j.ID)
		s.changed(held.State, held)
	}
	s.locks[k] = deploy.Lock{App: j.App, Env: j.Env, Owner: j.RequestedBy.User, Reason: string(j.Action) + " job", JobID: j.ID, Since: time.Now()}
	return nil
}

func (s *Store) CreateJob(ctx context.Context, j *deploy.Job, a *deploy.Approval, events ...*audit.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(events); err != nil {
		return err
	}
	id := s.nextJob + 1
	j.ID = id
	if j.State == deploy.Queued {
		if err := s.takeLock(j); err != nil {
			j.ID = 0
			return err
		}
	}
	s.nextJob = id
	j.Created = time.Now()
	s.jobs[id] = cloneJob(j)
	s.unreported[id] = true // reported with the update that completes it, as sqlite does
	if a != nil {
		a.JobID = id
		c := *a
		s.approvals[a.ID] = &c
	}
	s.appendLocked(id, events)
	return nil
}

func (s *Store) updateLocked(j *deploy.Job, from []deploy.State) error {
	cur, ok := s.jobs[j.ID]
	if !ok {
		return deploy.ErrNotFound
	}
	okState := false
	for _, f := range from {
		if cur.State == f {
			okState = true
		}
	}
	if !okState {
		return deploy.ErrConflict
	}
	if j.State == deploy.Queued && cur.State != deploy.Queued {
		if err := s.takeLock(j); err != nil {
			return err
		}
	}
	if j.State.Terminal() && j.State != deploy.Interrupted {
		if l, ok := s.locks[key(j.App, j.Env)]; ok && l.JobID == j.ID {
			delete(s.locks, key(j.App, j.Env))
		}
	}
	prev := cur.State
	if s.unreported[j.ID] {
		delete(s.unreported, j.ID)
		prev = ""
	}
	s.jobs[j.ID] = cloneJob(j)
	s.changed(prev, j)
	return nil
}

func (s *Store) UpdateJob(ctx context.Context, j *deploy.Job, from []deploy.State, events ...*audit.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(events); err != nil {
		return err
	}
	if err := s.updateLocked(j, from); err != nil {
		return err
	}
	s.appendLocked(j.ID, events)
	return nil
}

func (s *Store) DecideApproval(ctx context.Context, a *deploy.Approval, j *deploy.Job, events ...*audit.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(events); err != nil {
		return err
	}
	cur, ok := s.approvals[a.ID]
	if !ok {
		return deploy.ErrNotFound
	}
	if cur.State != deploy.ApprovalPending {
		return deploy.ErrConflict
	}
	if err := s.updateLocked(j, []deploy.State{deploy.AwaitingApproval}); err != nil {
		return err
	}
	c := *a
	s.approvals[a.ID] = &c
	s.appendLocked(j.ID, events)
	return nil
}

func (s *Store) Job(ctx context.Context, id int64) (*deploy.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return nil, deploy.ErrNotFound
	}
	return cloneJob(j), nil
}

func (s *Store) Jobs(ctx context.Context, f deploy.JobFilter) ([]*deploy.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*deploy.Job
	for _, j := range s.jobs {
		if f.App != "" && j.App != f.App || f.Env != "" && j.Env != f.Env {
			continue
		}
		if len(f.States) > 0 {
			ok := false
			for _, st := range f.States {
				ok = ok || j.State == st
			}
			if !ok {
				continue
			}
		}
		out = append(out, cloneJob(j))
	}
	sort.Slice(out, func(i, k int) bool { return out[i].ID > out[k].ID })
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

func (s *Store) Approval(ctx context.Context, id string) (*deploy.Approval, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.approvals[id]
	if !ok {
		return nil, deploy.ErrNotFound
	}
	c := *a
	return &c, nil
}

// EditApproval changes a stored approval behind the engine's back, as a
// manual database edit would.
func (s *Store) EditApproval(id string, fn func(*deploy.Approval)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s.approvals[id])
}

func (s *Store) PendingApprovals(ctx context.Context) ([]*deploy.Approval, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*deploy.Approval
	for _, a := range s.approvals {
		if a.State == deploy.ApprovalPending {
			c := *a
			out = append(out, &c)
		}
	}
	sort.Slice(out, func(i, k int) bool { return out[i].JobID < out[k].JobID })
	return out, nil
}

func (s *Store) Lock(ctx context.Context, app, env string) (*deploy.Lock, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.locks[key(app, env)]
	if !ok {
		return nil, deploy.ErrNotFound
	}
	return &l, nil
}

func (s *Store) Locks(ctx context.Context) ([]deploy.Lock, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []deploy.Lock
	for _, l := range s.locks {
		out = append(out, l)
	}
	sort.Slice(out, func(i, k int) bool { return key(out[i].App, out[i].Env) < key(out[k].App, out[k].Env) })
	return out, nil
}

func (s *Store) AcquireLock(ctx context.Context, l deploy.Lock, events ...*audit.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(events); err != nil {
		return err
	}
	if held, ok := s.locks[key(l.App, l.Env)]; ok {
		return &deploy.LockedError{Lock: held}
	}
	s.locks[key(l.App, l.Env)] = l
	s.appendLocked(0, events)
	return nil
}

func (s *Store) ReleaseLock(ctx context.Context, app, env string, check func(deploy.Lock) error, events ...*audit.Event) error {
	return s.releaseLock(app, env, "", check, events)
}

// releaseLock removes the lock of (app, env) if check passes and the lock
// did not change meanwhile; by, if set, is noted on an interrupted holder.
func (s *Store) releaseLock(app, env, by string, check func(deploy.Lock) error, events []*audit.Event) error {
	s.mu.Lock()
	l, ok := s.locks[key(app, env)]
	s.mu.Unlock()
	if !ok {
		return deploy.ErrNotFound
	}
	// check may read the store (job state), so it runs without mu held.
	if err := check(l); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(events); err != nil {
		return err
	}
	if cur, ok := s.locks[key(app, env)]; !ok || cur != l {
		return deploy.ErrConflict
	}
	if j, ok := s.jobs[l.JobID]; ok && by != "" && j.State == deploy.Interrupted {
		j.LockReleasedBy = by
		s.changed(j.State, j)
	}
	delete(s.locks, key(app, env))
	s.appendLocked(0, events)
	return nil
}

func (s *Store) UpdateLock(ctx context.Context, app, env string, update func(*deploy.Lock) error, events ...*audit.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.locks[key(app, env)]
	if !ok {
		return deploy.ErrNotFound
	}
	if err := update(&l); err != nil {
		return err
	}
	if err := s.check(events); err != nil {
		return err
	}
	cur := s.locks[key(app, env)]
	cur.Expires, cur.Reminded = l.Expires, l.Reminded
	s.locks[key(app, env)] = cur
	s.appendLocked(0, events)
	return nil
}

var _ deploy.InterruptedLocks = (*Store)(nil)

// ReleaseLockBy implements deploy.InterruptedLocks.
func (s *Store) ReleaseLockBy(ctx context.Context, app, env, by string, check func(deploy.Lock) error, events ...*audit.Event) error {
	return s.releaseLock(app, env, by, check, events)
}

func (s *Store) PutRelease(ctx context.Context, r deploy.Release) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(r.App, r.Env)
	for i := range s.releases[k] {
		if s.releases[k][i].ID == r.ID {
			s.releases[k][i] = r
			return nil
		}
	}
	s.releases[k] = append(s.releases[k], r)
	return nil
}

func (s *Store) Releases(ctx context.Context, app, env string) ([]deploy.Release, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]deploy.Release(nil), s.releases[key(app, env)]...)
	sort.Slice(out, func(i, k int) bool { return out[i].ID > out[k].ID })
	return out, nil
}

func (s *Store) Append(ctx context.Context, events ...*audit.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(events); err != nil {
		return err
	}
	s.appendLocked(0, events)
	return nil
}

// AuditEvents lists rows newest first, for /audit.
func (s *Store) AuditEvents(ctx context.Context, f audit.Filter) ([]audit.Event, error) {
	evs := s.Events()
	var out []audit.Event
	for i := len(evs) - 1; i >= 0; i-- {
		e := evs[i]
		if f.App != "" && e.App != f.App || f.Env != "" && e.Env != f.Env || f.Actor != "" && e.Actor != f.Actor {
			continue
		}
		out = append(out, e)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out, nil
}

// PutBackup implements deploy.BackupStore.
func (s *Store) PutBackup(ctx context.Context, b deploy.Backup) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(b.App, b.Env)
	b.Files = append([]deploy.BackupFile(nil), b.Files...)
	for i := range s.backups[k] {
		if s.backups[k][i].ID == b.ID {
			s.backups[k][i] = b
			return nil
		}
	}
	s.backups[k] = append(s.backups[k], b)
	return nil
}

// Backups implements deploy.BackupStore: newest first.
func (s *Store) Backups(ctx context.Context, app, env string) ([]deploy.Backup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]deploy.Backup(nil), s.backups[key(app, env)]...)
	sort.SliceStable(out, func(i, k int) bool { return out[i].Created.After(out[k].Created) })
	return out, nil
}

// Backup implements deploy.BackupStore.
func (s *Store) Backup(ctx context.Context, app, env, id string) (*deploy.Backup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.backups[key(app, env)] {
		if b.ID == id {
			return &b, nil
		}
	}
	return nil, deploy.ErrNotFound
}
