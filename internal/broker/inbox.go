package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// InboxPrefix starts the name of every inbox; other streams cannot use it.
const InboxPrefix = "_inbox."

// Inbox limits: an inbox keeps its newest replies up to this size, in
// segments of the smallest size streams allow.
const (
	inboxRetentionBytes = 64 << 20
	inboxSegmentBytes   = 1 << 20
)

// IsInbox reports whether name is an inbox's.
func IsInbox(name string) bool { return strings.HasPrefix(name, InboxPrefix) }

// CreateInbox creates an inbox: a temporary one-partition stream, named
// InboxPrefix and 32 random hex digits, where responders publish replies
// (the name goes in a request's reply-to header). An inbox is not in the
// catalog and is not fsynced: it belongs to one requester, who deletes it
// with DeleteStream when it goes away, and a restart removes what is left
// of it. It has no deduplication, and ListStreams does not show it.
func (b *Broker) CreateInbox(ctx context.Context) (string, error) {
	var id [16]byte
	rand.Read(id[:])
	meta := b.newStreamMeta(StreamConfig{
		Name:           InboxPrefix + hex.EncodeToString(id[:]),
		Partitions:     1,
		RetentionBytes: inboxRetentionBytes,
		SegmentBytes:   inboxSegmentBytes,
		DedupWindow:    -1,
	})
	meta.Temporary = true
	info, err := b.addStream(meta)
	if err != nil {
		return "", err
	}
	return info.Config.Name, nil
}

// errInboxTarget refuses durable state (bindings, shared subscriptions) on
// an inbox, which would outlive it.
func errInboxTarget(what, name string) error {
	return fmt.Errorf("%w: %s cannot name inbox %q: inboxes are temporary", ErrInvalidArgument, what, name)
}

// removeTemporary deletes the files of the temporary streams of a closing
// broker (their logs are closed).
func (b *Broker) removeTemporary() error {
	var errs []error
	for _, s := range b.streams {
		if s.meta.Temporary {
			if err := b.cfg.FS.RemoveAll(s.dir); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
