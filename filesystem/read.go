package filesystem

import (
	"context"
	"fmt"

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
