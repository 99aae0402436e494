package filesystem

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// benchRecord is a message of realistic size: three headers and a last
// error, about 350 bytes of JSON.
func benchRecord(s metastorage.QueueState) metastorage.MessageMetadata {
	return metastorage.MessageMetadata{
		State: s, Attempts: 1, MaxAttempts: 5, Size: 4096, Priority: 5,
		LastError:       "451 4.7.1 greylisted, try again later",
		RetryPolicyName: "smtp-default",
		Headers: map[string]string{
			"from": "sender@example.com", "to": "recipient@example.org", "subject": "Invoice 2026-11",
		},
	}
}

// benchModes runs fn as a sub-benchmark for each mode on a fresh backend.
func benchModes(b *testing.B, fn func(b *testing.B, be *Backend)) {
	for _, mode := range []Mode{Standard, Performance, Hybrid} {
		b.Run(mode.String(), func(b *testing.B) {
			be, err := factoryFor(b.TempDir(), mode).Open()
			if err != nil {
				b.Fatal(err)
			}
			defer be.Close()
			fn(b, be)
		})
	}
}

// seed stores n messages in state s and returns their IDs.
func seed(b *testing.B, be *Backend, n int, s metastorage.QueueState) []string {
	b.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("seed-%06d", i)
		if err := be.StoreMeta(context.Background(), ids[i], benchRecord(s)); err != nil {
			b.Fatal(err)
		}
	}
	return ids
}

func BenchmarkStoreMeta(b *testing.B) {
	benchModes(b, func(b *testing.B, be *Backend) {
		md := benchRecord(metastorage.StateIncoming)
		for i := 0; b.Loop(); i++ {
			if err := be.StoreMeta(context.Background(), fmt.Sprintf("m-%d", i), md); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkGetMeta(b *testing.B) {
	benchModes(b, func(b *testing.B, be *Backend) {
		ids := seed(b, be, 100, metastorage.StateArchived)
		for i := 0; b.Loop(); i++ {
			if _, err := be.GetMeta(context.Background(), ids[i%len(ids)]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkUpdateMeta(b *testing.B) {
	benchModes(b, func(b *testing.B, be *Backend) {
		ids := seed(b, be, 100, metastorage.StateDeferred)
		md := benchRecord(metastorage.StateDeferred)
		for i := 0; b.Loop(); i++ {
			md.Attempts = i
			if err := be.UpdateMeta(context.Background(), ids[i%len(ids)], md); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkMoveToState(b *testing.B) {
	benchModes(b, func(b *testing.B, be *Backend) {
		ids := seed(b, be, 100, metastorage.StateHold)
		states := [2]metastorage.QueueState{metastorage.StateHold, metastorage.StateArchived}
		for i := 0; b.Loop(); i++ {
			from := states[(i/len(ids))%2]
			if err := be.MoveToState(context.Background(), ids[i%len(ids)], from, states[1-(i/len(ids))%2]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkStoreDelete(b *testing.B) {
	benchModes(b, func(b *testing.B, be *Backend) {
		md := benchRecord(metastorage.StateBounce)
		ctx := context.Background()
		for b.Loop() {
			if err := be.StoreMeta(ctx, "gone", md); err != nil {
				b.Fatal(err)
			}
			if err := be.DeleteMeta(ctx, "gone"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkListMessages(b *testing.B) {
	benchModes(b, func(b *testing.B, be *Backend) {
		seed(b, be, 1000, metastorage.StateDeferred)
		opts := metastorage.MessageListOptions{Limit: 100, SortBy: metastorage.SortByCreated}
		for b.Loop() {
			if _, err := be.ListMessages(context.Background(), metastorage.StateDeferred, opts); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkIterate(b *testing.B) {
	benchModes(b, func(b *testing.B, be *Backend) {
		seed(b, be, 1000, metastorage.StateDeferred)
		for b.Loop() {
			if n := iterateCount(b, be, metastorage.StateDeferred, 100); n != 1000 {
				b.Fatalf("iterated %d messages, want 1000", n)
			}
		}
	})
}

// iterateCount makes one full pass of a new iterator over state and
// returns the number of messages it yielded.
func iterateCount(tb testing.TB, be *Backend, state metastorage.QueueState, batch int) int {
	tb.Helper()
	ctx := context.Background()
	it, err := be.NewMessageIterator(ctx, state, batch)
	if err != nil {
		tb.Fatal(err)
	}
	defer it.Close()
	n := 0
	for {
		_, ok, err := it.Next(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		if !ok {
			return n
		}
		n++
	}
}

// BenchmarkLifecycle runs the lifecycle of the bench command's main
// workload, one message per iteration, 32 goroutines per CPU.
func BenchmarkLifecycle(b *testing.B) {
	benchModes(b, func(b *testing.B, be *Backend) {
		ctx := context.Background()
		var next atomic.Int64
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := lifecycle(ctx, be, fmt.Sprintf("m-%d", next.Add(1))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// lifecycle takes message id through the bench command's lifecycle:
// store, claim, read, defer, claim again, delete.
func lifecycle(ctx context.Context, be *Backend, id string) error {
	md := benchRecord(metastorage.StateIncoming)
	if err := be.StoreMeta(ctx, id, md); err != nil {
		return err
	}
	if err := be.MoveToState(ctx, id, metastorage.StateIncoming, metastorage.StateActive); err != nil {
		return err
	}
	got, err := be.GetMeta(ctx, id)
	if err != nil {
		return err
	}
	got.Attempts++
	got.LastError = "451 4.7.1 greylisted, try again later"
	got.State = metastorage.StateDeferred
	if err := be.UpdateMeta(ctx, id, got); err != nil {
		return err
	}
	if err := be.MoveToState(ctx, id, metastorage.StateDeferred, metastorage.StateActive); err != nil {
		return err
	}
	return be.DeleteMeta(ctx, id)
}
