//go:build !linux

package vfs

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

const oNoFollow = 0

// errUnsupported is returned where this platform lacks a guarantee the
// backend relies on; the filesystem backend refuses to open before it would
// reach these.
var errUnsupported = errors.New("not supported on this platform: the backend needs renameat2(RENAME_NOREPLACE) and flock, which it implements on Linux only")

func openRead(name string) (File, error) { return os.Open(name) }

func createFile(name string, perm fs.FileMode) (File, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|oNoFollow, perm.Perm())
}

func openDir(name string) (File, error) { return os.Open(name) }

func openAppend(name string, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE|oNoFollow, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func truncate(name string, size int64) error { return os.Truncate(name, size) }

func overwrite(name string, off int64, p []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|oNoFollow, 0)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	switch {
	case err != nil:
	case !fi.Mode().IsRegular():
		err = &os.PathError{Op: "pwrite", Path: name, Err: ErrNotRegular}
	case off < 0 || off > fi.Size() || int64(len(p)) > fi.Size()-off:
		err = &os.PathError{Op: "pwrite", Path: name, Err: syscall.EINVAL}
	default:
		_, err = f.WriteAt(p, off)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func renameNoReplace(oldname, newname string) error {
	return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: errUnsupported}
}

func exchange(oldname, newname string) error {
	return &os.LinkError{Op: "exchange", Old: oldname, New: newname, Err: errors.ErrUnsupported}
}

func openLock(name string, perm os.FileMode) (Lock, error) {
	return nil, &os.PathError{Op: "lock", Path: name, Err: errUnsupported}
}

// fileID leaves the comparison to os.SameFile.
func fileID(fs.FileInfo) (dev, ino uint64, ok bool) { return 0, 0, false }

func openReadIn(dir File, name string) (File, error) {
	_, full, err := inDirName(dir, name)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: full, Err: err}
	}
	return openRead(full)
}

func lstatIn(dir File, name string) (fs.FileInfo, error) {
	_, full, err := inDirName(dir, name)
	if err != nil {
		return nil, &os.PathError{Op: "lstat", Path: full, Err: err}
	}
	return os.Lstat(full)
}

func mapShared(name string, _ int, _ fs.FileMode) ([]byte, func() error, error) {
	return nil, nil, &fs.PathError{Op: "mmap", Path: name, Err: errors.ErrUnsupported}
}
