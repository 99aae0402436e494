package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	metafs "github.com/spoolmeta/spoolmeta/filesystem"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// benchMessage returns a record of realistic size: three headers and a
// last error, about 350 bytes of JSON.
func benchMessage(i int, s metastorage.QueueState) metastorage.MessageMetadata {
	return metastorage.MessageMetadata{
		State:       s,
		MaxAttempts: 5,
		Size:        int64(2048 + i%4096),
		Priority:    i % 10,
		NextRetry:   time.Date(2026, 1, 1, 0, 0, i%3600, 0, time.UTC),
		LastError:   "451 4.7.1 Service unavailable - try again later",
		Headers: map[string]string{
			"from":    fmt.Sprintf("sender-%d@example.org", i%97),
			"to":      fmt.Sprintf("rcpt-%d@example.com", i),
			"subject": "Your order has shipped",
		},
		RetryPolicyName: "smtp-default",
	}
}

func benchID(i int) string { return fmt.Sprintf("bench-%08d", i) }

// timed runs op and appends its duration to lat.
func timed(lat *[]time.Duration, op func() error) error {
	start := time.Now()
	err := op()
	*lat = append(*lat, time.Since(start))
	return err
}

// benchStore: W workers store N new messages in incoming.
func benchStore(ctx context.Context, b *metafs.Backend, cfg benchRun, lat *latencies) (int, error) {
	err := parallel(cfg.workers, func(w int) error {
		lo, hi := share(cfg.messages, cfg.workers, w)
		var l []time.Duration
		defer func() { lat.add(l) }()
		for i := lo; i < hi; i++ {
			if err := timed(&l, func() error {
				return b.StoreMeta(ctx, benchID(i), benchMessage(i, metastorage.StateIncoming))
			}); err != nil {
				return err
			}
		}
		return nil
	})
	return cfg.messages, err
}

// benchLifecycle: per message StoreMeta(incoming), MoveToState(incoming ->
// active), GetMeta, UpdateMeta (Attempts+1, LastError, deferred),
// MoveToState(deferred -> active), DeleteMeta.
func benchLifecycle(ctx context.Context, b metastorage.Backend, cfg benchRun, lat *latencies) (int, error) {
	err := parallel(cfg.workers, func(w int) error {
		lo, hi := share(cfg.messages, cfg.workers, w)
		var l []time.Duration
		defer func() { lat.add(l) }()
		for i := lo; i < hi; i++ {
			if err := lifecycleOne(ctx, b, i, &l); err != nil {
				return err
			}
		}
		return nil
	})
	return cfg.messages * 6, err
}

func lifecycleOne(ctx context.Context, b metastorage.Backend, i int, l *[]time.Duration) error {
	id := benchID(i)
	var md metastorage.MessageMetadata
	steps := []func() error{
		func() error { return b.StoreMeta(ctx, id, benchMessage(i, metastorage.StateIncoming)) },
		func() error { return b.MoveToState(ctx, id, metastorage.StateIncoming, metastorage.StateActive) },
		func() (err error) { md, err = b.GetMeta(ctx, id); return err },
		func() error {
			md.Attempts++
			md.LastError = "421 4.4.2 Connection timed out"
			md.State = metastorage.StateDeferred
			return b.UpdateMeta(ctx, id, md)
		},
		func() error { return b.MoveToState(ctx, id, metastorage.StateDeferred, metastorage.StateActive) },
		func() error { return b.DeleteMeta(ctx, id) },
	}
	for _, step := range steps {
		if err := timed(l, step); err != nil {
			return err
		}
	}
	return nil
}

// benchClaim: N messages in incoming; for each, 4 goroutines race
// MoveToState(incoming -> active); exactly N must win.
func benchClaim(ctx context.Context, b *metafs.Backend, cfg benchRun, lat *latencies) (int, error) {
	const racers = 4
	var winners atomic.Int64
	err := parallel(cfg.workers, func(w int) error {
		lo, hi := share(cfg.messages, cfg.workers, w)
		var l []time.Duration
		defer func() { lat.add(l) }()
		for i := lo; i < hi; i++ {
			start := time.Now()
			var wg sync.WaitGroup
			errs := make([]error, racers)
			for r := range racers {
				wg.Go(func() {
					err := b.MoveToState(ctx, benchID(i), metastorage.StateIncoming, metastorage.StateActive)
					switch {
					case err == nil:
						winners.Add(1)
					case !errors.Is(err, metastorage.ErrStateConflict):
						errs[r] = err
					}
				})
			}
			wg.Wait()
			l = append(l, time.Since(start))
			if err := errors.Join(errs...); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && winners.Load() != int64(cfg.messages) {
		err = fmt.Errorf("claim: %d winners for %d messages", winners.Load(), cfg.messages)
	}
	return cfg.messages * racers, err
}

// fillIncoming stores n messages in incoming in dir without fsync, for
// the claim workload.
func fillIncoming(ctx context.Context, dir string, n int) error {
	b, err := metafs.NewFactory(dir).WithDisableSync(true).Open()
	if err != nil {
		return err
	}
	err = parallel(8, func(w int) error {
		lo, hi := share(n, 8, w)
		for i := lo; i < hi; i++ {
			if err := b.StoreMeta(ctx, benchID(i), benchMessage(i, metastorage.StateIncoming)); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	return err
}

// spoolMessage returns message i of the spool workload as a queue leaves
// it at now: its state, attempts, last error and next retry follow from
// i, and it was created within the day before now.
func spoolMessage(i int, now time.Time) metastorage.MessageMetadata {
	states := [...]metastorage.QueueState{
		metastorage.StateDeferred, metastorage.StateIncoming, metastorage.StateDeferred, metastorage.StateActive,
		metastorage.StateDeferred, metastorage.StateHold, metastorage.StateBounce, metastorage.StateArchived,
	}
	domains := [...]string{"example.com", "example.net", "example.org", "mail.example.com"}
	md := benchMessage(i, states[i%len(states)])
	md.Headers["to"] = fmt.Sprintf("rcpt-%d@%s", i, domains[i%len(domains)])
	md.Created = now.Add(-time.Duration((i*7919)%86400) * time.Second).Round(time.Millisecond)
	md.NextRetry = time.Time{}
	md.LastError = ""
	switch md.State {
	case metastorage.StateDeferred:
		md.Attempts = 1 + i/8%4
		md.NextRetry = now.Add(time.Duration(5+i%55) * time.Minute).Round(time.Second)
		md.LastError = "451 4.7.1 greylisted, try again later"
	case metastorage.StateBounce:
		md.Attempts = md.MaxAttempts
		md.LastError = "550 5.1.1 user unknown"
	case metastorage.StateArchived:
		md.Attempts = 1
	}
	return md
}

func spoolID(i int) string { return fmt.Sprintf("q%06d", i) }

// benchSpool: W workers store N messages as a queue leaves them, in every
// state (see spoolMessage).
func benchSpool(ctx context.Context, b *metafs.Backend, cfg benchRun, lat *latencies) (int, error) {
	now := time.Now()
	err := parallel(cfg.workers, func(w int) error {
		lo, hi := share(cfg.messages, cfg.workers, w)
		var l []time.Duration
		defer func() { lat.add(l) }()
		for i := lo; i < hi; i++ {
			if err := timed(&l, func() error {
				return b.StoreMeta(ctx, spoolID(i), spoolMessage(i, now))
			}); err != nil {
				return err
			}
		}
		return nil
	})
	return cfg.messages, err
}
