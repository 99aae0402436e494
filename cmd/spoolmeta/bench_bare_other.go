//go:build !linux

package main

import (
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

// bareDir reads the files of one directory with the os package.
type bareDir struct {
	dir string
}

func openBareDir(dir string) (*bareDir, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	return &bareDir{dir: dir}, nil
}

// read reads the file name and returns its bytes.
func (d *bareDir) read(name string, buf []byte) ([]byte, error) {
	return os.ReadFile(filepath.Join(d.dir, name))
}

func (d *bareDir) close() error { return nil }
