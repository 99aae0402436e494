// Package spoolmeta is the root of the spoolmeta module, which stores the
// metadata of a message retry queue on the local file system.
//
// The packages to import are metastorage (the storage contract),
// filesystem (the backend, imported as metafs) and metastoragetest (the
// conformance suite). The command spoolmeta, in cmd/spoolmeta, is the
// operator's tool.
package spoolmeta
