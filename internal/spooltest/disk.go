package spooltest

import (
	"runtime"
	"testing"
)

// DiskBackend reports whether the filesystem backend opens a directory on
// the real file system here. Where it does not (Windows), open refuses
// with an error matching errors.ErrUnsupported, and only the in-memory file
// system runs the backend.
const DiskBackend = diskBackend

// NeedDisk skips t, saying why, where the filesystem backend refuses to
// open a directory on the real file system, and so where its layer over
// the operating system is not used.
func NeedDisk(t testing.TB) {
	t.Helper()
	if !DiskBackend {
		t.Skipf("the filesystem backend refuses to open a directory on %s (errors.ErrUnsupported), and this test needs one on the real file system", runtime.GOOS)
	}
}
