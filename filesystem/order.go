package filesystem

import (
	"sync"
	"sync/atomic"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// moveOrder keeps the one order between directories that the durable modes
// need: when a message is renamed from directory S into directory T, its new
// entry in T must be durable before its removal from S can be. Otherwise a
// power loss after an fsync of S (asked for by any other call) and before
// one of T would lose the message from both.
//
// So an fsync of S first fsyncs every T that holds a message renamed out of
// S since T's last fsync, and no rename out of S runs while S is fsynced.
// Renames are numbered in the order they finish; an fsync of a directory
// covers every rename numbered up to the count it read when it started.
type moveOrder struct {
	gen     atomic.Uint64
	out     [metastorage.NumStates]sync.RWMutex // renames out of S share it; S's fsync holds it alone
	pending [metastorage.NumStates][metastorage.NumStates]atomic.Uint64
	durable [metastorage.NumStates]atomic.Uint64
}

// rename runs fn, which renames a message out of directory from into
// directory to, and records the rename if fn says it took place (also when
// fn fails afterwards).
func (o *moveOrder) rename(from, to metastorage.QueueState, fn func() (moved bool, err error)) error {
	o.out[from].RLock()
	defer o.out[from].RUnlock()
	moved, err := fn()
	if moved {
		storeMax(&o.pending[from][to], o.gen.Add(1))
	}
	return err
}

// sync fsyncs directory s of dirs, after the directories that hold
// messages renamed out of s whose entries may not be durable yet.
func (o *moveOrder) sync(s metastorage.QueueState, dirs *[metastorage.NumStates]*groupSync) error {
	o.out[s].Lock()
	defer o.out[s].Unlock()
	for t := range dirs {
		if t != int(s) && o.pending[s][t].Load() > o.durable[t].Load() {
			if err := o.syncDir(metastorage.QueueState(t), dirs[t]); err != nil {
				return err
			}
		}
	}
	return o.syncDir(s, dirs[s])
}

func (o *moveOrder) syncDir(s metastorage.QueueState, d *groupSync) error {
	g := o.gen.Load()
	if err := d.fsync(); err != nil {
		return err
	}
	storeMax(&o.durable[s], g)
	return nil
}

// storeMax raises v to n unless it is already higher.
func storeMax(v *atomic.Uint64, n uint64) {
	for {
		old := v.Load()
		if old >= n || v.CompareAndSwap(old, n) {
			return
		}
	}
}
