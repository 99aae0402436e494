package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/internal/spooltest"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

func TestDecodeAccepts(t *testing.T) {
	created := time.Date(2026, 11, 20, 9, 30, 0, 123456789, time.FixedZone("", 3600))
	want := metastorage.MessageMetadata{ID: "msg-1", State: metastorage.StateDeferred, Attempts: 2, MaxAttempts: 3,
		Created: created, Updated: time.Date(2026, 11, 25, 19, 32, 2, 124629291, time.UTC),
		LastError: "451 try later", Size: 1024, Priority: 5, Headers: map[string]string{"to": "a@example.com"},
		RetryPolicyName: "smtp-default"}
	compact, err := Encode(&want)
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
			got, err := Decode(tt.data)
			if err != nil {
				t.Fatalf("Decode(%s) = %v", tt.data, err)
			}
			if !spooltest.SameDecoded(got, want) {
				t.Errorf("Decode(%s):\n got %+v\nwant %+v", tt.data, got, want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, data := range []string{"", " \n", "null", "[]", `"{}"`, "42", `{"State":1`, `{"State":"hold"}`,
		`{"Created":"yesterday"}`, `{"Attempts":1e400}`, `{} {}`, `{}x`, "\xef\xbb\xbf{}"} {
		if md, err := Decode([]byte(data)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Decode(%q) = %+v, %v; want ErrCorrupt", data, md, err)
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
		md, err := Decode(data)
		if err != nil {
			t.Fatalf("Decode(%s) = %v", data, err)
		}
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		_, wantOff := want.Zone()
		for name, v := range map[string]time.Time{"NextRetry": md.NextRetry, "Created": md.Created, "Updated": md.Updated} {
			if _, off := v.Zone(); !v.Equal(want) || off != wantOff || v.Nanosecond() != want.Nanosecond() {
				t.Errorf("%s %s decoded as %s", name, s, v.Format(time.RFC3339Nano))
			}
		}
		enc, err := Encode(&md)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(enc, []byte(`"Created":"`+want.Format(time.RFC3339Nano)+`"`)) {
			t.Errorf("encode of Created %s = %s, want the time as written", s, enc)
		}
		again, err := Decode(enc)
		if err != nil || !spooltest.SameDecoded(again, md) {
			t.Errorf("Decode(Encode(%+v)) = %+v, %v", md, again, err)
		}
	}
}
