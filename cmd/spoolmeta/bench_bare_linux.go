package main

import (
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// The calibrations make bare system calls: on Linux an os.File costs four
// fcntl calls and an epoll_ctl beside its open, and os.Rename an lstat of
// the target.

// bareWrite creates or truncates path, writes data to it, and fsyncs it if
// sync is set.
func bareWrite(path string, data []byte, sync bool) error {
	fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_TRUNC|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	for len(data) > 0 && err == nil {
		var n int
		n, err = syscall.Write(fd, data)
		switch {
		case err == syscall.EINTR:
			err = nil
		case err == nil && n == 0:
			err = io.ErrShortWrite
		case err == nil:
			data = data[n:]
		}
	}
	if err == nil && sync {
		err = syscall.Fsync(fd)
	}
	if cerr := syscall.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return &os.PathError{Op: "write", Path: path, Err: err}
	}
	return nil
}

func bareRename(oldpath, newpath string) error {
	if err := syscall.Rename(oldpath, newpath); err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}

// bareRenameNoReplace renames oldpath to newpath, failing if newpath
// exists (renameat2 RENAME_NOREPLACE).
func bareRenameNoReplace(oldpath, newpath string) error {
	return renameat2(oldpath, newpath, unix.RENAME_NOREPLACE)
}

// bareExchange swaps oldpath and newpath (renameat2 RENAME_EXCHANGE).
func bareExchange(oldpath, newpath string) error {
	return renameat2(oldpath, newpath, unix.RENAME_EXCHANGE)
}

func renameat2(oldpath, newpath string, flags uint) error {
	if err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, flags); err != nil {
		return &os.LinkError{Op: "renameat2", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}

func bareRemove(path string) error {
	if err := syscall.Unlink(path); err != nil {
		return &os.PathError{Op: "unlink", Path: path, Err: err}
	}
	return nil
}

// read reads the file name into buf, grown as needed, and returns it, with
// the bare system calls the backend makes to read a record: openat, fstat,
// read and close.
func (d *bareDir) read(name string, buf []byte) ([]byte, error) {
	fd, err := syscall.Openat(int(d.f.Fd()), name, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return buf, fmt.Errorf("open %s: %w", name, err)
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return buf, fmt.Errorf("fstat %s: %w", name, err)
	}
	buf = buf[:0]
	if int(st.Size) > cap(buf) {
		buf = make([]byte, 0, st.Size)
	}
	for len(buf) < int(st.Size) {
		n, err := syscall.Read(fd, buf[len(buf):st.Size])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return buf, fmt.Errorf("read %s: %w", name, err)
		}
		if n == 0 {
			break
		}
		buf = buf[:len(buf)+n]
	}
	return buf, nil
}

// flushSeed writes back everything written so far to the file system that
// holds dir (syncfs), so that the kernel's writeback of the data a workload
// was given does not run beside its measurement.
func flushSeed(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return &os.PathError{Op: "syncfs", Path: dir, Err: err}
	}
	return nil
}
