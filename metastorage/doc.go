// Package metastorage defines the storage contract of a message retry
// queue's metadata: the queue states, the metadata record, the Backend
// interface that stores records, and the errors a Backend reports.
//
// It is the contract of the RetrySpool metadata storage: code written against
// that contract only changes its import paths to use it. The package does no
// I/O; backends such as spoolmeta's filesystem package implement it, and the
// metastoragetest package checks that a backend keeps it.
package metastorage
