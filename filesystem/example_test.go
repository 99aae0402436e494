//go:build linux || darwin

// The example opens a directory on disk, which the backend refuses on
// other platforms.

package filesystem_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	metafs "github.com/spoolmeta/spoolmeta/filesystem"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

func Example() {
	dir, err := os.MkdirTemp("", "spoolmeta-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	backend, err := metafs.NewFactory(dir).Create() // Standard mode: durable on return
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()

	ctx := context.Background()
	err = backend.StoreMeta(ctx, "msg-1", metastorage.MessageMetadata{
		State:       metastorage.StateIncoming,
		MaxAttempts: 3,
		Headers:     map[string]string{"to": "user@example.com"},
	})
	if err != nil {
		log.Fatal(err)
	}

	// Two workers race to claim the message: exactly one wins.
	first := backend.MoveToState(ctx, "msg-1", metastorage.StateIncoming, metastorage.StateActive)
	second := backend.MoveToState(ctx, "msg-1", metastorage.StateIncoming, metastorage.StateActive)
	fmt.Println(first, errors.Is(second, metastorage.ErrStateConflict))
	fmt.Println(second)

	md, err := backend.GetMeta(ctx, "msg-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(md.State, md.Headers["to"])
	// Output:
	// <nil> true
	// move msg-1: message is in state active, expected incoming: state conflict
	// active user@example.com
}

func ExampleFactory_WithMode() {
	dir, err := os.MkdirTemp("", "spoolmeta-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The last mode option set wins.
	factory := metafs.NewFactory(dir).WithDisableSync(true).WithMode(metafs.Hybrid)
	backend, err := factory.Open()
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	fmt.Println(factory.Mode(), backend.Mode())
	// Output: hybrid hybrid
}

func ExampleBackend_NewMessageIterator() {
	dir, err := os.MkdirTemp("", "spoolmeta-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	backend, err := metafs.NewBackendWithOptions(dir, true, false) // Performance mode
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		if err := backend.StoreMeta(ctx, id, metastorage.MessageMetadata{State: metastorage.StateDeferred}); err != nil {
			log.Fatal(err)
		}
	}

	it, err := backend.NewMessageIterator(ctx, metastorage.StateDeferred, 100)
	if err != nil {
		log.Fatal(err)
	}
	defer it.Close()
	n := 0
	for {
		_, ok, err := it.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		if !ok {
			break
		}
		n++
	}
	fmt.Println(n, "deferred;", backend.GetStateCount(metastorage.StateDeferred), "counted")
	// Output: 3 deferred; 3 counted
}

func ExampleBackend_ListMessages() {
	dir, err := os.MkdirTemp("", "spoolmeta-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	backend, err := metafs.NewFactory(dir).WithBatchSync(true).Open() // Hybrid mode
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	ctx := context.Background()
	for i, id := range []string{"low", "high", "mid"} {
		md := metastorage.MessageMetadata{State: metastorage.StateDeferred, Priority: []int{1, 9, 5}[i]}
		if err := backend.StoreMeta(ctx, id, md); err != nil {
			log.Fatal(err)
		}
	}
	page, err := backend.ListMessages(ctx, metastorage.StateDeferred, metastorage.MessageListOptions{
		SortBy: "priority", SortOrder: "desc", Limit: 2,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(page.MessageIDs, page.Total, page.HasMore)
	// Output: [high mid] 3 true
}
