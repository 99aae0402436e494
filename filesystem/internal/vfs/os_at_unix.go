//go:build linux || darwin

package vfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// openAt opens name in the directory dir by openat(2) with flags, which
// always include O_NOFOLLOW and O_CLOEXEC, and returns the descriptor and
// the path of name in dir.
func openAt(dir File, name string, flags int, perm fs.FileMode) (int, string, error) {
	fd := -1
	full, err := at(dir, name, func(dirfd int) error {
		return retryEINTR(func() (err error) {
			fd, err = unix.Openat(dirfd, name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
			return err
		})
	})
	return fd, full, err
}

func createFileIn(dir File, name string, perm fs.FileMode) (File, error) {
	fd, full, err := openAt(dir, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, perm)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: full, Err: err}
	}
	return &fdWriter{fdFile{fd: fd, name: full}}, nil
}

// openAppendIn is openAppend by openat(2).
func openAppendIn(dir File, name string, perm fs.FileMode) (File, error) {
	fd, full, err := openAt(dir, name, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_NONBLOCK, perm)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: full, Err: notRegular(err)}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fstat", Path: full, Err: err}
	}
	if err := notRegularMode(uint32(st.Mode)); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "open", Path: full, Err: err}
	}
	return os.NewFile(uintptr(fd), full), nil
}

func openDirIn(dir File, name string) (File, error) {
	var fd int
	var full string
	var err error
	flags := unix.O_RDONLY | unix.O_DIRECTORY
	if name == "." {
		var d *os.File
		if d, full, err = dirName(dir); err == nil {
			fd, err = dupDir(d, flags)
		}
	} else {
		fd, full, err = openAt(dir, name, flags, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: full, Err: err}
	}
	return os.NewFile(uintptr(fd), full), nil
}

// dupDir opens the directory d is open on anew, with its own offset.
func dupDir(d *os.File, flags int) (int, error) {
	rc, err := d.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	cerr := rc.Control(func(dirfd uintptr) {
		err = retryEINTR(func() (err error) {
			fd, err = unix.Openat(int(dirfd), ".", flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			return err
		})
	})
	if cerr != nil {
		return -1, cerr
	}
	return fd, err
}

// renameIn does renameat(how) on the descriptors of the two directories.
func renameIn(oldDir File, oldname string, newDir File, newname string, how RenameHow) error {
	_, newFull, err := inDirName(newDir, newname)
	var oldFull string
	if err == nil {
		oldFull, err = at(oldDir, oldname, func(oldfd int) error {
			_, err := at(newDir, newname, func(newfd int) error {
				return renameat(oldfd, oldname, newfd, newname, how)
			})
			return err
		})
	} else {
		_, oldFull, _ = inDirName(oldDir, oldname)
	}
	if how == RenameExchange && exchangeUnsupported(err) {
		err = fmt.Errorf("%w: %w", errors.ErrUnsupported, err)
	}
	if err != nil {
		return &os.LinkError{Op: renameOp(how), Old: oldFull, New: newFull, Err: err}
	}
	return nil
}

// truncateIn is truncate by openat(2).
func truncateIn(dir File, name string, size int64) error {
	fd, full, err := openAt(dir, name, unix.O_WRONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return &os.PathError{Op: "truncate", Path: full, Err: notRegular(err)}
	}
	var st unix.Stat_t
	err = unix.Fstat(fd, &st)
	if err == nil {
		err = notRegularMode(uint32(st.Mode))
	}
	if err == nil {
		err = retryEINTR(func() error { return unix.Ftruncate(fd, size) })
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return &os.PathError{Op: "truncate", Path: full, Err: err}
	}
	return nil
}

// overwriteIn is overwrite of name in dir, opened as truncateIn opens it.
func overwriteIn(dir File, name string, off int64, p []byte) error {
	fd, full, err := openAt(dir, name, unix.O_WRONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return &os.PathError{Op: "pwrite", Path: full, Err: notRegular(err)}
	}
	return overwriteFD(fd, full, off, p)
}

// removeIn does what os.Remove does, by unlinkat(2): it unlinks name, or
// removes it as an empty directory, and reports the error of the latter
// unless that is ENOTDIR.
func removeIn(dir File, name string) error {
	var err error
	full, rerr := at(dir, name, func(dirfd int) error {
		err = retryEINTR(func() error { return unix.Unlinkat(dirfd, name, 0) })
		if err == nil {
			return nil
		}
		derr := retryEINTR(func() error { return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR) })
		if derr == nil {
			err = nil
		} else if derr != syscall.ENOTDIR {
			err = derr
		}
		return nil
	})
	if rerr != nil {
		err = rerr
	}
	if err != nil {
		return &os.PathError{Op: "remove", Path: full, Err: err}
	}
	return nil
}

func mkdirIn(dir File, name string, perm fs.FileMode) error {
	full, err := at(dir, name, func(dirfd int) error {
		return retryEINTR(func() error { return unix.Mkdirat(dirfd, name, uint32(perm.Perm())) })
	})
	if err != nil {
		return &os.PathError{Op: "mkdir", Path: full, Err: err}
	}
	return nil
}

func openLockIn(dir File, name string, perm fs.FileMode) (Lock, error) {
	fd, full, err := openAt(dir, name, unix.O_RDWR|unix.O_CREAT, perm)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: full, Err: err}
	}
	return &flock{f: os.NewFile(uintptr(fd), full), name: full}, nil
}

func mapSharedIn(dir File, name string, size int, perm fs.FileMode) ([]byte, func() error, error) {
	fd, full, err := openAt(dir, name, unix.O_RDWR|unix.O_CREAT|unix.O_NONBLOCK, perm)
	if err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: full, Err: err}
	}
	return mapFd(fd, full, size)
}

// setModTimeIn sets the modification time of name in dir by utimensat(2)
// on the directory's descriptor, without following a symbolic link.
func setModTimeIn(dir File, name string, t time.Time) error {
	mtime, err := unix.TimeToTimespec(t)
	if err != nil {
		return &os.PathError{Op: "utimensat", Path: name, Err: err}
	}
	ts := []unix.Timespec{{Nsec: utimeOmit}, mtime}
	full, err := at(dir, name, func(dirfd int) error {
		return retryEINTR(func() error { return unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW) })
	})
	if err != nil {
		return &os.PathError{Op: "utimensat", Path: full, Err: err}
	}
	return nil
}
