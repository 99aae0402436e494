package postgres

import (
	"context"
	"time"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// ImportMeta creates the message with md as its record exactly, Created
// and Updated included (a zero Updated is set to the current time, and a
// zero Created to Updated), and reports true; if a message with that ID
// exists, in any state, it changes nothing and reports false. It serves
// copies between backends, which keep the times of the source. md is
// checked as StoreMeta checks it. The insert and its counter are one
// statement: when it returns true, the message is committed. A connection
// lost after the statement was sent gives an error wrapping
// ErrOutcomeUnknown, as for the other writes.
func (b *Backend) ImportMeta(ctx context.Context, messageID string, md metastorage.MessageMetadata) (bool, error) {
	const op = "import"
	if err := b.beginWrite(ctx, op, messageID, &md); err != nil {
		return false, err
	}
	defer b.ops.RUnlock()
	if md.Updated.IsZero() {
		md.Updated = time.Now()
	}
	if md.Created.IsZero() {
		md.Created = md.Updated
	}
	args := recordArgs(messageID, &md, md.Created, md.Updated)
	var done bool
	// Not idempotent: run again after it committed, it would report false.
	err := b.run(ctx, write, func() error {
		return b.pool.QueryRow(ctx, b.q.insert, args...).Scan(&done)
	})
	if err != nil {
		return false, opError(op, quote(messageID), err)
	}
	return done, nil
}
