package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Op is a kind of call that an Injector can make fail.
type Op int

// The calls an Injector is consulted on.
const (
	OpCreate     Op = iota + 1 // FS.Create
	OpOpen                     // FS.Open
	OpOpenDir                  // FS.OpenDir
	OpRename                   // FS.Rename, FS.RenameNoReplace and FS.Exchange
	OpRemove                   // FS.Remove
	OpMkdir                    // FS.Mkdir
	OpLstat                    // FS.Lstat
	OpOpenLock                 // FS.OpenLock
	OpRead                     // File.Read
	OpWrite                    // File.Write
	OpSync                     // File.Sync
	OpStat                     // File.Stat
	OpReadDir                  // File.ReadDir
	OpClose                    // File.Close and Lock.Close
	OpLock                     // Lock.TryLock, TryLockShared and Unlock
	OpSyncAll                  // SyncFS.SyncAll
	OpOpenAppend               // FS.OpenAppend
	OpTruncate                 // FS.Truncate
	OpMapShared                // SharedMemory.MapShared
	OpOverwrite                // FS.Overwrite
	OpSetModTime               // ModTimeSetter.SetModTimeIn
)

var opNames = [...]string{
	OpCreate:     "Create",
	OpOpen:       "Open",
	OpOpenDir:    "OpenDir",
	OpRename:     "Rename",
	OpRemove:     "Remove",
	OpMkdir:      "Mkdir",
	OpLstat:      "Lstat",
	OpOpenLock:   "OpenLock",
	OpRead:       "Read",
	OpWrite:      "Write",
	OpSync:       "Sync",
	OpStat:       "Stat",
	OpReadDir:    "ReadDir",
	OpClose:      "Close",
	OpLock:       "Lock",
	OpSyncAll:    "SyncAll",
	OpOpenAppend: "OpenAppend",
	OpTruncate:   "Truncate",
	OpMapShared:  "MapShared",
	OpOverwrite:  "Overwrite",
	OpSetModTime: "SetModTime",
}

// String returns the name of the method op stands for, such as "Write".
func (op Op) String() string {
	if op > 0 && int(op) < len(opNames) {
		return opNames[op]
	}
	return "Op(" + strconv.Itoa(int(op)) + ")"
}

// sysOp is the Op field of the errors the os package returns for op.
func (op Op) sysOp() string {
	switch op {
	case OpCreate, OpOpen, OpOpenDir, OpOpenLock, OpOpenAppend, OpMapShared:
		return "open"
	case OpReadDir:
		return "readdirent"
	case OpLock:
		return "flock"
	case OpSyncAll:
		return "syncfs"
	case OpOverwrite:
		return "pwrite"
	case OpSetModTime:
		return "utimensat"
	}
	return strings.ToLower(op.String())
}

// An Injector decides which calls of an Injecting file system fail.
//
// MaybeError is consulted once before each call, with the call's Op and
// the name it works on: for the methods of File and Lock, the name the file
// was opened with; for a rename, the old name. It returns the error the
// call is to fail with, or nil to let the call through. The error is
// typically a syscall.Errno, which Injecting wraps as the real call would,
// in a *fs.PathError or *os.LinkError; a *fs.PathError or *os.LinkError is
// returned as it is.
type Injector interface {
	MaybeError(op Op, path string) error
}

// InjectorFunc is a function used as an Injector.
type InjectorFunc func(op Op, path string) error

// MaybeError returns f(op, path).
func (f InjectorFunc) MaybeError(op Op, path string) error { return f(op, path) }

// consult asks inj about a call; a nil inj fails nothing.
func consult(inj Injector, op Op, path string) error {
	if inj == nil {
		return nil
	}
	return inj.MaybeError(op, path)
}

// Always returns an Injector that fails every call with err. Always(nil)
// fails none.
func Always(err error) Injector {
	return InjectorFunc(func(Op, string) error { return err })
}

// predicate is an Injector that fails the calls it matches with EIO.
type predicate func(op Op, path string) bool

func (p predicate) MaybeError(op Op, path string) error {
	if p(op, path) {
		return syscall.EIO
	}
	return nil
}

// OnOp returns an Injector that fails the calls of the given kinds with
// syscall.EIO. Within And it selects those calls: And(OnOp(OpWrite),
// Always(syscall.ENOSPC)) fails every Write with ENOSPC.
func OnOp(ops ...Op) Injector {
	ops = slices.Clone(ops)
	return predicate(func(op Op, _ string) bool { return slices.Contains(ops, op) })
}

// PathContains returns an Injector that fails the calls whose name contains
// s with syscall.EIO. Within And it selects those calls.
func PathContains(s string) Injector {
	return predicate(func(_ Op, path string) bool { return strings.Contains(path, s) })
}

// PathMatch returns an Injector that fails the calls whose name match
// reports true for with syscall.EIO. Within And it selects those calls. A
// nil match matches nothing.
func PathMatch(match func(path string) bool) Injector {
	return predicate(func(_ Op, path string) bool { return match != nil && match(path) })
}

// And returns an Injector that fails a call when every one of injs would:
// it consults them in order, stops at the first that returns nil, and
// otherwise returns the error of the last one. An Injector after one that
// let the call through is not consulted, so a stateful one such as Nth
// counts only the calls the earlier ones selected. And() fails nothing.
func And(injs ...Injector) Injector {
	injs = slices.Clone(injs)
	return InjectorFunc(func(op Op, path string) error {
		var err error
		for _, inj := range injs {
			if err = consult(inj, op, path); err == nil {
				return nil
			}
		}
		return err
	})
}

// Nth returns an Injector that fails only the n-th call that inj would
// fail (counting from 1), with inj's error, and lets every other call
// through. With n < 1 it fails nothing. So
//
//	Nth(3, And(OnOp(OpWrite), PathContains("/base/incoming/"), Always(syscall.ENOSPC)))
//
// fails the third Write under /base/incoming with ENOSPC.
func Nth(n int, inj Injector) Injector {
	var (
		mu   sync.Mutex
		seen int
	)
	return InjectorFunc(func(op Op, path string) error {
		mu.Lock()
		defer mu.Unlock()
		err := consult(inj, op, path)
		if err == nil {
			return nil
		}
		seen++
		if seen != n {
			return nil
		}
		return err
	})
}

// Random returns an Injector that fails each call with err with
// probability p, drawn from a generator seeded with seed: the same seed
// fails the same calls of the same sequence of calls.
func Random(seed int64, p float64, err error) Injector {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(uint64(seed), 0))
	return InjectorFunc(func(Op, string) error {
		mu.Lock()
		defer mu.Unlock()
		if r.Float64() < p {
			return err
		}
		return nil
	})
}

// ShortWrite returns an Injector that fails the calls inj fails, with the
// same error, but makes a failing Write first write half its bytes, as a
// write that runs out of space part way does: it returns that count with
// the error. Other calls fail as inj has them fail.
func ShortWrite(inj Injector) Injector {
	return InjectorFunc(func(op Op, path string) error {
		err := consult(inj, op, path)
		if err == nil {
			return nil
		}
		return &shortWriteError{err}
	})
}

// shortWriteError marks an error ShortWrite chose.
type shortWriteError struct{ err error }

func (e *shortWriteError) Error() string { return e.err.Error() }
func (e *shortWriteError) Unwrap() error { return e.err }

// Injecting is a file system that fails the calls its Injector chooses, and
// passes the others to the file system it wraps. It implements FS and
// SyncFS, and is safe for concurrent use.
//
// A call that fails by injection does nothing, with two exceptions: a Write
// made short by ShortWrite writes half its bytes first, and a Close of a
// File or Lock closes it before returning the error, as close(2) releases
// the descriptor even when it fails.
type Injecting struct {
	fs       FS
	mu       sync.Mutex // serializes the calls of inj
	inj      Injector
	injected atomic.Int64
}

// Inject returns fsys wrapped so that the calls inj chooses fail. inj is
// consulted by one goroutine at a time, so it need not be safe for
// concurrent use unless it is shared; a nil inj fails nothing.
func Inject(fsys FS, inj Injector) *Injecting {
	return &Injecting{fs: fsys, inj: inj}
}

// Unwrap returns the file system i wraps.
func (i *Injecting) Unwrap() FS { return i.fs }

// Injected returns how many errors i has injected so far.
func (i *Injecting) Injected() int { return int(i.injected.Load()) }

// maybe consults the Injector about a call. It returns the error to
// inject, nil for none, and whether a Write is to be short.
func (i *Injecting) maybe(op Op, path string) (err error, short bool) {
	i.mu.Lock()
	err = consult(i.inj, op, path)
	i.mu.Unlock()
	if err == nil {
		return nil, false
	}
	i.injected.Add(1)
	if sw, ok := err.(*shortWriteError); ok {
		return sw.err, op == OpWrite
	}
	return err, false
}

// check returns the error to inject into a call of op on path, wrapped as
// the os package wraps it, or nil.
func (i *Injecting) check(op Op, path string) error {
	err, _ := i.maybe(op, path)
	return wrapPathError(op.sysOp(), path, err)
}

// wrapPathError wraps err as a *fs.PathError, unless it is nil, io.EOF or
// already wrapped.
func wrapPathError(op, path string, err error) error {
	switch err.(type) {
	case nil, *fs.PathError, *os.LinkError:
		return err
	}
	if err == io.EOF {
		return err
	}
	return &fs.PathError{Op: op, Path: path, Err: err}
}

// Create implements FS.
func (i *Injecting) Create(name string, perm fs.FileMode) (File, error) {
	if err := i.check(OpCreate, name); err != nil {
		return nil, err
	}
	f, err := i.fs.Create(name, perm)
	return i.file(name, f, err)
}

// Open implements FS.
func (i *Injecting) Open(name string) (File, error) {
	if err := i.check(OpOpen, name); err != nil {
		return nil, err
	}
	f, err := i.fs.Open(name)
	return i.file(name, f, err)
}

// OpenIn implements FS. The Injector is consulted with OpOpen and the path
// of name in dir.
func (i *Injecting) OpenIn(dir File, name string) (File, error) {
	d, full := i.inDir(dir, name)
	if err := i.check(OpOpen, full); err != nil {
		return nil, err
	}
	f, err := i.fs.OpenIn(d, name)
	return i.file(full, f, err)
}

// LstatIn implements FS. The Injector is consulted with OpLstat and the
// path of name in dir.
func (i *Injecting) LstatIn(dir File, name string) (fs.FileInfo, error) {
	d, full := i.inDir(dir, name)
	if err := i.check(OpLstat, full); err != nil {
		return nil, err
	}
	return i.fs.LstatIn(d, name)
}

// inDir returns the wrapped file system's File of dir, and the path of name
// in it.
func (i *Injecting) inDir(dir File, name string) (File, string) {
	if d, ok := dir.(*injectingFile); ok {
		return d.f, d.name + string(filepath.Separator) + name
	}
	return dir, name
}

// OpenAppend implements FS.
func (i *Injecting) OpenAppend(name string, perm fs.FileMode) (File, error) {
	if err := i.check(OpOpenAppend, name); err != nil {
		return nil, err
	}
	f, err := i.fs.OpenAppend(name, perm)
	return i.file(name, f, err)
}

// OpenDir implements FS.
func (i *Injecting) OpenDir(name string) (File, error) {
	if err := i.check(OpOpenDir, name); err != nil {
		return nil, err
	}
	f, err := i.fs.OpenDir(name)
	return i.file(name, f, err)
}

// file wraps a File the wrapped file system opened as name.
func (i *Injecting) file(name string, f File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return &injectingFile{i: i, f: f, name: name}, nil
}

// Rename implements FS. The Injector is consulted with oldname.
func (i *Injecting) Rename(oldname, newname string) error {
	if err := i.checkRename("rename", oldname, newname); err != nil {
		return err
	}
	return i.fs.Rename(oldname, newname)
}

// Exchange implements FS. The Injector is consulted with OpRename and
// oldname.
func (i *Injecting) Exchange(oldname, newname string) error {
	if err := i.checkRename("renameat2", oldname, newname); err != nil {
		return err
	}
	return i.fs.Exchange(oldname, newname)
}

// RenameNoReplace implements FS. The Injector is consulted with OpRename
// and oldname.
func (i *Injecting) RenameNoReplace(oldname, newname string) error {
	if err := i.checkRename("renameat2", oldname, newname); err != nil {
		return err
	}
	return i.fs.RenameNoReplace(oldname, newname)
}

func (i *Injecting) checkRename(sysOp, oldname, newname string) error {
	err, _ := i.maybe(OpRename, oldname)
	switch err.(type) {
	case nil, *fs.PathError, *os.LinkError:
		return err
	}
	return &os.LinkError{Op: sysOp, Old: oldname, New: newname, Err: err}
}

// Truncate implements FS.
func (i *Injecting) Truncate(name string, size int64) error {
	if err := i.check(OpTruncate, name); err != nil {
		return err
	}
	return i.fs.Truncate(name, size)
}

// Overwrite implements FS.
func (i *Injecting) Overwrite(name string, off int64, p []byte) error {
	if err := i.check(OpOverwrite, name); err != nil {
		return err
	}
	return i.fs.Overwrite(name, off, p)
}

// Remove implements FS.
func (i *Injecting) Remove(name string) error {
	if err := i.check(OpRemove, name); err != nil {
		return err
	}
	return i.fs.Remove(name)
}

// Mkdir implements FS.
func (i *Injecting) Mkdir(name string, perm fs.FileMode) error {
	if err := i.check(OpMkdir, name); err != nil {
		return err
	}
	return i.fs.Mkdir(name, perm)
}

// Lstat implements FS.
func (i *Injecting) Lstat(name string) (fs.FileInfo, error) {
	if err := i.check(OpLstat, name); err != nil {
		return nil, err
	}
	return i.fs.Lstat(name)
}

// OpenLock implements FS.
func (i *Injecting) OpenLock(name string, perm fs.FileMode) (Lock, error) {
	if err := i.check(OpOpenLock, name); err != nil {
		return nil, err
	}
	l, err := i.fs.OpenLock(name, perm)
	if err != nil {
		return nil, err
	}
	return &injectingLock{i: i, l: l, name: name}, nil
}

// MapShared implements SharedMemory, consulting the Injector with
// OpMapShared. If the wrapped file system does not implement SharedMemory,
// it fails with an error wrapping errors.ErrUnsupported.
func (i *Injecting) MapShared(name string, size int, perm fs.FileMode) ([]byte, func() error, error) {
	sm, ok := i.fs.(SharedMemory)
	if !ok {
		return nil, nil, &fs.PathError{Op: "mmap", Path: name, Err: errors.ErrUnsupported}
	}
	if err := i.check(OpMapShared, name); err != nil {
		return nil, nil, err
	}
	return sm.MapShared(name, size, perm)
}

// SyncAll implements SyncFS. If the wrapped file system does not implement
// SyncFS, it fails with an error wrapping errors.ErrUnsupported.
// The Injector is consulted with OpSyncAll and the path dir was opened by.
func (i *Injecting) SyncAll(dir File) error {
	d, name := dir, fmt.Sprint(dir)
	if f, ok := dir.(*injectingFile); ok {
		d, name = f.f, f.name
	}
	s, ok := i.fs.(SyncFS)
	if !ok {
		return &fs.PathError{Op: "syncfs", Path: name, Err: errors.ErrUnsupported}
	}
	if err := i.check(OpSyncAll, name); err != nil {
		return err
	}
	return s.SyncAll(d)
}

// SetModTimeIn implements ModTimeSetter, consulting the Injector with
// OpSetModTime and the path of name in dir. If the wrapped file system
// does not implement ModTimeSetter, it fails with an error wrapping
// errors.ErrUnsupported.
func (i *Injecting) SetModTimeIn(dir File, name string, t time.Time) error {
	d, full := i.inDir(dir, name)
	ms, ok := i.fs.(ModTimeSetter)
	if !ok {
		return &fs.PathError{Op: "utimensat", Path: full, Err: errors.ErrUnsupported}
	}
	if err := i.check(OpSetModTime, full); err != nil {
		return err
	}
	return ms.SetModTimeIn(d, name, t)
}

// injectingFile is a File of an Injecting.
type injectingFile struct {
	i    *Injecting
	f    File
	name string
}

func (f *injectingFile) Read(p []byte) (int, error) {
	if err := f.i.check(OpRead, f.name); err != nil {
		return 0, err
	}
	return f.f.Read(p)
}

func (f *injectingFile) Write(p []byte) (int, error) {
	err, short := f.i.maybe(OpWrite, f.name)
	if err == nil {
		return f.f.Write(p)
	}
	n := 0
	if short {
		var werr error
		if n, werr = f.f.Write(p[:len(p)/2]); werr != nil {
			return n, werr
		}
	}
	return n, wrapPathError("write", f.name, err)
}

func (f *injectingFile) Close() error {
	err := f.i.check(OpClose, f.name)
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (f *injectingFile) Sync() error {
	if err := f.i.check(OpSync, f.name); err != nil {
		return err
	}
	return f.f.Sync()
}

func (f *injectingFile) Stat() (fs.FileInfo, error) {
	if err := f.i.check(OpStat, f.name); err != nil {
		return nil, err
	}
	return f.f.Stat()
}

func (f *injectingFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if err := f.i.check(OpReadDir, f.name); err != nil {
		return []fs.DirEntry{}, err
	}
	return f.f.ReadDir(n)
}

// injectingLock is a Lock of an Injecting.
type injectingLock struct {
	i    *Injecting
	l    Lock
	name string
}

func (l *injectingLock) TryLock() (bool, error) {
	if err := l.i.check(OpLock, l.name); err != nil {
		return false, err
	}
	return l.l.TryLock()
}

func (l *injectingLock) TryLockShared() (bool, error) {
	if err := l.i.check(OpLock, l.name); err != nil {
		return false, err
	}
	return l.l.TryLockShared()
}

func (l *injectingLock) Unlock() error {
	if err := l.i.check(OpLock, l.name); err != nil {
		return err
	}
	return l.l.Unlock()
}

func (l *injectingLock) Close() error {
	err := l.i.check(OpClose, l.name)
	if cerr := l.l.Close(); err == nil {
		err = cerr
	}
	return err
}

// ErrCrashed is the error of every call a Crasher refuses after its crash
// point, wrapped as the os package wraps errors.
var ErrCrashed = errors.New("vfs: simulated crash")

// Crasher is a file system that simulates the death of the process, and a
// power loss, at a chosen call, for exhaustive crash testing. It wraps a
// *Mem and implements FS and SyncFS.
//
// A Crasher counts the mutating calls made through it and the Files it
// opened: Create, OpenAppend, Truncate, Overwrite, Rename, RenameNoReplace,
// Exchange, Remove, Mkdir (and each of these on a name in a directory,
// whose method name ends in "In"), SetModTimeIn, File.Write, File.Sync and
// SyncAll. At the k-th it first takes the Mem's CrashClone,
// which Crashed then returns, and then fails that call and every later call
// of any kind with ErrCrashed, as if the process had died at that instant.
// A Close after the crash still closes the underlying File or Lock, so
// that no lock stays held, but reports ErrCrashed too.
//
// A test learns how many crash points a run has from a first run with
// k = 0, which never crashes, then runs once with each k from 1 to Calls,
// and checks too the crash image of a run that completes, which the Mem's
// CrashClone gives.
//
// Calls through one Crasher are serialized, so the crash point is exact
// even when the program makes them concurrently.
type Crasher struct {
	m     *Mem
	k     int
	mu    sync.Mutex // serializes every call
	calls int
	image *Mem
	names *Mem // the image with every change of names committed
}

// NewCrasher returns a Crasher on m that crashes at the k-th mutating
// call, or never if k < 1.
func NewCrasher(m *Mem, k int) *Crasher {
	return &Crasher{m: m, k: k}
}

// Crashed returns the crash image, the Mem as a power loss at the crash
// point would have left it, and whether the crash point was reached.
func (c *Crasher) Crashed() (*Mem, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.image, c.image != nil
}

// CrashedNames returns the crash image that Mem.CrashCloneNames would
// have given at the crash point, and whether the crash point was reached.
func (c *Crasher) CrashedNames() (*Mem, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.names, c.names != nil
}

// Calls returns how many mutating calls were made through c, including
// the one it crashed at and those it refused after.
func (c *Crasher) Calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// enter starts a call, counting it if it is mutating and crashing at the
// k-th, and reports whether the process still lives. c.mu must be held.
func (c *Crasher) enter(mutating bool) bool {
	if mutating {
		c.calls++
		if c.calls == c.k && c.image == nil {
			c.image = c.m.CrashClone()
			c.names = c.m.CrashCloneNames()
		}
	}
	return c.image == nil
}

func crashed(op, name string) error {
	return &fs.PathError{Op: op, Path: name, Err: ErrCrashed}
}

// Create implements FS.
func (c *Crasher) Create(name string, perm fs.FileMode) (File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(true) {
		return nil, crashed("open", name)
	}
	f, err := c.m.Create(name, perm)
	return c.file(name, f, err)
}

// Open implements FS.
func (c *Crasher) Open(name string) (File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(false) {
		return nil, crashed("open", name)
	}
	f, err := c.m.Open(name)
	return c.file(name, f, err)
}

// OpenIn implements FS.
func (c *Crasher) OpenIn(dir File, name string) (File, error) {
	d, full := c.inDir(dir, name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(false) {
		return nil, crashed("open", full)
	}
	f, err := c.m.OpenIn(d, name)
	return c.file(full, f, err)
}

// LstatIn implements FS.
func (c *Crasher) LstatIn(dir File, name string) (fs.FileInfo, error) {
	d, full := c.inDir(dir, name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(false) {
		return nil, crashed("lstat", full)
	}
	return c.m.LstatIn(d, name)
}

// inDir returns the Mem's File of dir, and the path of name in it.
func (c *Crasher) inDir(dir File, name string) (File, string) {
	if d, ok := dir.(*crasherFile); ok {
		return d.f, d.name + string(filepath.Separator) + name
	}
	return dir, name
}

// OpenAppend implements FS. It counts as a mutating call, whether or not it
// creates the file.
func (c *Crasher) OpenAppend(name string, perm fs.FileMode) (File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(true) {
		return nil, crashed("open", name)
	}
	f, err := c.m.OpenAppend(name, perm)
	return c.file(name, f, err)
}

// OpenDir implements FS.
func (c *Crasher) OpenDir(name string) (File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(false) {
		return nil, crashed("open", name)
	}
	f, err := c.m.OpenDir(name)
	return c.file(name, f, err)
}

func (c *Crasher) file(name string, f File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return &crasherFile{c: c, f: f, name: name}, nil
}

// Rename implements FS.
func (c *Crasher) Rename(oldname, newname string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(true) {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: ErrCrashed}
	}
	return c.m.Rename(oldname, newname)
}

// Exchange implements FS.
func (c *Crasher) Exchange(oldname, newname string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(true) {
		return &os.LinkError{Op: "renameat2", Old: oldname, New: newname, Err: ErrCrashed}
	}
	return c.m.Exchange(oldname, newname)
}

// RenameNoReplace implements FS.
func (c *Crasher) RenameNoReplace(oldname, newname string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(true) {
		return &os.LinkError{Op: "renameat2", Old: oldname, New: newname, Err: ErrCrashed}
	}
	return c.m.RenameNoReplace(oldname, newname)
}

// Truncate implements FS.
func (c *Crasher) Truncate(name string, size int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(true) {
		return crashed("truncate", name)
	}
	return c.m.Truncate(name, size)
}

// Overwrite implements FS.
func (c *Crasher) Overwrite(name string, off int64, p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(true) {
		return crashed("pwrite", name)
	}
	return c.m.Overwrite(name, off, p)
}

// Remove implements FS.
func (c *Crasher) Remove(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(true) {
		return crashed("remove", name)
	}
	return c.m.Remove(name)
}

// Mkdir implements FS.
func (c *Crasher) Mkdir(name string, perm fs.FileMode) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(true) {
		return crashed("mkdir", name)
	}
	return c.m.Mkdir(name, perm)
}

// Lstat implements FS.
func (c *Crasher) Lstat(name string) (fs.FileInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(false) {
		return nil, crashed("lstat", name)
	}
	return c.m.Lstat(name)
}

// OpenLock implements FS.
func (c *Crasher) OpenLock(name string, perm fs.FileMode) (Lock, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(false) {
		return nil, crashed("open", name)
	}
	l, err := c.m.OpenLock(name, perm)
	if err != nil {
		return nil, err
	}
	return &crasherLock{c: c, l: l, name: name}, nil
}

// MapShared implements SharedMemory; it is not a mutating call.
func (c *Crasher) MapShared(name string, size int, perm fs.FileMode) ([]byte, func() error, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(false) {
		return nil, nil, crashed("open", name)
	}
	return c.m.MapShared(name, size, perm)
}

// SyncAll implements SyncFS.
func (c *Crasher) SyncAll(dir File) error {
	d, name := dir, fmt.Sprint(dir)
	if f, ok := dir.(*crasherFile); ok {
		d, name = f.f, f.name
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(true) {
		return crashed("syncfs", name)
	}
	return c.m.SyncAll(d)
}

// crasherFile is a File of a Crasher.
type crasherFile struct {
	c    *Crasher
	f    File
	name string
}

func (f *crasherFile) Read(p []byte) (int, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if !f.c.enter(false) {
		return 0, crashed("read", f.name)
	}
	return f.f.Read(p)
}

func (f *crasherFile) Write(p []byte) (int, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if !f.c.enter(true) {
		return 0, crashed("write", f.name)
	}
	return f.f.Write(p)
}

func (f *crasherFile) Close() error {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	err := f.f.Close()
	if !f.c.enter(false) {
		return crashed("close", f.name)
	}
	return err
}

func (f *crasherFile) Sync() error {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if !f.c.enter(true) {
		return crashed("sync", f.name)
	}
	return f.f.Sync()
}

func (f *crasherFile) Stat() (fs.FileInfo, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if !f.c.enter(false) {
		return nil, crashed("stat", f.name)
	}
	return f.f.Stat()
}

func (f *crasherFile) ReadDir(n int) ([]fs.DirEntry, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if !f.c.enter(false) {
		return []fs.DirEntry{}, crashed("readdirent", f.name)
	}
	return f.f.ReadDir(n)
}

// crasherLock is a Lock of a Crasher.
type crasherLock struct {
	c    *Crasher
	l    Lock
	name string
}

func (l *crasherLock) TryLock() (bool, error) {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	if !l.c.enter(false) {
		return false, crashed("flock", l.name)
	}
	return l.l.TryLock()
}

func (l *crasherLock) TryLockShared() (bool, error) {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	if !l.c.enter(false) {
		return false, crashed("flock", l.name)
	}
	return l.l.TryLockShared()
}

func (l *crasherLock) Unlock() error {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	if !l.c.enter(false) {
		return crashed("flock", l.name)
	}
	return l.l.Unlock()
}

func (l *crasherLock) Close() error {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	err := l.l.Close()
	if !l.c.enter(false) {
		return crashed("close", l.name)
	}
	return err
}

// Name returns the name the file was opened by.
func (f *injectingFile) Name() string { return f.name }

// Name returns the name the file was opened by.
func (f *crasherFile) Name() string { return f.name }

// CreateIn implements FS. The Injector is consulted, as for every method
// of FS whose name ends in "In", with the Op of the method without "In"
// and the path of name in dir.
func (i *Injecting) CreateIn(dir File, name string, perm fs.FileMode) (File, error) {
	d, full := i.inDir(dir, name)
	if err := i.check(OpCreate, full); err != nil {
		return nil, err
	}
	f, err := i.fs.CreateIn(d, name, perm)
	return i.file(full, f, err)
}

// OpenAppendIn implements FS.
func (i *Injecting) OpenAppendIn(dir File, name string, perm fs.FileMode) (File, error) {
	d, full := i.inDir(dir, name)
	if err := i.check(OpOpenAppend, full); err != nil {
		return nil, err
	}
	f, err := i.fs.OpenAppendIn(d, name, perm)
	return i.file(full, f, err)
}

// OpenDirIn implements FS.
func (i *Injecting) OpenDirIn(dir File, name string) (File, error) {
	d, full := i.inDir(dir, name)
	if name == "." {
		full = dir.Name()
	}
	if err := i.check(OpOpenDir, full); err != nil {
		return nil, err
	}
	f, err := i.fs.OpenDirIn(d, name)
	return i.file(full, f, err)
}

// RenameIn implements FS. The Injector is consulted with OpRename and the
// old path.
func (i *Injecting) RenameIn(oldDir File, oldname string, newDir File, newname string, how RenameHow) error {
	od, oldFull := i.inDir(oldDir, oldname)
	nd, newFull := i.inDir(newDir, newname)
	sysOp := "renameat2"
	if how == RenameReplace {
		sysOp = "rename"
	}
	if err := i.checkRename(sysOp, oldFull, newFull); err != nil {
		return err
	}
	return i.fs.RenameIn(od, oldname, nd, newname, how)
}

// TruncateIn implements FS.
func (i *Injecting) TruncateIn(dir File, name string, size int64) error {
	d, full := i.inDir(dir, name)
	if err := i.check(OpTruncate, full); err != nil {
		return err
	}
	return i.fs.TruncateIn(d, name, size)
}

// OverwriteIn implements FS.
func (i *Injecting) OverwriteIn(dir File, name string, off int64, p []byte) error {
	d, full := i.inDir(dir, name)
	if err := i.check(OpOverwrite, full); err != nil {
		return err
	}
	return i.fs.OverwriteIn(d, name, off, p)
}

// RemoveIn implements FS.
func (i *Injecting) RemoveIn(dir File, name string) error {
	d, full := i.inDir(dir, name)
	if err := i.check(OpRemove, full); err != nil {
		return err
	}
	return i.fs.RemoveIn(d, name)
}

// MkdirIn implements FS.
func (i *Injecting) MkdirIn(dir File, name string, perm fs.FileMode) error {
	d, full := i.inDir(dir, name)
	if err := i.check(OpMkdir, full); err != nil {
		return err
	}
	return i.fs.MkdirIn(d, name, perm)
}

// OpenLockIn implements FS.
func (i *Injecting) OpenLockIn(dir File, name string, perm fs.FileMode) (Lock, error) {
	d, full := i.inDir(dir, name)
	if err := i.check(OpOpenLock, full); err != nil {
		return nil, err
	}
	l, err := i.fs.OpenLockIn(d, name, perm)
	if err != nil {
		return nil, err
	}
	return &injectingLock{i: i, l: l, name: full}, nil
}

// MapSharedIn implements SharedMemory as MapShared does.
func (i *Injecting) MapSharedIn(dir File, name string, size int, perm fs.FileMode) ([]byte, func() error, error) {
	d, full := i.inDir(dir, name)
	sm, ok := i.fs.(SharedMemory)
	if !ok {
		return nil, nil, &fs.PathError{Op: "mmap", Path: full, Err: errors.ErrUnsupported}
	}
	if err := i.check(OpMapShared, full); err != nil {
		return nil, nil, err
	}
	return sm.MapSharedIn(d, name, size, perm)
}

// CreateIn implements FS.
func (c *Crasher) CreateIn(dir File, name string, perm fs.FileMode) (File, error) {
	d, full := c.inDir(dir, name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(true) {
		return nil, crashed("open", full)
	}
	f, err := c.m.CreateIn(d, name, perm)
	return c.file(full, f, err)
}

// OpenAppendIn implements FS; it counts as OpenAppend does.
func (c *Crasher) OpenAppendIn(dir File, name string, perm fs.FileMode) (File, error) {
	d, full := c.inDir(dir, name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(true) {
		return nil, crashed("open", full)
	}
	f, err := c.m.OpenAppendIn(d, name, perm)
	return c.file(full, f, err)
}

// OpenDirIn implements FS.
func (c *Crasher) OpenDirIn(dir File, name string) (File, error) {
	d, full := c.inDir(dir, name)
	if name == "." {
		full = dir.Name()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(false) {
		return nil, crashed("open", full)
	}
	f, err := c.m.OpenDirIn(d, name)
	return c.file(full, f, err)
}

// RenameIn implements FS.
func (c *Crasher) RenameIn(oldDir File, oldname string, newDir File, newname string, how RenameHow) error {
	od, oldFull := c.inDir(oldDir, oldname)
	nd, newFull := c.inDir(newDir, newname)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(true) {
		return &os.LinkError{Op: "renameat2", Old: oldFull, New: newFull, Err: ErrCrashed}
	}
	return c.m.RenameIn(od, oldname, nd, newname, how)
}

// TruncateIn implements FS.
func (c *Crasher) TruncateIn(dir File, name string, size int64) error {
	d, full := c.inDir(dir, name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(true) {
		return crashed("truncate", full)
	}
	return c.m.TruncateIn(d, name, size)
}

// OverwriteIn implements FS.
func (c *Crasher) OverwriteIn(dir File, name string, off int64, p []byte) error {
	d, full := c.inDir(dir, name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(true) {
		return crashed("pwrite", full)
	}
	return c.m.OverwriteIn(d, name, off, p)
}

// RemoveIn implements FS.
func (c *Crasher) RemoveIn(dir File, name string) error {
	d, full := c.inDir(dir, name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(true) {
		return crashed("remove", full)
	}
	return c.m.RemoveIn(d, name)
}

// MkdirIn implements FS.
func (c *Crasher) MkdirIn(dir File, name string, perm fs.FileMode) error {
	d, full := c.inDir(dir, name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(true) {
		return crashed("mkdir", full)
	}
	return c.m.MkdirIn(d, name, perm)
}

// OpenLockIn implements FS.
func (c *Crasher) OpenLockIn(dir File, name string, perm fs.FileMode) (Lock, error) {
	d, full := c.inDir(dir, name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(false) {
		return nil, crashed("open", full)
	}
	l, err := c.m.OpenLockIn(d, name, perm)
	if err != nil {
		return nil, err
	}
	return &crasherLock{c: c, l: l, name: full}, nil
}

// SetModTimeIn implements ModTimeSetter; it is a mutating call.
func (c *Crasher) SetModTimeIn(dir File, name string, t time.Time) error {
	d, full := c.inDir(dir, name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(true) {
		return crashed("utimensat", full)
	}
	return c.m.SetModTimeIn(d, name, t)
}

// MapSharedIn implements SharedMemory; it is not a mutating call.
func (c *Crasher) MapSharedIn(dir File, name string, size int, perm fs.FileMode) ([]byte, func() error, error) {
	d, full := c.inDir(dir, name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enter(false) {
		return nil, nil, crashed("open", full)
	}
	return c.m.MapSharedIn(d, name, size, perm)
}
