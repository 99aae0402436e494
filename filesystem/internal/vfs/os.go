package vfs

import (
	"io/fs"
	"os"
)

// OS is the operating system's file system.
var OS FS = osFS{}

type osFS struct{}

func (osFS) Create(name string, perm fs.FileMode) (File, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|oNoFollow, perm)
}

func (osFS) Open(name string) (File, error) {
	return openRead(name)
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

func (osFS) Remove(name string) error                             { return os.Remove(name) }
func (osFS) Mkdir(name string, perm fs.FileMode) error            { return os.Mkdir(name, perm) }
func (osFS) Lstat(name string) (fs.FileInfo, error)               { return os.Lstat(name) }
func (osFS) OpenLock(name string, perm fs.FileMode) (Lock, error) { return openLock(name, perm) }
