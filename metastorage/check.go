package metastorage

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// StringBytesAlwaysStored is the size that a record's strings may always
// take: no backend refuses with ErrTooLarge a record whose LastError,
// RetryPolicyName and header keys and values total at most this many
// bytes. A backend documents its own limit, which may be larger.
const StringBytesAlwaysStored = 1 << 20

// CheckRecord reports, with an error wrapping ErrInvalidRecord that names
// the field, the first field of md that no backend stores exactly: a
// string, header key or header value that is not valid UTF-8, or a time
// whose year, in its own zone or in UTC, is outside 0 to 9999. ID and
// State are not checked.
func CheckRecord(md *MessageMetadata) error {
	for _, f := range [...]struct{ name, s string }{
		{"LastError", md.LastError},
		{"RetryPolicyName", md.RetryPolicyName},
	} {
		if err := checkString(f.name, f.s); err != nil {
			return err
		}
	}
	for k, v := range md.Headers {
		if err := checkString("Headers key", k); err != nil {
			return err
		}
		if !utf8.ValidString(v) { // the field's name only for an error
			return checkString("Headers["+quote(k)+"]", v)
		}
	}
	for _, f := range [...]struct {
		name string
		t    time.Time
	}{{"NextRetry", md.NextRetry}, {"Created", md.Created}, {"Updated", md.Updated}} {
		if y, u := f.t.Year(), f.t.UTC().Year(); y < 0 || y > 9999 || u < 0 || u > 9999 {
			return fmt.Errorf("%s %s is outside the years 0 to 9999: %w", f.name, f.t, ErrInvalidRecord)
		}
	}
	return nil
}

// checkString reports s if it is not valid UTF-8, naming field and the
// offset of the first invalid byte.
func checkString(field, s string) error {
	if utf8.ValidString(s) {
		return nil
	}
	at := 0
	for at < len(s) {
		r, n := utf8.DecodeRuneInString(s[at:])
		if r == utf8.RuneError && n == 1 {
			break
		}
		at += n
	}
	return fmt.Errorf("%s %s is not valid UTF-8 (byte %d): %w", field, quote(s), at, ErrInvalidRecord)
}

// quote quotes s for an error message, shortened to its first 40 bytes.
func quote(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%q…", s[:40])
	}
	return fmt.Sprintf("%q", s)
}
