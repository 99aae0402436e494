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

// TestAppendTruncateNonRegular shows that OpenAppend and Truncate on the OS
// neither block on nor change a FIFO (with or without a reader), a socket
// or a device: they fail with ErrNotRegular.
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
