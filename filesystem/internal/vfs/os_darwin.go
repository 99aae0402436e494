package vfs

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// macOS has no syncfs: osFS does not implement SyncFS there, and a Backend
// makes its changes durable through Tracking (see track.go).

// renameat renames by renameatx_np(2), with RENAME_EXCL or RENAME_SWAP as
// how says: the same atomic no-replace rename and exchange as Linux's
// renameat2 flags.
func renameat(oldfd int, oldname string, newfd int, newname string, how RenameHow) error {
	var flags uint32
	switch how {
	case RenameNoReplace:
		flags = unix.RENAME_EXCL
	case RenameExchange:
		flags = unix.RENAME_SWAP
	}
	return unix.RenameatxNp(oldfd, oldname, newfd, newname, flags)
}

// renameOp is the name of the call renameat makes, for errors.
func renameOp(how RenameHow) string {
	if how == RenameReplace {
		return "rename"
	}
	return "renameatx_np"
}

// exchangeUnsupported reports whether err, from renameatx_np with
// RENAME_SWAP, says the file system lacks it, as HFS+ does (ENOTSUP).
func exchangeUnsupported(err error) bool {
	return errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL)
}

// fsyncFD makes the file open on fd durable with fcntl(F_FULLFSYNC): a
// plain fsync(2) on macOS leaves the data in the drive's write cache. A
// file system that lacks F_FULLFSYNC (ENOTSUP, such as an SMB mount) gets
// fsync(2), as os.File.Sync does.
func fsyncFD(fd int) error {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_FULLFSYNC, 0)
	if errors.Is(err, unix.ENOTSUP) {
		err = unix.Fsync(fd)
	}
	return err
}

func renameNoReplace(oldname, newname string) error {
	err := renameat(unix.AT_FDCWD, oldname, unix.AT_FDCWD, newname, RenameNoReplace)
	if err != nil {
		return &os.LinkError{Op: "renameatx_np", Old: oldname, New: newname, Err: err}
	}
	return nil
}

func exchange(oldname, newname string) error {
	err := renameat(unix.AT_FDCWD, oldname, unix.AT_FDCWD, newname, RenameExchange)
	if exchangeUnsupported(err) {
		err = fmt.Errorf("%w: %w", errors.ErrUnsupported, err)
	}
	if err != nil {
		return &os.LinkError{Op: "renameatx_np", Old: oldname, New: newname, Err: err}
	}
	return nil
}

// utimeOmit, as a Timespec's Nsec, leaves that time unchanged: UTIME_OMIT
// of <sys/stat.h>, which golang.org/x/sys/unix does not define for darwin.
const utimeOmit = -2
