// Package codec is the codec of a message's file: one JSON object per
// record, written and read without reflection where encoding/json would
// give the same bytes or record.
package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// ErrCorrupt marks a file under a message's name that is not valid
// metadata.
var ErrCorrupt = errors.New("not valid metadata")

// MaxBytes is the largest record, as stored (its JSON), that Encode
// writes and ReadFile reads. A record whose strings total at most
// metastorage.StringBytesAlwaysStored always fits.
const MaxBytes = 16 << 20

// Encode returns the file contents for md: one compact JSON object with the
// field names of metastorage.MessageMetadata and State as its number,
// byte for byte what encoding/json makes of md, with each time whose zone
// offset RFC 3339 cannot write in UTC. A record larger than MaxBytes
// gives an error wrapping metastorage.ErrTooLarge.
func Encode(md *metastorage.MessageMetadata) ([]byte, error) {
	m := *md
	m.NextRetry, m.Created, m.Updated = storable(m.NextRetry), storable(m.Created), storable(m.Updated)
	data, ok := encodeFast(&m)
	if !ok {
		var err error
		if data, err = json.Marshal(&m); err != nil {
			return nil, err
		}
	}
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("record takes %d bytes, more than the %d a record may take (strings totalling %d bytes always fit): %w",
			len(data), MaxBytes, metastorage.StringBytesAlwaysStored, metastorage.ErrTooLarge)
	}
	return data, nil
}

// storable returns t, or t in UTC if RFC 3339 cannot write its zone offset
// (not whole minutes, or a day or more): the instant is kept.
func storable(t time.Time) time.Time {
	if _, off := t.Zone(); off%60 != 0 || off <= -24*3600 || off >= 24*3600 {
		return t.UTC()
	}
	return t
}

// encodeFast is encode without reflection. It gives up (false) on what it
// does not write exactly as encoding/json would: a string with a control
// character, <, >, &, U+2028, U+2029 or invalid UTF-8, and a time that
// encoding/json refuses.
func encodeFast(md *metastorage.MessageMetadata) ([]byte, bool) {
	b := make([]byte, 0, 384+32*len(md.Headers))
	ok := true
	b, ok = appendField(b, `{"ID":`, md.ID, ok)
	b = strconv.AppendInt(append(b, `,"State":`...), int64(md.State), 10)
	b = strconv.AppendInt(append(b, `,"Attempts":`...), int64(md.Attempts), 10)
	b = strconv.AppendInt(append(b, `,"MaxAttempts":`...), int64(md.MaxAttempts), 10)
	b, ok = appendTime(b, `,"NextRetry":`, md.NextRetry, ok)
	b, ok = appendTime(b, `,"Created":`, md.Created, ok)
	b, ok = appendTime(b, `,"Updated":`, md.Updated, ok)
	b, ok = appendField(b, `,"LastError":`, md.LastError, ok)
	b = strconv.AppendInt(append(b, `,"Size":`...), md.Size, 10)
	b = strconv.AppendInt(append(b, `,"Priority":`...), int64(md.Priority), 10)
	b = append(b, `,"Headers":`...)
	if md.Headers == nil {
		b = append(b, "null"...)
	} else {
		var buf [8]string // on the stack for the usual few headers
		keys := buf[:0]
		for k := range md.Headers {
			keys = append(keys, k)
		}
		slices.Sort(keys) // as encoding/json orders a map's keys
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b, ok = appendString(b, k, ok)
			b, ok = appendString(append(b, ':'), md.Headers[k], ok)
		}
		b = append(b, '}')
	}
	b, ok = appendField(b, `,"RetryPolicyName":`, md.RetryPolicyName, ok)
	return append(b, '}'), ok
}

// appendField appends key and the JSON string s, and ok if encodeFast may
// go on.
func appendField(b []byte, key, s string, ok bool) ([]byte, bool) {
	return appendString(append(b, key...), s, ok)
}

// appendTime appends key and t as encoding/json writes it, and ok if
// encodeFast may go on.
func appendTime(b []byte, key string, t time.Time, ok bool) ([]byte, bool) {
	b = append(b, key...)
	b = append(b, '"')
	b, err := t.AppendText(b)
	return append(b, '"'), ok && err == nil
}

// appendString appends s as a JSON string, quotes and backslashes escaped,
// and ok if it holds nothing else that encoding/json escapes.
func appendString(b []byte, s string, ok bool) ([]byte, bool) {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, s[start:i]...)
				b = append(b, '\\', c)
				start = i + 1
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				ok = false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || r == '\u2028' || r == '\u2029' {
			ok = false
		}
		i += n
	}
	return append(append(b, s[start:]...), '"'), ok
}

// Decode parses a metadata file. It accepts compact or indented JSON and
// ignores unknown fields; anything but one JSON object is ErrCorrupt.
func Decode(data []byte) (metastorage.MessageMetadata, error) {
	var md metastorage.MessageMetadata
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return md, fmt.Errorf("%w: empty file", ErrCorrupt)
	}
	if trimmed[0] != '{' {
		return md, fmt.Errorf("%w: not a JSON object", ErrCorrupt)
	}
	if md, ok := decodeFast(trimmed); ok {
		return md, nil
	}
	if err := json.Unmarshal(trimmed, &md); err != nil {
		return md, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return md, nil
}

// ReadFile reads the open file f, which fi describes (fi may be nil), into
// *bp, which it leaves grown for the next call, and returns the bytes. A
// file larger than MaxBytes gives an error wrapping ErrCorrupt.
func ReadFile(f io.Reader, fi fs.FileInfo, bp *[]byte) (data []byte, err error) {
	if fi != nil && fi.Mode().IsRegular() && fi.Size() <= MaxBytes {
		data, err = readSize(f, (*bp)[:0], int(fi.Size()))
	} else {
		data, err = readAll(f, (*bp)[:0])
	}
	*bp = data[:0]
	return data, err
}

// readSize reads the size bytes of a file into buf, without the read that
// would only confirm the end. A file under a message's name never changes
// once it is renamed there (a new record is a new file put in its place),
// so its size at open is its size.
func readSize(r io.Reader, buf []byte, size int) ([]byte, error) {
	buf = slices.Grow(buf, size)
	for len(buf) < size {
		n, err := r.Read(buf[len(buf):size])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// readAll reads r to the end into buf, growing it as needed, and fails
// with ErrCorrupt past MaxBytes.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) > MaxBytes {
			return buf, fmt.Errorf("%w: larger than %d bytes", ErrCorrupt, MaxBytes)
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// decodeFast parses the metadata JSON that encode writes, and the usual
// variations of it (indentation, any field order, unknown fields, escapes
// in strings), without reflection. It gives up (false) on anything it does
// not handle exactly as encoding/json would: keys that match a field only
// case-insensitively or contain escapes or non-ASCII bytes, a field given
// twice, null or a quoted or fractional number for a number, invalid UTF-8
// or a surrogate escape in a string, and every syntax error. Decode then
// takes encoding/json's path, so what is accepted, and the error of what is
// not, never changes. data has no surrounding white space.
func decodeFast(data []byte) (md metastorage.MessageMetadata, ok bool) {
	p := parser{data: data}
	if !p.byte('{') {
		return md, false
	}
	var seen uint16
	p.space()
	if p.peek() == '}' {
		p.i++
		return md, p.end()
	}
	for {
		p.space()
		f, ok := p.key()
		if !ok {
			return md, false
		}
		p.space()
		if !p.byte(':') {
			return md, false
		}
		p.space()
		if f >= 0 {
			if seen&(1<<f) != 0 {
				return md, false
			}
			seen |= 1 << f
		}
		switch f {
		case fID:
			md.ID, ok = p.str()
		case fState:
			var n int64
			n, ok = p.int()
			md.State = metastorage.QueueState(n)
		case fAttempts:
			var n int64
			n, ok = p.int()
			md.Attempts = int(n)
		case fMaxAttempts:
			var n int64
			n, ok = p.int()
			md.MaxAttempts = int(n)
		case fNextRetry:
			ok = p.time(&md.NextRetry)
		case fCreated:
			ok = p.time(&md.Created)
		case fUpdated:
			ok = p.time(&md.Updated)
		case fLastError:
			md.LastError, ok = p.str()
		case fSize:
			md.Size, ok = p.int()
		case fPriority:
			var n int64
			n, ok = p.int()
			md.Priority = int(n)
		case fHeaders:
			md.Headers, ok = p.headers()
		case fRetryPolicyName:
			md.RetryPolicyName, ok = p.str()
		default:
			ok = p.skip(0)
		}
		if !ok {
			return md, false
		}
		p.space()
		switch p.peek() {
		case ',':
			p.i++
		case '}':
			p.i++
			return md, p.end()
		default:
			return md, false
		}
	}
}

// The fields of metastorage.MessageMetadata, in the order encode writes
// them.
const (
	fID = iota
	fState
	fAttempts
	fMaxAttempts
	fNextRetry
	fCreated
	fUpdated
	fLastError
	fSize
	fPriority
	fHeaders
	fRetryPolicyName
)

var fieldNames = [...]string{"ID", "State", "Attempts", "MaxAttempts", "NextRetry", "Created", "Updated",
	"LastError", "Size", "Priority", "Headers", "RetryPolicyName"}

// fieldIndex returns the field whose name is key, -1 for a key that
// matches none even case-insensitively (an unknown field), and -2 for one
// that matches only case-insensitively, which encoding/json resolves.
func fieldIndex(key []byte) int {
	switch string(key) {
	case "ID":
		return fID
	case "State":
		return fState
	case "Attempts":
		return fAttempts
	case "MaxAttempts":
		return fMaxAttempts
	case "NextRetry":
		return fNextRetry
	case "Created":
		return fCreated
	case "Updated":
		return fUpdated
	case "LastError":
		return fLastError
	case "Size":
		return fSize
	case "Priority":
		return fPriority
	case "Headers":
		return fHeaders
	case "RetryPolicyName":
		return fRetryPolicyName
	}
	for _, n := range fieldNames {
		if bytes.EqualFold(key, []byte(n)) {
			return -2
		}
	}
	return -1
}

type parser struct {
	data []byte
	i    int
}

func (p *parser) peek() byte {
	if p.i < len(p.data) {
		return p.data[p.i]
	}
	return 0
}

func (p *parser) byte(c byte) bool {
	if p.peek() != c {
		return false
	}
	p.i++
	return true
}

func (p *parser) space() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// end reports whether nothing but white space follows.
func (p *parser) end() bool {
	p.space()
	return p.i == len(p.data)
}

// key reads an object key made of printable ASCII without escapes and
// returns its fieldIndex; a key that matches a field only
// case-insensitively gives up.
func (p *parser) key() (int, bool) {
	if !p.byte('"') {
		return 0, false
	}
	start := p.i
	for p.i < len(p.data) {
		c := p.data[p.i]
		switch {
		case c == '"':
			f := fieldIndex(p.data[start:p.i])
			p.i++
			return f, f != -2
		case c < 0x20 || c >= 0x80 || c == '\\':
			return 0, false
		}
		p.i++
	}
	return 0, false
}

// str returns a JSON string. Escapes are decoded; a \u escape of a
// surrogate, a control character or invalid UTF-8 gives up.
func (p *parser) str() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start := p.i
	ascii := true
	for p.i < len(p.data) {
		c := p.data[p.i]
		switch {
		case c == '"':
			s := p.data[start:p.i]
			p.i++
			if !ascii && !utf8.Valid(s) {
				return "", false
			}
			return string(s), true
		case c == '\\':
			return p.escaped(start)
		case c < 0x20:
			return "", false
		case c >= 0x80:
			ascii = false
		}
		p.i++
	}
	return "", false
}

// escaped continues str at the first backslash of the string that starts
// at start.
func (p *parser) escaped(start int) (string, bool) {
	buf := make([]byte, 0, p.i-start+16)
	buf = append(buf, p.data[start:p.i]...)
	for p.i < len(p.data) {
		c := p.data[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(buf) {
				return "", false
			}
			return string(buf), true
		case c < 0x20:
			return "", false
		case c != '\\':
			buf = append(buf, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.data) {
			return "", false
		}
		e := p.data[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			if p.i+4 > len(p.data) {
				return "", false
			}
			var r rune
			for _, h := range p.data[p.i : p.i+4] {
				d := unhexDigit(h)
				if d < 0 {
					return "", false
				}
				r = r<<4 | rune(d)
			}
			p.i += 4
			if utf16.IsSurrogate(r) {
				return "", false
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", false
		}
	}
	return "", false
}

func unhexDigit(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// int returns an integer without fraction or exponent, of at most 18
// digits.
func (p *parser) int() (int64, bool) {
	neg := p.byte('-')
	start := p.i
	var n int64
	for p.i < len(p.data) && '0' <= p.data[p.i] && p.data[p.i] <= '9' {
		n = n*10 + int64(p.data[p.i]-'0')
		p.i++
	}
	digits := p.i - start
	switch {
	case digits == 0 || digits > 18 || digits > 1 && p.data[start] == '0':
		return 0, false
	case p.i < len(p.data) && (p.data[p.i] == '.' || p.data[p.i] == 'e' || p.data[p.i] == 'E'):
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

// time parses a time as encoding/json does, by time.Time.UnmarshalJSON on
// the quoted string; a string with an escape or a control character gives
// up.
func (p *parser) time(t *time.Time) bool {
	start := p.i
	if !p.byte('"') {
		return false
	}
	for p.i < len(p.data) {
		c := p.data[p.i]
		p.i++
		switch {
		case c == '"':
			return t.UnmarshalJSON(p.data[start:p.i]) == nil
		case c == '\\' || c < 0x20 || c >= 0x80:
			return false
		}
	}
	return false
}

// headers returns the Headers map: nil for null, else a map of the
// object's string members, the last of equal keys winning.
func (p *parser) headers() (map[string]string, bool) {
	if bytes.HasPrefix(p.data[p.i:], []byte("null")) {
		p.i += 4
		return nil, true
	}
	if !p.byte('{') {
		return nil, false
	}
	m := make(map[string]string, 4)
	p.space()
	if p.byte('}') {
		return m, true
	}
	for {
		p.space()
		k, ok := p.str()
		if !ok {
			return nil, false
		}
		p.space()
		if !p.byte(':') {
			return nil, false
		}
		p.space()
		v, ok := p.str()
		if !ok {
			return nil, false
		}
		m[k] = v
		p.space()
		switch p.peek() {
		case ',':
			p.i++
		case '}':
			p.i++
			return m, true
		default:
			return nil, false
		}
	}
}

// skip passes over the value of an unknown field, checking its syntax.
func (p *parser) skip(depth int) bool {
	if depth > 64 {
		return false
	}
	switch c := p.peek(); {
	case c == '"':
		return p.skipString()
	case c == '{':
		p.i++
		p.space()
		if p.byte('}') {
			return true
		}
		for {
			p.space()
			if !p.skipString() {
				return false
			}
			p.space()
			if !p.byte(':') {
				return false
			}
			p.space()
			if !p.skip(depth + 1) {
				return false
			}
			p.space()
			if p.byte('}') {
				return true
			}
			if !p.byte(',') {
				return false
			}
		}
	case c == '[':
		p.i++
		p.space()
		if p.byte(']') {
			return true
		}
		for {
			p.space()
			if !p.skip(depth + 1) {
				return false
			}
			p.space()
			if p.byte(']') {
				return true
			}
			if !p.byte(',') {
				return false
			}
		}
	case c == '-' || '0' <= c && c <= '9':
		return p.skipNumber()
	}
	for _, lit := range []string{"true", "false", "null"} {
		if bytes.HasPrefix(p.data[p.i:], []byte(lit)) {
			p.i += len(lit)
			return true
		}
	}
	return false
}

// skipString passes over a string, checking its escapes.
func (p *parser) skipString() bool {
	if !p.byte('"') {
		return false
	}
	for p.i < len(p.data) {
		c := p.data[p.i]
		p.i++
		switch {
		case c == '"':
			return true
		case c < 0x20:
			return false
		case c == '\\':
			switch p.peek() {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i++
			case 'u':
				if p.i+5 > len(p.data) {
					return false
				}
				for _, h := range p.data[p.i+1 : p.i+5] {
					if unhexDigit(h) < 0 {
						return false
					}
				}
				p.i += 5
			default:
				return false
			}
		}
	}
	return false
}

// skipNumber passes over a number in JSON's grammar.
func (p *parser) skipNumber() bool {
	p.byte('-')
	digits := func() int {
		start := p.i
		for p.i < len(p.data) && '0' <= p.data[p.i] && p.data[p.i] <= '9' {
			p.i++
		}
		return p.i - start
	}
	start := p.i
	n := digits()
	if n == 0 || n > 1 && p.data[start] == '0' {
		return false
	}
	if p.byte('.') && digits() == 0 {
		return false
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		p.i++
		if c := p.peek(); c == '+' || c == '-' {
			p.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}
