package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/spoolmeta/spoolmeta/metastorage"
)

func showCmd() *command {
	var dir *string
	var asJSON *bool
	return &command{
		name:    "show",
		args:    "[flags] ID...",
		summary: "Show the full record of messages",
		detail: `
Prints every field of each message, headers included, as "field: value"
lines, or with --json as one JSON object per message. A message that is not
found is reported on stderr and makes the exit status 1. show only reads
the directory.

Examples:

  spoolmeta show msg-123
  spoolmeta show --json msg-123 held-42 | jq .headers`,
		setFlags: func(fs *flag.FlagSet) {
			dir = dirFlag(fs)
			asJSON = fs.Bool("json", false, "print one JSON object per message")
		},
		run: func(e *env, _ *flag.FlagSet, ids []string) error {
			if len(ids) == 0 {
				return usagef("show needs at least one message ID")
			}
			b, err := openReadOnly(e, metadataDir(e, *dir))
			if err != nil {
				return err
			}
			defer b.Close()
			return runShow(e, b, ids, *asJSON)
		},
	}
}

func runShow(e *env, b metastorage.Backend, ids []string, asJSON bool) error {
	missing := 0
	for _, id := range ids {
		md, err := b.GetMeta(context.Background(), id)
		if errors.Is(err, metastorage.ErrMessageNotFound) || errors.Is(err, metastorage.ErrInvalidMessageID) {
			fmt.Fprintf(e.stderr, "spoolmeta show: no message %s\n", escapeID(id))
			missing++
			continue
		}
		if err != nil {
			return err
		}
		if asJSON {
			err = writeJSON(e.stdout, toRecord(md))
		} else {
			err = writeReadable(e.stdout, md)
		}
		if err != nil {
			return err
		}
	}
	if missing > 0 {
		return &partialError{msg: fmt.Sprintf("%d of %d messages not found", missing, len(ids))}
	}
	return nil
}
