package vfs

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestAppendTruncateNonRegular shows that OpenAppend, Truncate and
// Overwrite on the OS neither block on nor change a FIFO (with or without
// a reader), a socket or a device: they fail with ErrNotRegular.
func TestAppendTruncateNonRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	readFIFO := filepath.Join(dir, "read-fifo")
	if err := syscall.Mkfifo(readFIFO, 0o644); err != nil {
		t.Fatal(err)
	}
	// A reader, so that opening the FIFO for writing succeeds and the type
	// check after it is what refuses.
	rfd, err := unix.Open(readFIFO, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rfd)
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	tests := []struct{ what, name string }{
		{"FIFO without a reader", fifo},
		{"FIFO with a reader", readFIFO},
		{"socket", sock},
		{"device", "/dev/null"},
	}
	for _, tt := range tests {
		t.Run(tt.what, func(t *testing.T) {
			if _, err := os.Lstat(tt.name); err != nil {
				t.Skip(err)
			}
			f, err := OS.OpenAppend(tt.name, 0o644)
			if err == nil {
				f.Close()
			}
			var pe *fs.PathError
			if !errors.Is(err, ErrNotRegular) || !errors.As(err, &pe) || pe.Op != "open" {
				t.Errorf("OpenAppend = %v, want a *fs.PathError of Op open wrapping ErrNotRegular", err)
			}
			err = OS.Truncate(tt.name, 0)
			if !errors.Is(err, ErrNotRegular) || !errors.As(err, &pe) || pe.Op != "truncate" {
				t.Errorf("Truncate = %v, want a *fs.PathError of Op truncate wrapping ErrNotRegular", err)
			}
			err = OS.Overwrite(tt.name, 0, []byte("x"))
			if !errors.Is(err, ErrNotRegular) || !errors.As(err, &pe) || pe.Op != "pwrite" {
				t.Errorf("Overwrite = %v, want a *fs.PathError of Op pwrite wrapping ErrNotRegular", err)
			}
		})
	}
	// Nothing reached the reader: end of file, as the refused writer has
	// gone, or EAGAIN.
	if n, err := unix.Read(rfd, make([]byte, 1)); n != 0 || err != nil && !errors.Is(err, unix.EAGAIN) {
		t.Errorf("read from the FIFO = %d, %v; want nothing", n, err)
	}
}

// TestOSAppendFile checks that a File from OpenAppend on the OS is an
// *os.File whose descriptor is write-only and in append mode.
func TestOSAppendFile(t *testing.T) {
	j := filepath.Join(t.TempDir(), "j")
	f, err := OS.OpenAppend(j, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	of, ok := f.(*os.File)
	if !ok {
		t.Fatalf("OpenAppend returned a %T, want an *os.File", f)
	}
	flags, err := unix.FcntlInt(of.Fd(), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.O_APPEND == 0 || flags&unix.O_ACCMODE != unix.O_WRONLY {
		t.Errorf("flags %#x, want O_WRONLY|O_APPEND", flags)
	}
}

// TestOSCreate pins what Create on the OS does with its bare descriptor:
// it makes a new file with the permissions asked (under the umask), writes
// and syncs it, describes it, refuses to read, and never creates over an
// existing name, a symbolic link (dangling or not) among them.
func TestOSCreate(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	old := unix.Umask(0o022)
	defer unix.Umask(old)
	f, err := OS.Create(name, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte(`{"ID":"m-1"}`)
	if n, err := f.Write(data); n != len(data) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(data))
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	fi, err := f.Stat()
	if err != nil || fi.Size() != int64(len(data)) || fi.Mode() != 0o640 || fi.Name() != "f" {
		t.Fatalf("Stat = %v, %v; want f, size %d, mode 0640", fi, err, len(data))
	}
	if _, err := f.Read(make([]byte, 1)); !errors.Is(err, syscall.EBADF) {
		t.Errorf("Read on a created file: %v, want EBADF", err)
	}
	if _, err := f.ReadDir(1); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("ReadDir on a created file: %v, want ENOTDIR", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := f.Close(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("second Close: %v, want os.ErrClosed", err)
	}
	if got, err := os.ReadFile(name); err != nil || string(got) != string(data) {
		t.Fatalf("file holds %q, %v; want %q", got, err, data)
	}
	r, err := OS.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close of a file opened for reading: %v", err)
	}
	if err := r.Close(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("second Close of a file opened for reading: %v, want os.ErrClosed", err)
	}
	target := filepath.Join(dir, "target")
	if err := os.Symlink(target, filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	for _, existing := range []string{name, filepath.Join(dir, "dangling")} {
		f, err := OS.Create(existing, 0o644)
		if !errors.Is(err, fs.ErrExist) {
			t.Errorf("Create(%s) over an existing name: %v, want fs.ErrExist", existing, err)
		}
		if f != nil {
			f.Close()
		}
		var pe *fs.PathError
		if !errors.As(err, &pe) || pe.Path != existing {
			t.Errorf("Create(%s): error %v does not name the path", existing, err)
		}
	}
	if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Create through a dangling symbolic link created its target: %v", err)
	}
}

// TestOSSyncAll shows that SyncAll works on an open directory and refuses
// a closed one.
func TestOSSyncAll(t *testing.T) {
	d, err := OS.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := OS.(SyncFS).SyncAll(d); err != nil {
		t.Fatalf("SyncAll: %v", err)
	}
	d.Close()
	if err := OS.(SyncFS).SyncAll(d); err == nil {
		t.Fatal("SyncAll of a closed directory succeeded")
	}
}
