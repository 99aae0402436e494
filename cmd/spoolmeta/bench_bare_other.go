//go:build !linux

package main

import (
	"os"
	"path/filepath"
)

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
