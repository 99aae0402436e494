package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// GetMeta returns the message's record, with ID and State taken from the
// file's name and directory whatever its JSON says; see metastorage.Backend.
// It takes no lock: renames are atomic, so it reads either the old record
// or the new one, never a torn one.
func (b *Backend) GetMeta(ctx context.Context, messageID string) (md metastorage.MessageMetadata, err error) {
	const op = "get"
	defer func() { b.stats.count(opGet, err) }()
	file, err := b.fileName(op, messageID)
	if err != nil {
		return metastorage.MessageMetadata{}, err
	}
	if err := b.begin(ctx, op, messageID); err != nil {
		return metastorage.MessageMetadata{}, err
	}
	defer b.end()
	cur, err := b.locate(file, nowhere, nil)
	if err == nil && !cur.ok {
		// The message may have moved from a state not yet tried to one
		// already tried; under its lock the answer is final.
		var unlock func()
		unlock, err = b.lock(ctx, stripeOf(file))
		if err == nil {
			cur, err = b.locate(file, nowhere, nil)
			unlock()
		}
	}
	switch {
	case err != nil:
		return metastorage.MessageMetadata{}, fmt.Errorf("%s %s: %w", op, messageID, err)
	case !cur.ok:
		return metastorage.MessageMetadata{}, fmt.Errorf("%s %s: %w", op, messageID, metastorage.ErrMessageNotFound)
	case cur.err != nil:
		return metastorage.MessageMetadata{}, fmt.Errorf("%s %s: %w", op, messageID, cur.err)
	}
	md = cur.md
	md.ID = messageID
	md.State = cur.state
	return md, nil
}

// isUnreadable reports whether err says that a message file cannot be
// read for lack of permission: it belongs to another user, or its mode
// denies reading. Such a file is not damaged, and a scan or a listing
// skips it rather than ending.
func isUnreadable(err error) bool { return errors.Is(err, fs.ErrPermission) }

// skipUnreadable logs and counts the message file at path, skipped by a
// listing, an iteration or a scan because err says it cannot be read.
func (b *Backend) skipUnreadable(path string, err error) {
	b.stats.unreadableFiles.Add(1)
	b.log.Warn("skipping message file that cannot be read; calls on its message fail until its owner or mode is fixed",
		"path", path, "err", pathErrReason(err))
}

// pathErrReason returns what err says went wrong, without the operation
// and path that a *fs.PathError adds.
func pathErrReason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// errIteratorClosed is returned by Next after Close.
var errIteratorClosed = errors.New("iterator is closed")
