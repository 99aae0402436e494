package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

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
	if off%60 != 0 || off <= -24*3600 || off >= 24*3600 {
		off = 0
	}
	nsec := t.Nanosecond()
	return stamp{us: t.Unix()*1e6 + int64(nsec/1000), ns: int16(nsec % 1000), off: int32(off)}
}

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
	return t.In(time.FixedZone("", int(s.off)))
}

// row is a message's row as scan reads it.
type row struct {
	id, lastError, headers, policy []byte
	state                          int16
	attempts, maxAttempts          int64
	size, priority                 int64
	next, created, updated         stamp
}

// scan reads a row whose columns are columns.
func scan(r pgx.Row) (row, error) {
	var w row
	err := r.Scan(&w.id, &w.state, &w.attempts, &w.maxAttempts,
		&w.next.us, &w.next.ns, &w.next.off,
		&w.created.us, &w.created.ns, &w.created.off,
		&w.updated.us, &w.updated.ns, &w.updated.off,
		&w.lastError, &w.size, &w.priority, &w.headers, &w.policy)
	return w, err
}

// metadata returns the record of w.
func (w row) metadata() (metastorage.MessageMetadata, error) {
	s := metastorage.QueueState(w.state)
	if !s.Valid() {
		return metastorage.MessageMetadata{}, fmt.Errorf("the row holds state %d, out of range", w.state)
	}
	h, err := decodeHeaders(w.headers)
	if err != nil {
		return metastorage.MessageMetadata{}, fmt.Errorf("the row's headers: %w", err)
	}
	return metastorage.MessageMetadata{
		ID:              string(w.id),
		State:           s,
		Attempts:        int(w.attempts),
		MaxAttempts:     int(w.maxAttempts),
		NextRetry:       w.next.time(),
		Created:         w.created.time(),
		Updated:         w.updated.time(),
		LastError:       string(w.lastError),
		Size:            w.size,
		Priority:        int(w.priority),
		Headers:         h,
		RetryPolicyName: string(w.policy),
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

// decodeHeaders decodes what encodeHeaders encoded.
func decodeHeaders(b []byte) (map[string]string, error) {
	if b == nil {
		return nil, nil
	}
	next := func() (string, bool) {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return "", false
		}
		s := string(b[w : w+int(n)])
		b = b[w+int(n):]
		return s, true
	}
	count, w := binary.Uvarint(b)
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
