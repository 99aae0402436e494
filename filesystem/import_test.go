package filesystem

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/spoolmeta/spoolmeta/filesystem/internal/codec"
	"github.com/spoolmeta/spoolmeta/filesystem/internal/vfs"
	"github.com/spoolmeta/spoolmeta/metastorage"
)

// TestImportMeta checks that ImportMeta keeps Created and Updated as given,
// counts the message, and leaves a message that exists as it is.
func TestImportMeta(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, err := open(quietConfig(vfs.NewMem(), Standard))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	zone := time.FixedZone("", -5*3600)
	md := metastorage.MessageMetadata{State: metastorage.StateDeferred, Attempts: 3,
		Created: time.Date(2020, 1, 2, 3, 4, 5, 6, zone), Updated: time.Date(2021, 1, 2, 3, 4, 5, 7, zone),
		Headers: map[string]string{"to": "a@example.org"}}
	ok, err := b.ImportMeta(ctx, "m", md)
	if err != nil || !ok {
		t.Fatalf("ImportMeta = %v, %v; want true, nil", ok, err)
	}
	got, err := b.GetMeta(ctx, "m")
	md.ID = "m"
	if err != nil || !metastorage.SameRecord(got, md) || !got.Updated.Equal(md.Updated) || !got.Created.Equal(md.Created) {
		t.Fatalf("GetMeta = %+v, %v; want %+v", got, err, md)
	}
	other := md
	other.State, other.Attempts = metastorage.StateHold, 9
	if ok, err := b.ImportMeta(ctx, "m", other); err != nil || ok {
		t.Fatalf("ImportMeta of an existing message = %v, %v; want false, nil", ok, err)
	}
	if got, _ := b.GetMeta(ctx, "m"); !metastorage.SameRecord(got, md) {
		t.Errorf("an import over an existing message changed it: %+v", got)
	}
	if err := b.WaitCounts(ctx); err != nil {
		t.Fatal(err)
	}
	if n, h := b.GetStateCount(metastorage.StateDeferred), b.GetStateCount(metastorage.StateHold); n != 1 || h != 0 {
		t.Errorf("counts deferred %d, hold %d; want 1, 0", n, h)
	}
	if _, err := b.ImportMeta(ctx, "z", metastorage.MessageMetadata{State: metastorage.StateIncoming}); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.GetMeta(ctx, "z"); got.Updated.IsZero() || !got.Created.Equal(got.Updated) {
		t.Errorf("zero times imported as Created %v, Updated %v; want both now", got.Created, got.Updated)
	}
}

// TestImportMetaOverCorruptRecord shows that ImportMeta leaves a message
// whose record cannot be read as it is, and fails saying so.
func TestImportMetaOverCorruptRecord(t *testing.T) {
	t.Parallel()
	mem := crashLayout(t)
	name := filepath.Join(crashDir, "deferred", fileOf(t, "c"))
	writeMem(t, mem, name, []byte("{"))
	b, err := open(quietConfig(mem, Standard))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ok, err := b.ImportMeta(context.Background(), "c", metastorage.MessageMetadata{State: metastorage.StateIncoming})
	if ok || !errors.Is(err, codec.ErrCorrupt) {
		t.Errorf("ImportMeta over a corrupt record = %v, %v; want false and an error wrapping ErrCorrupt", ok, err)
	}
	if got := statesOf(t, b, "c"); len(got) != 1 || got[0] != metastorage.StateDeferred {
		t.Errorf("the message lies in %v after the import, want [deferred] as it was", got)
	}
}
