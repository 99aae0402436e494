package main

import (
	"fmt"
	"os"
	"syscall"
)

// bareDir reads the files of one directory with the bare system calls
// the backend makes to read a record: openat, fstat, read and close.
type bareDir struct {
	f *os.File
}

func openBareDir(dir string) (*bareDir, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	return &bareDir{f: f}, nil
}

// read reads the file name into buf, grown as needed, and returns it.
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

func (d *bareDir) close() error { return d.f.Close() }
