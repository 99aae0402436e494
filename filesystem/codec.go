package filesystem

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// errCorrupt marks a file under a message's name that is not valid
// metadata.
var errCorrupt = errors.New("not valid metadata")

// maxRecord bounds the size of a metadata file the backend reads.
const maxRecord = 16 << 20

// encode returns the file contents for md: one compact JSON object with the
// field names of metastorage.MessageMetadata and State as its number.
func encode(md *metastorage.MessageMetadata) ([]byte, error) {
	return json.Marshal(md)
}

// decode parses a metadata file. It accepts compact or indented JSON and
// ignores unknown fields; anything but one JSON object is errCorrupt.
func decode(data []byte) (metastorage.MessageMetadata, error) {
	var md metastorage.MessageMetadata
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return md, fmt.Errorf("%w: empty file", errCorrupt)
	}
	if trimmed[0] != '{' {
		return md, fmt.Errorf("%w: not a JSON object", errCorrupt)
	}
	if err := json.Unmarshal(trimmed, &md); err != nil {
		return md, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	return md, nil
}

var readBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// readRecord opens path without following a symbolic link and decodes it.
// A missing file gives an error for which isNotExist is true.
func readRecord(fsys vfs.FS, path string) (metastorage.MessageMetadata, error) {
	f, err := fsys.Open(path)
	if err != nil {
		return metastorage.MessageMetadata{}, err
	}
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	data, err := readAll(f, (*bp)[:0])
	*bp = data[:0]
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return metastorage.MessageMetadata{}, err
	}
	md, err := decode(data)
	if err != nil {
		return md, fmt.Errorf("%s: %w", path, err)
	}
	return md, nil
}

// readAll reads r to the end into buf, growing it as needed.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= maxRecord {
				return buf, fmt.Errorf("%w: larger than %d bytes", errCorrupt, maxRecord)
			}
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
