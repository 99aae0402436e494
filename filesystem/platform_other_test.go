//go:build !linux && !darwin

package filesystem

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestOpenRefusedOnThisPlatform shows that open refuses, with an error
// matching errors.ErrUnsupported, where the backend cannot keep its
// guarantees, and creates nothing.
func TestOpenRefusedOnThisPlatform(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	_, err := NewBackend(dir)
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("NewBackend: %v, want errors.ErrUnsupported", err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("open created %s: %v", dir, err)
	}
}
