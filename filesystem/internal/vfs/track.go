package vfs

import (
	"errors"
	"io/fs"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Tracker is a file system that makes durable, at each SyncAll, exactly
// the files and directories changed through it since the previous
// SyncAll, each with its File's Sync (the platform's full sync): the files
// written through a File it returned, the files truncated or overwritten
// by name, those named by Add, and the directories whose entries were
// created, renamed or removed. It stands in for syncfs(2) where the
// platform lacks it (macOS), and where a spool should not wait for what
// other programs wrote to the same file system.
//
// A file written through it and then closed unsynced stays open until the
// next SyncAll, so that it is synced wherever it has been renamed to, by
// this process or another; once maxHeld are waiting, they are synced in
// the background. Release closes what is still held.
//
// Its methods are safe for concurrent use. Changes made through another
// Tracker or FS are not its own, unless Add names them.
type Tracker struct {
	FS // the read-only and locking calls pass through

	mu    sync.Mutex
	files map[*trackedFile]struct{} // written since their last sync
	held  int                       // of files, those closed by their owner
	paths map[string]struct{}       // regular files changed by name
	dirs  map[string]struct{}       // directories whose entries changed

	released bool // by Release: a file closed later is closed at once
	syncing  bool // a SyncAll waits for the batches: no new one starts

	batches map[chan struct{}]struct{} // background syncs of held files, each closed when done
	errMu   sync.Mutex
	err     error // the first failed sync: final
	syncMu  sync.Mutex
}

// maxHeld is the number of closed files waiting for a sync that starts a
// background sync of them.
const maxHeld = 1024

// maxBatches is the number of background syncs that may run at once;
// beyond it, files are held up to maxBatches*maxHeld, and then the caller
// that closes one syncs a batch itself.
const maxBatches = 2

// NewTracker returns a Tracker on fsys.
func NewTracker(fsys FS) *Tracker {
	return &Tracker{FS: fsys}
}

var (
	_ FS           = (*Tracker)(nil)
	_ SyncFS       = (*Tracker)(nil)
	_ SharedMemory = (*Tracker)(nil)
)

// Unwrap returns the file system t wraps.
func (t *Tracker) Unwrap() FS { return t.FS }

// Add records that the regular file at path changed, so that the next
// SyncAll syncs it if it still exists then.
func (t *Tracker) Add(path string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.addPath(path)
}

// AddDir records that entries of the directory at path changed, so that
// the next SyncAll syncs it if it still exists then.
func (t *Tracker) AddDir(path string) { t.addDirs(path) }

func (t *Tracker) addPath(path string) {
	if t.paths == nil {
		t.paths = make(map[string]struct{})
	}
	t.paths[path] = struct{}{}
}

func (t *Tracker) addDirs(dirs ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dirs == nil {
		t.dirs = make(map[string]struct{})
	}
	for _, d := range dirs {
		t.dirs[d] = struct{}{}
	}
}

// SyncAll implements SyncFS: it syncs what changed through t since the
// previous SyncAll began, files first, then directories, and returns nil
// only if every sync succeeded. dir is not used. A failed sync is final:
// every later SyncAll returns its error too, since what the failure lost
// cannot be known.
func (t *Tracker) SyncAll(File) error {
	t.syncMu.Lock()
	defer t.syncMu.Unlock()
	t.mu.Lock()
	t.syncing = true
	t.waitBatches()
	files, paths, dirs := t.files, t.paths, t.dirs
	t.files, t.paths, t.dirs, t.held, t.syncing = nil, nil, nil, 0, false
	for f := range files {
		f.queued.Store(false)
	}
	t.mu.Unlock()
	var syncs []func() error
	for f := range files {
		syncs = append(syncs, f.syncHeld)
	}
	for p := range paths {
		syncs = append(syncs, func() error { return ignoreGone(syncClose(t.FS.Open(p))) })
	}
	err := parallel(syncs)
	syncs = syncs[:0]
	for d := range dirs {
		syncs = append(syncs, func() error { return ignoreGone(syncClose(t.FS.OpenDir(d))) })
	}
	return t.fail(errors.Join(err, parallel(syncs)))
}

// fail records err, if not nil, as final, and returns the final error.
func (t *Tracker) fail(err error) error {
	t.errMu.Lock()
	defer t.errMu.Unlock()
	if t.err == nil {
		t.err = err
	}
	return t.err
}

// Release closes the files t holds without syncing them: their data stays
// written, as after a close, and a later SyncAll no longer syncs it.
func (t *Tracker) Release() error {
	t.mu.Lock()
	t.released = true
	t.waitBatches()
	files := t.files
	t.files, t.held = nil, 0
	for f := range files {
		f.queued.Store(false)
	}
	t.mu.Unlock()
	var errs []error
	for f := range files {
		f.mu.Lock()
		if f.closed && !f.released {
			f.released = true
			errs = append(errs, f.File.Close())
		}
		f.mu.Unlock()
	}
	return errors.Join(errs...)
}

// syncWorkers is the number of syncs a Tracker runs at once: the file
// system can commit concurrent syncs together.
const syncWorkers = 8

// parallel calls each of fns, syncWorkers at a time, and returns their
// errors joined.
func parallel(fns []func() error) error {
	errs := make([]error, len(fns))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(syncWorkers, len(fns)) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(fns)); i = next.Add(1) - 1 {
				errs[i] = fns[i]()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitBatches waits, with t.mu held, until no background batch runs; it
// unlocks t.mu while it waits. The caller has set t.syncing or
// t.released, so that no new batch starts.
func (t *Tracker) waitBatches() {
	for len(t.batches) > 0 {
		var running []chan struct{}
		for c := range t.batches {
			running = append(running, c)
		}
		t.mu.Unlock()
		for _, done := range running {
			<-done
		}
		t.mu.Lock()
	}
}

// ignoreGone returns nil for an error that says the file is no longer
// there: removed, nothing of it needs syncing.
func ignoreGone(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func syncClose(f File, err error) error {
	if err != nil {
		return err
	}
	err = f.Sync()
	return errors.Join(err, f.Close())
}

// dirty records that f was written.
func (t *Tracker) dirty(f *trackedFile) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f.queued.Load() {
		return
	}
	f.queued.Store(true)
	if t.files == nil {
		t.files = make(map[*trackedFile]struct{})
	}
	t.files[f] = struct{}{}
}

// forget drops f, closed with every write synced, from the files to sync.
func (t *Tracker) forget(f *trackedFile) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f.queued.Load() {
		delete(t.files, f)
		f.queued.Store(false)
	}
}

// hold keeps f, closed by its owner with data unsynced, until a sync; once
// maxHeld are held, it syncs them in the background. After Release, it
// closes f at once.
func (t *Tracker) hold(f *trackedFile) error {
	t.mu.Lock()
	if t.released {
		t.mu.Unlock()
		f.mu.Lock()
		defer f.mu.Unlock()
		f.released = true
		return f.File.Close()
	}
	if !f.queued.Load() { // taken by a SyncAll that has not synced it yet
		t.mu.Unlock()
		return nil
	}
	t.held++
	busy := len(t.batches) >= maxBatches || t.syncing
	if t.held < maxHeld || busy && t.held < maxBatches*maxHeld {
		t.mu.Unlock()
		return nil
	}
	var batch []*trackedFile
	for g := range t.files {
		if g.isClosed() {
			batch = append(batch, g)
			delete(t.files, g)
			g.queued.Store(false)
		}
	}
	t.held = 0
	// A SyncAll waits for the batch, whoever syncs it.
	done := make(chan struct{})
	if t.batches == nil {
		t.batches = make(map[chan struct{}]struct{})
	}
	t.batches[done] = struct{}{}
	t.mu.Unlock()
	if !busy {
		go t.runBatch(batch, done)
		return nil
	}
	// The syncs fall behind: this caller syncs a batch of its own.
	linked, err := prune(batch)
	err = t.fail(errors.Join(err, syncFiles(linked)))
	t.mu.Lock()
	delete(t.batches, done)
	t.mu.Unlock()
	close(done)
	return err
}

// runBatch closes the files of batch that no name leads to any more, and
// syncs the others if they are many, or else holds them again.
func (t *Tracker) runBatch(batch []*trackedFile, done chan struct{}) {
	defer close(done)
	linked, err := prune(batch)
	if len(linked) >= maxHeld/2 {
		err = errors.Join(err, syncFiles(linked))
		linked = nil
	}
	t.fail(err)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.released {
		for _, g := range linked {
			t.fail(g.release())
		}
		linked = nil
	}
	for _, g := range linked {
		if t.files == nil {
			t.files = make(map[*trackedFile]struct{})
		}
		t.files[g] = struct{}{}
		g.queued.Store(true)
	}
	t.held += len(linked)
	delete(t.batches, done)
}

// prune closes, unsynced, the files that no name leads to any more, and
// returns the others.
func prune(files []*trackedFile) (linked []*trackedFile, err error) {
	var errs []error
	for _, g := range files {
		if g.unlinked() {
			errs = append(errs, g.release())
		} else {
			linked = append(linked, g)
		}
	}
	return linked, errors.Join(errs...)
}

// syncFiles syncs the files, and closes those their owners closed.
func syncFiles(files []*trackedFile) error {
	syncs := make([]func() error, len(files))
	for i, g := range files {
		syncs[i] = g.syncHeld
	}
	return parallel(syncs)
}

// trackedFile is a File that t returned for writing. Its writes and
// syncs take no lock, so that appends to a journal go on during its sync.
type trackedFile struct {
	File
	t       *Tracker
	written atomic.Uint64 // writes so far
	synced  atomic.Uint64 // writes made durable by a Sync
	queued  atomic.Bool   // in t.files; changed under t.mu

	mu       sync.Mutex
	closed   bool // by its owner
	released bool // the underlying File is closed
}

func (t *Tracker) track(f File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return &trackedFile{File: f, t: t}, nil
}

func (f *trackedFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	if n > 0 {
		f.written.Add(1)
		if !f.queued.Load() {
			f.t.dirty(f)
		}
	}
	return n, err
}

// Sync syncs the file; a file its owner syncs before each close is never
// held. Its owner calls it before Close, so the file is not released
// under it.
func (f *trackedFile) Sync() error {
	w := f.written.Load()
	if err := f.File.Sync(); err != nil {
		return err
	}
	for {
		s := f.synced.Load()
		if s >= w || f.synced.CompareAndSwap(s, w) {
			return nil
		}
	}
}

// unlinked reports whether the file is known to have no name left: nothing
// of it can then be found after a crash, and its sync is skipped. Files
// whose link count is unknown (a Mem's) are synced.
func (f *trackedFile) unlinked() bool {
	fi, err := f.File.Stat()
	if err != nil {
		return false
	}
	n, ok := linkCount(fi)
	return ok && n == 0
}

// clean reports whether every write has been synced.
func (f *trackedFile) clean() bool { return f.synced.Load() >= f.written.Load() }

// Close closes the file, unless it holds writes not yet synced: then t
// holds it open until they are.
func (f *trackedFile) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return &fs.PathError{Op: "close", Path: f.Name(), Err: fs.ErrClosed}
	}
	f.closed = true
	if f.clean() {
		f.released = true
		f.mu.Unlock()
		f.t.forget(f)
		return f.File.Close()
	}
	f.mu.Unlock()
	return f.t.hold(f)
}

func (f *trackedFile) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

// release closes the underlying File, unsynced, if it is not closed yet.
func (f *trackedFile) release() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released {
		return nil
	}
	f.released = true
	return f.File.Close()
}

// syncHeld syncs f, and closes it if its owner has.
func (f *trackedFile) syncHeld() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released {
		return nil
	}
	var err error
	if !f.clean() && !f.unlinked() {
		err = f.Sync()
	}
	if f.closed {
		f.released = true
		err = errors.Join(err, f.File.Close())
	}
	return err
}

// The calls that change names record the directories they change, once
// the change is made: a SyncAll that began before it may not cover it. A
// failed change is recorded too, in case it was made in part.

// changed records dirs as changed, after the call that returned err.
func (t *Tracker) changed(err error, dirs ...string) error {
	t.addDirs(dirs...)
	return err
}

// Create implements FS.
func (t *Tracker) Create(name string, perm fs.FileMode) (File, error) {
	f, err := t.track(t.FS.Create(name, perm))
	if err == nil {
		t.addDirs(filepath.Dir(name))
	}
	return f, err
}

// CreateIn implements FS.
func (t *Tracker) CreateIn(dir File, name string, perm fs.FileMode) (File, error) {
	f, err := t.track(t.FS.CreateIn(dir, name, perm))
	if err == nil {
		t.addDirs(dir.Name())
	}
	return f, err
}

// OpenAppend implements FS.
func (t *Tracker) OpenAppend(name string, perm fs.FileMode) (File, error) {
	f, err := t.track(t.FS.OpenAppend(name, perm))
	if err == nil {
		t.addDirs(filepath.Dir(name)) // it may have created the file
	}
	return f, err
}

// OpenAppendIn implements FS.
func (t *Tracker) OpenAppendIn(dir File, name string, perm fs.FileMode) (File, error) {
	f, err := t.track(t.FS.OpenAppendIn(dir, name, perm))
	if err == nil {
		t.addDirs(dir.Name())
	}
	return f, err
}

// Rename implements FS.
func (t *Tracker) Rename(oldname, newname string) error {
	return t.changed(t.FS.Rename(oldname, newname), filepath.Dir(oldname), filepath.Dir(newname))
}

// RenameNoReplace implements FS.
func (t *Tracker) RenameNoReplace(oldname, newname string) error {
	return t.changed(t.FS.RenameNoReplace(oldname, newname), filepath.Dir(oldname), filepath.Dir(newname))
}

// Exchange implements FS.
func (t *Tracker) Exchange(oldname, newname string) error {
	return t.changed(t.FS.Exchange(oldname, newname), filepath.Dir(oldname), filepath.Dir(newname))
}

// RenameIn implements FS.
func (t *Tracker) RenameIn(oldDir File, oldname string, newDir File, newname string, how RenameHow) error {
	return t.changed(t.FS.RenameIn(oldDir, oldname, newDir, newname, how), oldDir.Name(), newDir.Name())
}

// Remove implements FS.
func (t *Tracker) Remove(name string) error {
	return t.changed(t.FS.Remove(name), filepath.Dir(name))
}

// RemoveIn implements FS.
func (t *Tracker) RemoveIn(dir File, name string) error {
	return t.changed(t.FS.RemoveIn(dir, name), dir.Name())
}

// Mkdir implements FS.
func (t *Tracker) Mkdir(name string, perm fs.FileMode) error {
	return t.changed(t.FS.Mkdir(name, perm), filepath.Dir(name))
}

// MkdirIn implements FS.
func (t *Tracker) MkdirIn(dir File, name string, perm fs.FileMode) error {
	return t.changed(t.FS.MkdirIn(dir, name, perm), dir.Name())
}

// Truncate implements FS.
func (t *Tracker) Truncate(name string, size int64) error {
	err := t.FS.Truncate(name, size)
	t.Add(name)
	return err
}

// TruncateIn implements FS.
func (t *Tracker) TruncateIn(dir File, name string, size int64) error {
	err := t.FS.TruncateIn(dir, name, size)
	t.Add(dir.Name() + string(filepath.Separator) + name)
	return err
}

// Overwrite implements FS.
func (t *Tracker) Overwrite(name string, off int64, p []byte) error {
	err := t.FS.Overwrite(name, off, p)
	t.Add(name)
	return err
}

// OverwriteIn implements FS.
func (t *Tracker) OverwriteIn(dir File, name string, off int64, p []byte) error {
	err := t.FS.OverwriteIn(dir, name, off, p)
	t.Add(dir.Name() + string(filepath.Separator) + name)
	return err
}

// SetModTimeIn implements ModTimeSetter if the wrapped file system does,
// and otherwise fails with an error wrapping errors.ErrUnsupported. The
// file is opened first and held as a written one, so that the next SyncAll
// syncs the new time wherever the file has been renamed to.
func (t *Tracker) SetModTimeIn(dir File, name string, mtime time.Time) error {
	ms, ok := t.FS.(ModTimeSetter)
	if !ok {
		return &fs.PathError{Op: "utimensat", Path: dir.Name() + string(filepath.Separator) + name, Err: errors.ErrUnsupported}
	}
	f, err := t.track(t.FS.OpenIn(dir, name))
	if err != nil {
		return err
	}
	err = ms.SetModTimeIn(dir, name, mtime)
	tf := f.(*trackedFile)
	tf.written.Add(1) // also after a failure, which may have set it
	t.dirty(tf)
	return errors.Join(err, tf.Close())
}

// MapShared implements SharedMemory if the wrapped file system does, and
// otherwise fails with an error wrapping errors.ErrUnsupported.
func (t *Tracker) MapShared(name string, size int, perm fs.FileMode) ([]byte, func() error, error) {
	if sm, ok := t.FS.(SharedMemory); ok {
		return sm.MapShared(name, size, perm)
	}
	return nil, nil, &fs.PathError{Op: "mmap", Path: name, Err: errors.ErrUnsupported}
}

// MapSharedIn implements SharedMemory as MapShared does.
func (t *Tracker) MapSharedIn(dir File, name string, size int, perm fs.FileMode) ([]byte, func() error, error) {
	if sm, ok := t.FS.(SharedMemory); ok {
		return sm.MapSharedIn(dir, name, size, perm)
	}
	return nil, nil, &fs.PathError{Op: "mmap", Path: dir.Name() + string(filepath.Separator) + name, Err: errors.ErrUnsupported}
}
