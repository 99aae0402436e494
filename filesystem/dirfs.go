package filesystem

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// ErrDirReplaced is wrapped by the error of a write to a directory of the
// layout (the metadata directory, a state directory or .locks) whose path
// no longer leads to the directory the Backend opened: it was renamed,
// removed, or replaced by another directory or a symbolic link.
var ErrDirReplaced = errors.New("directory replaced after the backend opened it")

// dirFS is the file system of a writing Backend. Every path under the
// Backend's directory is resolved from the descriptors of the directories
// taken at open, element by element, by the operations of vfs.FS on a name
// in an open directory, which never follow a symbolic link: a directory
// renamed or replaced after open is not followed, and a change goes to the
// directory that was opened. The paths of the Backend's directory itself
// and above it are resolved as the wrapped file system resolves them; they
// are used at open only, before the descriptors exist.
type dirFS struct {
	vfs.FS
	top  string
	dirs map[string]vfs.File // the directories opened, by path; top's among them
	ids  map[string]fs.FileInfo
	own  []vfs.File // those that close closes
}

// newDirFS returns fsys resolving the paths under top from top's open
// directory d.
func newDirFS(fsys vfs.FS, top string, d vfs.File) (*dirFS, error) {
	f := &dirFS{FS: fsys, top: top, dirs: make(map[string]vfs.File), ids: make(map[string]fs.FileInfo)}
	f.own = append(f.own, d)
	return f, f.add(top, d)
}

// add makes path, an open directory d under top, resolve from d. It is
// called at open only, before the Backend is used concurrently.
func (f *dirFS) add(path string, d vfs.File) error {
	fi, err := d.Stat()
	if err != nil {
		return err
	}
	f.dirs[path], f.ids[path] = d, fi
	return nil
}

// check returns an error wrapping ErrDirReplaced, naming path, if path, a
// directory that add added, no longer resolves, as a fresh open would
// resolve it, to the directory opened at path.
func (f *dirFS) check(path string) error {
	fi, err := f.FS.Lstat(path)
	switch {
	case isNotExist(err) || errors.Is(err, syscall.ELOOP):
		return fmt.Errorf("%s: %w (%v)", path, ErrDirReplaced, err)
	case err != nil:
		return fmt.Errorf("cannot check that %s is the directory opened: %w", path, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%s: %w (it is now a symbolic link)", path, ErrDirReplaced)
	case !vfs.SameFile(fi, f.ids[path]):
		return fmt.Errorf("%s: %w (it is now another %s)", path, ErrDirReplaced, fileKind(fi))
	}
	return nil
}

func fileKind(fi fs.FileInfo) string {
	if fi.IsDir() {
		return "directory"
	}
	return "file"
}

// at returns the directory that holds path, open, and path's last element
// in it, and a func that closes what at opened; ok is false if path does
// not lie under top.
func (f *dirFS) at(path string) (dir vfs.File, name string, done func(), ok bool, err error) {
	i := strings.LastIndexByte(path, filepath.Separator)
	if i < 0 {
		return nil, "", nil, false, nil
	}
	parent, name := path[:i], path[i+1:]
	if d, ok := f.dirs[parent]; ok {
		return d, name, nop, true, nil
	}
	rel, ok := strings.CutPrefix(parent, f.top+string(filepath.Separator))
	if !ok {
		return nil, "", nil, false, nil
	}
	// A directory under top that was not opened at open: corrupt/ and
	// its subdirectories, which are created when first needed.
	d, prefix := f.dirs[f.top], f.top
	var opened vfs.File
	for elem := range strings.SplitSeq(rel, string(filepath.Separator)) {
		prefix += string(filepath.Separator) + elem
		if known, ok := f.dirs[prefix]; ok {
			d = known
			continue
		}
		next, err := f.FS.OpenDirIn(d, elem)
		if opened != nil {
			opened.Close()
		}
		if err != nil {
			return nil, "", nil, true, err
		}
		d, opened = next, next
	}
	return d, name, func() { opened.Close() }, true, nil
}

func nop() {}

func (f *dirFS) Create(path string, perm fs.FileMode) (vfs.File, error) {
	dir, name, done, ok, err := f.at(path)
	if !ok {
		return f.FS.Create(path, perm)
	}
	if err != nil {
		return nil, err
	}
	defer done()
	return f.FS.CreateIn(dir, name, perm)
}

func (f *dirFS) Open(path string) (vfs.File, error) {
	dir, name, done, ok, err := f.at(path)
	if !ok {
		return f.FS.Open(path)
	}
	if err != nil {
		return nil, err
	}
	defer done()
	return f.FS.OpenIn(dir, name)
}

func (f *dirFS) OpenAppend(path string, perm fs.FileMode) (vfs.File, error) {
	dir, name, done, ok, err := f.at(path)
	if !ok {
		return f.FS.OpenAppend(path, perm)
	}
	if err != nil {
		return nil, err
	}
	defer done()
	return f.FS.OpenAppendIn(dir, name, perm)
}

// OpenDir opens a directory opened at open anew, whatever its path leads
// to now.
func (f *dirFS) OpenDir(path string) (vfs.File, error) {
	if d, ok := f.dirs[path]; ok {
		return f.FS.OpenDirIn(d, ".")
	}
	dir, name, done, ok, err := f.at(path)
	if !ok {
		return f.FS.OpenDir(path)
	}
	if err != nil {
		return nil, err
	}
	defer done()
	return f.FS.OpenDirIn(dir, name)
}

func (f *dirFS) Rename(oldpath, newpath string) error {
	return f.rename(oldpath, newpath, vfs.RenameReplace)
}

func (f *dirFS) RenameNoReplace(oldpath, newpath string) error {
	return f.rename(oldpath, newpath, vfs.RenameNoReplace)
}

func (f *dirFS) Exchange(oldpath, newpath string) error {
	return f.rename(oldpath, newpath, vfs.RenameExchange)
}

// rename renames between two paths under top; it renames no directory.
func (f *dirFS) rename(oldpath, newpath string, how vfs.RenameHow) error {
	odir, oname, odone, ook, err := f.at(oldpath)
	if err != nil {
		return err
	}
	if ook {
		defer odone()
	}
	ndir, nname, ndone, nok, err := f.at(newpath)
	if err != nil {
		return err
	}
	if nok {
		defer ndone()
	}
	if !ook || !nok {
		return fmt.Errorf("rename %s to %s: not both under %s", oldpath, newpath, f.top)
	}
	return f.FS.RenameIn(odir, oname, ndir, nname, how)
}

func (f *dirFS) Truncate(path string, size int64) error {
	dir, name, done, ok, err := f.at(path)
	if !ok {
		return f.FS.Truncate(path, size)
	}
	if err != nil {
		return err
	}
	defer done()
	return f.FS.TruncateIn(dir, name, size)
}

func (f *dirFS) Overwrite(path string, off int64, p []byte) error {
	dir, name, done, ok, err := f.at(path)
	if !ok {
		return f.FS.Overwrite(path, off, p)
	}
	if err != nil {
		return err
	}
	defer done()
	return f.FS.OverwriteIn(dir, name, off, p)
}

func (f *dirFS) Remove(path string) error {
	dir, name, done, ok, err := f.at(path)
	if !ok {
		return f.FS.Remove(path)
	}
	if err != nil {
		return err
	}
	defer done()
	return f.FS.RemoveIn(dir, name)
}

func (f *dirFS) Mkdir(path string, perm fs.FileMode) error {
	dir, name, done, ok, err := f.at(path)
	if !ok {
		return f.FS.Mkdir(path, perm)
	}
	if err != nil {
		return err
	}
	defer done()
	return f.FS.MkdirIn(dir, name, perm)
}

func (f *dirFS) Lstat(path string) (fs.FileInfo, error) {
	dir, name, done, ok, err := f.at(path)
	if !ok {
		return f.FS.Lstat(path)
	}
	if err != nil {
		return nil, err
	}
	defer done()
	return f.FS.LstatIn(dir, name)
}

func (f *dirFS) OpenLock(path string, perm fs.FileMode) (vfs.Lock, error) {
	dir, name, done, ok, err := f.at(path)
	if !ok {
		return f.FS.OpenLock(path, perm)
	}
	if err != nil {
		return nil, err
	}
	defer done()
	return f.FS.OpenLockIn(dir, name, perm)
}

// MapShared implements vfs.SharedMemory if the wrapped file system does,
// and otherwise fails with an error wrapping errors.ErrUnsupported.
func (f *dirFS) MapShared(path string, size int, perm fs.FileMode) ([]byte, func() error, error) {
	sm, ok := f.FS.(vfs.SharedMemory)
	if !ok {
		return nil, nil, &fs.PathError{Op: "mmap", Path: path, Err: errors.ErrUnsupported}
	}
	dir, name, done, ok, err := f.at(path)
	if !ok {
		return sm.MapShared(path, size, perm)
	}
	if err != nil {
		return nil, nil, err
	}
	defer done()
	return sm.MapSharedIn(dir, name, size, perm)
}

// MapSharedIn implements vfs.SharedMemory as MapShared does.
func (f *dirFS) MapSharedIn(dir vfs.File, name string, size int, perm fs.FileMode) ([]byte, func() error, error) {
	sm, ok := f.FS.(vfs.SharedMemory)
	if !ok {
		return nil, nil, &fs.PathError{Op: "mmap", Path: dir.Name() + string(filepath.Separator) + name, Err: errors.ErrUnsupported}
	}
	return sm.MapSharedIn(dir, name, size, perm)
}

// SetModTimeIn implements vfs.ModTimeSetter if the wrapped file system
// does, and otherwise fails with an error wrapping errors.ErrUnsupported.
func (f *dirFS) SetModTimeIn(dir vfs.File, name string, t time.Time) error {
	ms, ok := f.FS.(vfs.ModTimeSetter)
	if !ok {
		return &fs.PathError{Op: "utimensat", Path: dir.Name() + string(filepath.Separator) + name, Err: errors.ErrUnsupported}
	}
	return ms.SetModTimeIn(dir, name, t)
}

// SyncAll implements vfs.SyncFS if the wrapped file system does, and
// otherwise fails with an error wrapping errors.ErrUnsupported.
func (f *dirFS) SyncAll(dir vfs.File) error {
	s, ok := f.FS.(vfs.SyncFS)
	if !ok {
		return fmt.Errorf("syncfs %s: %w", f.top, errors.ErrUnsupported)
	}
	return s.SyncAll(dir)
}

// canSyncAll reports whether the wrapped file system implements
// vfs.SyncFS.
func (f *dirFS) canSyncAll() bool {
	_, ok := f.FS.(vfs.SyncFS)
	return ok
}

// close closes the directories that f owns.
func (f *dirFS) close() error {
	var errs []error
	for _, d := range f.own {
		errs = append(errs, d.Close())
	}
	return errors.Join(errs...)
}

// checkDirs returns an error wrapping ErrDirReplaced if the directory of a
// state in states no longer lies at its path, as a fresh open would find
// it. A change calls it once made, before it is acknowledged: a change
// that a fresh open would not see is undone and fails. The check resolves
// the whole path, so it also sees the metadata directory or a parent of
// it replaced. Once it fails, the Backend refuses every write.
func (b *Backend) checkDirs(states ...metastorage.QueueState) error {
	if b.dfs == nil {
		return nil
	}
	for _, s := range states {
		if err := b.dfs.check(b.states[s]); err != nil {
			return b.replacedDir(err)
		}
	}
	return nil
}

// checkLayout is checkDirs for every directory opened at open: the
// metadata directory, the state directories and .locks. The recovery scan
// calls it first.
func (b *Backend) checkLayout() error {
	if b.dfs == nil {
		return nil
	}
	for path := range b.dfs.dirs {
		if err := b.dfs.check(path); err != nil {
			return b.replacedDir(err)
		}
	}
	return nil
}

// replacedDir makes the Backend refuse writes if err, from dirFS.check,
// says a directory was replaced, and returns err.
func (b *Backend) replacedDir(err error) error {
	if !errors.Is(err, ErrDirReplaced) {
		return err
	}
	err = fmt.Errorf("%w; reopen the backend once the directory is back in place", err)
	if b.replaced.CompareAndSwap(nil, &err) {
		b.log.Error("a directory was replaced after open; refusing further writes until reopened", "dir", b.dir, "err", err)
	}
	return err
}

// undoReplaced undoes c, a change that checkDirs found made in a replaced
// directory, so that the message is as cur was in the directories the
// Backend opened, and returns the error to report; now is where the change
// left the message.
func (b *Backend) undoReplaced(op, id string, d durability, c intent, cur found, now metastorage.QueueState, cause error) error {
	return d.void(c, b.rollback(op, id, d, c.file, cur, now, cause))
}
