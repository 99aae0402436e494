// Package name maps message IDs to file names and back. It is the only place
// that knows the encoding.
//
// An ID made of ASCII letters, digits and the bytes - _ . @ that does not
// start with a dot is its own file name plus ".json", so directories written
// by other implementations of the format open unchanged. Any other ID is
// escaped byte by byte as %XX (upper-case hex); '%' is always escaped, so a
// name holding '%' is always an escaped one. A file name never contains '/'
// or NUL and never starts with '.', which is reserved for the backend's own
// files (temp files, .locks).
package name

import (
	"errors"
	"strings"
)

// Suffix ends every message file name.
const Suffix = ".json"

// MaxLen is the longest file name the encoding produces, the limit of
// common file systems.
const MaxLen = 255

// Errors returned by Encode.
var (
	ErrEmpty   = errors.New("message ID is empty")
	ErrTooLong = errors.New("message ID is too long: its file name would pass 255 bytes")
)

const hex = "0123456789ABCDEF"

func plain(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '@'
}

// Encode returns the file name of the message id.
func Encode(id string) (string, error) {
	if id == "" {
		return "", ErrEmpty
	}
	n := len(id)
	for i := 0; i < len(id); i++ {
		if needsEscape(id, i) {
			n += 2
		}
	}
	if n+len(Suffix) > MaxLen {
		return "", ErrTooLong
	}
	if n == len(id) {
		return id + Suffix, nil
	}
	var b strings.Builder
	b.Grow(n + len(Suffix))
	for i := 0; i < len(id); i++ {
		c := id[i]
		if needsEscape(id, i) {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	b.WriteString(Suffix)
	return b.String(), nil
}

func needsEscape(id string, i int) bool {
	return !plain(id[i]) || i == 0 && id[0] == '.'
}

// Decode returns the message ID whose file name is file, and false when
// file is not the name of a message file: a name that does not end in
// ".json", starts with '.', is longer than MaxLen, or is not in the canonical form Encode produces.
func Decode(file string) (string, bool) {
	if len(file) <= len(Suffix) || len(file) > MaxLen || !strings.HasSuffix(file, Suffix) || file[0] == '.' {
		return "", false
	}
	enc := file[:len(file)-len(Suffix)]
	if !strings.Contains(enc, "%") {
		for i := 0; i < len(enc); i++ {
			if !plain(enc[i]) {
				return "", false
			}
		}
		return enc, true
	}
	b := make([]byte, 0, len(enc))
	for i := 0; i < len(enc); i++ {
		c := enc[i]
		if c != '%' {
			if !plain(c) {
				return "", false
			}
			b = append(b, c)
			continue
		}
		if i+2 >= len(enc) {
			return "", false
		}
		hi, lo := unhex(enc[i+1]), unhex(enc[i+2])
		if hi < 0 || lo < 0 {
			return "", false
		}
		b = append(b, byte(hi<<4|lo))
		i += 2
	}
	id := string(b)
	// Only the canonical form names a message: one ID, one name.
	if canon, err := Encode(id); err != nil || canon != file {
		return "", false
	}
	return id, true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}
