package filesystem

import (
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// Mode is a durability mode: when a call's change reaches stable storage.
type Mode int

// The durability modes; see the package documentation.
const (
	// Standard makes each change durable before its call returns.
	Standard Mode = iota
	// Performance never fsyncs: a power loss may lose the calls of the
	// last few seconds. A process crash loses nothing.
	Performance
	// Hybrid is as durable as Standard, through a write-ahead journal
	// whose fsyncs concurrent calls share.
	Hybrid
)

// String returns "standard", "performance" or "hybrid".
func (m Mode) String() string {
	switch m {
	case Standard:
		return "standard"
	case Performance:
		return "performance"
	case Hybrid:
		return "hybrid"
	}
	return "unknown"
}

// Factory creates filesystem backends on one directory. Its With methods
// return a copy with one setting changed, so a Factory value can be shared.
//
// WithMode, WithDisableSync and WithBatchSync all set the durability mode,
// and the last call wins. WithDisableSync(true) means Performance and
// WithBatchSync(true) means Hybrid. WithDisableSync(false) returns to
// Standard only from Performance, and WithBatchSync(false) only from
// Hybrid; otherwise they change nothing.
type Factory struct {
	cfg config
}

type config struct {
	dir        string
	durability Mode
	logger     *slog.Logger
	readOnly   bool
	noRecovery bool
	fileMode   fs.FileMode
	dirMode    fs.FileMode
	fs         vfs.FS // nil means vfs.OS
	// indexBudget is the memory the index of records may hold, in bytes:
	// 0 means DefaultIndexBudget, a negative value none.
	indexBudget int64

	// For tests: the journal growth that starts a checkpoint (0 means
	// journalLimit), and a function called after each checkpoint.
	journalLimit int64
	onCheckpoint func()
	// For tests: how often Performance mode flushes displaced records (0
	// means flushEvery; negative, only once maxDisplaced wait, at Close,
	// and when a test calls flushDisplaced).
	flushEvery time.Duration
	// For tests: the clock that sets Updated (nil means time.Now, set by open).
	now func() time.Time
	// For tests and measurements: sync what the Backend changed, file by
	// file, as on macOS, instead of the whole file system (see
	// tracksync.go).
	trackSync bool
	// For tests: whether the file system journals its metadata in order
	// (see journalsInOrder), if set; unset, it is probed on the OS's file
	// system and taken as false on any other.
	ordered *bool
}

var _ metastorage.Factory = (*Factory)(nil)

// NewFactory returns a Factory for backends in Standard mode on dir.
func NewFactory(dir string) *Factory {
	return &Factory{cfg: config{dir: dir, fileMode: 0o644, dirMode: 0o755}}
}

// NewFactoryWithPerformanceOptions returns a Factory for backends on dir
// with fsync disabled (Performance mode) or batched (Hybrid mode).
// disableSync takes precedence over batchSync.
func NewFactoryWithPerformanceOptions(dir string, disableSync, batchSync bool) *Factory {
	return NewFactory(dir).WithBatchSync(batchSync).WithDisableSync(disableSync)
}

// WithMode returns a Factory whose backends run in mode m. Open refuses a
// mode other than Standard, Hybrid and Performance.
func (f *Factory) WithMode(m Mode) *Factory {
	c := *f
	c.cfg.durability = m
	return &c
}

// WithDisableSync(true) returns a Factory whose backends never fsync
// (Performance mode): THIS IS UNSAFE across a power loss, which may lose
// recent calls that returned nil. A process crash loses nothing.
// WithDisableSync(false) returns a Factory in Standard mode if f is in
// Performance mode, and f's mode otherwise.
func (f *Factory) WithDisableSync(disable bool) *Factory {
	return f.withFlag(Performance, disable)
}

// WithBatchSync(true) returns a Factory whose backends run in Hybrid mode,
// which is as durable as Standard. WithBatchSync(false) returns a Factory
// in Standard mode if f is in Hybrid mode, and f's mode otherwise.
func (f *Factory) WithBatchSync(batch bool) *Factory {
	return f.withFlag(Hybrid, batch)
}

// withFlag sets mode m if on, and leaves m for Standard if off.
func (f *Factory) withFlag(m Mode, on bool) *Factory {
	switch {
	case on:
		return f.WithMode(m)
	case f.cfg.durability == m:
		return f.WithMode(Standard)
	}
	c := *f
	return &c
}

// WithReadOnly returns a Factory whose backends only read: opening creates
// nothing and fails if dir is not a metadata directory (one with every state
// directory), no recovery runs in the background, and every call that would
// change the directory returns an error wrapping ErrReadOnly. Such a
// backend takes no locks, so a reader racing a writer of another process
// may see a message as missing for an instant while it moves.
func (f *Factory) WithReadOnly(readOnly bool) *Factory {
	c := *f
	c.cfg.readOnly = readOnly
	return &c
}

// WithBackgroundRecovery returns a Factory whose backends run the recovery
// scan in the background after open (the default) or not. Without it,
// nothing is repaired until RecoverFromCrash or Check is called: for tools
// that run the scan themselves to report what it finds.
func (f *Factory) WithBackgroundRecovery(enabled bool) *Factory {
	c := *f
	c.cfg.noRecovery = !enabled
	return &c
}

// WithLogger returns a Factory whose backends log recovery actions and
// errors they cannot return to l. The default is slog.Default().
func (f *Factory) WithLogger(l *slog.Logger) *Factory {
	c := *f
	c.cfg.logger = l
	return &c
}

// WithFileMode returns a Factory whose backends create message files with
// permission bits perm (before the umask). The default is 0644; metadata
// holds message headers such as e-mail addresses, so 0600 or 0640 may fit
// better.
func (f *Factory) WithFileMode(perm fs.FileMode) *Factory {
	c := *f
	c.cfg.fileMode = perm.Perm()
	return &c
}

// WithDirMode returns a Factory whose backends create directories with
// permission bits perm (before the umask). The default is 0755.
func (f *Factory) WithDirMode(perm fs.FileMode) *Factory {
	c := *f
	c.cfg.dirMode = perm.Perm()
	return &c
}

// WithIndexBudget returns a Factory whose backends keep at most n bytes of
// the records that iterations and listings read, so that later passes over
// messages that have not changed read no file (see
// Backend.NewMessageIterator). The default is DefaultIndexBudget; 0 keeps
// none, and a negative n is taken as 0. A pass that renews a state's
// records holds the old ones until it ends. Each record counts for 336
// bytes plus 4/3 of the length of its strings and 8 bytes per header: at
// most what the index takes for it. A record
// that an iteration returns shares the index's memory but for its ID: a
// caller that keeps its LastError, RetryPolicyName or a header keeps up to
// 16 KiB of it, beyond the budget, until it lets go.
func (f *Factory) WithIndexBudget(n int64) *Factory {
	c := *f
	c.cfg.indexBudget = n
	if n <= 0 {
		c.cfg.indexBudget = -1
	}
	return &c
}

// Mode returns the durability mode of the Factory's backends.
func (f *Factory) Mode() Mode { return f.cfg.mode() }

// Name returns "filesystem-meta".
func (f *Factory) Name() string { return "filesystem-meta" }

// Create opens a Backend as Open does.
func (f *Factory) Create() (metastorage.Backend, error) {
	b, err := f.Open()
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Open opens the Backend on the Factory's directory, creating the
// directory, its missing parents and its state directories if needed
// (durably, except in Performance mode), and starts the recovery scan in
// the background.
func (f *Factory) Open() (*Backend, error) {
	switch m := f.cfg.durability; m {
	case Standard, Hybrid, Performance:
	default:
		return nil, fmt.Errorf("open %s: unknown durability mode %d", f.cfg.dir, int(m))
	}
	return open(f.cfg)
}

func (c config) mode() Mode { return c.durability }

// NewBackend opens a Backend in Standard mode on dir.
func NewBackend(dir string) (*Backend, error) {
	return NewFactory(dir).Open()
}

// NewBackendWithOptions opens a Backend on dir with fsync disabled
// (Performance mode) or batched (Hybrid mode). disableSync takes
// precedence over batchSync.
func NewBackendWithOptions(dir string, disableSync, batchSync bool) (*Backend, error) {
	return NewFactoryWithPerformanceOptions(dir, disableSync, batchSync).Open()
}
