package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// calibration is the same disk without the library: the bare system
// calls of a durable lifecycle, each syncing on its own (sync), or the
// same calls without any fsync.
type calibration struct {
	root string
	sync bool
	dirs map[string]*os.File // state directory -> open handle, for fsync
}

var calibrationStates = []string{"incoming", "active", "deferred"}

func newCalibration(root string, sync bool) (*calibration, error) {
	c := &calibration{root: root, sync: sync, dirs: map[string]*os.File{}}
	for _, s := range calibrationStates {
		p := filepath.Join(root, s)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return nil, err
		}
		d, err := os.Open(p)
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
		d.Close()
	}
}

// syncDir fsyncs the directory of state s, in the durable variant.
func (c *calibration) syncDir(s string) error {
	if !c.sync {
		return nil
	}
	return c.dirs[s].Sync()
}

// writeFile writes data to a temp file in state s's directory, fsyncs it
// in the durable variant, and renames it to name.
func (c *calibration) writeFile(s, name string, data []byte, w int) error {
	tmp := filepath.Join(c.root, s, ".tmp."+strconv.Itoa(w))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && c.sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(c.root, s, name))
}

// lifecycle runs the system calls of one message's lifecycle; l receives
// the duration of each of its six operations.
func (c *calibration) lifecycle(i, w int, l *[]time.Duration) error {
	name := benchID(i) + ".json"
	md := benchMessage(i, metastorage.StateIncoming)
	ops := []func() error{
		func() error { return c.put("incoming", name, md, w) },
		func() error { return c.change("incoming", "active", name, &md, w) },
		func() error { _, err := os.ReadFile(filepath.Join(c.root, "active", name)); return err },
		func() error { return c.change("active", "deferred", name, &md, w) },
		func() error { return c.change("deferred", "active", name, &md, w) },
		func() error {
			if err := os.Remove(filepath.Join(c.root, "active", name)); err != nil {
				return err
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
// file unlinked; both directories fsynced.
func (c *calibration) change(from, to, name string, md *metastorage.MessageMetadata, w int) error {
	md.Updated = time.Now()
	data, err := json.Marshal(md)
	if err != nil {
		return err
	}
	if err := c.writeFile(to, name, data, w); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(c.root, from, name)); err != nil {
		return err
	}
	if err := c.syncDir(to); err != nil {
		return err
	}
	return c.syncDir(from)
}

// benchCalibrate runs the calibration lifecycle with W workers over N
// messages in dir.
func benchCalibrate(dir string, sync bool, cfg benchRun, lat *latencies) (int, error) {
	c, err := newCalibration(dir, sync)
	if err != nil {
		return 0, fmt.Errorf("calibrate: %w", err)
	}
	defer c.close()
	err = parallel(cfg.workers, func(w int) error {
		lo, hi := share(cfg.messages, cfg.workers, w)
		var l []time.Duration
		defer func() { lat.add(l) }()
		for i := lo; i < hi; i++ {
			if err := c.lifecycle(i, w, &l); err != nil {
				return err
			}
		}
		return nil
	})
	return cfg.messages * 6, err
}
