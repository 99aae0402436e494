//go:build !linux

package main

import (
	"errors"
	"os"
	"path/filepath"
)

func bareWrite(path string, data []byte, sync bool) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func bareRename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

func bareRemove(path string) error { return os.Remove(path) }

// bareRenameNoReplace and bareExchange need renameat2, which only Linux
// has; so does the backend.
func bareRenameNoReplace(oldpath, newpath string) error {
	return &os.LinkError{Op: "renameat2", Old: oldpath, New: newpath, Err: errors.ErrUnsupported}
}

func bareExchange(oldpath, newpath string) error {
	return &os.LinkError{Op: "renameat2", Old: oldpath, New: newpath, Err: errors.ErrUnsupported}
}

// read reads the file name with the os package and returns its bytes.
func (d *bareDir) read(name string, buf []byte) ([]byte, error) {
	return os.ReadFile(filepath.Join(d.f.Name(), name))
}

// flushSeed does nothing where there is no syncfs: the backend runs on
// Linux only.
func flushSeed(string) error { return nil }
