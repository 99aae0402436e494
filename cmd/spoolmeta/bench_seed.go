package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	metafs "github.com/spoolmeta/spoolmeta/filesystem"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// seedWorkers is the number of goroutines that write the seed files; file
// creation is bound by the kernel, not by the CPU, so more than the cores.
const seedWorkers = 16

// fillDeferred stores n messages in deferred in dir, as the data set of the
// read workloads. Storing a million messages through the Backend takes
// longer than the measurement itself, so it writes the files of the
// documented format directly, without fsync: one compact JSON object of
// metastorage.MessageMetadata per message, <dir>/deferred/<id>.json, the
// bytes StoreMeta writes. The layout is created by opening a Backend once,
// and the first message is stored through it and compared with what the
// seeder would write, so a change of the format fails here rather than
// measuring something else. The seeding is not part of the measurement.
func fillDeferred(ctx context.Context, dir string, n int) error {
	b, err := metafs.NewFactory(dir).WithDisableSync(true).WithLogger(logger(io.Discard)).Open()
	if err != nil {
		return err
	}
	if n > 0 {
		err = seedCheck(ctx, b, dir)
	}
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	if err != nil || n <= 1 {
		return err
	}
	stateDir := filepath.Join(dir, metastorage.StateDeferred.String())
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return parallel(seedWorkers, func(w int) error {
		lo, hi := share(n-1, seedWorkers, w)
		var buf bytes.Buffer
		for i := lo + 1; i < hi+1; i++ {
			if i%1024 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			md := benchMessage(i, metastorage.StateDeferred)
			md.ID = benchID(i)
			md.Created = base.Add(time.Duration(rand.N(n)) * time.Second)
			md.Updated = time.Now().Round(0)
			buf.Reset()
			if err := seedEncode(&buf, &md); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(stateDir, md.ID+".json"), buf.Bytes(), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
}

// seedEncode writes the file contents of md as the backend does: compact
// JSON by encoding/json, no trailing newline.
func seedEncode(buf *bytes.Buffer, md *metastorage.MessageMetadata) error {
	data, err := json.Marshal(md)
	if err != nil {
		return err
	}
	buf.Write(data)
	return nil
}

// seedCheck stores message 0 through b and checks that the seeder writes
// the same bytes for the same record.
func seedCheck(ctx context.Context, b *metafs.Backend, dir string) error {
	md := benchMessage(0, metastorage.StateDeferred)
	md.Created = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := b.StoreMeta(ctx, benchID(0), md); err != nil {
		return err
	}
	path := filepath.Join(dir, metastorage.StateDeferred.String(), benchID(0)+".json")
	got, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("seed: the backend's file is not where the format says: %w", err)
	}
	stored, err := b.GetMeta(ctx, benchID(0))
	if err != nil {
		return err
	}
	var want bytes.Buffer
	if err := seedEncode(&want, &stored); err != nil {
		return err
	}
	if !bytes.Equal(got, want.Bytes()) {
		return fmt.Errorf("seed: the backend wrote %q, the seeder would write %q", got, want.Bytes())
	}
	return nil
}
