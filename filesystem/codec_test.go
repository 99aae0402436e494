package filesystem

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/codec"
	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// FuzzReadMetadata reads arbitrary bytes as a metadata file: decode never
// panics, what it accepts encodes and decodes again to the same record,
// GetMeta on such a file returns the record or an error, and recovery
// moves a file that does not decode to corrupt/<state>/, unchanged, and
// leaves one that does where it is.
func FuzzReadMetadata(f *testing.F) {
	spooltest.NeedDisk(f)
	for _, data := range spooltest.FixtureFiles(f) {
		f.Add(data, uint8(0))
		if len(data) > 2 {
			f.Add(data[:len(data)/2], uint8(2)) // torn
		}
	}
	for i, data := range spooltest.Seeds() {
		f.Add(data, uint8(i%64))
	}
	// One backend directory per fuzzing process; every input gets its own
	// file name, and is removed when checked.
	b, err := factoryFor(f.TempDir(), Performance).WithBackgroundRecovery(false).
		WithLogger(slog.New(slog.DiscardHandler)).Open()
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close() })
	var seq atomic.Uint64
	f.Fuzz(func(t *testing.T, data []byte, st uint8) {
		md, decErr := codec.Decode(data)
		if decErr != nil && !errors.Is(decErr, codec.ErrCorrupt) {
			t.Fatalf("decode error %v does not wrap codec.ErrCorrupt", decErr)
		}
		if decErr == nil {
			enc, err := codec.Encode(&md)
			if err != nil {
				t.Fatalf("codec.Decode(%q) = %+v, which encode refuses: %v", data, md, err)
			}
			again, err := codec.Decode(enc)
			if err != nil || !spooltest.SameDecoded(again, md) {
				t.Fatalf("codec.Decode(%q) = %+v;\nencoded %s, decoded again %+v, %v", data, md, enc, again, err)
			}
		}
		// The full path costs some system calls: the seeds take it all,
		// the fuzzer's inputs a quarter of the time, by their st.
		if st < 64 {
			checkReadPath(t, b, data, md, decErr, metastorage.QueueState(int(st)%metastorage.NumStates), seq.Add(1))
		}
	})
}

// checkReadPath puts data as a message file in state s of b, and checks
// GetMeta, Check and RecoverFromCrash on it.
func checkReadPath(t *testing.T, b *Backend, data []byte, md metastorage.MessageMetadata, decErr error, s metastorage.QueueState, n uint64) {
	ctx := context.Background()
	id := "fz-" + strconv.FormatUint(n, 10)
	file := id + ".json"
	path := filepath.Join(b.Dir(), s.String(), file)
	aside := filepath.Join(b.Dir(), "corrupt", s.String(), file)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// Last: the record that recovery's rewrite of a State field displaced
	// must not be found by the next input's Check.
	defer b.flushDisplaced()
	defer os.Remove(path)
	defer os.Remove(aside)

	got, err := b.GetMeta(ctx, id)
	switch {
	case decErr == nil && err != nil:
		t.Fatalf("GetMeta of a file that decodes = %v\nfile %q", err, data)
	case decErr == nil:
		want := md
		want.ID, want.State = id, s
		if md.State != s {
			// A State field that does not name the directory: the
			// file's time is the record's Updated.
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			want.Updated = fi.ModTime()
		}
		if !spooltest.SameDecoded(got, want) {
			t.Fatalf("GetMeta = %+v, want %+v\nfile %q", got, want, data)
		}
	case err == nil:
		t.Fatalf("GetMeta of a file that does not decode (%v) = %+v, nil\nfile %q", decErr, got, data)
	case !strings.Contains(err.Error(), id):
		t.Errorf("GetMeta error %q does not name the message", err)
	}

	findings, err := b.Check(ctx, false)
	if err != nil {
		t.Fatalf("Check: %v\nfile %q", err, data)
	}
	wantKind := FindingKind("")
	if decErr != nil {
		wantKind = Corrupt
	}
	if wantKind == "" && len(findings) != 0 || wantKind != "" && (len(findings) != 1 || findings[0].Kind != wantKind || findings[0].Path != path) {
		t.Fatalf("Check = %+v, want %q for %s\nfile %q", findings, wantKind, path, data)
	}

	if err := b.RecoverFromCrash(); err != nil {
		t.Fatalf("RecoverFromCrash: %v\nfile %q", err, data)
	}
	_, statErr := os.Lstat(path)
	if decErr != nil {
		if !errors.Is(statErr, fs.ErrNotExist) {
			t.Fatalf("file that does not decode (%v) left in %s after recovery: %v\nfile %q", decErr, path, statErr, data)
		}
		moved, err := os.ReadFile(aside)
		if err != nil || !bytes.Equal(moved, data) {
			t.Fatalf("%s after recovery: %q, %v; want the file moved there unchanged %q", aside, moved, err, data)
		}
		if _, err := b.GetMeta(ctx, id); !errors.Is(err, metastorage.ErrMessageNotFound) {
			t.Fatalf("GetMeta after the file was set aside = %v, want ErrMessageNotFound", err)
		}
		return
	}
	if statErr != nil {
		t.Fatalf("file that decodes gone from %s after recovery: %v\nfile %q", path, statErr, data)
	}
	if _, err := os.Lstat(aside); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("file that decodes copied to %s: %v", aside, err)
	}
	after, err := b.GetMeta(ctx, id)
	if err != nil || !spooltest.SameDecoded(after, got) {
		t.Fatalf("GetMeta after recovery = %+v, %v; want %+v as before\nfile %q", after, err, got, data)
	}
	// Recovery leaves a file that decodes as it is, whatever its State
	// field says.
	if raw, err := os.ReadFile(path); err != nil || !bytes.Equal(raw, data) {
		t.Fatalf("file after recovery = %q, %v; want it unchanged %q", raw, err, data)
	}
}
