//go:build linux || darwin

package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

func openDir(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// openAppend opens name with O_WRONLY|O_APPEND|O_CREAT, without following a
// symbolic link and without blocking (a FIFO would block until a reader
// came), and refuses anything but a regular file. The descriptor keeps
// O_NONBLOCK, which changes nothing for a regular file.
func openAppend(name string, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, perm)
	if err != nil {
		if pe, ok := err.(*os.PathError); ok {
			pe.Err = notRegular(pe.Err)
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &os.PathError{Op: "open", Path: name, Err: ErrNotRegular}
	}
	return f, nil
}

// truncate does truncate(2) without following a symbolic link and without
// blocking: it opens name with O_WRONLY|O_NONBLOCK, checks that it is a
// regular file, and truncates the descriptor. Every error is a
// *os.PathError of Op "truncate", as os.Truncate returns.
func truncate(name string, size int64) error {
	var fd int
	err := retryEINTR(func() (err error) {
		fd, err = unix.Open(name, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return &os.PathError{Op: "truncate", Path: name, Err: notRegular(err)}
	}
	var st unix.Stat_t
	err = unix.Fstat(fd, &st)
	if err == nil {
		err = notRegularMode(uint32(st.Mode)) // a directory, open already refuses
	}
	if err == nil {
		err = retryEINTR(func() error { return unix.Ftruncate(fd, size) })
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return &os.PathError{Op: "truncate", Path: name, Err: err}
	}
	return nil
}

// overwrite does pwrite(2) of p at off in the regular file name, opened as
// truncate opens it, refusing bytes past the file's end. Every error is a
// *os.PathError of Op "pwrite".
func overwrite(name string, off int64, p []byte) error {
	var fd int
	err := retryEINTR(func() (err error) {
		fd, err = unix.Open(name, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return &os.PathError{Op: "pwrite", Path: name, Err: notRegular(err)}
	}
	return overwriteFD(fd, name, off, p)
}

// overwriteFD is overwrite of the open file fd, named name, which it
// closes.
func overwriteFD(fd int, name string, off int64, p []byte) error {
	var st unix.Stat_t
	err := unix.Fstat(fd, &st)
	if err == nil {
		err = notRegularMode(uint32(st.Mode))
	}
	if err == nil && (off < 0 || off > st.Size || int64(len(p)) > st.Size-off) {
		err = syscall.EINVAL
	}
	for err == nil && len(p) > 0 {
		var n int
		err = retryEINTR(func() (err error) {
			n, err = unix.Pwrite(fd, p, off)
			return err
		})
		p, off = p[n:], off+int64(n)
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return &os.PathError{Op: "pwrite", Path: name, Err: err}
	}
	return nil
}

// notRegular makes an error of open(2) with O_WRONLY|O_NONBLOCK match
// ErrNotRegular too when it is ENXIO, which open gives only for a FIFO with
// no reader, a device with no driver and a socket.
func notRegular(err error) error {
	if errors.Is(err, syscall.ENXIO) {
		return fmt.Errorf("%w: %w", ErrNotRegular, err)
	}
	return err
}

type flock struct {
	f    *os.File
	name string
}

func openLock(name string, perm os.FileMode) (Lock, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, perm)
	if err != nil {
		return nil, err
	}
	return &flock{f: f, name: name}, nil
}

func (l *flock) TryLock() (bool, error) { return l.try(unix.LOCK_EX) }

func (l *flock) TryLockShared() (bool, error) { return l.try(unix.LOCK_SH) }

func (l *flock) try(how int) (bool, error) {
	for {
		err := unix.Flock(int(l.f.Fd()), how|unix.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, unix.EWOULDBLOCK):
			return false, nil
		case errors.Is(err, unix.EINTR):
			continue
		}
		return false, &os.PathError{Op: "flock", Path: l.name, Err: err}
	}
}

func (l *flock) Unlock() error {
	if err := unix.Flock(int(l.f.Fd()), unix.LOCK_UN); err != nil {
		return &os.PathError{Op: "flock", Path: l.name, Err: err}
	}
	return nil
}

func (l *flock) Close() error { return l.f.Close() }

// fileID returns the device and inode number of the file fi describes, if
// fi comes from the os package or from an fdReader.
func fileID(fi fs.FileInfo) (dev, ino uint64, ok bool) {
	switch st := fi.Sys().(type) {
	case *syscall.Stat_t:
		return uint64(st.Dev), st.Ino, true
	case *unix.Stat_t:
		return uint64(st.Dev), st.Ino, true
	}
	return 0, 0, false
}

// linkCount returns the number of names of the file fi describes, if fi
// comes from the os package or from this package's descriptors.
func linkCount(fi fs.FileInfo) (uint64, bool) {
	switch st := fi.Sys().(type) {
	case *syscall.Stat_t:
		return uint64(st.Nlink), true
	case *unix.Stat_t:
		return uint64(st.Nlink), true
	}
	return 0, false
}

// mapShared opens name as open(2) with O_RDWR|O_CREAT|O_NOFOLLOW does,
// extends it with zeros to size under an exclusive flock, so that two
// processes extending it at once cannot write zeros over what a third has
// already stored in the memory, and maps it with MAP_SHARED. The zeros are
// written, not left as a hole, so that the file's blocks are allocated now:
// a store into the memory over a hole on a full disk would raise SIGBUS.
func mapShared(name string, size int, perm fs.FileMode) ([]byte, func() error, error) {
	var fd int
	err := retryEINTR(func() (err error) {
		fd, err = unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, uint32(perm.Perm()))
		return err
	})
	if err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return mapFd(fd, name, size)
}

// mapFd is mapShared of the file open on fd, as name; it closes fd.
func mapFd(fd int, name string, size int) ([]byte, func() error, error) {
	defer unix.Close(fd)
	if err := retryEINTR(func() error { return unix.Flock(fd, unix.LOCK_EX) }); err != nil {
		return nil, nil, &os.PathError{Op: "flock", Path: name, Err: err}
	}
	// The mapping keeps the open file, and so the lock, past the close.
	defer unix.Flock(fd, unix.LOCK_UN)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, nil, &os.PathError{Op: "fstat", Path: name, Err: err}
	}
	if err := notRegularMode(uint32(st.Mode)); err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	if st.Size < int64(size) {
		if _, err := unix.Seek(fd, st.Size, io.SeekStart); err != nil {
			return nil, nil, &os.PathError{Op: "seek", Path: name, Err: err}
		}
		if _, err := writeAll(fd, name, make([]byte, int64(size)-st.Size)); err != nil {
			return nil, nil, err
		}
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if errors.Is(err, unix.ENODEV) {
		// The file system cannot map files: so it is for every process.
		err = fmt.Errorf("%w: %w", errors.ErrUnsupported, err)
	}
	if err != nil {
		return nil, nil, &os.PathError{Op: "mmap", Path: name, Err: err}
	}
	unmap := func() error {
		if err := unix.Munmap(mem); err != nil {
			return &os.PathError{Op: "munmap", Path: name, Err: err}
		}
		return nil
	}
	return mem, unmap, nil
}
