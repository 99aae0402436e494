//go:build linux || darwin

package vfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// fdReader is a regular file opened for reading on its bare descriptor: it
// costs an open, one fstat that also checks its type, the reads and a
// close, and no os.File.
type fdReader struct {
	fdFile
	st unix.Stat_t
}

// fdFile is what a file on its bare descriptor does whether it was opened
// for reading or writing.
type fdFile struct {
	fd   int // -1 once closed
	name string
}

// Sync makes the file's data durable, with the platform's full sync (see
// fsyncFD).
func (f *fdFile) Sync() error {
	if f.fd < 0 {
		return &os.PathError{Op: "sync", Path: f.name, Err: os.ErrClosed}
	}
	if err := retryEINTR(func() error { return fsyncFD(f.fd) }); err != nil {
		return &os.PathError{Op: "sync", Path: f.name, Err: err}
	}
	return nil
}

// Close closes the descriptor; closing again fails with os.ErrClosed and
// touches no descriptor.
func (f *fdFile) Close() error {
	if f.fd < 0 {
		return &os.PathError{Op: "close", Path: f.name, Err: os.ErrClosed}
	}
	fd := f.fd
	f.fd = -1
	if err := unix.Close(fd); err != nil {
		return &os.PathError{Op: "close", Path: f.name, Err: err}
	}
	return nil
}

func (f *fdFile) ReadDir(int) ([]fs.DirEntry, error) {
	return nil, &os.PathError{Op: "readdirent", Path: f.name, Err: syscall.ENOTDIR}
}

// openRead opens name for reading without following a symbolic link and
// without blocking (a FIFO would block until a writer came), and refuses
// anything but a regular file.
func openRead(name string) (File, error) {
	var fd int
	err := retryEINTR(func() (err error) {
		fd, err = unix.Open(name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return checkRead(fd, name)
}

// openReadIn is openRead with name looked up in the directory dir, by
// openat(2) on its descriptor.
func openReadIn(dir File, name string) (File, error) {
	var fd int
	full, err := at(dir, name, func(dirfd int) error {
		return retryEINTR(func() (err error) {
			fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
			return err
		})
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: full, Err: err}
	}
	return checkRead(fd, full)
}

// lstatIn describes name in the directory dir, by fstatat(2) on its
// descriptor.
func lstatIn(dir File, name string) (fs.FileInfo, error) {
	fi := &statInfo{name: name}
	full, err := at(dir, name, func(dirfd int) error {
		return retryEINTR(func() error { return unix.Fstatat(dirfd, name, &fi.st, unix.AT_SYMLINK_NOFOLLOW) })
	})
	if err != nil {
		return nil, &os.PathError{Op: "lstat", Path: full, Err: err}
	}
	return fi, nil
}

// at calls fn with the descriptor of the directory dir, and returns the
// path of name in it.
func at(dir File, name string, fn func(dirfd int) error) (string, error) {
	d, full, err := inDirName(dir, name)
	if err != nil {
		return full, err
	}
	rc, err := d.SyscallConn()
	if err != nil {
		return full, err
	}
	if cerr := rc.Control(func(fd uintptr) { err = fn(int(fd)) }); cerr != nil {
		return full, cerr
	}
	return full, err
}

// checkRead makes the descriptor fd, open for reading on name, a File if
// it is a regular file, and closes it otherwise.
func checkRead(fd int, name string) (File, error) {
	f := &fdReader{fdFile: fdFile{fd: fd, name: name}}
	if err := unix.Fstat(fd, &f.st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fstat", Path: name, Err: err}
	}
	if err := notRegularMode(uint32(f.st.Mode)); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return f, nil
}

// notRegularMode returns why a file of mode (a stat's st_mode) is refused
// where a regular file is wanted: syscall.EISDIR for a directory,
// ErrNotRegular for anything else but a regular file, and nil for one.
func notRegularMode(mode uint32) error {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return nil
	case unix.S_IFDIR:
		return syscall.EISDIR
	}
	return ErrNotRegular
}

func retryEINTR(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func (f *fdReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	err := retryEINTR(func() (err error) {
		n, err = unix.Read(f.fd, p)
		return err
	})
	switch {
	case err != nil:
		return 0, &os.PathError{Op: "read", Path: f.name, Err: err}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (f *fdReader) Write([]byte) (int, error) {
	return 0, &os.PathError{Op: "write", Path: f.name, Err: syscall.EBADF}
}

// Stat describes the file as it was when it was opened.
func (f *fdReader) Stat() (fs.FileInfo, error) { return fdInfo{f}, nil }

type fdInfo struct{ f *fdReader }

func (i fdInfo) Name() string       { return baseName(i.f.name) }
func (i fdInfo) Size() int64        { return i.f.st.Size }
func (i fdInfo) Mode() fs.FileMode  { return fs.FileMode(i.f.st.Mode & 0o777) }
func (i fdInfo) ModTime() time.Time { return time.Unix(i.f.st.Mtim.Unix()) }
func (i fdInfo) IsDir() bool        { return false }
func (i fdInfo) Sys() any           { return &i.f.st }

func baseName(name string) string {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '/' {
			return name[i+1:]
		}
	}
	return name
}

// statInfo is a fs.FileInfo from fstatat(2).
type statInfo struct {
	name string
	st   unix.Stat_t
}

func (i *statInfo) Name() string       { return i.name }
func (i *statInfo) Size() int64        { return i.st.Size }
func (i *statInfo) ModTime() time.Time { return time.Unix(i.st.Mtim.Unix()) }
func (i *statInfo) IsDir() bool        { return i.Mode().IsDir() }
func (i *statInfo) Sys() any           { return &i.st }

// Mode converts the mode as the os package does.
func (i *statInfo) Mode() fs.FileMode {
	m := fs.FileMode(i.st.Mode & 0o777)
	switch i.st.Mode & unix.S_IFMT {
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if i.st.Mode&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if i.st.Mode&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if i.st.Mode&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// createFile creates name for writing with O_EXCL, on a bare descriptor: an
// os.File would cost, on Linux, four fcntl calls and an epoll_ctl beside
// the open. perm keeps only its permission bits.
func createFile(name string, perm fs.FileMode) (File, error) {
	var fd int
	err := retryEINTR(func() (err error) {
		fd, err = unix.Open(name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
		return err
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return &fdWriter{fdFile{fd: fd, name: name}}, nil
}

// fdWriter is a file created for writing, on its bare descriptor.
type fdWriter struct {
	fdFile
}

// Write writes all of p, or returns the error that stopped it.
func (f *fdWriter) Write(p []byte) (int, error) { return writeAll(f.fd, f.name, p) }

// writeAll writes all of p to the descriptor fd, open on name, at its
// offset, or returns the error that stopped it.
func writeAll(fd int, name string, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		var m int
		err := retryEINTR(func() (err error) {
			m, err = unix.Write(fd, p[n:])
			return err
		})
		if err != nil {
			return n, &os.PathError{Op: "write", Path: name, Err: err}
		}
		if m == 0 {
			return n, &os.PathError{Op: "write", Path: name, Err: io.ErrShortWrite}
		}
		n += m
	}
	return n, nil
}

func (f *fdWriter) Read([]byte) (int, error) {
	return 0, &os.PathError{Op: "read", Path: f.name, Err: syscall.EBADF}
}

func (f *fdWriter) Stat() (fs.FileInfo, error) {
	fi := &statInfo{name: baseName(f.name)}
	if err := unix.Fstat(f.fd, &fi.st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: f.name, Err: err}
	}
	return fi, nil
}

// Name returns the path the file was opened by.
func (f *fdFile) Name() string { return f.name }
