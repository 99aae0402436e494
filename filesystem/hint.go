package filesystem

import (
	"sync/atomic"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// hintSlots is the number of slots of the location hint table: 1 MiB
// whatever the number of messages.
const hintSlots = 1 << 18

// hints remember in which state a message was last seen, so that a lookup
// tries that directory first instead of up to five others. A slot is
// shared by every message whose name hashes to it, and a hint is only ever
// a first guess: a wrong one costs one failed open, never a wrong answer.
type hints struct {
	slots [hintSlots]atomic.Uint32 // hash check bits << 8 | state+1; 0 is empty
}

func hintSlot(h uint64) (int, uint32) {
	return int(h % hintSlots), uint32(h>>40) &^ 0xff
}

func (t *hints) get(h uint64) (metastorage.QueueState, bool) {
	i, check := hintSlot(h)
	v := t.slots[i].Load()
	if v == 0 || v&^0xff != check {
		return 0, false
	}
	return metastorage.QueueState(v&0xff) - 1, true
}

func (t *hints) set(h uint64, s metastorage.QueueState) {
	i, check := hintSlot(h)
	t.slots[i].Store(check | uint32(s+1))
}

func (t *hints) forget(h uint64) {
	i, check := hintSlot(h)
	if v := t.slots[i].Load(); v&^0xff == check {
		t.slots[i].CompareAndSwap(v, 0)
	}
}
