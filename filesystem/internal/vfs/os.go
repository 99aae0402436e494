package vfs

import (
	"io/fs"
	"os"
	"strings"
	"syscall"
	"time"
)

// OS is the operating system's file system.
var OS FS = osFS{}

type osFS struct{}

func (osFS) Create(name string, perm fs.FileMode) (File, error) {
	return createFile(name, perm)
}

func (osFS) Open(name string) (File, error) {
	return openRead(name)
}

func (osFS) OpenIn(dir File, name string) (File, error) {
	return openReadIn(dir, name)
}

func (osFS) LstatIn(dir File, name string) (fs.FileInfo, error) {
	return lstatIn(dir, name)
}

func (osFS) OpenAppend(name string, perm fs.FileMode) (File, error) {
	return openAppend(name, perm)
}

func (osFS) OpenDir(name string) (File, error) {
	return openDir(name)
}

func (osFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

func (osFS) RenameNoReplace(oldname, newname string) error {
	return renameNoReplace(oldname, newname)
}

func (osFS) Exchange(oldname, newname string) error { return exchange(oldname, newname) }

func (osFS) Truncate(name string, size int64) error { return truncate(name, size) }

func (osFS) Overwrite(name string, off int64, p []byte) error { return overwrite(name, off, p) }

func (osFS) Remove(name string) error                             { return os.Remove(name) }
func (osFS) Mkdir(name string, perm fs.FileMode) error            { return os.Mkdir(name, perm) }
func (osFS) Lstat(name string) (fs.FileInfo, error)               { return os.Lstat(name) }
func (osFS) OpenLock(name string, perm fs.FileMode) (Lock, error) { return openLock(name, perm) }

// MapShared implements SharedMemory.
func (osFS) MapShared(name string, size int, perm fs.FileMode) ([]byte, func() error, error) {
	return mapShared(name, size, perm)
}

// inDirName returns the path of name in the directory dir, or an error if
// dir is not a directory opened by OS or name not one path element.
func inDirName(dir File, name string) (*os.File, string, error) {
	d, ok := dir.(*os.File)
	if !ok {
		return nil, name, syscall.EBADF
	}
	full := d.Name() + string(os.PathSeparator) + name
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') || strings.ContainsRune(name, os.PathSeparator) {
		return nil, full, syscall.EINVAL
	}
	return d, full, nil
}

func (osFS) CreateIn(dir File, name string, perm fs.FileMode) (File, error) {
	return createFileIn(dir, name, perm)
}

func (osFS) OpenAppendIn(dir File, name string, perm fs.FileMode) (File, error) {
	return openAppendIn(dir, name, perm)
}

func (osFS) OpenDirIn(dir File, name string) (File, error) { return openDirIn(dir, name) }

func (osFS) RenameIn(oldDir File, oldname string, newDir File, newname string, how RenameHow) error {
	return renameIn(oldDir, oldname, newDir, newname, how)
}

func (osFS) TruncateIn(dir File, name string, size int64) error { return truncateIn(dir, name, size) }

func (osFS) OverwriteIn(dir File, name string, off int64, p []byte) error {
	return overwriteIn(dir, name, off, p)
}

func (osFS) RemoveIn(dir File, name string) error { return removeIn(dir, name) }

func (osFS) MkdirIn(dir File, name string, perm fs.FileMode) error {
	return mkdirIn(dir, name, perm)
}

func (osFS) OpenLockIn(dir File, name string, perm fs.FileMode) (Lock, error) {
	return openLockIn(dir, name, perm)
}

// MapSharedIn implements SharedMemory.
func (osFS) MapSharedIn(dir File, name string, size int, perm fs.FileMode) ([]byte, func() error, error) {
	return mapSharedIn(dir, name, size, perm)
}

// SetModTimeIn implements ModTimeSetter.
func (osFS) SetModTimeIn(dir File, name string, t time.Time) error {
	return setModTimeIn(dir, name, t)
}

// dirName returns the path of the directory dir and an error if it is
// not a directory opened by OS; for OpenDirIn's ".".
func dirName(dir File) (*os.File, string, error) {
	d, ok := dir.(*os.File)
	if !ok {
		return nil, ".", syscall.EBADF
	}
	return d, d.Name(), nil
}
