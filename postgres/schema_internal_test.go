package postgres

import (
	"testing"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// TestMigrationsMatchVersion checks that there is one migration per
// version, and a counter column per state.
func TestMigrationsMatchVersion(t *testing.T) {
	if len(migrations) != SchemaVersion {
		t.Errorf("%d migrations, want SchemaVersion = %d", len(migrations), SchemaVersion)
	}
	if metastorage.NumStates != 6 {
		t.Errorf("metastorage.NumStates is %d; the counts table has 6 columns", metastorage.NumStates)
	}
}
