package metastorage

import (
	"testing"
	"time"
)

func TestSameRecord(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	base := MessageMetadata{ID: "a", State: StateDeferred, Attempts: 2, Created: at, Updated: at, Headers: map[string]string{}}
	for _, tc := range []struct {
		name   string
		modify func(*MessageMetadata)
		same   bool
	}{
		{"identical", func(*MessageMetadata) {}, true},
		{"other ID", func(m *MessageMetadata) { m.ID = "b" }, true},
		{"nil Headers for empty", func(m *MessageMetadata) { m.Headers = nil }, true},
		{"same instant in another zone", func(m *MessageMetadata) { m.Updated = at.In(time.FixedZone("", 3600)) }, true},
		{"Updated a nanosecond later", func(m *MessageMetadata) { m.Updated = at.Add(1) }, false},
		{"other State", func(m *MessageMetadata) { m.State = StateHold }, false},
		{"other Attempts", func(m *MessageMetadata) { m.Attempts = 3 }, false},
		{"a header more", func(m *MessageMetadata) { m.Headers = map[string]string{"to": "x"} }, false},
	} {
		m := base
		tc.modify(&m)
		if got := SameRecord(base, m); got != tc.same {
			t.Errorf("SameRecord with %s = %v, want %v", tc.name, got, tc.same)
		}
	}
}
