package postgres_test

import (
	"testing"

	"github.com/spoolmeta/spoolmeta/metastorage"
	"github.com/spoolmeta/spoolmeta/metastoragetest"
	"github.com/spoolmeta/spoolmeta/postgres"
)

func TestConformance(t *testing.T) {
	dsn := testDSN(t)
	metastoragetest.Run(t, func(t *testing.T) metastorage.Backend {
		return open(t, dsn, newSchema(t, dsn))
	})
}

// TestConformanceShared opens every Backend of a store with a pool of its
// own, as the processes of several machines would.
func TestConformanceShared(t *testing.T) {
	dsn := testDSN(t)
	metastoragetest.RunShared(t, func(t *testing.T) func() (metastorage.Backend, error) {
		f := postgres.NewFactory(dsn, postgres.WithSchema(newSchema(t, dsn)), postgres.WithMaxConns(4), postgres.WithLogger(quietLogger))
		return f.Create
	})
}
