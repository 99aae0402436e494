package vfs

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// renameat renames by renameat2(2), with RENAME_NOREPLACE or
// RENAME_EXCHANGE as how says.
func renameat(oldfd int, oldname string, newfd int, newname string, how RenameHow) error {
	var flags uint
	switch how {
	case RenameNoReplace:
		flags = unix.RENAME_NOREPLACE
	case RenameExchange:
		flags = unix.RENAME_EXCHANGE
	}
	return unix.Renameat2(oldfd, oldname, newfd, newname, flags)
}

// renameOp is the name of the call renameat makes, for errors.
func renameOp(how RenameHow) string {
	if how == RenameReplace {
		return "rename"
	}
	return "renameat2"
}

// exchangeUnsupported reports whether err, from renameat2 with
// RENAME_EXCHANGE, says the kernel or the file system lacks it.
func exchangeUnsupported(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP)
}

// fsyncFD makes the file open on fd durable: on Linux, fsync(2) also
// flushes the drive's write cache.
func fsyncFD(fd int) error { return unix.Fsync(fd) }

func renameNoReplace(oldname, newname string) error {
	err := renameat(unix.AT_FDCWD, oldname, unix.AT_FDCWD, newname, RenameNoReplace)
	if err != nil {
		return &os.LinkError{Op: "renameat2", Old: oldname, New: newname, Err: err}
	}
	return nil
}

func exchange(oldname, newname string) error {
	err := renameat(unix.AT_FDCWD, oldname, unix.AT_FDCWD, newname, RenameExchange)
	if exchangeUnsupported(err) {
		err = fmt.Errorf("%w: %w", errors.ErrUnsupported, err)
	}
	if err != nil {
		return &os.LinkError{Op: "renameat2", Old: oldname, New: newname, Err: err}
	}
	return nil
}

// SyncAll implements SyncFS with syncfs(2) on dir's descriptor, which
// reports every write-back error since dir was opened.
func (osFS) SyncAll(dir File) error {
	d, ok := dir.(*os.File)
	if !ok {
		return &os.PathError{Op: "syncfs", Path: fmt.Sprint(dir), Err: syscall.EBADF}
	}
	rc, err := d.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) { err = unix.Syncfs(int(fd)) })
		err = cmp.Or(cerr, err)
	}
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) {
		err = fmt.Errorf("%w: %w", errors.ErrUnsupported, err)
	}
	if err != nil {
		return &os.PathError{Op: "syncfs", Path: d.Name(), Err: err}
	}
	return nil
}

// utimeOmit, as a Timespec's Nsec, leaves that time unchanged.
const utimeOmit = unix.UTIME_OMIT
