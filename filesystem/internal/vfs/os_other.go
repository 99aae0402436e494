//go:build !linux && !darwin

package vfs

import (
	"cmp"
	"errors"
	"io/fs"
	"os"
	"syscall"
	"time"
)

const oNoFollow = 0

// errUnsupported is returned where this platform lacks a guarantee the
// backend relies on; the filesystem backend refuses to open before it would
// reach these.
var errUnsupported = errors.New("not supported on this platform: the backend needs a no-replace rename and flock, which it implements on Linux and macOS only")

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

// linkCount does not know.
func linkCount(fs.FileInfo) (uint64, bool) { return 0, false }

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

// The directory-relative operations below resolve the path of name in dir
// again: they are not safe against a directory replaced after it was
// opened, which the backend needs only where it runs, on Linux.

func inDirPath(op string, dir File, name string) (string, error) {
	_, full, err := inDirName(dir, name)
	if err != nil {
		return "", &os.PathError{Op: op, Path: full, Err: err}
	}
	return full, nil
}

func createFileIn(dir File, name string, perm fs.FileMode) (File, error) {
	full, err := inDirPath("open", dir, name)
	if err != nil {
		return nil, err
	}
	return createFile(full, perm)
}

func openAppendIn(dir File, name string, perm fs.FileMode) (File, error) {
	full, err := inDirPath("open", dir, name)
	if err != nil {
		return nil, err
	}
	return openAppend(full, perm)
}

func openDirIn(dir File, name string) (File, error) {
	if name == "." {
		_, full, err := dirName(dir)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: full, Err: err}
		}
		return openDir(full)
	}
	full, err := inDirPath("open", dir, name)
	if err != nil {
		return nil, err
	}
	return openDir(full)
}

func renameIn(oldDir File, oldname string, newDir File, newname string, how RenameHow) error {
	_, oldFull, err := inDirName(oldDir, oldname)
	_, newFull, nerr := inDirName(newDir, newname)
	if err = cmp.Or(err, nerr); err != nil {
		return &os.LinkError{Op: "rename", Old: oldFull, New: newFull, Err: err}
	}
	switch how {
	case RenameNoReplace:
		return renameNoReplace(oldFull, newFull)
	case RenameExchange:
		return exchange(oldFull, newFull)
	}
	return os.Rename(oldFull, newFull)
}

func truncateIn(dir File, name string, size int64) error {
	full, err := inDirPath("truncate", dir, name)
	if err != nil {
		return err
	}
	return truncate(full, size)
}

func overwriteIn(dir File, name string, off int64, p []byte) error {
	full, err := inDirPath("pwrite", dir, name)
	if err != nil {
		return err
	}
	return overwrite(full, off, p)
}

func removeIn(dir File, name string) error {
	full, err := inDirPath("remove", dir, name)
	if err != nil {
		return err
	}
	return os.Remove(full)
}

func mkdirIn(dir File, name string, perm fs.FileMode) error {
	full, err := inDirPath("mkdir", dir, name)
	if err != nil {
		return err
	}
	return os.Mkdir(full, perm)
}

func openLockIn(dir File, name string, perm fs.FileMode) (Lock, error) {
	full, err := inDirPath("open", dir, name)
	if err != nil {
		return nil, err
	}
	return openLock(full, perm)
}

func mapSharedIn(dir File, name string, size int, perm fs.FileMode) ([]byte, func() error, error) {
	full, err := inDirPath("open", dir, name)
	if err != nil {
		return nil, nil, err
	}
	return mapShared(full, size, perm)
}

func setModTimeIn(dir File, name string, _ time.Time) error {
	_, full, _ := inDirName(dir, name)
	return &os.PathError{Op: "utimensat", Path: full, Err: errors.ErrUnsupported}
}
