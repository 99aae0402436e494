// Package wal is the record format of the write-ahead journal of Hybrid
// mode: how a change of a message is written as a record, and how a
// journal, possibly torn or damaged, is read back.
package wal

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"slices"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/name"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// A record: magic, body length, CRC-32C of the body, then the body: kind,
// state, file name length (2 bytes), file name and, for a put, the file's
// contents. A voided record has voidMagic in place of its magic.
const (
	recordMagic  = 0x534d4a31 // "SMJ1"
	voidMagic    = 0x534d4a30 // "SMJ0"
	recordHeader = 12
)

// The kinds of record.
const (
	KindPut    = 'P' // the message's file is the record's data
	KindDelete = 'D' // the message has no file
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Append appends the record of a change to buf: of kind, leaving the
// message whose file name is file in state s with the contents data (nil
// for a deletion).
func Append(buf []byte, kind byte, s metastorage.QueueState, file string, data []byte) []byte {
	start := len(buf)
	buf = binary.BigEndian.AppendUint32(buf, recordMagic)
	buf = append(buf, make([]byte, 8)...)
	body := len(buf)
	buf = append(buf, kind, byte(s))
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(file)))
	buf = append(buf, file...)
	buf = append(buf, data...)
	binary.BigEndian.PutUint32(buf[start+4:], uint32(len(buf)-body))
	binary.BigEndian.PutUint32(buf[start+8:], crc32.Checksum(buf[body:], castagnoli))
	return buf
}

// Record is a parsed journal record.
type Record struct {
	Kind  byte
	State metastorage.QueueState
	File  string
	Data  []byte // the file's contents, for a put
	Void  bool   // voided: its change failed
}

// ParseRecord parses the record at the start of buf and returns it and its
// length, or ok false if no valid record starts there.
func ParseRecord(buf []byte) (r Record, n int, ok bool) {
	if len(buf) < recordHeader {
		return r, 0, false
	}
	switch binary.BigEndian.Uint32(buf) {
	case recordMagic:
	case voidMagic:
		r.Void = true
	default:
		return r, 0, false
	}
	size := binary.BigEndian.Uint32(buf[4:])
	if size < 4 || uint64(size) > uint64(len(buf)-recordHeader) {
		return r, 0, false
	}
	body := buf[recordHeader : recordHeader+int(size)]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(buf[8:]) {
		return r, 0, false
	}
	r.Kind, r.State = body[0], metastorage.QueueState(body[1])
	nameLen := int(binary.BigEndian.Uint16(body[2:]))
	if 4+nameLen > len(body) || (r.Kind != KindPut && r.Kind != KindDelete) || !r.State.Valid() {
		return r, 0, false
	}
	r.File = string(body[4 : 4+nameLen])
	r.Data = body[4+nameLen:]
	if _, ok := name.Decode(r.File); !ok {
		return r, 0, false
	}
	return r, recordHeader + int(size), true
}

// Parse returns the last record of each message in buf, in the order
// of those records, and the number of bytes it skipped as damaged.
func Parse(buf []byte) (last []Record, skipped int) {
	at := make(map[string]int)
	skipped = Walk(buf, func(r Record, _, _ int) {
		if i, seen := at[r.File]; seen {
			last[i].Kind = 0 // superseded
		}
		at[r.File] = len(last)
		last = append(last, r)
	})
	return slices.DeleteFunc(last, func(r Record) bool { return r.Kind == 0 }), skipped
}

// Walk calls fn with each valid record in buf that is not void, its
// offset and its length, and returns the number of bytes it skipped as
// damaged. After a damaged record (a torn append, or one cut short by a
// full disk) it goes on at the next place a valid record starts.
func Walk(buf []byte, fn func(r Record, off, n int)) (skipped int) {
	for off := 0; off < len(buf); {
		r, n, ok := ParseRecord(buf[off:])
		if !ok {
			next := indexMagic(buf[off+1:])
			if next < 0 {
				return skipped + len(buf) - off
			}
			skipped += next + 1
			off += next + 1
			continue
		}
		if !r.Void {
			fn(r, off, n)
		}
		off += n
	}
	return skipped
}

// indexMagic returns the index of the first record magic in buf, void or
// not, or -1.
func indexMagic(buf []byte) int {
	for i := 0; ; {
		j := bytes.Index(buf[i:], recordMagicBytes[:3])
		if j < 0 || i+j+3 >= len(buf) {
			return -1
		}
		if c := buf[i+j+3]; c == recordMagicBytes[3] || c == voidMagicBytes[3] {
			return i + j
		}
		i += j + 1
	}
}

var (
	recordMagicBytes = binary.BigEndian.AppendUint32(nil, recordMagic)
	voidMagicBytes   = binary.BigEndian.AppendUint32(nil, voidMagic)
)

// VoidMagic returns the bytes that void a record in place of its first
// bytes: a voided record is skipped by Walk and Parse.
func VoidMagic() []byte { return slices.Clone(voidMagicBytes) }
