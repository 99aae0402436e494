package codec

import (
	"bytes"
	"encoding/json"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

func benchCodecRecord() metastorage.MessageMetadata {
	md := metastorage.MessageMetadata{
		State: metastorage.StateDeferred, Attempts: 1, MaxAttempts: 5, Size: 4096, Priority: 5,
		LastError:       "451 4.7.1 greylisted, try again later",
		RetryPolicyName: "smtp-default",
		Headers: map[string]string{
			"from": "sender@example.com", "to": "recipient@example.org", "subject": "Invoice 2026-11",
		},
	}
	md.ID = "bench-00000042"
	md.NextRetry = time.Date(2026, 1, 1, 0, 0, 42, 0, time.UTC)
	md.Created = time.Date(2026, 1, 1, 3, 4, 5, 0, time.UTC)
	md.Updated = time.Date(2026, 3, 4, 10, 11, 12, 123456789, time.FixedZone("", 3600))
	return md
}

func BenchmarkDecode(b *testing.B) {
	md := benchCodecRecord()
	data, err := Encode(&md)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	md := benchCodecRecord()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(&md); err != nil {
			b.Fatal(err)
		}
	}
}

// identical reports whether a and b are the same record down to the zone
// of each time and a nil Headers map against an empty one.
func identical(a, b metastorage.MessageMetadata) bool {
	for _, p := range [][2]time.Time{{a.NextRetry, b.NextRetry}, {a.Created, b.Created}, {a.Updated, b.Updated}} {
		na, oa := p[0].Zone()
		nb, ob := p[1].Zone()
		if !p[0].Equal(p[1]) || oa != ob || na != nb || p[0].Location().String() != p[1].Location().String() ||
			p[0].IsZero() != p[1].IsZero() {
			return false
		}
	}
	if (a.Headers == nil) != (b.Headers == nil) || !maps.Equal(a.Headers, b.Headers) {
		return false
	}
	a.NextRetry, a.Created, a.Updated, a.Headers = time.Time{}, time.Time{}, time.Time{}, nil
	b.NextRetry, b.Created, b.Updated, b.Headers = time.Time{}, time.Time{}, time.Time{}, nil
	return reflect.DeepEqual(a, b)
}

// FuzzDecodeFast checks that the hand-written decoder accepts only what
// encoding/json accepts, and decodes it to the same record: either it
// gives up, or encoding/json gives the same record without error.
func FuzzDecodeFast(f *testing.F) {
	for _, data := range spooltest.FixtureFiles(f) {
		f.Add(data)
	}
	for _, data := range spooltest.Seeds() {
		f.Add(data)
	}
	md := benchCodecRecord()
	compact, err := Encode(&md)
	if err != nil {
		f.Fatal(err)
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, compact, "", "  "); err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		string(compact), indented.String(),
		`{"ID":"a\"b\\c\/d\b\f\n\r\t\u00e9\u2028<\u003c>","Headers":{"k\u0041":"v","k\u0041":"w"}}`,
		`{"Headers":null,"State":-3,"Attempts":-0,"Size":123456789012345678}`,
		`{"Headers":{},"Future":{"a":[1,-2.5e+3,true,false,null,"x\u12ab"]},"Zzz":[]}`,
		`{"Created":"2026-01-02T03:04:05.123456789-07:30","Updated":"2026-01-02T03:04:05Z","NextRetry":"0001-01-01T00:00:00Z"}`,
		`{"id":"x"}`, `{"ID":"x","ID":"y"}`, `{"Headers":{"a":"b"},"Headers":{"c":"d"}}`, `{"Attempts":1.0}`,
		`{"Attempts":null}`, `{"Created":null}`, `{"Headers":{"a":null}}`, "{\"ID\":\"\xff\"}", `{"ID":"\ud800"}`,
		`{"Size":1234567890123456789012}`, `{"Created":"2026-01-02T03:04:05+24:00"}`, `{"LastError":"\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		trimmed := bytes.TrimSpace(data)
		fast, ok := decodeFast(trimmed)
		if !ok {
			return
		}
		var want metastorage.MessageMetadata
		if err := json.Unmarshal(trimmed, &want); err != nil {
			t.Fatalf("decodeFast(%q) = %+v, encoding/json refuses it: %v", data, fast, err)
		}
		if !identical(fast, want) {
			t.Fatalf("decodeFast(%q):\n got %+v\nwant %+v", data, fast, want)
		}
	})
}

// TestDecodeFastTakesTheUsualFiles checks that the files encode writes,
// compact or indented, take the fast path.
func TestDecodeFastTakesTheUsualFiles(t *testing.T) {
	md := benchCodecRecord()
	md.LastError = "550 5.1.1 <rcpt@example.com>: \"user unknown\" & more\n\tdetail é"
	compact, err := Encode(&md)
	if err != nil {
		t.Fatal(err)
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, compact, "", "\t"); err != nil {
		t.Fatal(err)
	}
	for _, data := range [][]byte{compact, indented.Bytes()} {
		got, ok := decodeFast(data)
		if !ok {
			t.Fatalf("decodeFast(%s) gave up", data)
		}
		if !identical(got, md) {
			t.Errorf("decodeFast(%s):\n got %+v\nwant %+v", data, got, md)
		}
	}
}

// TestFieldIndex checks the decoder's key lookup against the field names:
// each name is its own field, a case-insensitive match is -2 (left to
// encoding/json), and any other key -1.
func TestFieldIndex(t *testing.T) {
	for i, n := range fieldNames {
		if got := fieldIndex([]byte(n)); got != i {
			t.Errorf("fieldIndex(%q) = %d, want %d", n, got, i)
		}
		if got := fieldIndex([]byte(strings.ToLower(n))); got != -2 {
			t.Errorf("fieldIndex(%q) = %d, want -2", strings.ToLower(n), got)
		}
	}
	for _, k := range []string{"", "Future", "IDs", "Header"} {
		if got := fieldIndex([]byte(k)); got != -1 {
			t.Errorf("fieldIndex(%q) = %d, want -1", k, got)
		}
	}
}

// TestEncodeFastTakesTheUsualRecords shows that the hand-written encoder
// writes the usual records itself, byte for byte as encoding/json does,
// and gives up on the strings and times it leaves to encoding/json.
func TestEncodeFastTakesTheUsualRecords(t *testing.T) {
	usual := benchCodecRecord()
	quoted := usual
	quoted.LastError = `550 "user unknown" \ é ü 日本`
	quoted.Headers = map[string]string{"subject": "Grüße \"aus\" Köln", "x-id": ""}
	bare := metastorage.MessageMetadata{ID: "m"}
	empty := bare
	empty.Headers = map[string]string{}
	for _, md := range []metastorage.MessageMetadata{usual, quoted, bare, empty} {
		got, ok := encodeFast(&md)
		want, err := json.Marshal(&md)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Errorf("encodeFast(%+v) gave up", md)
		} else if !bytes.Equal(got, want) {
			t.Errorf("encodeFast(%+v):\n got %s\nwant %s", md, got, want)
		}
	}
	for _, tc := range []struct {
		name string
		edit func(*metastorage.MessageMetadata)
	}{
		{"a control character", func(md *metastorage.MessageMetadata) { md.LastError = "a\nb" }},
		{"an HTML character in a header", func(md *metastorage.MessageMetadata) { md.Headers["to"] = "<a@example.org>" }},
		{"invalid UTF-8 in the ID", func(md *metastorage.MessageMetadata) { md.ID = "m\xff" }},
		{"U+2028 in a header name", func(md *metastorage.MessageMetadata) { md.Headers["a\u2028"] = "" }},
		{"a year past 9999", func(md *metastorage.MessageMetadata) { md.NextRetry = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
	} {
		md := benchCodecRecord()
		md.Headers = maps.Clone(md.Headers)
		tc.edit(&md)
		if got, ok := encodeFast(&md); ok {
			t.Errorf("with %s: encodeFast wrote %s, want it to give up", tc.name, got)
		}
	}
}

// FuzzEncodeFast checks that the hand-written encoder writes exactly what
// encoding/json writes, whenever it does not give up.
func FuzzEncodeFast(f *testing.F) {
	f.Add("bench-42", 2, 1, 5, int64(1767225642), int64(0), int32(0), "451 4.7.1 greylisted", int64(4096), "from", "a@example.com", "subject", "Invoice", "smtp")
	f.Add("m\"\\", -1, -7, 0, int64(-62135596800), int64(999999999), int32(-3600*5-1800), "é 日本", int64(-1), "", "", "k\\", "\"v\"", "")
	f.Add("m", 0, 0, 0, int64(0), int64(0), int32(0), "\u2028<\x00", int64(0), "", "", "", "", "")
	f.Add("", 0, 0, 0, int64(253402300800), int64(1), int32(59), "", int64(0), "\xff", "v", "", "", "")
	f.Fuzz(func(t *testing.T, id string, state, attempts, maxAttempts int, sec, nsec int64, offset int32,
		lastError string, size int64, k1, v1, k2, v2, policy string) {
		zone := time.FixedZone("", int(offset))
		at := time.Unix(sec, nsec).In(zone)
		md := metastorage.MessageMetadata{
			ID: id, State: metastorage.QueueState(state), Attempts: attempts, MaxAttempts: maxAttempts,
			NextRetry: at, Created: at.Add(-time.Hour).UTC(), Updated: at.Add(time.Nanosecond),
			LastError: lastError, Size: size, Priority: attempts - maxAttempts, RetryPolicyName: policy,
		}
		if k1 != "" || k2 != "" {
			md.Headers = map[string]string{k1: v1, k2: v2}
		}
		got, ok := encodeFast(&md)
		want, err := json.Marshal(&md)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("encodeFast wrote %s where encoding/json fails: %v", got, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("encodeFast:\n got %s\nwant %s", got, want)
		}
	})
}
