package filesystem

import (
	"fmt"
	"sync"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
)

// groupSync fsyncs one file or directory (a state directory, or the
// journal) for many concurrent callers. A caller needs an fsync that
// started after its own change; one that was already running does not
// cover it. Callers that arrive while an fsync runs wait for the next one,
// which one of them starts for all: group commit.
type groupSync struct {
	f    vfs.File
	path string
	run  func() error // the fsync itself; fsync unless set

	fsyncMu sync.Mutex // serialises the fsyncs of f

	mu      sync.Mutex
	cond    sync.Cond
	started uint64 // fsyncs started
	done    uint64 // fsyncs finished, which run one at a time
	running bool
	waiting int   // callers waiting for an fsync to start or end
	err     error // the first failure; final
}

func newGroupSync(f vfs.File, path string) *groupSync {
	d := &groupSync{f: f, path: path}
	d.cond.L = &d.mu
	return d
}

// sync returns once an fsync of the directory that started after the call
// has finished, or with the error of a failed fsync.
func (d *groupSync) sync() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	// An fsync running now may have started before our change.
	need := d.started + 1
	for d.done < need && d.err == nil {
		if d.running {
			d.waiting++
			d.cond.Wait()
			d.waiting--
			continue
		}
		d.running = true
		d.started++
		n := d.started
		d.mu.Unlock()
		run := d.run
		if run == nil {
			run = d.fsync
		}
		err := run()
		d.mu.Lock()
		d.running = false
		d.done = n
		if err != nil && d.err == nil {
			d.err = fmt.Errorf("fsync %s: %w", d.path, err)
		}
		d.cond.Broadcast()
	}
	return d.err
}

// fsync fsyncs f, whoever asks: sync, or another directory's sync that
// must make this one durable first. The kernel reports a failed write-back
// to one fsync of a file only, and a later one succeeds, so fsyncs of f
// run one at a time and the first failure is final for every caller, also
// those of sync.
func (d *groupSync) fsync() error {
	d.fsyncMu.Lock()
	defer d.fsyncMu.Unlock()
	d.mu.Lock()
	err := d.err
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if err := d.f.Sync(); err != nil {
		d.mu.Lock()
		if d.err == nil {
			d.err = fmt.Errorf("fsync %s: %w", d.path, err)
		}
		err = d.err
		d.mu.Unlock()
		return err
	}
	return nil
}

func (d *groupSync) close() error { return d.f.Close() }
