package filesystem

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/name"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/wal"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// Where the platform has no syncfs (macOS), or a test or benchmark asks
// for it on Linux (config.trackSync), a Backend's file system is a
// vfs.Tracker: Performance mode's flush, Hybrid's checkpoint and the
// recovery's sync make durable the files and directories the Backend
// changed since the last sync, each with a full sync, instead of the whole
// file system. What other processes changed is added where the sync must
// cover it: the files a journal's records name, before a checkpoint
// empties the journal, and the message files of displaced records that a
// recovery removes.

// tracking wraps cfg.fs in a vfs.Tracker if the Backend syncs what it
// changed, one by one: if the configuration asks for it, or if cfg.fs is
// the OS's file system, or wraps it, on a platform without syncfs. It
// returns the Tracker, or nil.
func tracking(cfg *config) *vfs.Tracker {
	if cfg.readOnly || !(cfg.trackSync || !platformSyncFS && baseFS(cfg.fs) == vfs.OS) {
		return nil
	}
	t := vfs.NewTracker(cfg.fs)
	cfg.fs = t
	return t
}

// baseFS returns the file system that fsys wraps, through every wrapper
// with an Unwrap method.
func baseFS(fsys vfs.FS) vfs.FS {
	for {
		u, ok := fsys.(interface{ Unwrap() vfs.FS })
		if !ok {
			return fsys
		}
		fsys = u.Unwrap()
	}
}

// trackLayout adds every directory of the layout to the next sync, for
// the changes of other processes in them.
func (b *Backend) trackLayout() {
	b.tracker.AddDir(b.dir)
	for _, d := range b.states {
		b.tracker.AddDir(d)
	}
}

// trackJournal adds to the next sync the message files that the records
// of the journal at path put in place, whichever process wrote them, and
// every directory of the layout: a checkpoint empties the journal once
// they are durable. It reads the records unless a replay has, and passes
// them. The caller holds every stripe lock.
func (b *Backend) trackJournal(path string, records []wal.Record) error {
	if b.tracker == nil {
		return nil
	}
	if records == nil {
		buf, err := b.readJournal(path)
		if err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		records, _ = wal.Parse(buf)
	}
	for _, r := range records {
		if r.Kind == wal.KindPut {
			b.tracker.Add(b.path(r.State, r.File))
		}
	}
	b.tracker.Add(path)
	b.trackLayout()
	return nil
}

// trackDisplacedOwners adds to the next sync the message files whose
// older records the displaced files tmps hold, in every state, and every
// directory of the layout: the process that wrote the new records may
// have died before it synced them.
func (b *Backend) trackDisplacedOwners(tmps []tempRef) {
	if b.tracker == nil {
		return
	}
	for _, t := range tmps {
		md, err := readRecord(b.fs, b.path(t.state, t.name), t.state)
		if err != nil {
			continue
		}
		file, err := name.Encode(md.ID)
		if err != nil {
			continue
		}
		for _, s := range metastorage.States() {
			b.tracker.Add(b.path(s, file))
		}
	}
	b.trackLayout()
}

// probeRenames checks, in the directory dir, that the file system renames
// without replacing and exchanges two names atomically, by doing both on
// two files it then removes. Without no-replace renames no mode keeps its
// guarantees; without exchange, Performance mode (see Backend.replace).
func probeRenames(fsys vfs.FS, dir string, mode Mode) error {
	a := filepath.Join(dir, ".probe-rename-a")
	z := filepath.Join(dir, ".probe-rename-b")
	defer fsys.Remove(a)
	defer fsys.Remove(z)
	for _, p := range []string{a, z} {
		fsys.Remove(p) // left by a probe that was cut off
		f, err := fsys.Create(p, 0o600)
		if err != nil {
			return err
		}
		f.Close()
	}
	if err := fsys.RenameNoReplace(a, z); err == nil || !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("the file system cannot rename without replacing (renameatx_np RENAME_EXCL: %v), which every mode needs: %w", err, errors.ErrUnsupported)
	}
	if err := fsys.Exchange(a, z); err != nil && mode == Performance {
		return fmt.Errorf("the file system cannot exchange two names (renameatx_np RENAME_SWAP: %v; HFS+ lacks it), which Performance mode needs to keep a record's previous version until its new one is durable; use Standard or Hybrid mode, or an APFS volume: %w", err, errors.ErrUnsupported)
	}
	return nil
}
