//go:build !unix

package vfs

import (
	"errors"
	"os"
)

// mkfifo fails: the platform has no FIFOs.
func mkfifo(path string) error {
	return &os.PathError{Op: "mkfifo", Path: path, Err: errors.ErrUnsupported}
}
