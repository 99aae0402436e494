package metastorage

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestCheckRecord checks which records CheckRecord refuses, that its error
// wraps ErrInvalidRecord and names the field and the first bad byte, and
// that the years are checked in the time's zone and in UTC.
func TestCheckRecord(t *testing.T) {
	west, east := time.FixedZone("", -5*3600), time.FixedZone("", 3600)
	for _, tc := range []struct {
		name string
		md   MessageMetadata
		want string // "" for a record that is valid
	}{
		{"valid", MessageMetadata{LastError: "ü", Headers: map[string]string{"k": "v"}, NextRetry: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)}, ""},
		{"zero times", MessageMetadata{}, ""},
		{"LastError", MessageMetadata{LastError: "ab\xffc"}, `LastError "ab\xffc" is not valid UTF-8 (byte 2)`},
		{"RetryPolicyName", MessageMetadata{RetryPolicyName: "\xc3"}, "RetryPolicyName"},
		{"header key", MessageMetadata{Headers: map[string]string{"\xfe": "v"}}, `Headers key "\xfe"`},
		{"header value", MessageMetadata{Headers: map[string]string{"k": "v\xed"}}, `Headers["k"] "v\xed" is not valid UTF-8 (byte 1)`},
		{"year past 9999", MessageMetadata{Created: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, "Created"},
		{"year past 9999 in UTC", MessageMetadata{NextRetry: time.Date(9999, 12, 31, 23, 0, 0, 0, west)}, "NextRetry"},
		{"year before 0 in UTC", MessageMetadata{Updated: time.Date(0, 1, 1, 0, 30, 0, 0, east)}, "Updated"},
	} {
		err := CheckRecord(&tc.md)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: got %v, want nil", tc.name, err)
		case tc.want != "" && (!errors.Is(err, ErrInvalidRecord) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want ErrInvalidRecord saying %s", tc.name, err, tc.want)
		}
	}
}
