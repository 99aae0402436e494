// Package vfs is the file system as the filesystem backend uses it: the few
// operations the backend needs and nothing else. OS is the real one; Mem is a
// strict in-memory one for tests, which can forget, at a simulated crash,
// everything that was not synced.
//
// Errors are *fs.PathError or *os.LinkError values wrapping a syscall.Errno,
// as the os package returns them, so errors.Is(err, fs.ErrNotExist) and
// errors.Is(err, syscall.ENOSPC) work for every implementation.
package vfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"time"
)

// ErrNotRegular is returned by Open, OpenAppend and Truncate for a name that
// is not a regular file, a directory or a symbolic link: a FIFO, a device or
// a socket.
var ErrNotRegular = errors.New("not a regular file")

// FS is a hierarchical file system addressed by OS paths.
// Implementations are safe for concurrent use.
type FS interface {
	// Create creates name as a new, empty regular file opened for writing,
	// with the permission bits of perm (no setuid, setgid or sticky bit).
	// It fails with an error wrapping fs.ErrExist if name exists, and
	// never follows a symbolic link.
	Create(name string, perm fs.FileMode) (File, error)

	// Open opens the existing regular file name for reading. It never
	// follows a symbolic link in the last element of name: opening one
	// fails with an error wrapping syscall.ELOOP. It never blocks on, or
	// reads, anything but a regular file: a FIFO, a device or a socket
	// gives an error wrapping ErrNotRegular, a directory one wrapping
	// syscall.EISDIR.
	Open(name string) (File, error)

	// OpenIn opens the existing regular file name in the directory dir, a
	// File that OpenDir returned and that is still open, as Open opens a
	// path, without resolving the directory's path again: name is one
	// path element (no "/", not "." or ".."), looked up in the directory
	// dir is open on, wherever that directory is now. Errors name the file
	// as dir's name, the path separator and name.
	OpenIn(dir File, name string) (File, error)

	// LstatIn describes name in the directory dir without following a
	// symbolic link, as Lstat does, with name looked up as OpenIn looks it
	// up.
	LstatIn(dir File, name string) (fs.FileInfo, error)

	// OpenAppend opens the regular file name for appending, creating it
	// with permission bits perm if it does not exist, as open(2) with
	// O_WRONLY|O_APPEND|O_CREAT does. Every Write appends its whole
	// buffer at the file's current end atomically, also when other Files,
	// of this process or another, append to the same file; Read fails
	// with an error wrapping syscall.EBADF. It never follows a symbolic
	// link in the last element of name: opening one fails with an error
	// wrapping syscall.ELOOP. It never blocks on anything but a regular
	// file: a FIFO, a device or a socket gives an error wrapping
	// ErrNotRegular, a directory one wrapping syscall.EISDIR. A file it
	// creates is durable once its directory has been synced, as one from
	// Create; the data once the File has been synced.
	OpenAppend(name string, perm fs.FileMode) (File, error)

	// OpenDir opens the directory name for ReadDir and Sync. It fails
	// with an error wrapping syscall.ENOTDIR if name is not a directory,
	// and never follows a symbolic link in the last element of name.
	OpenDir(name string) (File, error)

	// Rename renames oldname to newname atomically, replacing newname
	// if it exists. The change is durable once the directories of both
	// names have been synced.
	Rename(oldname, newname string) error

	// RenameNoReplace renames oldname to newname atomically, failing with
	// an error wrapping fs.ErrExist if newname exists.
	RenameNoReplace(oldname, newname string) error

	// Exchange swaps oldname and newname atomically, as renameat2(2) with
	// RENAME_EXCHANGE does: afterwards each name refers to the file the
	// other did. Both must exist. Unlike a rename over an existing file,
	// it never makes the file system write the renamed file's data back
	// early (ext4 does that for a rename that replaces a file). Where the
	// platform or file system lacks it, the error wraps
	// errors.ErrUnsupported.
	Exchange(oldname, newname string) error

	// Truncate changes the size of the regular file name to size, as
	// truncate(2) does: the data past size is cut, and a file that grows
	// reads as zeros up to size. It never follows a symbolic link in the
	// last element of name (ELOOP) and never blocks: a directory gives an
	// error wrapping syscall.EISDIR, a FIFO, a device or a socket one
	// wrapping ErrNotRegular. The new size is durable once a File open on
	// the file has been synced.
	Truncate(name string, size int64) error

	// Overwrite writes p over the bytes of the existing regular file name
	// from offset off, as pwrite(2) on a descriptor opened without
	// O_APPEND does. It never changes the file's size: bytes past the
	// end fail with an error wrapping syscall.EINVAL, and nothing is
	// written. It never follows a symbolic link in the last element of
	// name (ELOOP) and never blocks, as Truncate. The bytes are durable
	// once a File open on the file has been synced.
	Overwrite(name string, off int64, p []byte) error

	// Remove removes the file or empty directory name.
	Remove(name string) error

	// Mkdir creates the directory name. It fails with an error wrapping
	// fs.ErrExist if name exists.
	Mkdir(name string, perm fs.FileMode) error

	// Lstat describes name without following a symbolic link.
	Lstat(name string) (fs.FileInfo, error)

	// OpenLock opens the lock file name, creating it if it does not
	// exist. Locks on different Lock values exclude each other, whether
	// they are held by one process or by several.
	OpenLock(name string, perm fs.FileMode) (Lock, error)

	// The methods below work on name in the directory dir, a File that
	// OpenDir or OpenDirIn returned and that is still open, as the methods
	// of the same name without "In" work on a path, but without resolving
	// the directory's path again: name is one path element (no "/", not
	// "." or ".."; syscall.EINVAL otherwise), looked up in the directory
	// dir is open on, wherever that directory is now, and a symbolic link
	// it names is never followed. Errors name the file as dir's name, the
	// path separator and name.

	// CreateIn is Create of name in dir.
	CreateIn(dir File, name string, perm fs.FileMode) (File, error)

	// OpenAppendIn is OpenAppend of name in dir.
	OpenAppendIn(dir File, name string, perm fs.FileMode) (File, error)

	// OpenDirIn is OpenDir of name in dir; name may also be ".", which
	// opens dir's directory anew.
	OpenDirIn(dir File, name string) (File, error)

	// RenameIn renames oldname in oldDir to newname in newDir atomically,
	// as Rename, RenameNoReplace or Exchange does, as how says. It renames
	// no directory.
	RenameIn(oldDir File, oldname string, newDir File, newname string, how RenameHow) error

	// TruncateIn is Truncate of name in dir.
	TruncateIn(dir File, name string, size int64) error

	// OverwriteIn is Overwrite of name in dir.
	OverwriteIn(dir File, name string, off int64, p []byte) error

	// RemoveIn is Remove of name in dir.
	RemoveIn(dir File, name string) error

	// MkdirIn is Mkdir of name in dir.
	MkdirIn(dir File, name string, perm fs.FileMode) error

	// OpenLockIn is OpenLock of name in dir.
	OpenLockIn(dir File, name string, perm fs.FileMode) (Lock, error)
}

// RenameHow says what RenameIn does where the new name exists.
type RenameHow int

const (
	// RenameReplace replaces the new name, as Rename does.
	RenameReplace RenameHow = iota
	// RenameNoReplace fails with an error wrapping fs.ErrExist, as
	// RenameNoReplace does.
	RenameNoReplace
	// RenameExchange swaps the two names, as Exchange does.
	RenameExchange
)

// File is an open file or directory.
type File interface {
	io.Reader
	io.Writer
	io.Closer

	// Sync makes the file's data durable; for a directory, its entries.
	Sync() error

	// Stat describes the file.
	Stat() (fs.FileInfo, error)

	// Name returns the name the file was opened by.
	Name() string

	// ReadDir reads the next n entries of a directory in directory order,
	// as os.File.ReadDir does: with n > 0 at most n entries, and io.EOF
	// at the end. It never returns "." or "..".
	ReadDir(n int) ([]fs.DirEntry, error)
}

// Lock is an advisory lock on a lock file, exclusive or shared, as
// flock(2) gives.
type Lock interface {
	// TryLock takes the lock exclusively if no other Lock holds it,
	// without waiting, and reports whether it did. A shared hold of this
	// Lock is converted.
	TryLock() (bool, error)

	// TryLockShared takes the lock shared if no other Lock holds it
	// exclusively, without waiting, and reports whether it did. Any
	// number of Locks may hold it shared at once. An exclusive hold of
	// this Lock is converted; the conversion need not be atomic.
	TryLockShared() (bool, error)

	// Unlock releases the lock.
	Unlock() error

	// Close releases the lock if held and closes the lock file.
	Close() error
}

// SyncFS is implemented by file systems that can make every change under a
// directory durable in one call, as syncfs(2) does.
type SyncFS interface {
	// SyncAll makes durable every change made so far to the file system
	// that holds the open directory dir. It reports a failure to write
	// back any change made since dir was opened, even one that was
	// reported to another caller already, so a caller that calls it
	// repeatedly should keep dir open between the calls.
	SyncAll(dir File) error
}

// ModTimeSetter is implemented by file systems that can set a file's
// modification time.
type ModTimeSetter interface {
	// SetModTimeIn sets the modification time of name in the directory
	// dir, looked up as FS.OpenIn looks it up, to t, as utimensat(2) with
	// AT_SYMLINK_NOFOLLOW does: the time of a symbolic link itself, never
	// of its target; the access time is left. The file system may keep
	// t coarser than a nanosecond. The new time is durable once a File
	// open on the file has been synced, or a SyncAll made. Where the
	// platform lacks it, the error wraps errors.ErrUnsupported.
	SetModTimeIn(dir File, name string, t time.Time) error
}

// SharedMemory is implemented by file systems that can map a file into
// memory shared by every process that maps the same file, as mmap(2) with
// MAP_SHARED does.
type SharedMemory interface {
	// MapShared maps the first size bytes of the regular file name into
	// memory, creating the file with permission bits perm if it does not
	// exist, and extending it with zeros to size if it is shorter. Every
	// mapping of the file, by this process or another, sees the same
	// memory, and every change to it at once; what the memory holds need
	// not reach the file durably. The memory is aligned to 8 bytes and
	// stays valid until unmap is called. MapShared never follows a
	// symbolic link in the last element of name, and refuses anything but a
	// regular file (ErrNotRegular, or syscall.EISDIR for a directory).
	// Where the platform or the file system lacks it, the error wraps
	// errors.ErrUnsupported.
	MapShared(name string, size int, perm fs.FileMode) (mem []byte, unmap func() error, err error)

	// MapSharedIn is MapShared of name in the directory dir, looked up as
	// FS.OpenLockIn looks it up.
	MapSharedIn(dir File, name string, size int, perm fs.FileMode) (mem []byte, unmap func() error, err error)
}

// SameFile reports whether fi1 and fi2 describe the same file, as
// os.SameFile does, for the descriptions that the FS implementations of
// this package return: from Lstat, and from the Stat of an open File. A
// file that is open keeps its identity: no other file can be the same file
// as it while it stays open, even after it is removed.
func SameFile(fi1, fi2 fs.FileInfo) bool {
	if fi1 == nil || fi2 == nil {
		return false
	}
	if m1, ok := fi1.(*memInfo); ok {
		m2, ok := fi2.(*memInfo)
		return ok && m1.node != nil && m1.node == m2.node
	}
	if dev1, ino1, ok := fileID(fi1); ok {
		dev2, ino2, ok := fileID(fi2)
		return ok && dev1 == dev2 && ino1 == ino2
	}
	return os.SameFile(fi1, fi2)
}
