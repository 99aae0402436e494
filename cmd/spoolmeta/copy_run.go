package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

// copyProgressStep is how many messages copy reads between two progress
// lines.
const copyProgressStep = 50000

// run copies every message, then reviews the source, and prints the
// summary. A copy that stops early says how far it got: a second run
// resumes it.
func (c *copier) run(ctx context.Context) error {
	c.copied = make(map[string]*seen)
	err := c.copyAll(ctx)
	c.summary()
	if err != nil {
		var ie *interruptedError
		if errors.As(err, &ie) {
			fmt.Fprintf(c.stderr, "copy: stopped by %s; run copy again to resume\n", ie.name())
			return ie
		}
		return fmt.Errorf("%w (run copy again to resume)", err)
	}
	return c.review(ctx)
}

// copyAll copies the messages of every state, c.workers at a time. A
// failed copy stops the others; a signal lets those in hand finish.
func (c *copier) copyAll(ctx context.Context) error {
	err := c.forEach(ctx, func(metastorage.MessageMetadata) error {
		if ie := c.stopped(); ie != nil {
			return ie
		}
		if c.t.read++; c.t.read%copyProgressStep == 0 {
			fmt.Fprintf(c.stderr, "copy: %d messages read\n", c.t.read)
		}
		return nil
	}, c.copyOne)
	if err != nil {
		return err
	}
	return c.out.flush()
}

// forEach reads every message of the source, calls feed (if not nil) with
// each, and then fn, in one of c.workers goroutines. It returns the first
// error of fn, which stops the others, or of feed or the source, which
// lets the calls of fn in hand finish.
func (c *copier) forEach(ctx context.Context, feed func(metastorage.MessageMetadata) error, fn func(context.Context, metastorage.MessageMetadata) error) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan metastorage.MessageMetadata)
	var wg sync.WaitGroup
	var once sync.Once
	var failed error
	for range max(c.workers, 1) {
		wg.Go(func() {
			for md := range work {
				if err := fn(wctx, md); err != nil {
					once.Do(func() { failed = err; cancel() })
				}
			}
		})
	}
	var err error
	for _, s := range metastorage.States() {
		err = eachMessage(wctx, c.src, s, func(md metastorage.MessageMetadata) error {
			if feed != nil {
				if err := feed(md); err != nil {
					return err
				}
			}
			select {
			case work <- md:
				return nil
			case <-wctx.Done():
				return wctx.Err()
			}
		})
		if err != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	if failed != nil {
		return failed
	}
	return err
}

// copyOne copies md, the source's record, and with move removes it from the
// source once the destination holds it.
func (c *copier) copyOne(ctx context.Context, md metastorage.MessageMetadata) error {
	sn := seenOf(md)
	c.mu.Lock()
	_, dup := c.copied[md.ID]
	if !dup {
		c.copied[md.ID] = sn
	}
	c.mu.Unlock()
	if dup {
		return nil // it moved to a later state during the pass: the review says so
	}
	done, err := c.dstImport.ImportMeta(ctx, md.ID, md)
	if err != nil {
		return fmt.Errorf("copy %s to the destination: %w", escapeID(md.ID), err)
	}
	if done {
		c.add(&c.t.copied)
	} else {
		conflict, err := c.resolve(ctx, md)
		if err != nil || conflict {
			c.mu.Lock()
			sn.conflict = conflict
			c.mu.Unlock()
			return err
		}
	}
	if !c.move {
		return nil
	}
	err = c.src.DeleteMetaIf(ctx, md.ID, md)
	switch {
	case errors.Is(err, metastorage.ErrStateConflict):
		c.add(&c.t.kept)
		return c.out.event(copyEvent{ID: md.ID, Result: "kept", State: md.State.String(), Detail: "changed at the source after it was read; not removed there"})
	case err != nil:
		return fmt.Errorf("remove %s from the source: %w", escapeID(md.ID), err)
	}
	c.mu.Lock()
	c.t.moved++
	sn.moved = true
	c.mu.Unlock()
	return nil
}

// add adds one to the count n of c.t.
func (c *copier) add(n *int) {
	c.mu.Lock()
	*n++
	c.mu.Unlock()
}

// resolve handles a message that is already at the destination: the same
// record is left alone; another one is a conflict, reported, or with
// overwrite replaced by md. It reports whether a conflict is left.
func (c *copier) resolve(ctx context.Context, md metastorage.MessageMetadata) (bool, error) {
	cur, err := c.dst.GetMeta(ctx, md.ID)
	if errors.Is(err, metastorage.ErrMessageNotFound) {
		c.add(&c.t.conflicts)
		return true, c.out.event(copyEvent{ID: md.ID, Result: "conflict", State: md.State.String(), Detail: "removed from the destination while it was copied"})
	}
	if err != nil {
		return false, fmt.Errorf("read %s at the destination: %w", escapeID(md.ID), err)
	}
	if metastorage.SameRecord(cur, md) {
		c.add(&c.t.already)
		return false, nil
	}
	why := differences(cur, md)
	if !c.overwrite {
		c.add(&c.t.conflicts)
		return true, c.out.event(copyEvent{ID: md.ID, Result: "conflict", State: md.State.String(), Detail: "the destination holds another record (" + why + "); left alone"})
	}
	// Removing first and importing keeps every field of md; a failure
	// in between leaves the source's record to copy again.
	if err := c.dst.DeleteMetaIf(ctx, md.ID, cur); err != nil {
		return false, fmt.Errorf("replace %s at the destination: %w", escapeID(md.ID), err)
	}
	if _, err := c.dstImport.ImportMeta(ctx, md.ID, md); err != nil {
		return false, fmt.Errorf("replace %s at the destination: %w", escapeID(md.ID), err)
	}
	c.add(&c.t.overwritten)
	return false, c.out.event(copyEvent{ID: md.ID, Result: "overwritten", State: md.State.String(), Detail: "the destination held another record (" + why + ")"})
}

// differences names the fields in which two records differ.
func differences(a, b metastorage.MessageMetadata) string {
	var d []string
	add := func(differ bool, name string) {
		if differ {
			d = append(d, name)
		}
	}
	add(a.State != b.State, "state")
	add(a.Attempts != b.Attempts || a.MaxAttempts != b.MaxAttempts, "attempts")
	add(!a.NextRetry.Equal(b.NextRetry), "next retry")
	add(!a.Created.Equal(b.Created), "created")
	add(!a.Updated.Equal(b.Updated), "updated")
	add(a.LastError != b.LastError, "last error")
	add(a.Size != b.Size || a.Priority != b.Priority, "size or priority")
	add(!maps.Equal(a.Headers, b.Headers), "headers")
	add(a.RetryPolicyName != b.RetryPolicyName, "retry policy")
	if len(d) == 0 {
		return "the same fields"
	}
	return strings.Join(d, ", ") + " differ"
}

// summary prints what the copy did on stderr.
func (c *copier) summary() {
	t := c.t
	if t.read == 0 {
		fmt.Fprintln(c.stderr, "copy: nothing to copy: the source holds no messages")
		return
	}
	if t.copied == 0 && t.conflicts == 0 && t.overwritten == 0 && t.moved == 0 && t.kept == 0 {
		fmt.Fprintf(c.stderr, "copy: nothing to copy: all %s already at the destination\n", plural(t.already, "message"))
		return
	}
	line := fmt.Sprintf("copy: %d copied, %d already there, %s", t.copied, t.already, plural(t.conflicts, "conflict"))
	if c.overwrite {
		line += fmt.Sprintf(", %d overwritten", t.overwritten)
	}
	if c.move {
		line += fmt.Sprintf(", %d removed from the source, %d kept there", t.moved, t.kept)
	}
	fmt.Fprintln(c.stderr, line)
}

// review reads the source again: it reports the messages added, changed
// or gone since they were copied, checks the record at the destination of
// every other one, and, when the source did not change, compares the
// counts per state.
func (c *copier) review(ctx context.Context) error {
	if err := c.forEach(ctx, nil, c.reviewOne); err != nil {
		return fmt.Errorf("read the source again: %w", err)
	}
	var gone []string
	for id, sn := range c.copied {
		if !sn.visited && !sn.moved {
			gone = append(gone, id)
		}
	}
	slices.Sort(gone)
	for _, id := range gone {
		c.t.gone++
		if err := c.out.event(copyEvent{ID: id, Result: "gone", Detail: "removed from the source after it was copied"}); err != nil {
			return err
		}
	}
	if err := c.out.flush(); err != nil {
		return err
	}
	return c.verdict(ctx)
}

// reviewOne checks one record of the second read of the source.
func (c *copier) reviewOne(ctx context.Context, md metastorage.MessageMetadata) error {
	c.mu.Lock()
	sn, ok := c.copied[md.ID]
	var result, detail string
	switch {
	case !ok || sn.moved:
		c.t.added++
		result, detail = "added", "stored at the source during the copy; not copied"
	case sn.visited:
		c.mu.Unlock()
		return nil // it moved to a later state during this pass
	case sn.state != md.State || sn.updated != md.Updated.UnixNano():
		sn.visited = true
		c.t.changed++
		result, detail = "changed", "changed at the source after it was copied"
	default:
		sn.visited = true
	}
	conflict := sn != nil && sn.conflict
	c.mu.Unlock()
	if result != "" {
		return c.out.event(copyEvent{ID: md.ID, Result: result, State: md.State.String(), Detail: detail})
	}
	if conflict {
		return nil
	}
	cur, err := c.dst.GetMeta(ctx, md.ID)
	if err != nil && !errors.Is(err, metastorage.ErrMessageNotFound) {
		return fmt.Errorf("verify %s at the destination: %w", escapeID(md.ID), err)
	}
	if err == nil && metastorage.SameRecord(cur, md) {
		c.add(&c.t.verified)
		return nil
	}
	c.add(&c.t.mismatched)
	detail = "missing at the destination"
	if err == nil {
		detail = "the destination holds another record (" + differences(cur, md) + ")"
	}
	return c.out.event(copyEvent{ID: md.ID, Result: "mismatch", State: md.State.String(), Detail: detail})
}

// verdict prints the result of the review, and compares the counts when
// the source did not change.
func (c *copier) verdict(ctx context.Context) error {
	t := c.t
	bad := t.conflicts + t.kept + t.mismatched
	if live := t.added + t.changed + t.gone; live > 0 {
		fmt.Fprintf(c.stderr, "copy: the source changed during the copy: %d added, %d changed, %d gone since copied (listed above); %d records verified. Stop the queue and run copy again (with --overwrite for the changed ones).\n",
			t.added, t.changed, t.gone, t.verified)
		return errSilentPartial
	}
	fmt.Fprintf(c.stderr, "copy: the source did not change during the copy; %d records verified at the destination, %d differ\n", t.verified, t.mismatched)
	if c.move {
		if bad > 0 {
			return errSilentPartial
		}
		return nil
	}
	src, err := c.srcCounts(ctx)
	if err != nil {
		return fmt.Errorf("count the source: %w", err)
	}
	dst, err := c.dstCounts(ctx)
	if err != nil {
		return fmt.Errorf("count the destination: %w", err)
	}
	for _, s := range metastorage.States() {
		if src[s] != dst[s] {
			fmt.Fprintf(c.stderr, "copy: %s holds %d messages at the source and %d at the destination\n", s, src[s], dst[s])
			bad++
		}
	}
	if bad > 0 {
		return errSilentPartial
	}
	var n int64
	for _, k := range src {
		n += k
	}
	fmt.Fprintf(c.stderr, "copy: the counts per state agree: %s\n", plural(int(n), "message"))
	return nil
}
