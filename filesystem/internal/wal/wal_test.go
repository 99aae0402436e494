package wal

import (
	"bytes"
	"slices"
	"testing"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/name"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

func testRecord(kind byte, s metastorage.QueueState, file, data string) []byte {
	return Append(nil, kind, s, file, []byte(data))
}

func TestParseJournal(t *testing.T) {
	a1 := testRecord(KindPut, metastorage.StateIncoming, "a.json", `{"ID":"a","State":0}`)
	a2 := testRecord(KindPut, metastorage.StateActive, "a.json", `{"ID":"a","State":1}`)
	b1 := testRecord(KindPut, metastorage.StateDeferred, "b.json", `{"ID":"b","State":2}`)
	bDel := testRecord(KindDelete, 0, "b.json", "")
	badCRC := slices.Clone(b1)
	badCRC[len(badCRC)-1] ^= 1
	badName := testRecord(KindPut, metastorage.StateIncoming, "../x.json", "{}")
	badState := testRecord(KindPut, metastorage.QueueState(9), "c.json", "{}")
	badKind := testRecord('X', metastorage.StateIncoming, "c.json", "{}")
	a2Void := slices.Concat(voidMagicBytes, a2[len(voidMagicBytes):])
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	type want struct {
		kind  byte
		state metastorage.QueueState
		file  string
	}
	tests := []struct {
		name    string
		journal []byte
		want    []want
		skipped int
	}{
		{"empty", nil, nil, 0},
		{"two messages", cat(a1, b1), []want{{KindPut, metastorage.StateIncoming, "a.json"}, {KindPut, metastorage.StateDeferred, "b.json"}}, 0},
		{"last record wins, in its place", cat(a1, b1, a2), []want{{KindPut, metastorage.StateDeferred, "b.json"}, {KindPut, metastorage.StateActive, "a.json"}}, 0},
		{"deletion", cat(b1, a1, bDel), []want{{KindPut, metastorage.StateIncoming, "a.json"}, {KindDelete, 0, "b.json"}}, 0},
		{"torn tail", cat(a1, b1[:len(b1)-3]), []want{{KindPut, metastorage.StateIncoming, "a.json"}}, len(b1) - 3},
		{"torn record followed by others", cat(a1[:7], b1, a2), []want{{KindPut, metastorage.StateDeferred, "b.json"}, {KindPut, metastorage.StateActive, "a.json"}}, 7},
		{"torn header", cat(a1[:3], b1), []want{{KindPut, metastorage.StateDeferred, "b.json"}}, 3},
		{"zeros between", cat(a1, make([]byte, 100), b1), []want{{KindPut, metastorage.StateIncoming, "a.json"}, {KindPut, metastorage.StateDeferred, "b.json"}}, 100},
		{"bad checksum", cat(a1, badCRC), []want{{KindPut, metastorage.StateIncoming, "a.json"}}, len(badCRC)},
		{"bad name", cat(badName, a1), []want{{KindPut, metastorage.StateIncoming, "a.json"}}, len(badName)},
		{"bad state", cat(badState, a1), []want{{KindPut, metastorage.StateIncoming, "a.json"}}, len(badState)},
		{"bad kind", cat(badKind, a1), []want{{KindPut, metastorage.StateIncoming, "a.json"}}, len(badKind)},
		{"void record, the one before stands", cat(a1, b1, a2Void), []want{{KindPut, metastorage.StateIncoming, "a.json"}, {KindPut, metastorage.StateDeferred, "b.json"}}, 0},
		{"void record after a torn one", cat(b1[:7], a2Void, a1), []want{{KindPut, metastorage.StateIncoming, "a.json"}}, 7},
		{"void only", a2Void, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			records, skipped := Parse(tt.journal)
			var got []want
			for _, r := range records {
				got = append(got, want{r.Kind, r.State, r.File})
			}
			if !slices.Equal(got, tt.want) || skipped != tt.skipped {
				t.Errorf("Parse = %v, skipped %d; want %v, skipped %d", got, skipped, tt.want, tt.skipped)
			}
		})
	}
}

// FuzzParseJournal checks that any journal parses without panicking into
// valid records, each of which is in the input as it would be written.
func FuzzParseJournal(f *testing.F) {
	f.Add(testRecord(KindPut, metastorage.StateIncoming, "a.json", `{"ID":"a"}`))
	f.Add(append(testRecord(KindDelete, 0, "a.json", ""), testRecord(KindPut, metastorage.StateHold, "b.json", "{}")[:9]...))
	f.Fuzz(func(t *testing.T, journal []byte) {
		records, skipped := Parse(journal)
		if skipped < 0 || skipped > len(journal) {
			t.Fatalf("skipped %d of %d bytes", skipped, len(journal))
		}
		seen := map[string]bool{}
		for _, r := range records {
			if seen[r.File] {
				t.Fatalf("two records for %s", r.File)
			}
			seen[r.File] = true
			if _, ok := name.Decode(r.File); !ok || !r.State.Valid() || (r.Kind != KindPut && r.Kind != KindDelete) {
				t.Fatalf("invalid record %+v", r)
			}
			if !bytes.Contains(journal, Append(nil, r.Kind, r.State, r.File, r.Data)) {
				t.Fatalf("record %+v is not in the input", r)
			}
		}
	})
}
