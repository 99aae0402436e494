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
	stripe := stripeOf(file)
	counts, counted := b.stripeCounts(stripe)
	cur, err := b.locate(file, nowhere, nil)
	if err == nil && !cur.ok && !(counted && b.stripeUnchanged(stripe, &counts)) {
		// The message may have moved from a state not yet tried to one
		// already tried; under its lock the answer is final. Without a
		// change of its stripe's counters meanwhile, it is final already.
		var unlock func()
		unlock, err = b.lock(ctx, stripe)
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

// stripeCounts returns the change counters of stripe in every state, and
// whether they can be used: there are counters, and no change was under
// way.
func (b *Backend) stripeCounts(stripe int) (counts [metastorage.NumStates]uint64, ok bool) {
	for _, s := range metastorage.States() {
		n, usable := b.changes.snapshot(s, stripe)
		if !usable {
			return counts, false
		}
		counts[s] = n
	}
	return counts, true
}

// stripeUnchanged reports whether no file of stripe entered or left any
// state's directory through the library since counts were taken.
func (b *Backend) stripeUnchanged(stripe int, counts *[metastorage.NumStates]uint64) bool {
	for _, s := range metastorage.States() {
		if !b.changes.Unchanged(s, stripe, counts[s]) {
			return false
		}
	}
	return true
}
