package name

import (
	"errors"
	"strings"
	"testing"
)

func TestEncode(t *testing.T) {
	tests := []struct {
		id, file string
		err      error
	}{
		{"msg-123", "msg-123.json", nil},
		{"7c9e6679-7425-40de-944b-e07fc1f90ae7", "7c9e6679-7425-40de-944b-e07fc1f90ae7.json", nil},
		{"user@example.com", "user@example.com.json", nil},
		{"a_b.c", "a_b.c.json", nil},
		{"x.json", "x.json.json", nil},
		{"", "", ErrEmpty},
		{".", "%2E.json", nil},
		{"..", "%2E..json", nil},
		{".hidden", "%2Ehidden.json", nil},
		{"../../etc/x", "%2E.%2F..%2Fetc%2Fx.json", nil},
		{"a/b", "a%2Fb.json", nil},
		{`a\b`, "a%5Cb.json", nil},
		{"a\x00b", "a%00b.json", nil},
		{"tab\there", "tab%09here.json", nil},
		{"100%", "100%25.json", nil},
		{"a b", "a%20b.json", nil},
		{"ü", "%C3%BC.json", nil},
		{strings.Repeat("a", 250), strings.Repeat("a", 250) + ".json", nil},
		{strings.Repeat("a", 251), "", ErrTooLong},
		{strings.Repeat("/", 84), "", ErrTooLong},
		{strings.Repeat("a", 300), "", ErrTooLong},
	}
	for _, tt := range tests {
		got, err := Encode(tt.id)
		if !errors.Is(err, tt.err) || got != tt.file {
			t.Errorf("Encode(%q) = %q, %v; want %q, %v", tt.id, got, err, tt.file, tt.err)
			continue
		}
		if err != nil {
			continue
		}
		back, ok := Decode(got)
		if !ok || back != tt.id {
			t.Errorf("Decode(%q) = %q, %v; want %q, true", got, back, ok, tt.id)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, file := range []string{
		"", ".json", "msg", "msg.jso", ".tmp.abc123", ".locks", "msg-123.json.tmp.1a2b3c4d",
		"a%2fb.json",                                   // lower-case hex is not canonical
		"a%2.json", "a%.json", "a%GG.json", "%61.json", // 'a' escaped is not canonical
		"a b.json", "a\x00.json", "a/b.json", ".x.json",
	} {
		if id, ok := Decode(file); ok {
			t.Errorf("Decode(%q) = %q, true; want false", file, id)
		}
	}
}

func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"msg-1", "", ".", "..", "../x", "a/b", "a\\b", "a\x00", "100%", strings.Repeat("z", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		file, err := Encode(id)
		if err != nil {
			return
		}
		if len(file) > MaxLen || file[0] == '.' || strings.ContainsAny(file, "/\\\x00") || file == "." || file == ".." {
			t.Fatalf("Encode(%q) = %q: not a safe file name", id, file)
		}
		back, ok := Decode(file)
		if !ok || back != id {
			t.Fatalf("Decode(Encode(%q)) = %q, %v", id, back, ok)
		}
	})
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{"msg-1.json", "%2E.json", "a%2Fb.json", ".tmp.x", "a%ZZ.json"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, file string) {
		id, ok := Decode(file)
		if !ok {
			return
		}
		again, err := Encode(id)
		if err != nil || again != file {
			t.Fatalf("Decode(%q) = %q, but Encode gives %q, %v", file, id, again, err)
		}
	})
}
