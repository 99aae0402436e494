package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
)

// stripes are the locks that order the writers of one message: stripe i
// covers every message whose ID hashes to i. A stripe is a one-slot
// semaphore, for the goroutines of this Backend, and then flock(2) on its
// lock file, for other Backends and processes.
type stripes struct {
	sem   [numStripes]chan struct{}
	files [numStripes]vfs.Lock
	paths [numStripes]string
}

func openStripes(fsys vfs.FS, dir string, perm fs.FileMode) (*stripes, error) {
	s := &stripes{}
	for i := range s.files {
		s.sem[i] = make(chan struct{}, 1)
		s.paths[i] = filepath.Join(dir, fmt.Sprintf("stripe-%02d", i))
		l, err := fsys.OpenLock(s.paths[i], perm)
		if err != nil {
			s.close()
			return nil, err
		}
		s.files[i] = l
	}
	return s, nil
}

func (s *stripes) close() error {
	var errs []error
	for _, f := range s.files {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}

// tryLock takes stripe i if no one holds it, without waiting, and returns
// the function that releases it.
func (s *stripes) tryLock(i int) (func(), bool) {
	select {
	case s.sem[i] <- struct{}{}:
	default:
		return nil, false
	}
	if ok, err := s.files[i].TryLock(); err != nil || !ok {
		<-s.sem[i]
		return nil, false
	}
	return func() {
		_ = s.files[i].Unlock()
		<-s.sem[i]
	}, true
}

// testHookLockWait, when set by a test, is called when a caller has to
// wait for a stripe held in this process.
var testHookLockWait func()

// lock takes stripe i, waiting until ctx is done. It returns the function
// that releases it.
func (s *stripes) lock(ctx context.Context, i int) (func(), error) {
	select {
	case s.sem[i] <- struct{}{}:
	default:
		if testHookLockWait != nil {
			testHookLockWait()
		}
		select {
		case s.sem[i] <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("failed to acquire message lock: %w", ctx.Err())
		}
	}
	if err := s.flock(ctx, i); err != nil {
		<-s.sem[i]
		return nil, err
	}
	return func() {
		// An unlock error leaves the lock to be released when the file
		// closes; nothing the caller wrote depends on it.
		_ = s.files[i].Unlock()
		<-s.sem[i]
	}, nil
}

// flock takes the file lock of stripe i. flock(2) cannot be interrupted by
// a context, so a contended lock is polled with a growing pause; contention
// only comes from other processes or Backends on the same directory.
func (s *stripes) flock(ctx context.Context, i int) error {
	pause := 20 * time.Microsecond
	var timer *time.Timer
	for {
		ok, err := s.files[i].TryLock()
		if err != nil {
			return fmt.Errorf("failed to acquire message lock: %w", err)
		}
		if ok {
			return nil
		}
		if timer == nil {
			timer = time.NewTimer(pause)
			defer timer.Stop()
		} else {
			timer.Reset(pause)
		}
		select {
		case <-timer.C:
		case <-ctx.Done():
			return fmt.Errorf("failed to acquire message lock %s: %w", s.paths[i], ctx.Err())
		}
		pause = min(pause*2, 2*time.Millisecond)
	}
}
