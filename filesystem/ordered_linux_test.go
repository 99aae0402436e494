package filesystem

import (
	"path/filepath"
	"testing"
)

// TestJournalsInOrderUnknown shows that a directory whose file system the
// probe cannot tell, or that has no journal of its metadata, counts as not
// journaled in order: Standard mode then keeps every fsync.
func TestJournalsInOrderUnknown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, dir string
	}{
		{"missing", filepath.Join(t.TempDir(), "missing")},
		{"relative and missing", "no/such/dir"},
		{"procfs", "/proc"},
		{"sysfs", "/sys"},
	}
	for _, tt := range tests {
		if journalsInOrder(tt.dir) {
			t.Errorf("%s (%s): counted as journaled in order", tt.name, tt.dir)
		}
	}
}
