package filesystem

import (
	"context"
	"fmt"
	"time"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// ImportMeta creates the message with md as its record exactly, Created
// and Updated included (a zero Updated is set to the current time, and a
// zero Created to Updated), and reports true; if a message with that ID
// exists, in any state, it changes nothing and reports false; if its
// record there cannot be read, it changes nothing and fails. It serves
// copies between backends, which keep the times of the source. md is
// checked as StoreMeta checks it, and written as StoreMeta writes a new
// message: durable when it returns true, as the mode promises.
func (b *Backend) ImportMeta(ctx context.Context, messageID string, md metastorage.MessageMetadata) (bool, error) {
	const op = "store"
	if err := metastorage.CheckRecord(&md); err != nil {
		return false, fmt.Errorf("%s %s: %w", op, messageID, err)
	}
	created := false
	err := b.mutate(ctx, op, messageID, func(file string, cur found) error {
		if cur.err != nil {
			return fmt.Errorf("%s %s: the record there cannot be read: %w", op, messageID, cur.err)
		}
		if cur.ok {
			return nil
		}
		md.ID = messageID
		if md.Updated.IsZero() {
			md.Updated = b.stamp(time.Time{})
		}
		if md.Created.IsZero() {
			md.Created = md.Updated
		}
		if err := b.put(op, messageID, file, cur, md); err != nil {
			return err
		}
		created = true
		return nil
	}, md.State)
	return created, err
}
