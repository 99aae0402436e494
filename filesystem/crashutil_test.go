package filesystem

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/name"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// sep separates the elements of the paths the backend makes.
const sep = string(filepath.Separator)

// crashDir is the metadata directory of the crash and fault tests, on an
// in-memory file system: "/spool" made absolute as open makes it (on
// Windows, on the current drive).
var crashDir = func() string {
	dir, err := filepath.Abs("/spool")
	if err != nil {
		panic(err)
	}
	return dir
}()

var crashModes = []Mode{Standard, Hybrid, Performance}

// crashConfig returns the configuration of a backend on fsys in mode.
func crashConfig(fsys vfs.FS, mode Mode) config {
	return config{
		dir:        crashDir,
		fileMode:   0o644,
		dirMode:    0o755,
		fs:         fsys,
		durability: mode,
		logger:     slog.New(slog.DiscardHandler),
		flushEvery: -1, // no flush at a time the test does not choose
		trackSync:  macLike(fsys),
		ordered:    orderedOrNil(fsys),
	}
}

// orderedFS is a file system that journals its metadata in order, as a
// Mem after JournalMetadata does: a Backend on it takes it as such, as it
// would find ext4 with a journal or XFS.
type orderedFS struct{ wrapFS }

func (orderedFS) metadataOrdered() bool { return true }

func (w wrapFS) metadataOrdered() bool { return orderedOrNil(w.FS) != nil }

// orderedOrNil returns a pointer to true if fsys is, or wraps, an
// orderedFS, and nil otherwise: the config's ordered.
func orderedOrNil(fsys vfs.FS) *bool {
	o, ok := fsys.(interface{ metadataOrdered() bool })
	if !ok || !o.metadataOrdered() {
		return nil
	}
	on := true
	return &on
}

// asOrdered puts an orderedFS over a file system.
func asOrdered(fsys vfs.FS) vfs.FS { return orderedFS{wrapFS{fsys}} }

// macFS is a file system that offers only what macOS offers: no syncfs,
// so that a Backend on it syncs through a vfs.Tracker, and, with noSwap,
// no exchange, as on HFS+. No-replace renames and exchanges keep the
// semantics that renameatx_np's RENAME_EXCL and RENAME_SWAP share with
// renameat2's flags.
type macFS struct {
	wrapFS
	noSwap bool
}

// errNoSyncfs is what macFS returns for a syncfs, which a Backend on it
// must never ask for.
var errNoSyncfs = errors.New("syncfs on a file system without it")

func (m macFS) SyncAll(vfs.File) error { return errNoSyncfs }

func (m macFS) Exchange(oldname, newname string) error {
	if m.noSwap {
		return &fs.PathError{Op: "renameatx_np", Path: oldname, Err: errors.ErrUnsupported}
	}
	return m.FS.Exchange(oldname, newname)
}

func (m macFS) RenameIn(oldDir vfs.File, oldname string, newDir vfs.File, newname string, how vfs.RenameHow) error {
	if m.noSwap && how == vfs.RenameExchange {
		return &fs.PathError{Op: "renameatx_np", Path: oldname, Err: errors.ErrUnsupported}
	}
	return m.FS.RenameIn(oldDir, oldname, newDir, newname, how)
}

func (m macFS) macLike() bool { return true }

// macLike reports whether fsys is, or wraps, a macFS.
func macLike(fsys vfs.FS) bool {
	m, ok := fsys.(interface{ macLike() bool })
	return ok && m.macLike()
}

// asMac returns a function that puts a macFS over a file system.
func asMac(noSwap bool) func(vfs.FS) vfs.FS {
	return func(fsys vfs.FS) vfs.FS { return macFS{wrapFS{fsys}, noSwap} }
}

func (w wrapFS) macLike() bool { return macLike(w.FS) }

// wrapFS is the base of the tests' file-system wrappers: embedding vfs.FS
// alone would hide the optional interfaces of the file system it wraps,
// shared memory and syncfs, which a Backend looks for.
type wrapFS struct{ vfs.FS }

func (w wrapFS) MapShared(name string, size int, perm fs.FileMode) ([]byte, func() error, error) {
	return w.FS.(vfs.SharedMemory).MapShared(name, size, perm)
}

func (w wrapFS) MapSharedIn(dir vfs.File, name string, size int, perm fs.FileMode) ([]byte, func() error, error) {
	return w.FS.(vfs.SharedMemory).MapSharedIn(dir, name, size, perm)
}

func (w wrapFS) SyncAll(dir vfs.File) error { return w.FS.(vfs.SyncFS).SyncAll(dir) }

func (w wrapFS) SetModTimeIn(dir vfs.File, name string, t time.Time) error {
	ms, ok := w.FS.(vfs.ModTimeSetter)
	if !ok {
		return &fs.PathError{Op: "utimensat", Path: name, Err: errors.ErrUnsupported}
	}
	return ms.SetModTimeIn(dir, name, t)
}

// Unwrap returns the file system w wraps.
func (w wrapFS) Unwrap() vfs.FS { return w.FS }

// quietConfig is crashConfig without the background recovery scan, whose
// calls would mix with those a test counts, hooks or crashes.
func quietConfig(fsys vfs.FS, mode Mode) config {
	cfg := crashConfig(fsys, mode)
	cfg.noRecovery = true
	return cfg
}

// crashLayout returns a Mem holding a durable, empty metadata directory,
// made by open itself on an empty file system: a copy of one made once,
// as the crash tests take thousands.
func crashLayout(t testing.TB) *vfs.Mem {
	t.Helper()
	m, err := emptyLayout()
	if err != nil {
		t.Fatal(err)
	}
	return m.CrashClone()
}

// emptyLayout makes the Mem that crashLayout copies, once.
var emptyLayout = sync.OnceValues(func() (*vfs.Mem, error) {
	m := vfs.NewMem()
	b, err := open(crashConfig(m, Standard))
	if err != nil {
		return nil, err
	}
	if err := b.Close(); err != nil {
		return nil, err
	}
	return m.CrashClone(), nil
})

// crashLayoutJournaledRenames is crashLayout on a Mem that commits each
// rename between directories whole, as ext4 and XFS do.
func crashLayoutJournaledRenames(t testing.TB) *vfs.Mem {
	m := crashLayout(t)
	m.JournalRenames()
	return m
}

// crashLayoutOrdered is crashLayout on a Mem that journals its metadata
// in order, as ext4 with a journal and XFS do.
func crashLayoutOrdered(t testing.TB) *vfs.Mem {
	m := crashLayout(t)
	m.JournalMetadata()
	return m
}

// diskEntry is one message file found in a state directory.
type diskEntry struct {
	state metastorage.QueueState
	file  string
	md    metastorage.MessageMetadata
	err   error // why it does not decode, if it does not
}

// diskImage is what a listing of the state directories found.
type diskImage struct {
	msgs  map[string][]diskEntry // by message ID
	temps []string               // temp files
	other []string               // names that are neither
}

// readImage lists every state directory of the metadata directory on fsys
// with OpenDir and ReadDir, and reads each message file found.
func readImage(fsys vfs.FS) (diskImage, error) {
	img := diskImage{msgs: make(map[string][]diskEntry)}
	for _, s := range metastorage.States() {
		dir := filepath.Join(crashDir, s.String())
		d, err := fsys.OpenDir(dir)
		if err != nil {
			return img, err
		}
		ents, err := d.ReadDir(-1)
		d.Close()
		if err != nil && err != io.EOF {
			return img, err
		}
		for _, e := range ents {
			n := e.Name()
			p := filepath.Join(dir, n)
			if strings.HasPrefix(n, ".tmp.") || strings.Contains(n, name.Suffix+".tmp.") {
				img.temps = append(img.temps, p)
				continue
			}
			id, ok := name.Decode(n)
			if !ok || !strings.HasSuffix(n, name.Suffix) {
				img.other = append(img.other, p)
				continue
			}
			md, err := readRecord(fsys, p, s)
			img.msgs[id] = append(img.msgs[id], diskEntry{state: s, file: p, md: md, err: err})
		}
	}
	return img, nil
}

// ids returns the message IDs found, sorted.
func (img diskImage) ids() []string {
	var ids []string
	for id := range img.msgs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// structural returns the violations of invariants 2 and 3 that need no
// model: a message in more than one state directory, a file that does not
// decode, a record whose ID or State disagrees with its name or directory,
// and a temp file left behind.
func (img diskImage) structural() []string {
	var v []string
	for _, id := range img.ids() {
		es := img.msgs[id]
		if len(es) > 1 {
			var where []string
			for _, e := range es {
				where = append(where, e.state.String())
			}
			v = append(v, fmt.Sprintf("message %q lies in %d state directories: %v", id, len(es), where))
		}
		for _, e := range es {
			switch {
			case e.err != nil:
				v = append(v, fmt.Sprintf("file %s does not decode: %v", e.file, e.err))
			case e.md.ID != id:
				v = append(v, fmt.Sprintf("file %s holds the record of %q", e.file, e.md.ID))
			case e.md.State != e.state:
				v = append(v, fmt.Sprintf("file %s says State %s", e.file, e.md.State))
			}
		}
	}
	for _, p := range img.temps {
		v = append(v, "temp file left after recovery: "+p)
	}
	return v
}

// isCrashed reports whether err comes from the simulated crash.
func isCrashed(err error) bool { return errors.Is(err, vfs.ErrCrashed) }

// countingOpens returns a file system for a test, a fresh Mem or, if real,
// the real one, that counts in opens the files opened whose path match
// accepts (dir is the metadata directory), and the metadata directory to
// open on it: crashDir, or a temp directory.
func countingOpens(t *testing.T, real bool, match func(dir, path string) bool) (fsys vfs.FS, dir string, opens *atomic.Int64) {
	var under vfs.FS = vfs.NewMem()
	dir = crashDir
	if real {
		spooltest.NeedDisk(t)
		under, dir = vfs.OS, t.TempDir()
	}
	opens = new(atomic.Int64)
	fsys = vfs.Inject(under, vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if op == vfs.OpOpen && match(dir, path) {
			opens.Add(1)
		}
		return nil
	}))
	return fsys, dir, opens
}
