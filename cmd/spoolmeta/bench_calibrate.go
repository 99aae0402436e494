package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// The calibrations of the write workloads.
const (
	// calDurable is the bare system calls of a durable lifecycle, each
	// syncing on its own: per state change a file fsync and an fsync of
	// both directories.
	calDurable = "durable"
	// calFloor is the fewest fsyncs with which every call of the
	// lifecycle is durable when it returns, in a layout of one file per
	// message: a file fsync before each rename, and after it one
	// directory fsync, of the new directory only. The old directory's
	// unlinks are left to the delete, which syncs every directory at
	// once: until then a crash could bring back an older copy, which a
	// reader would have to tell from the newer by its Updated. No design
	// of that layout syncs less, as a new record's data must be durable
	// before its name is, and its name before the call returns.
	calFloor = "floor"
	// calNoSync is the durable calls without any fsync.
	calNoSync = "no-fsync"
	// calOneDir is calNoSync with each message in exactly one directory
	// at every instant, as Performance mode keeps it: a state change
	// renames the old file into the new directory (RENAME_NOREPLACE),
	// swaps the temp file in (RENAME_EXCHANGE) and unlinks the temp
	// name, which then holds the old record, where calNoSync renames the
	// temp file in and unlinks the old file. Its ratio to calNoSync is
	// what that guarantee costs in system calls alone.
	calOneDir = "one-dir"
)

// calibration is the same disk without the library: the bare system
// calls of a lifecycle, synced as its mode says.
type calibration struct {
	root string
	mode string              // calDurable, calFloor, calNoSync or calOneDir
	dirs map[string]*bareDir // state -> its open directory
}

// bareDir is an open directory whose files the calibrations read (see
// read, per platform) and which they fsync.
type bareDir struct {
	f *os.File
}

func openBareDir(dir string) (*bareDir, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	return &bareDir{f: f}, nil
}

func (d *bareDir) sync() error  { return d.f.Sync() }
func (d *bareDir) close() error { return d.f.Close() }

var calibrationStates = []string{"incoming", "active", "deferred"}

func newCalibration(root, mode string) (*calibration, error) {
	c := &calibration{root: root, mode: mode, dirs: map[string]*bareDir{}}
	for _, s := range calibrationStates {
		p := filepath.Join(root, s)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return nil, err
		}
		d, err := openBareDir(p)
		if err != nil {
			c.close()
			return nil, err
		}
		c.dirs[s] = d
	}
	return c, nil
}

func (c *calibration) close() {
	for _, d := range c.dirs {
		d.close()
	}
}

// read reads the message file name of state s.
func (c *calibration) read(s, name string) error {
	_, err := c.dirs[s].read(name, nil)
	return err
}

// syncs reports whether the mode fsyncs.
func (c *calibration) syncs() bool { return c.mode != calNoSync && c.mode != calOneDir }

// syncDir fsyncs the directory of state s, unless the mode syncs nothing.
func (c *calibration) syncDir(s string) error {
	if !c.syncs() {
		return nil
	}
	return c.dirs[s].sync()
}

// syncDirs fsyncs the directories of states at once, one goroutine each.
func (c *calibration) syncDirs(states ...string) error {
	errs := make([]error, len(states))
	var wg sync.WaitGroup
	for i, s := range states {
		wg.Go(func() { errs[i] = c.syncDir(s) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// writeTemp writes data to worker w's temp file in state s's directory,
// fsynced unless the mode syncs nothing, and returns its path.
func (c *calibration) writeTemp(s string, data []byte, w int) (string, error) {
	tmp := filepath.Join(c.root, s, ".tmp."+strconv.Itoa(w))
	return tmp, bareWrite(tmp, data, c.syncs())
}

// writeFile writes data to a temp file in state s's directory, fsyncs it
// unless the mode syncs nothing, and renames it to name.
func (c *calibration) writeFile(s, name string, data []byte, w int) error {
	tmp, err := c.writeTemp(s, data, w)
	if err != nil {
		return err
	}
	return bareRename(tmp, filepath.Join(c.root, s, name))
}

// lifecycle runs the system calls of one message's lifecycle; l receives
// the duration of each of its six operations.
func (c *calibration) lifecycle(i, w int, l *[]time.Duration) error {
	name := benchID(i) + ".json"
	md := benchMessage(i, metastorage.StateIncoming)
	ops := []func() error{
		func() error { return c.put("incoming", name, md, w) },
		func() error { return c.change("incoming", "active", name, &md, w) },
		func() error { return c.read("active", name) },
		func() error { return c.change("active", "deferred", name, &md, w) },
		func() error { return c.change("deferred", "active", name, &md, w) },
		func() error {
			if err := bareRemove(filepath.Join(c.root, "active", name)); err != nil {
				return err
			}
			if c.mode == calFloor {
				return c.syncDirs(calibrationStates...)
			}
			return c.syncDir("active")
		},
	}
	for _, op := range ops {
		if err := timed(l, op); err != nil {
			return fmt.Errorf("calibrate: %w", err)
		}
	}
	return nil
}

// put stores md as a new file: temp write, fsync, rename, directory fsync.
func (c *calibration) put(s, name string, md metastorage.MessageMetadata, w int) error {
	md.Created, md.Updated = time.Now(), time.Now()
	data, err := json.Marshal(md)
	if err != nil {
		return err
	}
	if err := c.writeFile(s, name, data, w); err != nil {
		return err
	}
	return c.syncDir(s)
}

// change moves the message to state to: the record with its new State and
// Updated written to a temp file in to, fsynced, renamed into to; the old
// file unlinked; both directories fsynced. In the floor mode only to is
// fsynced, and before the unlink, so that on any file system the new copy
// is durable before the old one can go. The one-dir mode moves the old
// file first and swaps the temp file in (see calOneDir).
func (c *calibration) change(from, to, name string, md *metastorage.MessageMetadata, w int) error {
	md.Updated = time.Now()
	data, err := json.Marshal(md)
	if err != nil {
		return err
	}
	if c.mode == calOneDir {
		tmp, err := c.writeTemp(to, data, w)
		if err != nil {
			return err
		}
		dst := filepath.Join(c.root, to, name)
		if err := bareRenameNoReplace(filepath.Join(c.root, from, name), dst); err != nil {
			return err
		}
		if err := bareExchange(tmp, dst); err != nil {
			return err
		}
		return bareRemove(tmp)
	}
	if err := c.writeFile(to, name, data, w); err != nil {
		return err
	}
	if c.mode == calFloor {
		if err := c.syncDir(to); err != nil {
			return err
		}
		return bareRemove(filepath.Join(c.root, from, name))
	}
	if err := bareRemove(filepath.Join(c.root, from, name)); err != nil {
		return err
	}
	if err := c.syncDir(to); err != nil {
		return err
	}
	return c.syncDir(from)
}

// benchCalibrate runs the calibration lifecycle of cfg.mode with W workers
// over N messages in dir.
func benchCalibrate(ctx context.Context, dir string, cfg benchRun, lat *latencies) (int, error) {
	c, err := newCalibration(dir, cfg.mode)
	if err != nil {
		return 0, fmt.Errorf("calibrate: %w", err)
	}
	defer c.close()
	err = parallel(cfg.workers, func(w int) error {
		lo, hi := share(cfg.messages, cfg.workers, w)
		var l []time.Duration
		defer func() { lat.add(l) }()
		for i := lo; i < hi; i++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := c.lifecycle(i, w, &l); err != nil {
				return err
			}
		}
		return nil
	})
	return cfg.messages * 6, err
}

// calRead is the calibration of the read workloads: the bare system calls
// that read every message file of the deferred directory once (see
// bareDir), by several goroutines, and no decoding. The backend makes these
// calls and more: iterate also checks that each file read ahead is still
// the message's, and every read decodes the record.
const calRead = "read"

// benchReadCalibrate reads the N message files of the deferred directory
// of dataDir with W workers, after one read of the directory.
func benchReadCalibrate(ctx context.Context, dataDir string, cfg benchRun, lat *latencies) (int, error) {
	dir := filepath.Join(dataDir, metastorage.StateDeferred.String())
	d, err := openBareDir(dir)
	if err != nil {
		return 0, fmt.Errorf("calibrate read: %w", err)
	}
	defer d.close()
	names, err := d.f.Readdirnames(-1)
	if err != nil {
		return 0, fmt.Errorf("calibrate read: %w", err)
	}
	var files []string
	for _, n := range names {
		if strings.HasSuffix(n, ".json") {
			files = append(files, n)
		}
	}
	if len(files) != cfg.messages {
		return 0, fmt.Errorf("calibrate read: %d message files in %s, want %d", len(files), dir, cfg.messages)
	}
	var next atomic.Int64
	err = parallel(cfg.workers, func(int) error {
		buf := make([]byte, 0, 4096)
		var l []time.Duration
		defer func() { lat.add(l) }()
		for {
			i := int(next.Add(1)) - 1
			if i >= len(files) {
				return nil
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			start := time.Now()
			var rerr error
			buf, rerr = d.read(files[i], buf)
			l = append(l, time.Since(start))
			if rerr != nil {
				return fmt.Errorf("calibrate read: %w", rerr)
			}
		}
	})
	return len(files), err
}
