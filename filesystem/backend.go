package filesystem

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/name"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// Backend is a metastorage.StateCounterBackend on one directory. It is safe
// for concurrent use, and several Backends, in one process or in several,
// may share one directory.
type Backend struct {
	cfg    config
	fs     vfs.FS
	log    *slog.Logger
	dir    string
	states [metastorage.NumStates]string // state directory paths
	dfs    *dirFS                        // resolves the paths of the layout; nil if read-only
	dirs   [metastorage.NumStates]*groupSync
	// dirLocks serialise the creates of temp files per state directory. A
	// create holds the directory's kernel lock while looking for a free
	// inode; waiters park here instead of spinning on that lock.
	dirLocks [metastorage.NumStates]sync.Mutex
	locks    *stripes
	// changes counts the changes of message files, for readers that check
	// a file read earlier is still current; nil if not tracked.
	changes *changes
	counts  counter
	recent  recent
	idx     *index // nil without change counters
	order   moveOrder
	stats   stats
	// nanoTimes is set if the file system keeps a file's modification
	// time to the nanosecond, as a move by one rename needs (see
	// moveFile); never if read-only.
	nanoTimes bool
	// ordered is set in Standard mode if the file system journals its
	// metadata in order (see journalsInOrder): it then syncs only the
	// directory a message's file was renamed into, which commits its time
	// and both names too, and keeps no order between directories
	// (moveOrder); never if read-only.
	ordered bool

	// tracker syncs what the Backend changed, where it does not sync the
	// whole file system (see tracksync.go); nil otherwise.
	tracker *vfs.Tracker

	jnl   atomic.Pointer[journal] // the directory's journal, once found
	jnlMu sync.Mutex              // serialises opening it
	kick  chan struct{}           // asks the checkpointer for a checkpoint now

	displaced displaced     // Performance mode's displaced records, until a flush
	syncMu    sync.Mutex    // serialises syncfs calls (see syncAll)
	syncsOK   atomic.Uint64 // the syncfs calls of this Backend that succeeded

	// ops is held shared by every call and exclusively by Close.
	ops    sync.RWMutex
	closed atomic.Bool
	// failed is set when an fsync failed: what the kernel dropped cannot be
	// known, so the Backend refuses further writes until it is reopened.
	failed atomic.Pointer[error]
	// replaced is set when a directory of the layout was found replaced
	// after open (see checkDirs); the Backend then refuses writes.
	replaced atomic.Pointer[error]

	recoverMu sync.Mutex // serialises recovery scans
	stop      context.CancelFunc
	bg        sync.WaitGroup // the background count and recovery scan
	cp        sync.WaitGroup // the checkpointer
}

var _ metastorage.StateCounterBackend = (*Backend)(nil)

// ErrReadOnly is returned by the calls that would change the directory of
// a Backend opened with WithReadOnly.
var ErrReadOnly = errors.New("backend is read-only")

// errUnsupportedPlatform is returned by open where the platform lacks a
// guarantee the backend relies on.
var errUnsupportedPlatform = fmt.Errorf("the filesystem backend runs on Linux and macOS only: it relies on POSIX file semantics that Windows lacks (renaming or removing a file that another process has open, an atomic exchange of two names, calls relative to an open directory); on Windows, use the postgres backend, or run under WSL 2 with the directory on its Linux file system: %w", errors.ErrUnsupported)

func open(cfg config) (*Backend, error) {
	probe := false
	if cfg.fs == nil {
		if !platformSupported {
			return nil, fmt.Errorf("open %s: %w", cfg.dir, errUnsupportedPlatform)
		}
		cfg.fs = vfs.OS
		probe = platformProbeRenames && !cfg.readOnly
	}
	tracker := tracking(&cfg)
	if cfg.dir == "" {
		return nil, errors.New("open: empty directory name")
	}
	dir, err := filepath.Abs(cfg.dir)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", cfg.dir, err)
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	b := &Backend{cfg: cfg, fs: cfg.fs, dir: dir, log: cfg.logger, tracker: tracker}
	b.cfg.fs = nil // b.fs is the one file system from here on
	b.recent.now = time.Now
	if b.log == nil {
		b.log = slog.Default()
	}
	if err := b.openDirs(); err != nil {
		b.closeFiles()
		return nil, err
	}
	if probe {
		if err := probeRenames(cfg.fs, dir, cfg.mode()); err != nil {
			b.closeFiles()
			return nil, fmt.Errorf("open %s: %w", dir, err)
		}
	}
	if !cfg.readOnly && cfg.mode() == Standard {
		b.ordered = metadataOrdered(cfg, b.states[:])
	}
	if budget := cmp.Or(cfg.indexBudget, DefaultIndexBudget); b.changes != nil && budget > 0 {
		b.idx = &index{budget: budget, now: time.Now}
	}
	ctx, stop := context.WithCancel(context.Background())
	b.counts.start(b.changes, ctx.Done())
	b.healOdd()
	b.stop = stop
	if !cfg.readOnly {
		if err := b.startJournal(ctx); err != nil {
			stop()
			b.closeFiles()
			return nil, fmt.Errorf("open %s: %w", dir, err)
		}
		b.kick = make(chan struct{}, 1)
		var every time.Duration // a durable mode syncs when the journal fills
		if b.keepsDisplaced() {
			every = cmp.Or(cfg.flushEvery, flushEvery)
		}
		b.cp.Go(func() { b.checkpointer(ctx, every) })
	}
	b.bg.Go(func() { b.background(ctx) })
	return b, nil
}

// openDirs creates what is missing of the layout and opens the state
// directories and lock stripes.
func (b *Backend) openDirs() error {
	if b.cfg.readOnly {
		return b.openReadOnly()
	}
	if err := b.ensureDir(b.dir); err != nil {
		return err
	}
	top, err := b.fs.OpenDir(b.dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", b.dir, err)
	}
	dfs, err := newDirFS(b.fs, b.dir, top)
	b.dfs = dfs
	if err != nil {
		return fmt.Errorf("open %s: %w", b.dir, err)
	}
	b.fs = dfs
	for _, s := range metastorage.States() {
		b.states[s] = filepath.Join(b.dir, s.String())
		if err := b.ensureDir(b.states[s]); err != nil {
			return err
		}
		f, err := b.fs.OpenDir(b.states[s])
		if err != nil {
			return fmt.Errorf("open %s: %w", b.dir, err)
		}
		b.dirs[s] = newGroupSync(f, b.states[s])
		b.dirs[s].run = func() error {
			// A journal that commits metadata in order commits a
			// rename whole: no order to keep between directories.
			if b.ordered {
				return b.dirs[s].fsync()
			}
			return b.order.sync(s, &b.dirs)
		}
		if err := dfs.add(b.states[s], f); err != nil {
			return fmt.Errorf("open %s: %w", b.dir, err)
		}
	}
	lockDir := filepath.Join(b.dir, ".locks")
	if err := b.ensureDir(lockDir); err != nil {
		return err
	}
	ld, err := b.fs.OpenDir(lockDir)
	if err != nil {
		return fmt.Errorf("open %s: %w", b.dir, err)
	}
	dfs.own = append(dfs.own, ld)
	if err := dfs.add(lockDir, ld); err != nil {
		return fmt.Errorf("open %s: %w", b.dir, err)
	}
	l, err := openStripes(b.fs, lockDir, b.cfg.fileMode)
	if err != nil {
		return fmt.Errorf("open %s: %w", b.dir, err)
	}
	b.locks = l
	b.nanoTimes = keepsNanoTimes(b.fs, ld, filepath.Base(l.paths[0]))
	ch, err := openChanges(b.fs, lockDir, b.cfg.fileMode)
	if err != nil {
		return fmt.Errorf("open %s: %w", b.dir, err)
	}
	b.changes = ch
	if b.durable() {
		// Make the layout itself durable: a state directory created now
		// must not vanish with the first message stored in it.
		if err := syncPath(b.fs, b.dir); err != nil {
			return fmt.Errorf("open %s: %w", b.dir, err)
		}
	}
	return nil
}

// keepsNanoTimes reports whether the file system of the open directory dir
// keeps a file's modification time to the nanosecond: it sets a time of an
// odd nanosecond on the file name in dir, a lock file whose time nothing
// reads, and reads it back. File systems that keep coarser times (FAT,
// ext4 with small inodes, some network file systems) round it.
func keepsNanoTimes(fsys vfs.FS, dir vfs.File, name string) bool {
	ms, ok := fsys.(vfs.ModTimeSetter)
	if !ok {
		return false
	}
	now := time.Now()
	t := time.Unix(now.Unix(), int64(now.Nanosecond()|1))
	if ms.SetModTimeIn(dir, name, t) != nil {
		return false
	}
	fi, err := fsys.LstatIn(dir, name)
	return err == nil && fi.ModTime().Equal(t)
}

// metadataOrdered reports whether the file system of cfg journals the
// metadata of the directories dirs in order: as cfg.ordered says if set,
// and otherwise if it is the OS's and every directory's file system does.
func metadataOrdered(cfg config, dirs []string) bool {
	if cfg.ordered != nil {
		return *cfg.ordered
	}
	if baseFS(cfg.fs) != vfs.OS {
		return false
	}
	for _, d := range dirs {
		if !journalsInOrder(d) {
			return false
		}
	}
	return true
}

// openReadOnly opens the state directories of an existing metadata
// directory, creating nothing.
func (b *Backend) openReadOnly() error {
	for _, s := range metastorage.States() {
		b.states[s] = filepath.Join(b.dir, s.String())
		f, err := b.fs.OpenDir(b.states[s])
		if err != nil {
			return fmt.Errorf("open %s: not a metadata directory: %w", b.dir, err)
		}
		b.dirs[s] = newGroupSync(f, b.states[s])
	}
	return nil
}

// ensureDir creates dir if it is missing, with its missing parents, and
// fails if it is anything but a directory: a symbolic link in place of a
// state directory is refused, not followed.
func (b *Backend) ensureDir(dir string) error {
	fi, err := b.fs.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		err = b.makeDir(dir)
		if errors.Is(err, fs.ErrExist) { // created meanwhile by another process
			fi, err = b.fs.Lstat(dir)
		} else {
			return wrapOpen(dir, err)
		}
	}
	if err != nil {
		return wrapOpen(dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("open %s: %s is not a directory (mode %s)", b.dir, dir, fi.Mode().Type())
	}
	return nil
}

// makeDir creates the directory dir, first creating its missing parents
// as os.MkdirAll does. Except in Performance mode, each directory it
// creates is durable once it returns: it syncs the directory's parent.
func (b *Backend) makeDir(dir string) error {
	err := b.fs.Mkdir(dir, b.cfg.dirMode)
	if parent := filepath.Dir(dir); errors.Is(err, fs.ErrNotExist) && parent != dir {
		if err = b.makeDir(parent); err == nil || errors.Is(err, fs.ErrExist) {
			err = b.fs.Mkdir(dir, b.cfg.dirMode)
		}
	}
	if err == nil && b.durable() {
		err = syncPath(b.fs, filepath.Dir(dir))
	}
	return err
}

func wrapOpen(dir string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("open %s: %w", dir, err)
}

// syncPath fsyncs the directory dir.
func syncPath(fsys vfs.FS, dir string) error { return syncClose(fsys.OpenDir(dir)) }

// syncFile fsyncs the regular file at path.
func syncFile(fsys vfs.FS, path string) error { return syncClose(fsys.Open(path)) }

// syncClose fsyncs and closes f, which its opening returned with err.
func syncClose(f vfs.File, err error) error {
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Dir returns the absolute path of the Backend's directory.
func (b *Backend) Dir() string { return b.dir }

// Mode returns the Backend's durability mode.
func (b *Backend) Mode() Mode { return b.cfg.mode() }

// Close waits for the calls in progress and the background recovery to end,
// empties the directory's journal if it has one (a checkpoint, which also
// waits for the calls in progress in other processes), in Performance mode
// syncs the file system and removes the records its changes displaced, and
// releases the Backend's files. It returns an error if it leaves any of
// that undone (a Backend that refuses writes leaves the journal and the
// displaced records): the error says what it left, which the next open
// finishes. It is idempotent; every later call returns an error wrapping
// metastorage.ErrBackendClosed.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.stop()
	b.bg.Wait()
	b.cp.Wait()
	b.ops.Lock() // the calls still running have finished
	defer b.ops.Unlock()
	// Leave the journal empty, so that the next open has nothing to
	// replay, and no displaced record behind.
	err := b.checkpoint(context.Background())
	if err != nil {
		err = fmt.Errorf("close %s: %w", b.dir, err)
	}
	return errors.Join(err, b.closeFiles())
}

func (b *Backend) closeFiles() error {
	var errs []error
	if j := b.jnl.Load(); j != nil {
		errs = append(errs, j.f.Close())
	}
	for _, d := range b.dirs {
		if d != nil {
			errs = append(errs, d.close())
		}
	}
	if b.locks != nil {
		errs = append(errs, b.locks.close())
	}
	b.counts.detach()
	if b.dfs != nil {
		errs = append(errs, b.dfs.close())
	}
	errs = append(errs, b.changes.close())
	if b.tracker != nil {
		errs = append(errs, b.tracker.Release())
	}
	return errors.Join(errs...)
}

// begin checks what every call checks first and holds the Backend open for
// the call; the caller must call b.end when it returns nil.
func (b *Backend) begin(ctx context.Context, op, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.ops.RLock()
	if b.closed.Load() {
		b.ops.RUnlock()
		if id == "" {
			return fmt.Errorf("%s: %w", op, metastorage.ErrBackendClosed)
		}
		return fmt.Errorf("%s %s: %w", op, id, metastorage.ErrBackendClosed)
	}
	return nil
}

func (b *Backend) end() { b.ops.RUnlock() }

// beginWrite is begin for calls that change the directory.
func (b *Backend) beginWrite(ctx context.Context, op, id string) error {
	if err := b.begin(ctx, op, id); err != nil {
		return err
	}
	if b.cfg.readOnly {
		b.end()
		return fmt.Errorf("%s %s: %w", op, id, ErrReadOnly)
	}
	if p := b.failed.Load(); p != nil {
		b.end()
		return fmt.Errorf("%s %s: backend refuses writes after a failed fsync, reopen it: %w", op, id, *p)
	}
	if p := b.replaced.Load(); p != nil {
		b.end()
		return fmt.Errorf("%s %s: backend refuses writes: %w", op, id, *p)
	}
	return nil
}

// fail records that an fsync failed, which is final for this Backend.
func (b *Backend) fail(err error) {
	if b.failed.CompareAndSwap(nil, &err) {
		b.log.Error("a change could not be made durable or undone; refusing further writes until reopened", "dir", b.dir, "err", err)
	}
}

func (b *Backend) fileName(op, id string) (string, error) {
	f, err := name.Encode(id)
	if err != nil {
		return "", fmt.Errorf("%s %q: %w: %w", op, shortID(id), metastorage.ErrInvalidMessageID, err)
	}
	return f, nil
}

func shortID(id string) string {
	if len(id) > 40 {
		return id[:40] + "…"
	}
	return id
}

func checkState(op, id string, states ...metastorage.QueueState) error {
	for _, s := range states {
		if !s.Valid() {
			return fmt.Errorf("%s %s: state %d out of range: %w", op, id, int(s), metastorage.ErrInvalidState)
		}
	}
	return nil
}

func (b *Backend) path(s metastorage.QueueState, file string) string {
	return b.states[s] + string(filepath.Separator) + file
}
