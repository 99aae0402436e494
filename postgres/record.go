package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// stamp is a time as the schema stores it: Unix microseconds, the
// nanoseconds beyond them, and the zone offset in seconds (0 for UTC).
type stamp struct {
	us  int64
	ns  int16
	off int32
}

// toStamp splits t. An offset that RFC 3339 cannot write is stored as UTC,
// as the contract says.
func toStamp(t time.Time) stamp {
	_, off := t.Zone()
	if !writableOffset(off) {
		off = 0
	}
	nsec := t.Nanosecond()
	return stamp{us: t.Unix()*1e6 + int64(nsec/1000), ns: int16(nsec % 1000), off: int32(off)}
}

// writableOffset reports whether RFC 3339 can write the zone offset off,
// in seconds: whole minutes, less than a day.
func writableOffset(off int) bool { return off%60 == 0 && off > -24*3600 && off < 24*3600 }

// zones holds the fixed zones that stamps have named, by offset, so that
// reading a row does not make one each time.
var zones sync.Map // int32 -> *time.Location

// time joins s.
func (s stamp) time() time.Time {
	sec, us := s.us/1e6, s.us%1e6
	if us < 0 {
		sec, us = sec-1, us+1e6
	}
	t := time.Unix(sec, us*1000+int64(s.ns))
	if s.off == 0 {
		return t.UTC()
	}
	if !writableOffset(int(s.off)) {
		return t.In(time.FixedZone("", int(s.off))) // not one toStamp writes
	}
	z, ok := zones.Load(s.off)
	if !ok {
		z, _ = zones.LoadOrStore(s.off, time.FixedZone("", int(s.off)))
	}
	return t.In(z.(*time.Location))
}

// row is a message's row as scan and readPage read it. Its byte columns
// are kept in one string, which the record's strings share.
type row struct {
	text                   string // the ID, last error, retry policy and headers, in that order
	idEnd, errEnd, polEnd  int    // where each of the first three ends in text
	noHeaders              bool   // headers is NULL
	state                  int16
	attempts, maxAttempts  int64
	size, priority         int64
	next, created, updated stamp
}

// setText sets the byte columns of w.
func (w *row) setText(id, lastError, policy, headers []byte) {
	var b strings.Builder
	b.Grow(len(id) + len(lastError) + len(policy) + len(headers))
	b.Write(id)
	w.idEnd = b.Len()
	b.Write(lastError)
	w.errEnd = b.Len()
	b.Write(policy)
	w.polEnd = b.Len()
	b.Write(headers)
	w.text, w.noHeaders = b.String(), headers == nil
}

// id returns the row's message ID.
func (w *row) id() string { return w.text[:w.idEnd] }

// scan reads a row whose columns are columns.
func scan(r pgx.Row) (row, error) {
	var (
		w                           row
		id, lastError, headers, pol []byte
	)
	err := r.Scan(&id, &w.state, &w.attempts, &w.maxAttempts,
		&w.next.us, &w.next.ns, &w.next.off,
		&w.created.us, &w.created.ns, &w.created.off,
		&w.updated.us, &w.updated.ns, &w.updated.off,
		&lastError, &w.size, &w.priority, &headers, &pol)
	w.setText(id, lastError, pol, headers)
	return w, err
}

// readPage appends to page the rows of rows, whose columns are columns.
// When the server sends them in the binary format, as it does for prepared
// statements, it decodes them itself rather than through Scan, so that a
// row costs one allocation.
func readPage(rows pgx.Rows, page []row) ([]row, error) {
	defer rows.Close()
	fields := rows.FieldDescriptions()
	raw := len(fields) == len(rawTypes)
	for i, f := range fields {
		raw = raw && f.Format == pgx.BinaryFormatCode && f.DataTypeOID == rawTypes[i]
	}
	for rows.Next() {
		var (
			w   row
			err error
		)
		if raw {
			w, err = rawRow(rows.RawValues())
		} else {
			w, err = scan(rows)
		}
		if err != nil {
			return page, err
		}
		page = append(page, w)
	}
	return page, rows.Err()
}

// rawTypes are the types of columns, which rawRow decodes; a row of other
// types, such as a schema changed by hand, goes through Scan.
var rawTypes = [...]uint32{
	pgtype.ByteaOID, pgtype.Int2OID, pgtype.Int8OID, pgtype.Int8OID,
	pgtype.Int8OID, pgtype.Int2OID, pgtype.Int4OID,
	pgtype.Int8OID, pgtype.Int2OID, pgtype.Int4OID,
	pgtype.Int8OID, pgtype.Int2OID, pgtype.Int4OID,
	pgtype.ByteaOID, pgtype.Int8OID, pgtype.Int8OID, pgtype.ByteaOID, pgtype.ByteaOID,
}

// rawRow decodes the values of a row whose columns are columns, in the
// binary format.
func rawRow(v [][]byte) (row, error) {
	var w row
	if len(v) != len(rawTypes) {
		return w, fmt.Errorf("a row of %d columns, want %d: %w", len(v), len(rawTypes), errCorrupt)
	}
	ok := true
	i16 := func(b []byte) int16 {
		if len(b) != 2 {
			ok = false
			return 0
		}
		return int16(binary.BigEndian.Uint16(b))
	}
	i32 := func(b []byte) int32 {
		if len(b) != 4 {
			ok = false
			return 0
		}
		return int32(binary.BigEndian.Uint32(b))
	}
	i64 := func(b []byte) int64 {
		if len(b) != 8 {
			ok = false
			return 0
		}
		return int64(binary.BigEndian.Uint64(b))
	}
	w.state, w.attempts, w.maxAttempts = i16(v[1]), i64(v[2]), i64(v[3])
	w.next = stamp{us: i64(v[4]), ns: i16(v[5]), off: i32(v[6])}
	w.created = stamp{us: i64(v[7]), ns: i16(v[8]), off: i32(v[9])}
	w.updated = stamp{us: i64(v[10]), ns: i16(v[11]), off: i32(v[12])}
	w.size, w.priority = i64(v[14]), i64(v[15])
	if !ok || v[0] == nil || v[13] == nil || v[17] == nil {
		return w, fmt.Errorf("message %q: a column of the wrong size or NULL: %w", v[0], errCorrupt)
	}
	w.setText(v[0], v[13], v[17], v[16])
	return w, nil
}

// sharedText is the size of a row's strings up to which its ID shares
// their memory; beyond it, the ID gets its own.
const sharedText = 1 << 10

// metadata returns the record of w.
func (w *row) metadata() (metastorage.MessageMetadata, error) {
	s := metastorage.QueueState(w.state)
	if !s.Valid() {
		return metastorage.MessageMetadata{}, fmt.Errorf("the row holds state %d, out of range", w.state)
	}
	var h map[string]string
	if !w.noHeaders {
		var err error
		if h, err = decodeHeaders(w.text[w.polEnd:]); err != nil {
			return metastorage.MessageMetadata{}, fmt.Errorf("the row's headers: %w", err)
		}
	}
	id := w.id()
	if len(w.text) > sharedText {
		id = strings.Clone(id) // a caller keeping the ID alone keeps little
	}
	return metastorage.MessageMetadata{
		ID:              id,
		State:           s,
		Attempts:        int(w.attempts),
		MaxAttempts:     int(w.maxAttempts),
		NextRetry:       w.next.time(),
		Created:         w.created.time(),
		Updated:         w.updated.time(),
		LastError:       w.text[w.idEnd:w.errEnd],
		Size:            w.size,
		Priority:        int(w.priority),
		Headers:         h,
		RetryPolicyName: w.text[w.errEnd:w.polEnd],
	}, nil
}

// checkID reports an ID the schema cannot store.
func checkID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("empty ID: %w", metastorage.ErrInvalidMessageID)
	case len(id) > MaxIDBytes:
		return fmt.Errorf("ID of %d bytes, more than %d: %w", len(id), MaxIDBytes, metastorage.ErrInvalidMessageID)
	}
	return nil
}

// checkState reports a state out of range.
func checkState(s metastorage.QueueState) error {
	if !s.Valid() {
		return fmt.Errorf("state %d out of range: %w", int(s), metastorage.ErrInvalidState)
	}
	return nil
}

// checkRecord reports a record the schema cannot store exactly.
func checkRecord(md *metastorage.MessageMetadata) error {
	if err := checkState(md.State); err != nil {
		return err
	}
	if err := metastorage.CheckRecord(md); err != nil {
		return err
	}
	n := len(md.LastError) + len(md.RetryPolicyName)
	for k, v := range md.Headers {
		n += len(k) + len(v)
	}
	if n > MaxStringBytes {
		return fmt.Errorf("strings of %d bytes, more than %d: %w", n, MaxStringBytes, metastorage.ErrTooLarge)
	}
	return nil
}

// encodeHeaders encodes h as its number of entries and, in the order of the
// keys, each key and value, each preceded by its length; all numbers are
// uvarints. A nil map is encoded as nil (NULL). Equal maps have equal
// encodings.
func encodeHeaders(h map[string]string) []byte {
	if h == nil {
		return nil
	}
	n := binary.MaxVarintLen64
	for k, v := range h {
		n += len(k) + len(v) + 2*binary.MaxVarintLen64
	}
	b := make([]byte, 0, n)
	b = binary.AppendUvarint(b, uint64(len(h)))
	for _, k := range slices.Sorted(maps.Keys(h)) {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(h[k])))
		b = append(b, h[k]...)
	}
	return b
}

var errCorrupt = errors.New("corrupt encoding")

// decodeHeaders decodes what encodeHeaders encoded; the keys and values
// share b's memory.
func decodeHeaders(b string) (map[string]string, error) {
	next := func() (string, bool) {
		n, w := uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return "", false
		}
		s := b[w : w+int(n)]
		b = b[w+int(n):]
		return s, true
	}
	count, w := uvarint(b)
	if w <= 0 || count > uint64(len(b)) {
		return nil, errCorrupt
	}
	b = b[w:]
	h := make(map[string]string, count)
	for range count {
		k, ok := next()
		if !ok {
			return nil, errCorrupt
		}
		v, ok := next()
		if !ok {
			return nil, errCorrupt
		}
		h[k] = v
	}
	if len(b) != 0 || len(h) != int(count) {
		return nil, errCorrupt
	}
	return h, nil
}

// uvarint is binary.Uvarint on a string.
func uvarint(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		c := s[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				return 0, -(i + 1) // overflow
			}
			return x | uint64(c)<<shift, i + 1
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	return 0, 0
}
