package filesystem

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// sameDecoded is sameRecord (instants and zone offsets of times, every
// other field) that also tells a nil Headers map from an empty one.
func sameDecoded(a, b metastorage.MessageMetadata) bool {
	return sameRecord(a, b) && (a.Headers == nil) == (b.Headers == nil)
}

func TestDecodeAccepts(t *testing.T) {
	created := time.Date(2026, 11, 20, 9, 30, 0, 123456789, time.FixedZone("", 3600))
	want := metastorage.MessageMetadata{ID: "msg-1", State: metastorage.StateDeferred, Attempts: 2, MaxAttempts: 3,
		Created: created, Updated: time.Date(2026, 11, 25, 19, 32, 2, 124629291, time.UTC),
		LastError: "451 try later", Size: 1024, Priority: 5, Headers: map[string]string{"to": "a@example.com"},
		RetryPolicyName: "smtp-default"}
	compact, err := encode(&want)
	if err != nil {
		t.Fatal(err)
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, compact, "", "  "); err != nil {
		t.Fatal(err)
	}
	unknown := bytes.Replace(compact, []byte(`{`), []byte(`{"Future":{"nested":[1,2,{"x":null}]},"Comment":"ignored",`), 1)
	unknown = bytes.Replace(unknown, []byte(`}`), []byte(`,"Zzz":true}`), 1)
	tests := []struct {
		name string
		data []byte
	}{
		{"compact", compact},
		{"indented", indented.Bytes()},
		{"indented with tabs and CRLF", bytes.ReplaceAll(indented.Bytes(), []byte("\n  "), []byte("\r\n\t"))},
		{"surrounding whitespace", append(append([]byte(" \n\t"), compact...), "\n\n"...)},
		{"unknown fields", unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decode(tt.data)
			if err != nil {
				t.Fatalf("decode(%s) = %v", tt.data, err)
			}
			if !sameDecoded(got, want) {
				t.Errorf("decode(%s):\n got %+v\nwant %+v", tt.data, got, want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, data := range []string{"", " \n", "null", "[]", `"{}"`, "42", `{"State":1`, `{"State":"hold"}`,
		`{"Created":"yesterday"}`, `{"Attempts":1e400}`, `{} {}`, `{}x`, "\xef\xbb\xbf{}"} {
		if md, err := decode([]byte(data)); !errors.Is(err, errCorrupt) {
			t.Errorf("decode(%q) = %+v, %v; want errCorrupt", data, md, err)
		}
	}
}

// TestDecodeRoundTripsTimes checks that times keep their nanoseconds and
// their zone offset through encode and decode, as written.
func TestDecodeRoundTripsTimes(t *testing.T) {
	for _, s := range []string{
		"2026-11-20T09:30:00.123456789+01:00",
		"2026-11-20T09:30:00.1+01:00",
		"2026-11-20T09:30:00-05:30",
		"2026-11-20T09:30:00.000000001Z",
		"2026-03-29T02:30:00.5+14:00",
		"0001-01-01T00:00:00Z",
	} {
		data := []byte(`{"NextRetry":"` + s + `","Created":"` + s + `","Updated":"` + s + `"}`)
		md, err := decode(data)
		if err != nil {
			t.Fatalf("decode(%s) = %v", data, err)
		}
		want := mustTime(t, s)
		_, wantOff := want.Zone()
		for name, v := range map[string]time.Time{"NextRetry": md.NextRetry, "Created": md.Created, "Updated": md.Updated} {
			if _, off := v.Zone(); !v.Equal(want) || off != wantOff || v.Nanosecond() != want.Nanosecond() {
				t.Errorf("%s %s decoded as %s", name, s, v.Format(time.RFC3339Nano))
			}
		}
		enc, err := encode(&md)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(enc, []byte(`"Created":"`+want.Format(time.RFC3339Nano)+`"`)) {
			t.Errorf("encode of Created %s = %s, want the time as written", s, enc)
		}
		again, err := decode(enc)
		if err != nil || !sameDecoded(again, md) {
			t.Errorf("decode(encode(%+v)) = %+v, %v", md, again, err)
		}
	}
}

// fuzzSeeds are the seed corpus of FuzzReadMetadata besides the fixture
// files: what a crash, a foreign writer or a damaged disk may leave.
func fuzzSeeds() [][]byte {
	deep := func(open, close string, n int) []byte {
		return []byte(`{"Headers":` + strings.Repeat(open, n) + strings.Repeat(close, n) + `}`)
	}
	seeds := []string{
		"",
		" \n\t ",
		"\x00\x00\x00\x00",
		"{",
		`{"ID":"msg-1","State":2,"Attem`,
		`{"ID":"msg-1","State":2}`,
		"null",
		"[]",
		`[{"ID":"msg-1"}]`,
		`"{\"ID\":\"msg-1\"}"`,
		"42",
		"true",
		"{}",
		`{}{}`,
		`{} trailing`,
		`{"State":3}` + "\n",
		`{"State":-1}`,
		`{"State":99}`,
		`{"State":"hold"}`,
		`{"State":1.5}`,
		`{"Attempts":1e400}`,
		`{"Size":99999999999999999999999999}`,
		`{"Size":-9223372036854775808,"Priority":9223372036854775807}`,
		`{"Priority":1e2}`,
		`{"Created":"2026-11-20T09:30:00.123456789+01:00"}`,
		`{"Created":"2026-13-45T99:00:00Z"}`,
		`{"Created":"0000-01-01T00:00:00+01:00"}`,
		`{"Created":"9999-12-31T23:59:59.999999999-01:00"}`,
		`{"Created":"2026-11-20T09:30:00+23:59"}`,
		`{"Created":1700000000}`,
		`{"Updated":null,"Created":null,"Headers":null}`,
		`{"Headers":{}}`,
		`{"Headers":{"to":"a@example.com","to":"b@example.com"}}`,
		`{"Headers":{"k":1}}`,
		`{"ID":"../../etc/passwd","State":0}`,
		`{"LastError":"` + "\xff\xfe\xfd" + `"}`,
		`{"LastError":"\ud800"}`,
		"{\"LastError\":\"\xc3\x28\"}",
		"\xff\xfe{\x00}\x00",
		"\xef\xbb\xbf{\"State\":0}",
		"{\"State\":0}\xef\xbb\xbf",
		`{"state":3,"attempts":2}`,
		strings.Repeat(" ", 5000) + "{}",
	}
	out := make([][]byte, 0, len(seeds)+4)
	for _, s := range seeds {
		out = append(out, []byte(s))
	}
	return append(out, deep("{\"a\":", "}", 10001), deep("[", "]", 10001), deep("{\"a\":", "}", 100), deep("[", "]", 100))
}

// fixtureFiles returns the contents of every file of the shared fixture
// directories: the records another implementation wrote, and what a crash
// left of them.
func fixtureFiles(tb testing.TB) [][]byte {
	tb.Helper()
	var out [][]byte
	err := filepath.WalkDir(filepath.Join("..", "internal", "spooltest", "testdata"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		if err == nil {
			out = append(out, data)
		}
		return err
	})
	if err != nil || len(out) == 0 {
		tb.Fatalf("reading the fixtures: %d files, %v", len(out), err)
	}
	return out
}

// FuzzReadMetadata reads arbitrary bytes as a metadata file: decode never
// panics, what it accepts encodes and decodes again to the same record,
// GetMeta on such a file returns the record or an error, and recovery
// moves a file that does not decode to corrupt/<state>/, unchanged, and
// leaves one that does where it is.
func FuzzReadMetadata(f *testing.F) {
	for _, data := range fixtureFiles(f) {
		f.Add(data, uint8(0))
		if len(data) > 2 {
			f.Add(data[:len(data)/2], uint8(2)) // torn
		}
	}
	for i, data := range fuzzSeeds() {
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
		md, decErr := decode(data)
		if decErr != nil && !errors.Is(decErr, errCorrupt) {
			t.Fatalf("decode error %v does not wrap errCorrupt", decErr)
		}
		if decErr == nil {
			enc, err := encode(&md)
			if err != nil {
				t.Fatalf("decode(%q) = %+v, which encode refuses: %v", data, md, err)
			}
			again, err := decode(enc)
			if err != nil || !sameDecoded(again, md) {
				t.Fatalf("decode(%q) = %+v;\nencoded %s, decoded again %+v, %v", data, md, enc, again, err)
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
		if !sameDecoded(got, want) {
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
	switch {
	case decErr != nil:
		wantKind = Corrupt
	case md.State != s:
		wantKind = StateMismatch
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
	if err != nil || !sameDecoded(after, got) {
		t.Fatalf("GetMeta after recovery = %+v, %v; want %+v as before\nfile %q", after, err, got, data)
	}
	if wantKind == StateMismatch {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if rec, err := decode(raw); err != nil || rec.State != s {
			t.Fatalf("State field after recovery = %v, %v; want rewritten to %v", rec.State, err, s)
		}
	}
}
